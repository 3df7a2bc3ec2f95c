"""The arena: people vote on a run's image pairs in a browser; the human board updates
live and every automated judge is checked against the votes.

    python -m autojudge.arena RUN_DIR [RUN_DIR...]     # serve (see __main__ for flags)
    python -m autojudge.arena RUN_DIR --k 4            # K images at once
    python -m autojudge.arena RUN_DIR --export votes.jsonl

Modules: `runs` (what is served, read from finished runs), `pairs` (which pair next),
`groups` and `kwise` (`--k K`: which K images next, and their votes: best or an order),
`tokens` (sessions, single-use signed pair tokens, rate limits), `store` (append-only
SQLite votes, export as a battle log), `images` (checked, metadata-free image bytes),
`live` (online Elo, background Bradley-Terry refits, SSE fan-out), `app` (the Starlette
app and routes), `writer` (group commit from a thread), `serving` (how uvicorn runs it),
`timing` (`--timings`: where the server's time goes). Importing this package does not
import the web stack.
"""
