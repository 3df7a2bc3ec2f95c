"""The K-wise vote page in a real browser: headless Chromium (Playwright) on
`python -m autojudge.arena RUN --k 4` picks the best by click and by keyboard (1-4),
orders four images by click and by keyboard, and a replayed and a forged token are
refused; the export holds the K-wise rows as cast."""
from __future__ import annotations

import json

import pytest
from arena_helpers import make_run, serve, stop
from helpers import CHROMIUM, CHROMIUM_ARGS, needs_chromium, run_cli

pytestmark = needs_chromium()

FOUR = ("alpha_model", "beta_model", "gamma_model", "delta_model")


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run", tmp_path / "store", models=FOUR)


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
    proc, url = serve(run_dir, "--k", "4", "--votes-per-minute", "0", "--refit-seconds",
                      "0.5", "--bootstrap", "20")
    yield url
    code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err


def _voting(page) -> str:
    """Wait for four images on screen; return the group's token (from an image URL)."""
    page.wait_for_selector("body[data-state='voting']")
    assert page.locator("#grid figure").count() == 4
    html = page.content()
    assert not any(m in html for m in FOUR), "a model name is on the page before the vote"
    return page.get_attribute("#img-0", "src").split("/")[2]


def _revealed(page) -> list[str]:
    page.wait_for_selector("body[data-state='revealed']")
    models = [page.inner_text(f"#reveal-{s} .model") for s in range(4)]
    assert sorted(models) == sorted(FOUR)
    return models


def _ranks(page) -> list[str]:
    return [page.inner_text(f"#rank-{s}") for s in range(4)]


def _post(page, body: dict) -> dict:
    """POST /api/vote from the page itself (its session cookie): status and answer."""
    return page.evaluate("""async (body) => {
        const r = await fetch("/api/vote", {method: "POST", credentials: "same-origin",
            headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
        return {status: r.status, body: await r.json()};
    }""", body)


def test_vote_on_four_images_by_click_and_keyboard(browser, server, run_dir,
                                                   tmp_path) -> None:
    page = browser.new_page()
    page.goto(f"{server}/?reveal=0")
    cast = []  # (models as revealed, ranks expected in slot order)

    token = _voting(page)  # best by click
    page.click("#pick-2")
    cast.append((_revealed(page), [None, None, 1, None]))
    assert "won" in page.get_attribute("#slot-2", "class") and _ranks(page)[2] == "1st"
    assert page.inner_text("#my-votes") == "1"

    # the voted token again, and a forged one: refused, nothing counted
    replay = _post(page, {"token": token, "best": 0})
    assert replay["status"] == 409 and "already voted" in replay["body"]["error"]
    nonce, mac = token.split(".")
    forged = _post(page, {"token": f"{nonce}.{mac[:-2]}AA", "best": 0})
    assert forged["status"] == 403 and "not issued to this session" in forged["body"]["error"]

    page.keyboard.press("Space")
    _voting(page)  # best by keyboard
    page.keyboard.press("4")
    cast.append((_revealed(page), [None, None, None, 1]))
    assert "won" in page.get_attribute("#slot-3", "class")

    page.keyboard.press("Enter")
    _voting(page)  # order by click: three picks, the last is implied
    page.click("#mode-order")
    assert page.is_disabled("#btn-submit")
    for slot in (3, 0, 2):
        page.click(f"#pick-{slot}")
    assert _ranks(page) == ["2nd", "4th", "3rd", "1st"]
    page.click("#btn-submit")
    cast.append((_revealed(page), [2, 4, 3, 1]))

    page.click("#next")
    _voting(page)  # order by keyboard, with an undo; the mode stays "order"
    assert page.get_attribute("body", "data-mode") == "order"
    page.keyboard.press("1")
    page.keyboard.press("Backspace")
    assert page.get_attribute("body", "data-picked") == "0"
    for key in ("2", "1", "4"):
        page.keyboard.press(key)
    assert _ranks(page) == ["2nd", "1st", "4th", "3rd"]
    page.keyboard.press("Enter")
    cast.append((_revealed(page), [2, 1, 4, 3]))
    assert page.inner_text("#my-votes") == "4"

    # a refused vote on the page says why and moves on
    page.keyboard.press("Space")
    token = _voting(page)
    assert _post(page, {"token": token, "best": 1})["status"] == 200  # voted elsewhere
    page.click("#mode-best")
    page.keyboard.press("1")
    page.wait_for_selector("body[data-state='refused']")
    assert "already voted" in page.inner_text("#status")
    _voting(page)

    out = tmp_path / "votes.jsonl"
    proc = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)])
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["models"], r["ranks"]) for r in rows[:4]] == cast
    assert [r["choice"] for r in rows] == ["best", "best", "order", "order", "best"]
    assert all(r["judge"] == "human" for r in rows)
