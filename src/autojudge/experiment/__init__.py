"""One experiment from settings to leaderboard: the typed settings and their rules
(schema, rules), building plugins from them (build), the checks before any work
(preflight), the run itself (pipeline), and what reads a finished run's battles to decide
(gate) or a judge's accuracy on controlled pairs (validation).
"""
