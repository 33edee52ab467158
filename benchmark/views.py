"""The timeline views of the 200-process report: HTML and trace export times, page size, Chromium's load."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmark.measure import Row

RUNS = 7


def views(document: dict[str, Any], scratch: Path) -> list[Row]:
    """``timeline_html.page`` and ``trace.trace`` in-process on the report, then the page in Chromium."""
    from supervisor import strictjson, timeline_html, trace
    from supervisor.model import Report

    report = Report.from_json(document)
    size = len(report.processes)
    page, html_ms = _timed(lambda: timeline_html.page(report))
    _, trace_ms = _timed(lambda: strictjson.dumps(trace.trace(report)))
    path = scratch / "timeline.html"
    path.write_text(page, encoding="utf-8")
    megabytes = path.stat().st_size / 1e6
    rows = [
        Row("timeline: HTML render", html_ms, 200.0, "ms",
            f"supervisor.timeline_html.page of the {size}-process report, median of {RUNS}",
            "timeline_html.page(Report.from_json(report)) in-process"),
        Row("timeline: HTML size", megabytes, 1.0, "MB", f"the page of the {size}-process report, JSON embedded",
            "gsup report SESSION --html FILE"),
        Row("timeline: trace export", trace_ms, 100.0, "ms",
            f"supervisor.trace.trace of the {size}-process report, as JSON text, median of {RUNS}",
            "strictjson.dumps(trace.trace(report)) in-process"),
    ]
    return [*rows, _chromium_load(path, size)]


def _timed(action: Any) -> tuple[Any, float]:
    taken, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = action()
        taken.append(time.perf_counter() - start)
    return result, median(taken) * 1e3


def _chromium_load(path: Path, size: int) -> Row:
    """Headless Chromium (the system's, driven by playwright): navigation to the load event."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("no chromium on PATH (apt-get install chromium)")
    taken = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(RUNS):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            start = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            taken.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return Row("timeline: Chromium load", median(taken) * 1e3, 1000.0, "ms",
               f"headless Chromium, file:// navigation to the load event of the {size}-process page, median of {RUNS}",
               "playwright page.goto(file) with the system chromium")
