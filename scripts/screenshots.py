"""Regenerate the README's pictures of the web UI (docs/images/web-*.png).

Runs the browser tests' code path (tests/webui.py): two loopback feeds, a real
`monitor once`, a real `monitor serve`, Debian's headless Chromium.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from webui import DESKTOP, launch_browser, served_monitor, take_screenshots  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        served = served_monitor(Path(folder))
        try:
            with sync_playwright() as playwright:
                browser = launch_browser(playwright)
                try:
                    page = browser.new_context(viewport=DESKTOP, timezone_id="UTC").new_page()
                    for shot in take_screenshots(page, served.base, ROOT / "docs" / "images"):
                        print(shot.relative_to(ROOT))
                finally:
                    browser.close()
        finally:
            served.stop()


if __name__ == "__main__":
    main()
