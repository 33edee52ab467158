"""A report in the Chrome Trace Event Format, to open in Perfetto UI or chrome://tracing.

The JSON object form (``{"traceEvents": [...], "displayTimeUnit": "ms"}``) of the
format Google documents as "Trace Event Format": one pid per process with its role
as the process name, one tid per thread (the probe sees each process's main
thread, tid = pid), complete events (``X``) for lifetimes, handler runs and
watched calls, instant events (``i``) for signals, signal handlers, endings and
escalations, and flow events (``s``/``f``) from each signal's sender to its
receiver.  gsup itself is a process of the trace too, the sender of its own
signals, with readiness and the grace window on its lane.  Timestamps are
microseconds on the report's clock (since launch), so traces of several runs
line up at their launch.
"""

from __future__ import annotations

from typing import Any, Optional

from supervisor.model import Report
from supervisor.timeline import Lane, Run, Timeline, build

Event = dict[str, Any]
US = 1_000_000


def trace(report: Report, pid_offset: int = 0, prefix: str = "") -> dict[str, Any]:
    """The trace document of one report."""
    return {"traceEvents": events(report, pid_offset, prefix), "displayTimeUnit": "ms",
            "otherData": {"gsup_session": report.session, "command": " ".join(report.command)}}


def events(report: Report, pid_offset: int = 0, prefix: str = "") -> list[Event]:
    """Every event of one report; ``pid_offset`` and ``prefix`` keep several runs apart in one
    trace (``gsup matrix --trace``: one offset and one name prefix per scenario)."""
    story = build(report)
    gsup = _gsup_pid(report) + pid_offset
    out = _gsup_events(story, gsup, prefix)
    for lane in story.lanes:
        out += _lane_events(lane, lane.pid + pid_offset, prefix, story.duration)
    out += _signal_events(story, gsup, pid_offset)
    return out


def _gsup_pid(report: Report) -> int:
    """gsup's own pid, the first part of the session id (``4242-1a2b``); 1 if that is unreadable."""
    head = report.session.split("-", 1)[0]
    return int(head) if head.isdigit() and int(head) > 0 else 1


def _meta(pid: int, tid: int, kind: str, name: str) -> Event:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "ts": 0, "args": {"name": name}}


def _gsup_events(story: Timeline, gsup: int, prefix: str) -> list[Event]:
    out = [_meta(gsup, gsup, "process_name", f"{prefix}gsup"), _meta(gsup, gsup, "thread_name", "gsup"),
           {"name": "process_sort_index", "ph": "M", "pid": gsup, "tid": gsup, "ts": 0, "args": {"sort_index": -1}},
           _complete("run", "gsup", 0.0, story.duration, gsup, {"command": " ".join(story.command)})]
    if story.ready is not None:
        out.append(_instant(f"ready ({story.ready_condition})", "gsup", story.ready, gsup))
    if story.grace is not None:
        until = min(story.grace.until, story.duration)
        out.append(_complete(f"grace {story.grace.seconds:g}s", "grace", story.grace.began,
                             max(0.0, until - story.grace.began), gsup, {"seconds": story.grace.seconds}))
    return out


def _lane_events(lane: Lane, pid: int, prefix: str, duration: float) -> list[Event]:
    out = [_meta(pid, pid, "process_name", f"{prefix}{lane.role}"),
           {"name": "process_labels", "ph": "M", "pid": pid, "tid": pid, "ts": 0, "args": {"labels": lane.title}},
           {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": pid, "ts": 0,
            "args": {"sort_index": lane.index}},
           _meta(pid, pid, "thread_name", "main")]
    start = lane.start if lane.start is not None else 0.0
    end = lane.end if lane.end is not None else duration
    out.append(_complete(lane.title, "process", start, max(0.0, end - start), pid,
                         {"pid": lane.pid, "ended": lane.ending, "explanation": lane.explanation}))
    for run in lane.runs:
        out.append(_run_event(run, pid, end))
    if lane.end is not None:
        out.append(_instant(lane.ending, "exit", lane.end, pid))
    if lane.not_run:
        out.append(_instant(f"not run: {', '.join(lane.not_run)}", "exit", end, pid))
    return out


def _run_event(run: Run, pid: int, lane_end: float) -> Event:
    args = {"status": run.status, "detail": run.detail, "kind": run.kind}
    if run.kind == "signal":
        return _instant(f"{run.label} ({run.detail})", "signal handler", run.start, pid, args)
    end = run.end if run.end is not None else lane_end
    return _complete(run.label, run.kind, run.start, max(0.0, end - run.start), pid, args)


def _signal_events(story: Timeline, gsup: int, pid_offset: int) -> list[Event]:
    """An instant on the receiver, and a flow from the sender's lane to it."""
    out: list[Event] = []
    for number, sig in enumerate(story.signals, start=1):
        receiver = story.lanes[sig.receiver].pid + pid_offset
        sender = gsup if sig.sender is None else story.lanes[sig.sender].pid + pid_offset
        by = "gsup" if sig.sender is None and sig.by == "gsup" else sig.by
        args = {"from": by, "fate": sig.fate or "delivered", "escalation": sig.escalation}
        out.append(_instant(f"{sig.signal} from {by}", "signal", sig.at, receiver, args))
        if sig.escalation:
            out.append(_instant(f"escalation: {sig.signal}", "escalation", sig.at, gsup, scope="p"))
        flow = {"name": sig.signal, "cat": "signal", "id": number + pid_offset}
        out.append({**flow, "ph": "s", "ts": _us(sig.at), "pid": sender, "tid": sender})
        out.append({**flow, "ph": "f", "bp": "e", "ts": _us(sig.at), "pid": receiver, "tid": receiver})
    return out


def _us(seconds: float) -> float:
    return round(seconds * US, 1)


def _complete(name: str, cat: str, start: float, duration: float, pid: int,
              args: Optional[dict[str, Any]] = None) -> Event:
    return {"name": name, "cat": cat, "ph": "X", "ts": _us(start), "dur": _us(duration), "pid": pid, "tid": pid,
            "args": args or {}}


def _instant(name: str, cat: str, at: float, pid: int, args: Optional[dict[str, Any]] = None,
             scope: str = "t") -> Event:
    return {"name": name, "cat": cat, "ph": "i", "s": scope, "ts": _us(at), "pid": pid, "tid": pid,
            "args": args or {}}
