"""End to end in a real browser: headless Chromium (Playwright) votes by clicking and
with the keyboard on `python -m autojudge.arena`, the leaderboard page changes without a
reload (Server-Sent Events), and the votes are in the export."""
from __future__ import annotations

import pytest
from arena_helpers import MODELS, serve, stop
from helpers import CHROMIUM, CHROMIUM_ARGS, needs_chromium, run_cli

from autojudge.battles.log import read_battle_log

pytestmark = needs_chromium()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(run_dir):
    proc, url = serve(run_dir, "--votes-per-minute", "0", "--refit-seconds", "0.5",
                      "--bootstrap", "50")
    yield url
    code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err


def _voting(page) -> str:
    """Wait for a pair on screen; return its token (from the image URL)."""
    page.wait_for_selector("body[data-state='voting']")
    src = page.get_attribute("#img-left", "src")
    return src.split("/")[2]


def _revealed(page) -> tuple[str, str]:
    page.wait_for_selector("body[data-state='revealed']")
    left = page.inner_text("#reveal-left .model")
    right = page.inner_text("#reveal-right .model")
    assert left in MODELS and right in MODELS and left != right
    return left, right


def test_vote_in_the_browser_and_watch_the_board_update(browser, server, run_dir,
                                                        tmp_path) -> None:
    board = browser.new_page()
    board.goto(f"{server}/leaderboard")
    board.wait_for_selector("body[data-live='live']")
    board.wait_for_selector("article.card[data-judge='human']")
    assert board.inner_text("#n-votes") == "0"
    assert "unrated" in board.inner_text("article.card[data-judge='human']")
    assert board.locator("article.card[data-judge='fake']").count() == 1
    board.evaluate("window.__sameDocument = true")  # gone if the page reloads

    page = browser.new_page()
    page.goto(f"{server}/?reveal=0")
    seen_tokens, revealed = [], []
    # (how the vote is cast, the choice it means); the next pair by Space, Enter, the button
    steps = [(lambda: page.click("#btn-left"), "left"),
             (lambda: page.keyboard.press("ArrowRight"), "right"),
             (lambda: page.keyboard.press("3"), "tie"),
             (lambda: page.keyboard.press("ArrowUp"), "bothbad"),
             (lambda: page.click("#pick-right"), "right"),
             (lambda: page.keyboard.press("1"), "left")]
    nexts = [lambda: page.keyboard.press("Space"), lambda: page.keyboard.press("Enter"),
             lambda: page.click("#next")]
    for k, (cast, _) in enumerate(steps):
        seen_tokens.append(_voting(page))
        html = page.content()
        assert not any(m in html for m in MODELS), "a model name is on the page before the vote"
        cast()
        revealed.append(_revealed(page))
        assert page.inner_text("#my-votes") == str(k + 1)
        nexts[k % 3]()
    _voting(page)
    assert len(set(seen_tokens)) == len(steps)

    # the open leaderboard follows without a reload: counts at once, BT after a refit
    board.wait_for_function("document.body.dataset.votes === '6'", timeout=15_000)
    board.wait_for_function(
        "() => [...document.querySelectorAll(\"article.card[data-judge='human'] td.rating\")]"
        ".every(td => td.textContent !== 'unrated')", timeout=30_000)
    assert board.evaluate("window.__sameDocument") is True
    assert board.evaluate("performance.getEntriesByType('navigation').length") == 1
    human = board.inner_text("article.card[data-judge='human']")
    assert "6 votes" in human
    assert board.locator("#agreement tr[data-judge='fake']").count() == 1

    # prompt text is shown as text, never run as HTML
    xss = browser.new_page()
    xss.goto(f"{server}/?tag=objects&reveal=0")
    _voting(xss)
    assert xss.inner_text("#prompt") == "<script>window.pwned=1</script><b>bold</b> & friends"
    assert xss.evaluate("window.pwned") is None
    assert xss.locator("#prompt b").count() == 0

    out = tmp_path / "votes.jsonl"
    proc = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)])
    assert proc.returncode == 0, proc.stderr
    df = read_battle_log(out)
    assert len(df) == len(steps)
    winners = {"left": "model_a", "right": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
    assert list(df["winner"]) == [winners[choice] for _, choice in steps]
    assert list(zip(df["model_a"], df["model_b"])) == revealed
