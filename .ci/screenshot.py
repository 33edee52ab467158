"""``make screenshots``: the README's picture of a timeline, from a real run.

Runs ``examples/shutdown_story.py`` under gsup with ``--html``, loads the page
in the system's headless Chromium (through playwright) and saves the drawing as
``docs/timeline.png``; the page itself stays in ``build/screenshots/``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PAGE = ROOT / "build" / "screenshots" / "shutdown_story.html"
PICTURE = ROOT / "docs" / "timeline.png"


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("make screenshots: no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "gsup"), "run", "-q", "--no-timeline", "--python", str(BIN / "python"),
                    "--signal", "TERM", "--grace", "2s", "--ready-output", "workers ready", "--html", str(PAGE),
                    str(ROOT / "examples" / "shutdown_story.py")], check=True, stdout=subprocess.DEVNULL)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 600}, device_scale_factor=1)
        page.goto(PAGE.as_uri(), wait_until="load")
        page.locator("div.scroll").first.screenshot(path=str(PICTURE))
        browser.close()
    print(f"written: {PICTURE.relative_to(ROOT)} (from {PAGE.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
