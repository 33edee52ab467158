"""The HTML timeline as a person sees it, in a real headless Chromium.

Real reports (the Flask seed scenario, gunicorn with two workers, a matrix)
are written with ``--html``, loaded from disk by the system's Chromium (driven by
playwright, never its own browser download), and checked on what is drawn: one
lane per process of the report, each handler bar with its name at a horizontal
position proportional to its start time (within 2 px), each signal marker on its
receiver's lane, no console error and no request beyond the file itself.  Each
page's screenshot is saved under ``build/screenshots/`` (a CI artifact).

Skipped, with the reason, where Chromium or playwright is missing; under CI
(``CI`` set) that is a failure instead: CI installs both (``.ci/run``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, PYTHON, Gsup, free_port
from tests.test_servers import gunicorn, ready  # noqa: F401  (gunicorn: a fixture)
from tests.test_timeline import Story, story  # noqa: F401  (story: a fixture)

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOLERANCE = 2.0  # pixels


def _missing() -> str:
    if CHROMIUM is None:
        return "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make install installs the browser extra)"
    return ""


if _missing():
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must run the browser tests: {_missing()}")
    pytest.skip(_missing(), allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@dataclass
class Seen:
    """A page loaded in Chromium, and what it did while loading."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    load_seconds: float = 0.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def load(browser: Browser) -> Iterator[Callable[[Path, str], Seen]]:
    pages: list[Page] = []

    def open_page(path: Path, shot: str) -> Seen:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        pages.append(page)
        seen = Seen(page)
        page.on("request", lambda request: seen.requests.append(request.url))
        page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        started = time.monotonic()
        page.goto(path.as_uri(), wait_until="load")
        seen.load_seconds = time.monotonic() - started
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
        assert seen.requests == [path.as_uri()], seen.requests  # the file itself, nothing else
        assert seen.errors == []
        return seen

    yield open_page
    for page in pages:
        page.close()


# -- what a person sees ------------------------------------------------------------------------


def assert_timeline_shows(page: Page, report: dict[str, Any], svg_selector: str = "svg") -> None:
    """One lane per process; handler bars where their start times put them; signal markers on their lanes."""
    svg = page.locator(svg_selector).first
    box = svg.bounding_box()
    assert box is not None
    zoom = box["width"] / float(svg.get_attribute("width") or 1)
    x0, scale = float(svg.get_attribute("data-x0") or 0), float(svg.get_attribute("data-scale") or 0)
    lanes = svg.locator("g.lane")
    assert lanes.count() == len(report["processes"])
    assert sorted(int(lanes.nth(i).get_attribute("data-pid") or 0) for i in range(lanes.count())) == \
        sorted(p["pid"] for p in report["processes"])
    for proc in report["processes"]:
        lane = svg.locator(f"g.lane[data-pid=\"{proc['pid']}\"]").first
        for handler in [*proc["handlers"], *proc.get("watched", [])]:
            if handler.get("started") is None:
                continue
            bar = lane.locator(f"rect.run[data-start=\"{handler['started']:.6f}\"]").first
            bar_box = bar.bounding_box()
            assert bar_box is not None and bar.get_attribute("data-name") in (handler["name"], _label(handler))
            expected = box["x"] + (x0 + handler["started"] * scale) * zoom
            assert abs(bar_box["x"] - expected) <= TOLERANCE, (handler["name"], bar_box["x"], expected)
            assert bar.locator("title").text_content()  # a text alternative for the mark
    for action in report["actions"]:
        for pid in action["pids"]:
            assert_marker_on_lane(svg, pid, action["signal"])


def assert_marker_on_lane(svg: Any, pid: int, signal: str) -> None:
    markers = svg.locator(f"g.signalmark[data-pid=\"{pid}\"][data-signal=\"{signal}\"] path.signal")
    assert markers.count() >= 1, (pid, signal)
    lane_boxes = [svg.locator(f"g.lane[data-pid=\"{pid}\"] rect.life").nth(i).bounding_box()
                  for i in range(svg.locator(f"g.lane[data-pid=\"{pid}\"] rect.life").count())]
    marker = markers.first.bounding_box()
    assert marker is not None
    middle = marker["y"] + marker["height"] / 2
    assert any(lane is not None and lane["y"] - 14 <= middle <= lane["y"] + lane["height"] for lane in lane_boxes)


def _label(handler: dict[str, Any]) -> str:
    return handler["name"] if handler["module"] in ("__main__", "__mp_main__", "") else \
        f"{handler['module']}.{handler['name']}"


# -- the pages ---------------------------------------------------------------------------------


def test_the_story_page(story: Story, load: Callable[[Path, str], Seen]) -> None:  # noqa: F811
    seen = load(story.html, "story")
    assert_timeline_shows(seen.page, story.document)
    child = next(p for p in story.document["processes"] if p["role"] == "child")
    ignored = seen.page.locator(f"g.signalmark[data-pid=\"{child['pid']}\"] path.signal.ignored")
    assert ignored.count() == 1  # the TERM the child ignored looks different, and says so
    assert "ignored" in (seen.page.locator(f"g.signalmark[data-pid=\"{child['pid']}\"]").first.text_content() or "")
    assert seen.page.locator("rect.grace").count() == 1 and seen.page.locator("g.readymark").count() == 1
    assert seen.page.locator("text.ending", has_text="left running").count() == 1
    chronology = seen.page.locator("pre.chronology").inner_text()
    assert "close_db" in chronology and "grace over" in chronology
    seen.page.locator("input.zoom").first.fill("3")  # zoomed in, bars stay where their times put them
    zoomed = seen.page.locator("svg").first.bounding_box()
    assert zoomed is not None and zoomed["width"] > 3000
    assert_timeline_shows(seen.page, story.document)
    assert seen.errors == []


@pytest.mark.slow
def test_the_flask_seed_page(gsup: Gsup, load: Callable[[Path, str], Seen], tmp_path: Path) -> None:
    page_file = tmp_path / "flask.html"
    report = gsup.report("--signal", "KILL", "--target", "child", "--grace", "3s", "--html", str(page_file),
                         str(EXAMPLES / "flask_app.py"), env={"PORT": str(free_port())})
    seen = load(page_file, "flask")
    assert_timeline_shows(seen.page, report)
    assert seen.page.locator("g.lane").count() >= 2


@pytest.mark.slow
def test_the_gunicorn_page(gsup: Gsup, gunicorn: Callable[..., list[str]],  # noqa: F811
                           load: Callable[[Path, str], Seen], tmp_path: Path) -> None:
    page_file, port = tmp_path / "gunicorn.html", free_port()
    report = gsup.report("--signal", "TERM", *ready(port), "--html", str(page_file), "--", *gunicorn(port))
    seen = load(page_file, "gunicorn")
    assert_timeline_shows(seen.page, report)
    workers = [p for p in report["processes"] if p["role"] == "child"]
    assert len(workers) == 2
    for worker in workers:  # the master's TERM to each worker, drawn on that worker's lane
        assert_marker_on_lane(seen.page.locator("svg").first, worker["pid"], "SIGTERM")


def test_the_matrix_page(gsup: Gsup, load: Callable[[Path, str], Seen], tmp_path: Path) -> None:
    prog, page_file = tmp_path / "prog.py", tmp_path / "matrix.html"
    prog.write_text("import atexit, signal, sys, time\n"
                    "def bye():\n    pass\n"
                    "atexit.register(bye)\n"
                    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                    "time.sleep(30)\n")
    result = gsup.run("matrix", "--json", "--python", PYTHON, "--signals", "TERM,KILL", "--targets", "parent",
                      "--settle", "200ms", "--html", str(page_file), str(prog))
    assert result.returncode == 0, result.stderr
    document = result.report
    seen = load(page_file, "matrix")
    cells = seen.page.locator("table.grid td[data-outcome]")
    assert cells.count() == len(document["scenarios"])
    assert [cells.nth(i).get_attribute("data-outcome") for i in range(cells.count())] == ["clean", "not-run"]
    for index, run in enumerate(document["runs"]):
        assert_timeline_shows(seen.page, run, f"#s{index}-svg")
    seen.page.locator("table.grid td a").nth(1).click()  # one click away: the KILL scenario's timeline
    assert seen.page.evaluate("location.hash") == "#s1"


FAMILY = """
import os, signal, subprocess, sys, time
if sys.argv[1:] == ["child"]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("up", flush=True)
    time.sleep(60)
    sys.exit(0)
children = [subprocess.Popen([sys.executable, __file__, "child"], stdout=subprocess.PIPE) for _ in range(4)]
for child in children:
    child.stdout.readline()
signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children] and [c.wait() for c in children])
print("family ready", flush=True)
signal.pause()
"""


def test_a_five_process_report_prints_on_one_page(gsup: Gsup, browser: Browser, tmp_path: Path) -> None:
    prog, page_file = tmp_path / "family.py", tmp_path / "family.html"
    prog.write_text(FAMILY)
    report = gsup.report("--signal", "TERM", "--ready-output", "family ready", "--html", str(page_file), str(prog))
    assert len(report["processes"]) == 5
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri(), wait_until="load")
        pdf = page.pdf(format="A4", landscape=True, prefer_css_page_size=True)
    finally:
        page.close()
    (SHOTS / "family.pdf").write_bytes(pdf)
    pages = re.search(rb"/Type\s*/Pages\b[^>]*?/Count (\d+)|/Count (\d+)[^>]*?/Type\s*/Pages\b", pdf)
    assert pages is not None and int(pages.group(1) or pages.group(2)) == 1
