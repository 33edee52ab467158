"""The shutdown as a story in time: the report's timestamps, the Chrome trace, the terminal's
chronology and the HTML page, from one real run.

The run (``STORY``): a parent with a SIGTERM handler that passes SIGTERM on to its
child and exits, running a 200 ms atexit handler on the way; the child ignores
SIGTERM, so it outlives its parent and gsup's grace SIGKILLs it.  Every view is
checked against that run's report, and the trace against the Trace Event Format's
documented fields.  (What a browser shows is tests/test_browser.py.)
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import timeline, trace
from supervisor.model import Report
from supervisor.pytest_plugin import end_processes
from supervisor.render import CHRONOLOGY_LIMIT, render
from tests.helpers import PYTHON, Gsup, Result, role

STORY = textwrap.dedent("""
    import atexit, os, signal, subprocess, sys, time

    READY = sys.argv[1]
    if sys.argv[2:] == ["child"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stubborn: only the grace's SIGKILL ends it
        open(READY + ".child", "w").close()
        time.sleep(60)
        sys.exit(0)

    child = subprocess.Popen([sys.executable, __file__, READY, "child"])

    def on_term(signum, frame):
        os.kill(child.pid, signal.SIGTERM)
        sys.exit(0)

    def close_db():
        time.sleep(0.2)

    atexit.register(close_db)
    signal.signal(signal.SIGTERM, on_term)
    while not os.path.exists(READY + ".child"):
        time.sleep(0.01)
    open(READY, "w").close()
    time.sleep(60)
    """)


class Story:
    """One real run of STORY with every view written."""

    def __init__(self, gsup: Gsup, directory: Path) -> None:
        self.gsup, self.directory = gsup, directory
        self.html, self.trace = directory / "story.html", directory / "story.trace.json"
        prog = directory / "story.py"
        prog.write_text(STORY)
        ready = directory / "ready"
        self.result = gsup.run("run", "--json", "--python", PYTHON, "--signal", "TERM", "--grace", "1s",
                               "--ready-file", str(ready), "--html", str(self.html), "--trace", str(self.trace),
                               str(prog), str(ready))
        assert self.result.returncode == 0, self.result.stderr
        self.document = self.result.report
        self.report = Report.from_json(self.document)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    directory = tmp_path_factory.mktemp("story")
    gsup = Gsup(directory / "gsup-home", directory)
    yield Story(gsup, directory)
    left = gsup.leftovers()
    end_processes(left)
    assert not left


# -- the report's timestamps ----------------------------------------------------------------------


def test_the_report_places_signals_sent_grace_and_escalation_in_time(story: Story) -> None:
    document = story.document
    parent, child = role(document, "parent"), role(document, "child")
    term, kill = document["actions"]
    assert (term["signal"], kill["signal"], kill["by"]) == ("SIGTERM", "SIGKILL", "leftovers")
    assert kill.get("escalation") is True and "escalation" not in term
    grace = document["grace"]
    assert grace["seconds"] == 1.0 and abs(grace["from"] - term["at"]) < 0.05
    assert abs(grace["until"] - (grace["from"] + 1.0)) < 1e-6
    assert kill["at"] >= grace["until"] - 0.01
    [sent] = parent["sent"]
    assert (sent["pid"], sent["signal"]) == (child["pid"], "SIGTERM")
    [on_term] = [s for s in parent["signal_handlers"] if s["signal"] == "SIGTERM"]
    moments = [term["at"], on_term["times"][0], sent["at"], parent["ended"], kill["at"], child["ended"]]
    assert moments == sorted(moments), moments


def test_old_reports_without_timestamps_still_read(story: Story) -> None:
    document = json.loads(json.dumps(story.document))
    document.pop("grace")
    for proc in document["processes"]:
        proc.pop("sent")
        for handler in proc["handlers"]:
            handler.pop("started", None), handler.pop("ended", None)
    report = Report.from_json(document)
    assert report.grace is None and all(not p.sent for p in report.processes)
    assert timeline.build(report).lanes  # the views draw what there is


# -- the timeline model ---------------------------------------------------------------------------


def test_lanes_follow_the_tree_and_signals_reach_their_lanes(story: Story) -> None:
    line = timeline.build(story.report)
    parent, child = role(story.document, "parent"), role(story.document, "child")
    names = [(lane.pid, lane.role, lane.depth) for lane in line.lanes]
    assert names == [(parent["pid"], "parent", 0), (child["pid"], "child", 1)]
    shown = [(s.signal, line.lanes[s.receiver].pid, s.sender, s.fate, s.escalation) for s in line.signals]
    assert shown == [("SIGTERM", parent["pid"], None, "handled by on_term", False),
                     ("SIGTERM", child["pid"], 0, "ignored", False),
                     ("SIGKILL", child["pid"], None, "", True)]
    [close_db] = [r for r in line.lanes[0].runs if r.kind == "atexit"]
    assert close_db.label == "close_db" and close_db.status == "ran" and close_db.end is not None
    assert 0.2 <= close_db.end - close_db.start < 1.0


# -- the terminal ---------------------------------------------------------------------------------


def chronology(result: Result) -> list[str]:
    lines = result.stdout.splitlines()
    start = lines.index("timeline (seconds since launch)")
    return lines[start + 1:]


def test_the_rich_report_ends_with_the_chronology_plain_and_aligned(story: Story) -> None:
    result = story.gsup.run("report", story.report.session)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # NO_COLOR and a pipe: plain text
    lines = chronology(result)
    parent, child = role(story.document, "parent")["pid"], role(story.document, "child")["pid"]
    expected = [f"SIGTERM → {parent} parent (gsup, handled by on_term)",
                f"{parent} parent on_term ran (SIGTERM handler)",
                f"SIGTERM → {child} child ({parent} parent, ignored)", f"{parent} parent atexit close_db 20",
                f"{parent} parent exited 0", f"SIGKILL → {child} child (gsup, grace over)",
                f"{child} child left running, then SIGKILL"]
    texts = [line[10:] for line in lines]
    found = [next(i for i, text in enumerate(texts) if text.startswith(e)) for e in expected]
    assert found == sorted(found), lines
    # The grace begins as gsup sends (its own clock: within a few ms of the handlers' first lines).
    assert found[0] < texts.index("grace of 1s begins") < found[4], lines
    column = len(lines[0]) - len(lines[0].lstrip()) + len("+0.000  ")
    for line in lines:  # a time right-aligned in its column, or a long line's rest wrapped under its text
        assert re.fullmatch(r" *[+-]\d+\.\d{3}  \S.*", line) or line.startswith(" " * column), lines
        assert re.match(r" *[+-]\d+\.\d{3}  ", line) is None or line.index(".") == column - 6, lines
        assert line == line.rstrip()


def test_the_chronology_is_shown_by_default_only_for_short_stories(story: Story) -> None:
    def shown(report: Report, flag: Any) -> bool:
        from rich.console import Console

        console = Console(color_system=None, width=200, record=True)
        console.print(render(report, flag))
        return "timeline (seconds since launch)" in console.export_text()

    document = json.loads(json.dumps(story.document))
    document["processes"] *= CHRONOLOGY_LIMIT // 2
    long = Report.from_json(document)
    assert shown(story.report, None) and not shown(story.report, False)
    assert not shown(long, None) and shown(long, True)
    result = story.gsup.run("report", "--no-timeline", story.report.session)
    assert "timeline (seconds since launch)" not in result.stdout


# -- the trace ------------------------------------------------------------------------------------

PHASES = {"X": {"name", "ph", "ts", "pid", "tid", "dur"}, "i": {"name", "ph", "ts", "pid", "tid", "s"},
          "M": {"name", "ph", "pid", "args"}, "s": {"name", "ph", "ts", "pid", "tid", "id", "cat"},
          "f": {"name", "ph", "ts", "pid", "tid", "id", "cat", "bp"}}


def check_trace(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The Trace Event Format's documented fields, event by event (JSON object form)."""
    assert set(document) >= {"traceEvents"} and document.get("displayTimeUnit") in ("ms", "ns")
    events = document["traceEvents"]
    for event in events:
        assert event["ph"] in PHASES, event
        assert PHASES[event["ph"]] <= set(event), event
        assert isinstance(event["pid"], int) and isinstance(event.get("tid", 0), int), event
        assert isinstance(event.get("ts", 0), (int, float)) and event.get("ts", 0) >= 0, event
        assert event.get("dur", 0) >= 0 and event.get("s", "t") in ("g", "p", "t"), event
        assert isinstance(event.get("args", {}), dict), event
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "process_labels", "process_sort_index", "thread_name")
    starts = {e["id"] for e in events if e["ph"] == "s"}
    assert starts == {e["id"] for e in events if e["ph"] == "f"}  # every flow has both ends
    return list(events)


def test_the_trace_has_the_format_s_fields_a_process_per_pid_and_flows(story: Story) -> None:
    document = json.loads(story.trace.read_text())
    events = check_trace(document)
    parent, child = role(story.document, "parent"), role(story.document, "child")
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    gsup = int(story.report.session.split("-")[0])
    assert names == {gsup: "gsup", parent["pid"]: "parent", child["pid"]: "child"}
    [close_db] = [e for e in events if e["ph"] == "X" and e["name"] == "close_db"]
    handler = next(h for h in parent["handlers"] if h["name"] == "close_db")
    assert close_db["pid"] == parent["pid"] and abs(close_db["ts"] - handler["started"] * 1e6) < 1
    assert abs(close_db["dur"] - (handler["ended"] - handler["started"]) * 1e6) < 2
    flows = sorted((e["id"], e["ph"] == "f", e["ph"], e["pid"]) for e in events if e["ph"] in "sf")
    assert [(ph, pid) for _, _, ph, pid in flows] == [("s", gsup), ("f", parent["pid"]), ("s", parent["pid"]),
                                                    ("f", child["pid"]), ("s", gsup), ("f", child["pid"])]
    assert any(e["cat"] == "escalation" for e in events if e["ph"] == "i")
    rebuilt = trace.trace(story.report)["traceEvents"]  # `gsup report --trace`: the same events from the JSON
    assert [(e["name"], e["ph"], e["pid"]) for e in rebuilt] == [(e["name"], e["ph"], e["pid"]) for e in events]


# -- the page -------------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_embeds_the_report(story: Story) -> None:
    page = story.html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)=\"(https?:)?//|<link|@import|url\((?!#)", page)
    embedded = re.search(r"<script type=\"application/json\" id=\"t0-json\">(.*?)</script>", page, re.S)
    assert embedded and json.loads(embedded.group(1)) == story.document
    assert page.count("<g class=\"lane\"") == len(story.document["processes"])
    assert page.count("<title") >= page.count("<rect class=\"run") + page.count("class=\"signalmark\"")


def test_an_unwritable_html_path_is_one_line_and_exit_2_after_the_report(story: Story) -> None:
    result = story.gsup.run("report", "--html", str(story.directory / "no" / "such.html"), story.report.session)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--html" in result.stderr and "cannot write" in result.stderr
    assert "timeline (seconds since launch)" in result.stdout


def test_a_send_that_reached_nobody_is_drawn_as_dropped(story: Story) -> None:
    from supervisor import timeline_html
    from supervisor.model import Action

    report = Report.from_json(json.loads(json.dumps(story.document)))
    report.actions.append(Action("SIGINT", 2, "group", [], at=report.duration, by="ctrl-c"))
    page = timeline_html.page(report)
    [dropped] = re.findall(r"<g class=\"dropped\".*?</g>", page)
    assert "SIGINT to group: nobody left to get it" in dropped and ">dropped</text>" in dropped


def test_a_matrix_trace_keeps_its_runs_apart(gsup: Gsup, tmp_path: Path) -> None:
    prog, trace_file = tmp_path / "prog.py", tmp_path / "matrix.trace.json"
    prog.write_text("import time\ntime.sleep(30)\n")
    result = gsup.run("matrix", "--json", "--python", PYTHON, "--signals", "TERM,KILL", "--targets", "parent",
                      "--settle", "200ms", "--trace", str(trace_file), str(prog))
    assert result.returncode == 0, result.stderr
    events = check_trace(json.loads(trace_file.read_text()))
    names = sorted(e["args"]["name"] for e in events if e["name"] == "process_name")
    assert names == ["SIGKILL→parent: gsup", "SIGKILL→parent: parent", "SIGTERM→parent: gsup",
                     "SIGTERM→parent: parent"]
    assert len({e["pid"] for e in events}) == 4


def test_an_escalation_says_why_gsup_forced_the_end(story: Story) -> None:
    """The grace running out, the 3rd Ctrl-C and a second TERM to gsup are all escalations,
    but only the first is "grace over" (every escalation read so before)."""
    from supervisor import timeline, timeline_html
    from supervisor.model import Action

    report = Report.from_json(json.loads(json.dumps(story.document)))
    [kill] = [a for a in report.actions if a.escalation]
    child = kill.pids[0]
    report.actions = [a for a in report.actions if not a.escalation] + [
        Action("SIGKILL", 9, "tree", [child], at=kill.at, by="3rd ctrl-c", escalation=True),
        Action("SIGKILL", 9, "tree", [child], at=kill.at, by="gsup received", escalation=True),
        Action("SIGKILL", 9, "tree", [child], at=kill.at, by="grace", escalation=True)]
    forced = [s.forced for s in timeline.build(report).signals if s.signal == "SIGKILL"]
    assert forced == ["escalation", "escalation: gsup was signalled twice", "escalation: grace over"]
    lines = [m.text for m in timeline.build(report).moments if m.text.startswith("SIGKILL")]
    assert [line.endswith("grace over)") for line in lines] == [False, False, True], lines
    page = timeline_html.page(report)
    twice = page.count("(escalation: gsup was signalled twice)")  # each mark says it as often as the others
    assert twice > 0 and page.count("(escalation: grace over)") == twice


def test_a_grace_with_nothing_left_to_wait_for_is_no_moment(gsup: Gsup, tmp_path: Path) -> None:
    """A program that ends on its own, children and all: gsup's grace for leftovers begins
    as it ends, with nothing to wait for, and the chronology does not list it."""
    prog = tmp_path / "alone.py"
    prog.write_text("import atexit, subprocess, sys\natexit.register(print, 'bye')\n"
                    "subprocess.run([sys.executable, '-c', 'pass'], check=True)\n")
    result = gsup.run("run", "--timeline", "--python", PYTHON, str(prog))
    assert result.returncode == 0, result.stderr
    lines = chronology(result)
    assert any("exited 0" in line for line in lines), lines
    assert not [line for line in lines if "grace of" in line], lines
