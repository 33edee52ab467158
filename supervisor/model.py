"""The report's data: plain dataclasses, no I/O, no printing.

``to_json`` gives the ``gsup.report/1`` document that CI depends on; its fields
are documented in README.md ("The JSON report").  Format history:

* ``gsup.report/1`` — first version.
* 1.1 — ``<field>_b64`` siblings of text that held bytes not UTF-8.
* 1.2 — times on the report's clock (seconds since launch): ``handlers[]``/``watched[]``
  ``started``/``ended``, ``signal_handlers[].times``, ``processes[].sent`` (signals a process
  sent, with when), ``actions[].escalation``, ``grace``: what a timeline draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

SCHEMA = "gsup.report/1"

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

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Action:
        """The inverse of ``to_json``; raises KeyError, TypeError or ValueError on a bad record."""
        group = record.get("group")
        return cls(signal=str(record["signal"]), signum=int(record["signum"]), target=str(record["target"]),
                   pids=[int(p) for p in record["pids"]], at=float(record["at"]), by=str(record.get("by", "gsup")),
                   group=int(group) if group is not None else None, escalation=bool(record.get("escalation", False)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal": self.signal, "signum": self.signum, "target": self.target,
                               "pids": self.pids, "at": round(self.at, 6), "by": self.by}
        if self.group is not None:
            out["group"] = self.group
        if self.escalation:
            out["escalation"] = True
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

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> End:
        then = record.get("then")
        exec_argv = record.get("exec")
        return cls(how=str(record["how"]), code=_opt_int(record.get("code")), signal=_opt_str(record.get("signal")),
                   reaped_by=_opt_str(record.get("reaped_by")), reason=_opt_str(record.get("reason")),
                   then=cls.from_json(then) if then is not None else None,
                   exec_argv=[str(a) for a in exec_argv] if exec_argv is not None else None)

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

    @property
    def label(self) -> str:
        """The program's own handlers by name; library ones with their module."""
        if self.module in ("__main__", "__mp_main__", ""):
            return self.name
        return f"{self.module}.{self.name}"

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Handler:
        return cls(kind=str(record["kind"]), name=str(record["name"]), module=str(record["module"]),
                   where=str(record["where"]), status=str(record["status"]), order=_opt_int(record.get("order")),
                   duration=_opt_float(record.get("duration")), exception=_opt_str(record.get("exception")),
                   inherited=bool(record.get("inherited", False)), runs=int(record.get("runs", 1)),
                   started=_opt_float(record.get("started")), ended=_opt_float(record.get("ended")))

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


@dataclass
class Sent:
    """A signal a process of the tree sent (``os.kill``/``os.killpg``), and when."""

    pid: int  # the receiver; a negative number is a process group
    signal: str
    at: float  # seconds since launch

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Sent:
        return cls(pid=int(record["pid"]), signal=str(record["signal"]), at=float(record["at"]))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "signal": self.signal, "at": round(self.at, 6)}


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
    atexit_began: bool = False
    opaque_handlers: int = 0  # registered before the probe loaded: cannot be watched
    uninstrumented_reason: Optional[str] = None
    orphaned: bool = False
    forked: bool = False
    unreadable_events: int = 0
    explanation: str = ""
    kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, signum) it sent
    watched: list[Handler] = field(default_factory=list)  # calls of watched functions, in the order they began
    watch_missing: list[str] = field(default_factory=list)  # MODULE:QUALNAME watched but not found
    sent: list[Sent] = field(default_factory=list)  # signals it sent, in order (``kills`` with their times)

    @property
    def fired(self) -> list[str]:
        began = [h for h in self.handlers if h.order is not None]
        return [h.name for h in sorted(began, key=lambda h: h.order or 0)]

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
            atexit_began=bool(record.get("atexit_ran", False)), opaque_handlers=int(record.get("opaque_handlers", 0)),
            uninstrumented_reason=_opt_str(record.get("uninstrumented_reason")),
            orphaned=bool(record.get("orphaned", False)), forked=bool(record.get("forked", False)),
            unreadable_events=int(record.get("unreadable_events", 0)), explanation=str(record.get("explanation", "")),
            watched=[Handler.from_json(h) for h in record.get("watched", [])],
            watch_missing=[str(m) for m in record.get("watch_missing", [])],
            sent=[Sent.from_json(k) for k in record.get("sent", [])],
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
            "forked": self.forked, "explanation": self.explanation,
            "sent": [k.to_json() for k in self.sent],
        }
        if not self.instrumented:
            out["uninstrumented_reason"] = self.uninstrumented_reason
        if self.unreadable_events:
            out["unreadable_events"] = self.unreadable_events
        if self.watch_missing:
            out["watch_missing"] = self.watch_missing
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
        )

    @property
    def unseen(self) -> dict[str, int]:
        """What the probe could not watch, counted, so that a blind spot is never mistaken for "nothing ran"."""
        return {"processes": sum(not p.instrumented for p in self.processes),
                "handlers": sum(p.opaque_handlers for p in self.processes)}

    @property
    def ok(self) -> bool:
        """Complete, ready if asked for, and every ``--expect`` held: what CI wants to know in one bit."""
        ready = self.ready is None or self.ready.ok
        return not self.incomplete and ready and all(e.ok for e in self.expectations)

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
