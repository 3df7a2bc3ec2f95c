"""Report stage: terminal table, leaderboard.json/csv, battle log, W&B."""
