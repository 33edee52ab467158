"""The report's data: plain dataclasses, no I/O, no printing.

``to_json`` gives the ``gsup.report/1`` document that CI depends on; its fields
are documented in README.md ("The JSON report").  Format history:

* ``gsup.report/1`` — first version.
* 1.1 — ``<field>_b64`` siblings of text that held bytes not UTF-8.
* 1.2 — times on the report's clock (seconds since launch): ``handlers[]``/``watched[]``
  ``started``/``ended``, ``signal_handlers[].times``, ``processes[].sent`` (signals a process
  sent, with when), ``actions[].escalation``, ``grace``: what a timeline draws.
* 1.3 — ``processes[].stacks``/``stacks_at``/``stuck`` (every thread's stack before gsup
  escalated, and where the process was stuck), ``exception_origin``, ``lost_logs``,
  ``cancelled_tasks``; actions' ``by`` ``2nd ctrl-c``/``3rd ctrl-c``.
* 1.4 — container mode: ``container`` (mode, via, pid1, zombies per parent, init,
  pre_stop), ``processes[].nspid``, ``actions[].dropped``, ``end.reaped_by`` ``"kernel"``
  (killed when PID 1 ended), ``end.source``.
* 1.5 — servers in their own terms: ``processes[].kind``, ``reraised``, ``stop_at``,
  ``sent[].via``, ``watched[].before_stop``.
* 1.6 — ``interpreter`` (how the program's Python was found); ``fired`` names a handler
  that is not the script's own as ``module.qualname`` (``logging.shutdown``).
"""

from __future__ import annotations

import re

from supervisor.records import dataclass, field

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, Optional

SCHEMA = "gsup.report/1"

# where a handler's code lives when it is not the program's own: the standard library, an installed package
_LIBRARY = re.compile(r"/(site|dist)-packages/|/lib/python\d+\.\d+/|/lib/pypy")

# end.how values
EXITED, SIGNALED, OS_EXIT, EXEC, LEFT_RUNNING, UNKNOWN = (
    "exited", "signaled", "os._exit", "exec", "left-running", "unknown")

# handler statuses
RAN, RAISED, INTERRUPTED, NOT_RUN, UNREGISTERED = "ran", "raised", "interrupted", "not-run", "unregistered"


@dataclass
class Action:
    """A signal gsup sent (or ``gsup kill`` sent through it)."""

    signal: str
    signum: int
    target: str
    pids: list[int]
    at: float  # seconds since launch
    by: str = "gsup"  # gsup, gsup kill, ctrl-c, grace, leftovers
    group: Optional[int] = None
    escalation: bool = False  # sent because a grace ran out, or a second Ctrl-C: gsup forcing the end
    dropped: list[int] = field(default_factory=list)  # container mode: PID 1, when the kernel drops it (no handler)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Action:
        """The inverse of ``to_json``; raises KeyError, TypeError or ValueError on a bad record."""
        group = record.get("group")
        return cls(signal=str(record["signal"]), signum=int(record["signum"]), target=str(record["target"]),
                   pids=[int(p) for p in record["pids"]], at=float(record["at"]), by=str(record.get("by", "gsup")),
                   group=int(group) if group is not None else None, escalation=bool(record.get("escalation", False)),
                   dropped=[int(p) for p in record.get("dropped", [])])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal": self.signal, "signum": self.signum, "target": self.target,
                               "pids": self.pids, "at": round(self.at, 6), "by": self.by}
        if self.group is not None:
            out["group"] = self.group
        if self.escalation:
            out["escalation"] = True
        if self.dropped:
            out["dropped"] = self.dropped
        return out


@dataclass
class End:
    """How a process (image) ended."""

    how: str
    code: Optional[int] = None
    signal: Optional[str] = None
    reaped_by: Optional[str] = None  # "gsup" or "parent <pid>"
    reason: Optional[str] = None  # for unknown endings: why
    then: Optional[End] = None  # for left-running processes: how gsup ended them
    exec_argv: Optional[list[str]] = None
    source: Optional[str] = None  # where an ending not from a wait status came from (an init's exit status)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> End:
        then = record.get("then")
        exec_argv = record.get("exec")
        return cls(how=str(record["how"]), code=_opt_int(record.get("code")), signal=_opt_str(record.get("signal")),
                   reaped_by=_opt_str(record.get("reaped_by")), reason=_opt_str(record.get("reason")),
                   then=cls.from_json(then) if then is not None else None,
                   exec_argv=[str(a) for a in exec_argv] if exec_argv is not None else None,
                   source=_opt_str(record.get("source")))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"how": self.how, "code": self.code, "signal": self.signal}
        if self.reaped_by:
            out["reaped_by"] = self.reaped_by
        if self.reason:
            out["reason"] = self.reason
        if self.exec_argv is not None:
            out["exec"] = self.exec_argv
        if self.then is not None:
            out["then"] = self.then.to_json()
        if self.source:
            out["source"] = self.source
        return out


@dataclass
class Handler:
    """One exit handler registration and what became of it."""

    kind: str  # atexit, threading, or watched (a call of a --watch function)
    name: str
    module: str
    where: str
    status: str = NOT_RUN
    order: Optional[int] = None  # 1-based position among the handlers that began
    duration: Optional[float] = None
    exception: Optional[str] = None
    inherited: bool = False  # registered in the parent before a fork
    runs: int = 1  # how many times it began (threading's callbacks can run twice)
    started: Optional[float] = None  # seconds since launch, when its (last) run began
    ended: Optional[float] = None  # seconds since launch, when that run ended or raised
    before_stop: bool = False  # a watched call begun before the stop reached its process: start-up work

    @property
    def label(self) -> str:
        """The name it is known by, unambiguous: a script's own (``__main__``) by its
        qualname, any other with its module (``app.db.close``, ``logging.shutdown``)."""
        if self.module in ("__main__", "__mp_main__", ""):
            return self.name
        return f"{self.module}.{self.name}"

    @property
    def own(self) -> bool:
        """The program's own code: neither the standard library nor an installed package."""
        if self.module in ("__main__", "__mp_main__"):
            return True
        path = self.where.rsplit(":", 1)[0]
        return bool(path) and not path.startswith("<") and _LIBRARY.search(path) is None

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Handler:
        return cls(kind=str(record["kind"]), name=str(record["name"]), module=str(record["module"]),
                   where=str(record["where"]), status=str(record["status"]), order=_opt_int(record.get("order")),
                   duration=_opt_float(record.get("duration")), exception=_opt_str(record.get("exception")),
                   inherited=bool(record.get("inherited", False)), runs=int(record.get("runs", 1)),
                   started=_opt_float(record.get("started")), ended=_opt_float(record.get("ended")),
                   before_stop=bool(record.get("before_stop", False)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "module": self.module,
                               "where": self.where, "status": self.status, "order": self.order}
        out["duration"] = round(self.duration, 6) if self.duration is not None else None
        out["exception"] = self.exception
        if self.inherited:
            out["inherited"] = True
        if self.runs > 1:
            out["runs"] = self.runs
        if self.started is not None:
            out["started"] = round(self.started, 6)
        if self.ended is not None:
            out["ended"] = round(self.ended, 6)
        if self.before_stop:
            out["before_stop"] = True
        return out


@dataclass
class SignalHandler:
    """A Python-level signal handler and whether it was invoked (None: cannot tell)."""

    signal: str
    handler: str
    invoked: Optional[bool]
    invocations: int = 0
    times: list[float] = field(default_factory=list)  # seconds since launch, one per invocation seen

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SignalHandler:
        invoked = record.get("invoked")
        return cls(signal=str(record["signal"]), handler=str(record["handler"]),
                   invoked=bool(invoked) if invoked is not None else None,
                   invocations=int(record.get("invocations", 0)),
                   times=[float(t) for t in record.get("times", [])])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal": self.signal, "handler": self.handler, "invoked": self.invoked,
                               "invocations": self.invocations}
        if self.times:
            out["times"] = [round(t, 6) for t in self.times]
        return out


@dataclass(frozen=True)
class Frame:
    """One Python frame of a thread's stack, as faulthandler names it."""

    file: str
    line: int
    function: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Frame:
        return cls(file=str(record["file"]), line=int(record["line"]), function=str(record["function"]))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function}


@dataclass
class ThreadStack:
    """One thread of a process at the moment gsup asked for stacks; frames innermost first."""

    ident: int
    name: str
    daemon: bool
    main: bool
    frames: list[Frame] = field(default_factory=list)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ThreadStack:
        return cls(ident=int(record["ident"]), name=str(record["name"]), daemon=bool(record["daemon"]),
                   main=bool(record["main"]), frames=[Frame.from_json(f) for f in record.get("frames", [])])

    def to_json(self) -> dict[str, Any]:
        return {"ident": self.ident, "name": self.name, "daemon": self.daemon, "main": self.main,
                "frames": [f.to_json() for f in self.frames]}


@dataclass
class CancelledTask:
    """A task ``asyncio.run`` (or ``Runner.close``) cancelled at its end, and how its cleanup went."""

    name: str
    coroutine: str  # the coroutine's qualname
    awaiting: str  # file:line where it was suspended when cancelled
    state: str  # cancelled, done (finished its cleanup), pending, or interrupted (the process died in it)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> CancelledTask:
        return cls(name=str(record["name"]), coroutine=str(record["coroutine"]), awaiting=str(record["awaiting"]),
                   state=str(record["state"]))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "coroutine": self.coroutine, "awaiting": self.awaiting, "state": self.state}


@dataclass
class LostLogs:
    """Log records a logging handler still held when its process ended: they were never written."""

    handler: str  # its class: MemoryHandler, QueueHandler
    target: str  # where they were meant to go (a file name, "queue")
    records: int
    why: str  # "logging.shutdown never ran (killed by SIGKILL)"

    @property
    def summary(self) -> str:
        plural = "s" if self.records != 1 else ""
        return f"{self.records} record{plural} lost in {self.handler} → {self.target}: {self.why}"

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LostLogs:
        return cls(handler=str(record["handler"]), target=str(record["target"]), records=int(record["records"]),
                   why=str(record["why"]))

    def to_json(self) -> dict[str, Any]:
        return {"handler": self.handler, "target": self.target, "records": self.records, "why": self.why}


# stuck.kind values
JOINING, HANDLER_BLOCKED, LOCK, AWAITING, BUSY, NO_STACK = (
    "joining-thread", "handler-blocked", "lock", "awaiting-task", "busy", "no-stack")


@dataclass
class Stuck:
    """Where a process was stuck when gsup escalated, read from its stacks and the probe's records."""

    kind: str  # JOINING, HANDLER_BLOCKED, LOCK, AWAITING, BUSY, NO_STACK
    summary: str  # one line a user can act on
    thread: Optional[str] = None  # the thread the diagnosis points at
    frame: Optional[Frame] = None  # where that thread is
    source: Optional[str] = None  # that line of source, stripped
    handler: Optional[str] = None  # the exit or signal handler blocked
    seconds: Optional[float] = None  # how long it had been blocked
    waiting_for: list[str] = field(default_factory=list)  # the non-daemon threads (or asyncio tasks) waited for
    holder: Optional[str] = None  # the thread that holds the lock waited on, when the stacks show it
    not_run: list[str] = field(default_factory=list)  # exit handlers that never ran because of it

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Stuck:
        frame = record.get("frame")
        return cls(kind=str(record["kind"]), summary=str(record["summary"]), thread=_opt_str(record.get("thread")),
                   frame=Frame.from_json(frame) if frame else None, source=_opt_str(record.get("source")),
                   handler=_opt_str(record.get("handler")), seconds=_opt_float(record.get("seconds")),
                   waiting_for=[str(n) for n in record.get("waiting_for", [])],
                   holder=_opt_str(record.get("holder")), not_run=[str(n) for n in record.get("not_run", [])])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "thread": self.thread,
                "frame": self.frame.to_json() if self.frame else None, "source": self.source,
                "handler": self.handler, "seconds": _round(self.seconds), "waiting_for": self.waiting_for,
                "holder": self.holder, "not_run": self.not_run}


@dataclass
class Sent:
    """A signal a process of the tree sent, and when: to another process (``os.kill``), a
    group (``os.killpg``), or itself (``signal.raise_signal``, ``signal.pthread_kill``,
    ``os.kill`` of its own pid: ``pid`` is its own)."""

    pid: int  # the receiver; a negative number is a process group
    signal: str
    at: float  # seconds since launch
    via: str = "kill"  # kill, killpg, raise_signal, pthread_kill

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Sent:
        return cls(pid=int(record["pid"]), signal=str(record["signal"]), at=float(record["at"]),
                   via=str(record.get("via", "kill")))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "signal": self.signal, "at": round(self.at, 6), "via": self.via}


@dataclass
class Grace:
    """The grace window gsup gave the tree: from the first signal (or the launched
    process's end) until the escalation it would send at ``until``."""

    seconds: float
    began: float  # seconds since launch

    @property
    def until(self) -> float:
        return self.began + self.seconds

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Grace:
        return cls(seconds=float(record["seconds"]), began=float(record["from"]))

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "from": round(self.began, 6), "until": round(self.until, 6)}


@dataclass
class Process:
    """One process image of the tree and everything known about it."""

    pid: int
    ppid: Optional[int]
    role: str
    argv: list[str]
    instrumented: bool
    end: End
    handlers: list[Handler] = field(default_factory=list)
    signal_handlers: list[SignalHandler] = field(default_factory=list)
    python: Optional[str] = None
    started: Optional[float] = None  # seconds since launch
    ended: Optional[float] = None
    exception: Optional[str] = None  # unhandled exception that began shutdown
    exception_origin: Optional[str] = None  # "SystemExit(0) raised by SIGTERM handler on_term at app.py:12"
    atexit_began: bool = False
    opaque_handlers: int = 0  # registered before the probe loaded: cannot be watched
    uninstrumented_reason: Optional[str] = None
    orphaned: bool = False
    forked: bool = False
    unreadable_events: int = 0
    explanation: str = ""
    kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, signum) it sent; -pgid: to a group
    pgid: Optional[int] = None  # its process group at start (the probe's): which group sends reached it
    watched: list[Handler] = field(default_factory=list)  # calls of watched functions, in the order they began
    watch_missing: list[str] = field(default_factory=list)  # MODULE:QUALNAME watched but not found
    sent: list[Sent] = field(default_factory=list)  # signals it sent, in order (``kills`` with their times)
    cancelled_tasks: list[CancelledTask] = field(default_factory=list)  # by asyncio.run at its end
    lost_logs: list[LostLogs] = field(default_factory=list)  # records logging handlers still held at the end
    stacks: list[ThreadStack] = field(default_factory=list)  # taken before gsup escalated, main thread first
    stacks_at: Optional[float] = None  # seconds since launch, when they were taken
    stuck: Optional[Stuck] = None  # where it was stuck then
    nspid: Optional[int] = None  # container mode: its pid inside the PID namespace (1: the main process)
    kind: Optional[str] = None  # what the process is, when gsup knows the program ("gunicorn master")
    reraised: Optional[str] = None  # the signal it sent itself after putting its default action back
    stop_at: Optional[float] = None  # when it began to stop (seconds since launch): see report._stop_at

    @property
    def fired(self) -> list[str]:
        """Every exit handler that began, in the order it began, by :attr:`Handler.label`:
        the app's ``shutdown`` and ``logging.shutdown`` no longer look the same."""
        return [h.label for h in self._began()]

    @property
    def own_fired(self) -> list[str]:
        """:attr:`fired` without the standard library's and installed packages' handlers:
        what a test of the program's own cleanup asserts on."""
        return [h.label for h in self._began() if h.own]

    def _began(self) -> list[Handler]:
        return sorted((h for h in self.handlers if h.order is not None), key=lambda h: h.order or 0)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Process:
        """The inverse of ``to_json``; ``fired`` is derived from the handlers, and
        fields this version does not know are ignored (documents gain fields)."""
        return cls(
            pid=int(record["pid"]), ppid=_opt_int(record.get("ppid")), role=str(record["role"]),
            argv=[str(a) for a in record["argv"]], instrumented=bool(record["instrumented"]),
            end=End.from_json(record["end"]), handlers=[Handler.from_json(h) for h in record.get("handlers", [])],
            signal_handlers=[SignalHandler.from_json(s) for s in record.get("signal_handlers", [])],
            python=_opt_str(record.get("python")), started=_opt_float(record.get("started")),
            ended=_opt_float(record.get("ended")), exception=_opt_str(record.get("exception")),
            exception_origin=_opt_str(record.get("exception_origin")),
            atexit_began=bool(record.get("atexit_ran", False)), opaque_handlers=int(record.get("opaque_handlers", 0)),
            uninstrumented_reason=_opt_str(record.get("uninstrumented_reason")),
            orphaned=bool(record.get("orphaned", False)), forked=bool(record.get("forked", False)),
            unreadable_events=int(record.get("unreadable_events", 0)), explanation=str(record.get("explanation", "")),
            watched=[Handler.from_json(h) for h in record.get("watched", [])],
            watch_missing=[str(m) for m in record.get("watch_missing", [])],
            sent=[Sent.from_json(k) for k in record.get("sent", [])],
            cancelled_tasks=[CancelledTask.from_json(t) for t in record.get("cancelled_tasks", [])],
            lost_logs=[LostLogs.from_json(lost) for lost in record.get("lost_logs", [])],
            stacks=[ThreadStack.from_json(t) for t in record.get("stacks", [])],
            stacks_at=_opt_float(record.get("stacks_at")),
            stuck=Stuck.from_json(record["stuck"]) if record.get("stuck") else None,
            nspid=_opt_int(record.get("nspid")),
            kind=_opt_str(record.get("kind")), reraised=_opt_str(record.get("reraised")),
            stop_at=_opt_float(record.get("stop_at")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pid": self.pid, "ppid": self.ppid, "role": self.role, "argv": self.argv,
            "instrumented": self.instrumented, "python": self.python,
            "started": _round(self.started), "ended": _round(self.ended),
            "end": self.end.to_json(), "fired": self.fired,
            "handlers": [h.to_json() for h in self.handlers],
            "watched": [w.to_json() for w in self.watched],
            "signal_handlers": [s.to_json() for s in self.signal_handlers],
            "exception": self.exception, "atexit_ran": self.atexit_began,
            "opaque_handlers": self.opaque_handlers, "orphaned": self.orphaned,
            "forked": self.forked, "explanation": self.explanation, "kind": self.kind,
            "sent": [k.to_json() for k in self.sent],
        }
        if self.reraised is not None:
            out["reraised"] = self.reraised
        if self.stop_at is not None:
            out["stop_at"] = _round(self.stop_at)
        if not self.instrumented:
            out["uninstrumented_reason"] = self.uninstrumented_reason
        if self.unreadable_events:
            out["unreadable_events"] = self.unreadable_events
        if self.watch_missing:
            out["watch_missing"] = self.watch_missing
        if self.exception_origin is not None:
            out["exception_origin"] = self.exception_origin
        if self.lost_logs:
            out["lost_logs"] = [lost.to_json() for lost in self.lost_logs]
        if self.cancelled_tasks:
            out["cancelled_tasks"] = [t.to_json() for t in self.cancelled_tasks]
        if self.stacks:
            out["stacks"] = [t.to_json() for t in self.stacks]
            out["stacks_at"] = _round(self.stacks_at)
        if self.stuck is not None:
            out["stuck"] = self.stuck.to_json()
        if self.nspid is not None:
            out["nspid"] = self.nspid
        return out


@dataclass
class ExpectationResult:
    """One ``--expect`` checked against the report (see ``expect.py``): each line readable alone."""

    text: str  # as the user wrote it
    ok: bool
    expected: str  # one line: what had to be true
    observed: str  # one line: what the report shows

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ExpectationResult:
        return cls(text=str(record["text"]), ok=bool(record["ok"]), expected=str(record["expected"]),
                   observed=str(record["observed"]))

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "ok": self.ok, "expected": self.expected, "observed": self.observed}


@dataclass
class Ready:
    """A ``--ready-*`` condition: whether it came, and when (seconds since launch)."""

    condition: str
    ok: bool
    after: Optional[float] = None

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Ready:
        return cls(condition=str(record["condition"]), ok=bool(record["ok"]), after=_opt_float(record.get("after")))

    def to_json(self) -> dict[str, Any]:
        return {"condition": self.condition, "ok": self.ok, "after": _round(self.after)}


@dataclass
class Container:
    """Container mode: the program ran as PID 1 of a PID namespace (or under its rules, emulated)."""

    mode: str  # "namespace" (real) or "emulate"
    via: Optional[str]  # a real namespace made as "root" or through a "user-namespace"
    pid1: int  # the launched process's host pid
    zombies: dict[int, int] = field(default_factory=dict)  # parent pid -> most zombie children at one look
    init: Optional[str] = None  # "tini" or "gsup-init" when an init was PID 1 above the program
    pre_stop: Optional[dict[str, Any]] = None  # --pod's preStop hook: {"hook", "took", "outcome"}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Container:
        hook = record.get("pre_stop")
        return cls(mode=str(record["mode"]), via=_opt_str(record.get("via")), pid1=int(record["pid1"]),
                   zombies={int(k): int(v) for k, v in record.get("zombies", {}).items()},
                   init=_opt_str(record.get("init")), pre_stop=dict(hook) if isinstance(hook, dict) else None)

    def to_json(self) -> dict[str, Any]:
        out = {"mode": self.mode, "via": self.via, "pid1": self.pid1,
               "zombies": {str(k): v for k, v in sorted(self.zombies.items())}, "init": self.init}
        if self.pre_stop is not None:
            out["pre_stop"] = self.pre_stop
        return out


@dataclass(repr=False)
class Report:
    """Everything one run established, ready to print or serialise."""

    command: list[str]
    session: str
    started: float  # wall clock, seconds since the epoch
    duration: float
    processes: list[Process]
    actions: list[Action]
    leftovers: list[int]
    incomplete: list[str] = field(default_factory=list)
    version: str = ""
    expectations: list[ExpectationResult] = field(default_factory=list)  # --expect, in the order given
    ready: Optional[Ready] = None  # --ready-*, if asked for
    stop: Optional[str] = None  # the --stop preset replayed, if any
    watching: list[str] = field(default_factory=list)  # names a watched call could be reported under
    grace: Optional[Grace] = None  # the grace window, once one began
    container: Optional[Container] = None  # --container (or a docker/k8s stop): PID 1 of a PID namespace
    interpreter: Optional[str] = None  # how the Python of SCRIPT / -m was found ("PATH", a shim resolved)

    def roles(self, role: str) -> list[Process]:
        """Every process (image) with that role, in start order."""
        return [p for p in self.processes if p.role == role]

    def role(self, role: str) -> Process:
        """The one process with that role: ``report.role("child").fired``.

        Raises LookupError when there is none or several (use :meth:`roles`)."""
        found = self.roles(role)
        if len(found) == 1:
            return found[0]
        seen = ", ".join(f"{p.pid} ({p.role})" for p in self.processes) or "no process"
        if not found:
            raise LookupError(f"no {role} process in this report; the processes were: {seen}")
        raise LookupError(f"{len(found)} {role} processes in this report ({', '.join(str(p.pid) for p in found)}):"
                          f" use report.roles({role!r}) for the list")

    @property
    def complete(self) -> bool:
        return not self.incomplete

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Report:
        """A ``gsup.report/1`` document (``gsup run --json``) back into a Report.

        Raises ValueError for another schema, KeyError/TypeError/ValueError for a
        damaged document; fields added later in the version are ignored."""
        if document.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document: schema {document.get('schema')!r}")
        return cls(
            command=[str(a) for a in document["command"]], session=str(document["session"]),
            started=float(document["started"]), duration=float(document["duration"]),
            processes=[Process.from_json(p) for p in document["processes"]],
            actions=[Action.from_json(a) for a in document["actions"]],
            leftovers=[int(p) for p in document["leftovers"]],
            incomplete=[str(m) for m in document.get("incomplete", [])], version=str(document.get("gsup", "")),
            expectations=[ExpectationResult.from_json(e) for e in document.get("expectations", [])],
            ready=Ready.from_json(document["ready"]) if document.get("ready") else None,
            stop=_opt_str(document.get("stop")),
            watching=[str(n) for n in document.get("watching", [])],
            grace=Grace.from_json(document["grace"]) if document.get("grace") else None,
            container=Container.from_json(document["container"]) if document.get("container") else None,
            interpreter=_opt_str(document.get("interpreter")),
        )

    @property
    def unseen(self) -> dict[str, int]:
        """What the probe could not watch, counted, so that a blind spot is never mistaken for "nothing ran"."""
        return {"processes": sum(not p.instrumented for p in self.processes),
                "handlers": sum(p.opaque_handlers for p in self.processes)}

    @property
    def ok(self) -> bool:
        """Complete, ready if asked for, and every ``--expect`` held: what CI wants to know in one bit."""
        return not self.problems

    @property
    def problems(self) -> list[str]:
        """Why the run is not :attr:`ok`, one line each (empty when it is)."""
        out = [f"incomplete: {why}" for why in self.incomplete]
        if self.ready is not None and not self.ready.ok:
            out.append(f"never ready: {self.ready.condition}")
        out += [f"expectation {e.text!r} failed: expected {e.expected}; observed {e.observed}"
                for e in self.expectations if not e.ok]
        return out

    def assert_ok(self) -> None:
        """Raise AssertionError listing :attr:`problems`: ``report.assert_ok()`` in a test says why."""
        if self.problems:
            raise AssertionError("gsup run not ok:\n" + "\n".join(f"  - {p}" for p in self.problems))

    def __repr__(self) -> str:
        """Short, with the reasons: ``assert report.ok`` failing prints this, not every field."""
        roles = ", ".join(f"{p.pid} {p.role}" for p in self.processes)
        return f"<Report {self.session} [{roles}] ok={self.ok} problems={self.problems!r}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "gsup": self.version,
            "session": self.session,
            "command": self.command,
            "started": round(self.started, 3),
            "duration": round(self.duration, 3),
            "complete": not self.incomplete,
            "incomplete": self.incomplete,
            "actions": [a.to_json() for a in self.actions],
            "processes": [p.to_json() for p in self.processes],
            "leftovers": self.leftovers,
            "expectations": [e.to_json() for e in self.expectations],
            "unseen": self.unseen,
            "ready": self.ready.to_json() if self.ready is not None else None,
            "stop": self.stop,
            "watching": self.watching,
            "grace": self.grace.to_json() if self.grace is not None else None,
            "container": self.container.to_json() if self.container is not None else None,
            "interpreter": self.interpreter,
        }


def _round(value: Optional[float]) -> Optional[float]:
    """Microseconds, as the handlers' times: a timeline orders a send and the handler it ran
    (often within the same millisecond) by these numbers."""
    return round(value, 6) if value is not None else None


def _opt_int(value: Any) -> Optional[int]:
    return int(value) if value is not None else None


def _opt_float(value: Any) -> Optional[float]:
    return float(value) if value is not None else None


def _opt_str(value: Any) -> Optional[str]:
    return str(value) if value is not None else None
