"""`python -m autojudge.arena RUN_DIR [RUN_DIR...]`: serve the arena, or export its votes.

    python -m autojudge.arena runs/2024-05-01_starter                  # http://127.0.0.1:8000/
    python -m autojudge.arena runs/sweep --sampling adaptive --tag text
    python -m autojudge.arena runs/x --k 4                             # best of 4, or rank 4
    python -m autojudge.arena runs/x --read-only --host 0.0.0.0 --public --port 8080
    python -m autojudge.arena runs/x --export votes.jsonl              # the human battle log

Bad usage prints one `error: ...` line and exits 2 (a missing or unfinished run, a run
without images, a bind address other than loopback without `--public`, a busy port,
`--k` below 2).
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any, Sequence

from autojudge.cli.base import command_parser
from autojudge.errors import AutojudgeError


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "arena", description="Serve the arena for finished runs: people vote on pairs of "
                             "images, the human leaderboard updates live, and every judge "
                             "is checked against the votes.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a finished run folder, several, or a multirun sweep folder")
    p.add_argument("--host", default="127.0.0.1", help="bind address; default 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one); default 8000")
    p.add_argument("--public", action="store_true",
                   help="allow a bind address other than loopback (anyone who can reach it "
                        "can vote)")
    p.add_argument("--read-only", action="store_true",
                   help="publish the leaderboard without voting")
    p.add_argument("--sampling", choices=("undervoted", "adaptive"), default="undervoted",
                   help="which pair next: the least-voted (default) or the adaptive "
                        "scheduler's choice (widest CI)")
    p.add_argument("--k", type=int, default=2, metavar="K",
                   help="images shown at once: 2 (default) is the pairwise arena; K > 2 "
                        "shows K models' images of one prompt, the voter picks the best or "
                        "orders them (fewer where a prompt has fewer models)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="serve only prompts with this tag (repeatable)")
    p.add_argument("--votes", metavar="FILE",
                   help="votes database; default RUN_DIR/arena/votes.sqlite (first folder)")
    p.add_argument("--export", metavar="FILE",
                   help="write the votes as a battle log (.jsonl/.csv/.parquet) and exit")
    p.add_argument("--votes-per-minute", type=float, default=120.0, metavar="N",
                   help="per-voter rate limit (0: none); default 120")
    p.add_argument("--token-ttl", type=float, default=900.0, metavar="SECONDS",
                   help="how long a shown pair can be voted on; default 900")
    p.add_argument("--refit-seconds", type=float, default=2.0, metavar="SECONDS",
                   help="least seconds between Bradley-Terry refits; default 2")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help="bootstrap rounds of the human board's CIs; default: the run's")
    p.add_argument("--timings", metavar="FILE",
                   help="measure where the server's time goes (each vote's stages, each "
                        "route, event-loop lag, CPU) and write it as JSON to FILE on exit")
    return p


def check_host(host: str, public: bool) -> None:
    """Loopback only, unless --public."""
    if public:
        return
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not loopback:
        raise AutojudgeError(f"--host {host} would let other machines vote; add --public to "
                             "serve beyond this machine, or bind 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a busy port is one clear line (and --port 0 works)."""
    if not 0 <= port <= 65535:
        raise AutojudgeError(f"--port {port} is not a port number (0-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise AutojudgeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "choose another --port (0 picks a free one)") from None
    sock.setblocking(False)
    return sock


def export(args: Any) -> int:
    from autojudge.arena.runs import image_features_by_sha
    from autojudge.arena.votes import VoteStore, default_votes_path
    from autojudge.sweeps.jobs import find_jobs

    find_jobs(args.runs)  # the run folders must exist, as when serving
    path = Path(args.votes) if args.votes else default_votes_path(args.runs)
    if not path.is_file():
        raise AutojudgeError(f"no votes database at {path}; serve the arena and vote first, "
                             "or pass --votes FILE")
    store = VoteStore(path, readonly=True)
    try:
        n = store.export(args.export,
                         lambda shas: image_features_by_sha(args.runs, shas))
    except OSError as exc:  # an unwritable folder, a folder in the way, a full disk
        raise AutojudgeError(f"cannot write --export {args.export} "
                             f"({exc.strerror or exc}); choose a writable file path") from None
    finally:
        store.close()
    print(f"wrote {_count(n, 'vote')} to {args.export}")
    return 0


def serve(args: Any) -> int:
    from autojudge.runtime.extras import require

    require("arena", "the arena server", modules=("starlette", "uvicorn", "sse_starlette"))
    import uvicorn

    from autojudge.arena.app import ArenaConfig, create_app
    from autojudge.arena.runs import print_warnings
    from autojudge.arena.serving import one_write_protocol, tune_for_serving

    check_host(args.host, args.public)
    for name in ("votes_per_minute", "token_ttl", "refit_seconds"):
        if getattr(args, name) < 0:
            raise AutojudgeError(f"--{name.replace('_', '-')} must be >= 0")
    if args.bootstrap is not None and args.bootstrap < 0:
        raise AutojudgeError("--bootstrap must be >= 0")
    if args.k < 2:
        raise AutojudgeError(f"--k {args.k}: a vote compares at least 2 images; use --k 2 "
                             "(pairs, the default) or more")
    config = ArenaConfig(runs=args.runs, tags=args.tag, sampling=args.sampling,
                         read_only=args.read_only, votes_path=args.votes,
                         token_ttl_s=args.token_ttl, votes_per_minute=args.votes_per_minute,
                         refit_interval_s=args.refit_seconds,
                         bootstrap_rounds=args.bootstrap, k=args.k,
                         timings_path=args.timings)
    app = create_app(config)
    arena = app.state.arena
    print_warnings(arena.runs.warnings)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    groups = f"groups of up to {args.k}, " if args.k > 2 else ""
    print(f"arena: http://{shown}:{port}/  ({groups}{_count(len(arena.runs.pairs), 'pair')}, "
          f"{_count(len(arena.runs.models), 'model')}, "
          f"{_count(arena.live.n_votes, 'vote')} so far"
          f"{', read-only' if args.read_only else ''}); leaderboard: "
          f"http://{shown}:{port}/leaderboard; votes: {arena.store.path}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=2,
                                           http=one_write_protocol()))
    tune_for_serving()
    server.run(sockets=[sock])
    return 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (also the `autojudge-arena` console script); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return export(args) if args.export else serve(args)
    except AutojudgeError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
