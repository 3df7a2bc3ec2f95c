"""Make docs/img/arena_vote.png and docs/img/arena_leaderboard.png from a real run.

    python -m autojudge hydra.run.dir=/tmp/arena_demo logger=none     # the default experiment
    python docs/img/make_arena_screenshots.py /tmp/arena_demo

Starts the arena on the run (votes go to a fresh temporary database), casts
`--votes` votes through the JSON API with a simple scripted voter (it prefers the image
that renders the prompt's words, and calls blank vs noise "both bad"), then photographs
the leaderboard and the vote page (after one vote, names revealed) with headless
Chromium through Playwright.
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start(run: Path, votes: Path) -> tuple[subprocess.Popen, str]:
    from autojudge.testing.arena_process import start_arena

    try:
        return start_arena(run, ["--votes", str(votes), "--votes-per-minute", "0",
                                 "--refit-seconds", "0.5"], timeout_s=60)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def scripted_votes(url: str, n: int, seed: int) -> None:
    """A stand-in voter: text-rendering prompts go to typeset, blank vs noise is both bad."""
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=url) as client:
        for _ in range(n):
            pair = client.get("/api/pair").json()
            choice = _look(client, pair, rng)  # like a person: from the pixels alone
            client.post("/api/vote", json={"token": pair["token"], "choice": choice})


def _look(client, pair, rng) -> str:
    """Judge the two images by their pixels (`_kind`), with some noise in the answers,
    as people."""
    kinds = [_kind(client.get(pair[side]["image_url"]).content) for side in ("left", "right")]
    if kinds.count("text") == 1:
        winner = "left" if kinds[0] == "text" else "right"
        return winner if rng.random() < 0.85 else rng.choice(["tie", "bothbad"])
    return "bothbad" if rng.random() < 0.7 else "tie"


def _kind(data: bytes) -> str:
    """What the image looks like: one flat colour, dark text on a light page, or noise."""
    from io import BytesIO

    from PIL import Image, ImageStat

    stat = ImageStat.Stat(Image.open(BytesIO(data)).convert("L"))
    return "flat" if stat.stddev[0] < 1 else "text" if stat.mean[0] > 150 else "noise"


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        board = browser.new_page(viewport={"width": 1280, "height": 900})
        board.goto(f"{url}/leaderboard")
        board.wait_for_function(
            "() => [...document.querySelectorAll(\"article.card[data-judge='human'] "
            "td.rating\")].every(td => td.textContent !== 'unrated')", timeout=60_000)
        time.sleep(1.0)
        board.screenshot(path=str(out / "arena_leaderboard.png"), full_page=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/?tag=text_rendering&reveal=0")
        for _ in range(30):  # vote as the scripted voter would, until a pair shows text
            page.wait_for_selector("body[data-state='voting']")
            kinds = [_kind(page.request.get(url + page.get_attribute(f"#img-{side}", "src"))
                           .body()) for side in ("left", "right")]
            if "text" in kinds:
                page.keyboard.press("ArrowLeft" if kinds[0] == "text" else "ArrowRight")
                page.wait_for_selector("body[data-state='revealed']")
                break
            page.keyboard.press("ArrowUp")  # both bad
            page.wait_for_selector("body[data-state='revealed']")
            page.keyboard.press("Space")
        page.screenshot(path=str(out / "arena_vote.png"), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run of the default experiment")
    parser.add_argument("--votes", type=int, default=60, help="scripted votes (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(args.run, Path(tmp) / "votes.sqlite")
        try:
            scripted_votes(url, args.votes, args.seed)
            shoot(url, args.out)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(f"wrote {args.out / 'arena_vote.png'} and {args.out / 'arena_leaderboard.png'}")


if __name__ == "__main__":
    main()
