"""report.html in a real browser (headless Debian Chromium via Playwright), opened from
disk with the network off: every section is there, every image loads, and a prompt that
is `<script>alert(1)</script>` shows as text without running."""
from __future__ import annotations

from pathlib import Path

from helpers import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from report_helpers import XSS

from autojudge.report.html import build_report

SECTIONS = ("summary", "leaderboard", "tags", "winrate", "tradeoffs", "agreement", "prompts")

pytestmark = needs_chromium()


def test_report_opens_offline_with_every_section_and_image(handmade_run: Path,
                                                           tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_path = build_report(handmade_run)
    dialogs, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            for section in SECTIONS:
                assert page.locator(f"#{section}").is_visible(), section
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? "
                                   "i.naturalWidth : 0)")
            assert len(widths) >= 20 and all(w > 0 for w in widths), widths
            prompt = page.locator("#prompts .prompt").first
            assert XSS in prompt.inner_text()  # shown as text ...
            assert page.evaluate("document.querySelectorAll('script').length") == 0  # ... not run
            assert "Not connected" in page.locator("#leaderboard").inner_text()
            assert "unrated" in page.locator("#leaderboard table").first.inner_text()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:4] == b"\x89PNG"
