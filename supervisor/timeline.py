"""A report as a story in time: one lane per process image, and every moment in time order.

The one reading of a :class:`Report` that the timeline views share (the HTML page,
the Chrome trace, the terminal's chronological section), so that they can never
disagree about who got which signal when.  Every time is the report's own clock,
seconds since launch.  Nothing is inferred that the report does not hold: a
signal handler's invocation has a start and no end (the probe sees only its
start), a handler that began and never ended was cut short where its process
ended.
"""

from __future__ import annotations

from typing import Optional

from supervisor import wording
from supervisor.model import INTERRUPTED, LEFT_RUNNING, NOT_RUN, RAISED, RAN, Action, Grace, Handler, Process, Report
from supervisor.records import dataclass, field

HANDLER_KINDS = ("atexit", "threading", "watched")


@dataclass(frozen=True)
class Run:
    """A span inside a lane: a handler run or a watched call; a signal handler's invocation
    (``kind`` "signal") is an instant, its ``end`` None."""

    kind: str  # atexit, threading, watched, signal
    label: str  # module-qualified for library code (Handler.label)
    status: str  # ran, raised, interrupted (model's statuses)
    start: float
    end: Optional[float]  # None: an instant, or a run its process's end cut short (see ``cut``)
    detail: str  # "203 ms", "raised ValueError", "interrupted", "SIGTERM handler"
    cut: bool = False  # began and never ended: drawn until its lane's end


@dataclass(frozen=True)
class Signal:
    """One signal reaching one lane (a send to three processes is three)."""

    at: float
    signal: str
    receiver: int  # lane index
    sender: Optional[int]  # lane index of a sender of the tree; None: gsup
    by: str  # "gsup", "gsup kill", "ctrl-c", "1234 (parent)"
    fate: str  # "", "ignored", "handled by on_term"
    escalation: bool = False

    @property
    def forced(self) -> str:
        """Why gsup forced the end with this send ("" when it did not): the 3rd Ctrl-C and a
        second TERM/HUP to gsup are named by their sender; every other escalation is a wait
        that ran out (the grace, a preset's timeout)."""
        if not self.escalation:
            return ""
        if "ctrl-c" in self.by:
            return "escalation"
        if self.by == "gsup received":
            return "escalation: gsup was signalled twice"
        return "escalation: grace over"


@dataclass(frozen=True)
class Lane:
    """One process image: its place in the tree, its life, its runs."""

    index: int
    pid: int
    role: str
    depth: int
    title: str  # argv shortened on word boundaries
    start: Optional[float]
    end: Optional[float]
    ending: str  # wording.phrase: "exited 0", "killed by SIGKILL", "os._exit(3)"
    how: str
    explanation: str
    instrumented: bool
    runs: list[Run] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # handlers that never began, by label

    @property
    def name(self) -> str:
        return f"{self.pid} {self.role}"

    @property
    def left_running(self) -> bool:
        return self.how == LEFT_RUNNING


@dataclass(frozen=True)
class Moment:
    """One line of the chronology: when, whose lane (None: gsup's own), what."""

    at: float
    lane: Optional[int]
    text: str
    kind: str  # start, signal, run, end, ready, grace


@dataclass(frozen=True)
class Timeline:
    """Everything the views draw, in drawing order."""

    command: list[str]
    session: str
    duration: float  # the axis: 0 .. duration (at least the last moment)
    lanes: list[Lane]
    signals: list[Signal]
    moments: list[Moment]
    ready: Optional[float] = None
    ready_condition: str = ""
    grace: Optional[Grace] = None


def build(report: Report) -> Timeline:
    """The report's lanes (tree order), signals and moments (time order)."""
    ordered = _tree_order(report)
    lanes = [_lane(index, proc, depth) for index, (proc, depth) in enumerate(ordered)]
    signals = _signals(report, lanes, [proc for proc, _ in ordered])
    ready = report.ready.after if report.ready is not None and report.ready.ok else None
    moments = sorted(_moments(report, lanes, signals), key=lambda m: m.at)
    last = max([report.duration, *(m.at for m in moments)], default=0.0)
    return Timeline(command=report.command, session=report.session, duration=max(last, 0.001), lanes=lanes,
                    signals=signals, moments=moments, ready=ready,
                    ready_condition=report.ready.condition if report.ready is not None else "", grace=report.grace)


def short_argv(argv: list[str], width: int = 60) -> str:
    """``python app.py --workers 2``: the program's base name, a long path as ``…/name``,
    then whole words up to ``width``."""
    words = [_short_word(a, first=i == 0) for i, a in enumerate(argv)] or ["?"]
    line = words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) > width:
            return line + " …"
        line += " " + word
    return line


def _short_word(word: str, first: bool) -> str:
    if "/" not in word or (not first and len(word) <= 24):
        return word
    base = word.rstrip("/").rsplit("/", 1)[-1]
    return base if first else f"…/{base}"


def seconds(value: float) -> str:
    """``203 ms``, ``1.50 s``: a duration as a reader takes it in."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


# -- lanes -------------------------------------------------------------------------------------------


def _tree_order(report: Report) -> list[tuple[Process, int]]:
    """Processes in tree order with their depth (each under its parent, as the rich view nests them).

    An exec's images share a pid: the children hang under the first one, once."""
    pids = {p.pid for p in report.processes}
    children: dict[Optional[int], list[Process]] = {}
    for proc in report.processes:
        parent = proc.ppid if proc.role != "parent" and proc.ppid in pids and proc.ppid != proc.pid else None
        children.setdefault(parent, []).append(proc)
    ordered: list[tuple[Process, int]] = []
    placed: set[int] = set()
    expanded: set[int] = set()
    todo: list[tuple[Process, int]] = [(p, 0) for p in reversed(children.get(None, []))]
    while todo:
        proc, depth = todo.pop()
        if id(proc) in placed:
            continue
        ordered.append((proc, depth))
        placed.add(id(proc))
        if proc.pid not in expanded:
            expanded.add(proc.pid)
            todo += [(child, depth + 1) for child in reversed(children.get(proc.pid, []))]
    # whatever no root reaches (a circle of ppids): at the top, in report order
    return ordered + [(p, 0) for p in report.processes if id(p) not in placed]


def _lane(index: int, proc: Process, depth: int) -> Lane:
    runs = [_run(h, proc) for h in [*proc.handlers, *proc.watched] if h.started is not None]
    for sig in proc.signal_handlers:
        runs += [Run("signal", sig.handler, RAN, t, None, f"{sig.signal} handler") for t in sig.times]
    not_run = [h.label for h in reversed(proc.handlers) if h.status == NOT_RUN]
    return Lane(index=index, pid=proc.pid, role=proc.role, depth=depth, title=short_argv(proc.argv),
                start=proc.started, end=proc.ended, ending=wording.phrase(proc.end), how=proc.end.how,
                explanation=proc.explanation, instrumented=proc.instrumented,
                runs=sorted(runs, key=lambda r: r.start), not_run=not_run)


def _run(handler: Handler, proc: Process) -> Run:
    assert handler.started is not None
    end = handler.ended
    if handler.status == RAISED:
        detail = f"raised {handler.exception}"
    elif handler.status == RAN and end is not None:
        detail = seconds(end - handler.started)
    else:
        detail = handler.status
    cut = end is None
    if cut:
        end = proc.ended if proc.ended is not None and proc.ended >= handler.started else None
    kind = handler.kind if handler.kind in HANDLER_KINDS else "atexit"
    return Run(kind, handler.label, handler.status if handler.status != RAN or not cut else INTERRUPTED,
               handler.started, end, detail, cut)


# -- signals -----------------------------------------------------------------------------------------


def _lane_at(lanes: list[Lane], pid: int, at: float) -> Optional[Lane]:
    """The image ``pid`` ran at ``at``: the last one started by then (an exec makes a new image)."""
    mine = [lane for lane in lanes if lane.pid == pid]
    started = [lane for lane in mine if lane.start is None or lane.start <= at + 0.001]
    chosen = started or mine
    return chosen[-1] if chosen else None


def _signals(report: Report, lanes: list[Lane], procs: list[Process]) -> list[Signal]:
    """Each send as it reached each lane; ``procs[i]`` is the process behind ``lanes[i]``."""
    out: list[Signal] = []
    for action in report.actions:
        out += [_signal(action.at, action.signal, lane, None, _by(action), procs[lane.index], action.escalation)
                for lane in (_lane_at(lanes, pid, action.at) for pid in action.pids) if lane is not None]
    for lane, proc in zip(lanes, procs):
        for sent in proc.sent:
            receiver = _lane_at(lanes, abs(sent.pid), sent.at)  # a group (negative pid): its leader's lane
            if receiver is not None:
                out.append(_signal(sent.at, sent.signal, receiver, lane.index, lane.name, procs[receiver.index]))
    return sorted(out, key=lambda s: s.at)


def _by(action: Action) -> str:
    return "gsup" if action.by in ("gsup", "grace", "leftovers") else action.by


def _signal(at: float, name: str, lane: Lane, sender: Optional[int], by: str, proc: Process,
            escalation: bool = False) -> Signal:
    """The fate is what the receiver's probe says: ignored (SIG_IGN), or a Python handler ran for it."""
    fate = ""
    for handler in proc.signal_handlers:
        if handler.signal != name:
            continue
        if handler.handler == "SIG_IGN":
            fate = "ignored"
        elif any(t >= at - 0.001 for t in handler.times):
            fate = f"handled by {handler.handler}"
    return Signal(at, name, lane.index, sender, by, fate, escalation)


# -- moments -----------------------------------------------------------------------------------------


def _moments(report: Report, lanes: list[Lane], signals: list[Signal]) -> list[Moment]:
    out: list[Moment] = []
    for lane in lanes:
        if lane.start is not None:
            title = short_argv(lane.title.split(" "), 40)
            out.append(Moment(lane.start, lane.index, f"{lane.name} started: {title}", "start"))
        for run in lane.runs:
            text = (f"{lane.name} {run.label} ran ({run.detail})" if run.kind == "signal"
                    else f"{lane.name} {run.kind} {run.label} {run.detail}")
            out.append(Moment(run.start, lane.index, text, "run"))
        if lane.end is not None:
            out.append(Moment(lane.end, lane.index, f"{lane.name} {lane.ending}", "end"))
    for sig in signals:
        receiver = lanes[sig.receiver]
        sender = "gsup" if sig.sender is None else lanes[sig.sender].name
        if sig.by not in ("gsup",) and sig.sender is None:
            sender = sig.by
        fate = f", {sig.fate}" if sig.fate else ""
        escalation = ", grace over" if sig.forced.endswith("grace over") else ""
        out.append(Moment(sig.at, sig.receiver, f"{sig.signal} → {receiver.name} ({sender}{escalation}{fate})",
                          "signal"))
    for action in report.actions:
        if not action.pids:
            out.append(Moment(action.at, None, f"{action.signal} to {action.target}: nobody left to get it", "signal"))
    if report.ready is not None and report.ready.ok and report.ready.after is not None:
        out.append(Moment(report.ready.after, None, f"ready ({report.ready.condition})", "ready"))
    # A grace that began with nothing left to wait for (the tree ended on its own, together
    # with the launched process) is no moment of the story: it would only read as a wait.
    if report.grace is not None and any(lane.end is None or lane.end > report.grace.began + 0.001 for lane in lanes):
        out.append(Moment(report.grace.began, None, f"grace of {report.grace.seconds:g}s begins", "grace"))
    return out
