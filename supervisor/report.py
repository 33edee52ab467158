"""Build the report: probe events + tree history + wait statuses → :class:`Report`.

A pure function of its inputs (``build``), so every rule is unit-testable and
a report can be rebuilt later from a session's files.  Nothing here is
inferred from the program's output: handler outcomes come from the probe's
events, endings from wait statuses (gsup's own, or an instrumented parent's).
"""

from __future__ import annotations

from collections import defaultdict

from supervisor import nspids, stacks, wording
from supervisor.events import Image
from supervisor.explain import explain
from supervisor.kinds import kinds
from supervisor.model import (
    EXEC,
    EXITED,
    INTERRUPTED,
    LEFT_RUNNING,
    NO_STACK,
    OS_EXIT,
    RAISED,
    RAN,
    SIGNALED,
    UNKNOWN,
    UNREGISTERED,
    Action,
    CancelledTask,
    Container,
    End,
    Grace,
    Handler,
    LostLogs,
    Process,
    Ready,
    Report,
    Sent,
    SignalHandler,
    Stuck,
)
from supervisor.reaper import ExitStatus
from supervisor.records import dataclass, field
from supervisor.signals import signal_name
from supervisor.tree import Seen, role_of

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, Optional

    from supervisor.events import Event

ROOT_NS, USER_NS = "root", "user-namespace"  # start.py's Launched.container for a real namespace


@dataclass
class RunFacts:
    """What the runner gathered, in the form ``build`` needs."""

    command: list[str]
    session: str
    started_wall: float
    launched: float  # time.monotonic() at launch: "at" fields count from here
    root_pid: int
    gsup_pid: int  # a parent seen as gsup means: adopted before anyone saw its real parent
    images: list[Image]
    seen: list[Seen]
    statuses: list[ExitStatus]  # reaped by gsup
    actions: list[Action]
    leftovers: list[int]
    finished: float
    incomplete: list[str] = field(default_factory=list)
    version: str = ""
    guardian_pid: Optional[int] = None  # the launched process's parent, and the adopter of orphans
    ready: Optional[Ready] = None
    stop: Optional[str] = None
    watching: list[str] = field(default_factory=list)
    deep: Optional[str] = None  # --deep's interpreter: its -I/-E children load the probe too
    records_lost: Optional[str] = None  # why probe records may be missing (session dir deleted, disk full)
    grace: Optional[tuple[float, float]] = None  # (seconds, time.monotonic() when the grace window began)
    stacks: dict[int, stacks.Answer] = field(default_factory=dict)  # taken before gsup escalated, by pid
    container: Optional[str] = None  # how the program was PID 1: root, user-namespace, emulate (see start.py)
    zombies: dict[int, int] = field(default_factory=dict)  # parent pid -> most zombie children at one look
    init: Optional[str] = None  # tini or gsup-init: PID 1 above the program (--init, --stop docker-init)
    pre_stop: Optional[dict[str, object]] = None  # a pod's preStop hook as run (hooks.py)
    interpreter: Optional[str] = None  # how the program's Python was found, for SCRIPT and -m

    def adopted(self, ppid: Optional[int]) -> bool:
        """Is ``ppid`` one of gsup's own processes, which only adopt orphans?"""
        return ppid is not None and ppid in (self.gsup_pid, self.guardian_pid)


@dataclass
class _Proc:
    """A process being assembled: its images, psutil sighting and status."""

    pid: int
    starttime: int
    images: list[Image] = field(default_factory=list)
    seen: Optional[Seen] = None
    status: Optional[ExitStatus] = None
    reaped_by: Optional[str] = None
    ppid_hint: Optional[int] = None
    spawned_by: Optional[int] = None  # from the parent's own "spawn" event: survives adoption
    spawn_argv: Optional[list[str]] = None  # what the parent asked to run, if it said
    spawned_at: Optional[float] = None  # when the parent recorded starting it (monotonic)
    unrecorded: bool = False  # its probe opened a record file and no line reached it
    from_init: bool = False  # its status is the init's exit status read back (see _from_the_init)

    def ppid(self, facts: RunFacts) -> Optional[int]:
        """The parent that started it: a spawn record first, then what the probe and
        psutil saw; None when all that was seen is gsup, which adopted it."""
        if self.spawned_by is not None:
            return self.spawned_by
        if self.pid == facts.root_pid:
            return facts.guardian_pid or facts.gsup_pid
        if self.images and self.images[0].start is not None:
            seen: Optional[int] = int(self.images[0].start["ppid"])
        elif self.seen is not None:
            seen = self.seen.ppid
        else:
            seen = self.ppid_hint
        return None if facts.adopted(seen) else seen

    @property
    def began(self) -> float:
        if self.images:
            return float(self.images[0].events[0]["t"]) if self.images[0].events else 0.0
        return self.seen.first_seen if self.seen else float("inf")


def build(facts: RunFacts) -> Report:
    inside: dict[int, int] = {}
    # A probe record of pid 1 is made only inside a PID namespace: a report rebuilt from
    # a session's files (gsup died, `gsup report`) knows container mode from that alone.
    if facts.container in (ROOT_NS, USER_NS) or (facts.root_pid != 1 and any(i.pid == 1 for i in facts.images)):
        facts.images, inside = nspids.to_host(facts.images, facts.seen, facts.root_pid,
                                                        facts.guardian_pid)
    procs = _collect(facts)
    leftovers = set(facts.leftovers)
    processes: list[Process] = []
    for proc in sorted(procs, key=lambda p: (p.pid != facts.root_pid, p.began, p.pid)):
        processes.extend(_entries(proc, facts, leftovers))
    _mark_orphans(processes, procs, facts)
    found = kinds(processes, _uses(facts.images))
    for process in processes:
        process.kind = found.get(process.pid)
    _add_stacks(processes, facts)
    for process in processes:
        process.nspid = inside.get(process.pid)
        process.explanation = explain(process, processes, facts.actions)
    return Report(
        command=facts.command, session=facts.session, started=facts.started_wall,
        duration=facts.finished - facts.launched, processes=processes, actions=facts.actions,
        leftovers=sorted(leftovers), incomplete=facts.incomplete + _unrecorded(procs, facts), version=facts.version,
        ready=facts.ready, stop=facts.stop, watching=facts.watching,
        grace=Grace(facts.grace[0], facts.grace[1] - facts.launched) if facts.grace is not None else None,
        container=_container(facts, procs), interpreter=facts.interpreter,
    )


def _add_stacks(processes: list[Process], facts: RunFacts) -> None:
    """Each process's stacks from before the escalation (on its last image) and where it was stuck."""
    last = {p.pid: p for p in processes}
    for pid, answer in facts.stacks.items():
        entry = last.get(pid)
        if entry is None or answer == "gone":
            continue
        if isinstance(answer, str):
            entry.stuck = Stuck(NO_STACK, answer)
            continue
        entry.stacks, entry.stacks_at = answer.threads, answer.at - facts.launched
        if answer.logs and not entry.lost_logs:  # then killed: the capture is the last moment known
            why = f"logging.shutdown never ran ({wording.phrase(entry.end)})"
            entry.lost_logs = [LostLogs(h.handler, h.target, h.records, why) for h in answer.logs]
        if entry.exception is None and answer.uncaught is not None:  # atexit never began to note it
            kind, text, where = answer.uncaught
            entry.exception = kind
            entry.exception_origin = f"{text} raised at {where.rpartition('/')[2]}" if where else None
        entry.stuck = stacks.diagnose(entry, answer, entry.stacks_at)
def _container(facts: RunFacts, procs: list[_Proc]) -> Optional[Container]:
    """Container mode's facts: how PID 1 was made, and the zombies its children became."""
    if facts.container is None:
        return None
    in_tree = {p.pid for p in procs}
    zombies = {parent: count for parent, count in facts.zombies.items() if parent in in_tree}
    return Container(mode="emulate" if facts.container == "emulate" else "namespace",
                     via=facts.container if facts.container != "emulate" else None,
                     pid1=facts.root_pid, zombies=zombies, init=facts.init, pre_stop=facts.pre_stop)
def _uses(images: list[Image]) -> dict[int, set[str]]:
    """pid -> the server frameworks its probe saw imported (``uses`` records)."""
    found: dict[int, set[str]] = defaultdict(set)
    for image in images:
        for event in image.of_kind("uses"):
            found[image.pid].add(str(event.get("fw")))
    return found


def _unrecorded(procs: list[_Proc], facts: RunFacts) -> list[str]:
    """The incomplete note for processes whose probe ran but could not write: their handlers are unknown.

    An empty record file alone is no loss: a process killed between its probe's
    opening the file and its first line leaves one too.
    """
    pids = sorted(p.pid for p in procs if p.unrecorded)
    if not pids or not facts.records_lost:
        return []
    return [f"the probe could not record pid {', '.join(map(str, pids))} ({facts.records_lost}): handlers unknown"]


def _collect(facts: RunFacts) -> list[_Proc]:
    """Join images, sightings and statuses into one record per process."""
    by_key: dict[tuple[int, int], _Proc] = {}
    for image in facts.images:
        key = (image.pid, image.starttime)
        by_key.setdefault(key, _Proc(*key)).images.append(image)
    for seen in facts.seen:
        key = (seen.pid, seen.starttime)
        if key not in by_key:  # the probe and psutil may round start ticks apart by one
            key = next((k for k in by_key if k[0] == seen.pid and abs(k[1] - seen.starttime) <= 1), key)
        by_key.setdefault(key, _Proc(*key)).seen = seen
    for proc in by_key.values():
        proc.unrecorded = any(not i.events and i.start is None for i in proc.images)
        proc.images = sorted((i for i in proc.images if i.events or i.start is not None), key=lambda i: i.opened)

    def placeholder(pid: int) -> _Proc:
        """A process known only from a status or a spawn record: no start time to key it by."""
        key = (pid, -len(by_key) - 1)
        return by_key.setdefault(key, _Proc(*key))

    def claim(pid: int, status: ExitStatus, reaped_by: str, ppid: Optional[int]) -> None:
        same = (status.code, status.signal)
        if any(p.pid == pid and p.status is not None and (p.status.code, p.status.signal) == same
               and abs(p.status.at - status.at) < 5.0 for p in by_key.values()):
            return  # the same death seen twice: the parent peeked, then died and gsup reaped it
        waiting = [p for p in by_key.values() if p.pid == pid and p.status is None]
        if waiting:
            proc = min(waiting, key=lambda p: p.starttime)
        else:
            proc = placeholder(pid)
            proc.ppid_hint = ppid
        proc.status, proc.reaped_by = status, reaped_by

    spawns: dict[int, tuple[int, Optional[list[str]], Optional[float]]] = {}
    for image in facts.images:
        for event in image.of_kind("spawn"):
            if isinstance(event.get("pid"), int):
                argv = event.get("argv")
                spawns[int(event["pid"])] = (image.pid, [str(a) for a in argv] if isinstance(argv, list) else None,
                                             float(event["t"]) if isinstance(event.get("t"), (int, float)) else None)
                if not any(k[0] == event["pid"] for k in by_key):
                    placeholder(int(event["pid"]))  # never seen, never instrumented: still part of the tree
    for proc in by_key.values():
        proc.spawned_by, proc.spawn_argv, proc.spawned_at = spawns.get(proc.pid, (None, None, None))

    for status in facts.statuses:
        claim(status.pid, status, "gsup", None)
    for image in facts.images:
        for event in image.of_kind("reaped"):
            status = ExitStatus.from_wait_status(int(event["pid"]), int(event["status"]), float(event["t"]))
            claim(status.pid, status, f"parent {image.pid}", image.pid)
    procs = list(by_key.values())
    _from_the_init(procs, facts)
    return procs


INIT_SOURCE = "the init's exit status"  # End.source of the init's child, and how to word it


def _from_the_init(procs: list[_Proc], facts: RunFacts) -> None:
    """The init's child's end, which only the init saw: tini (and gsup's init) exit
    with the child's code, or 128+N when signal N killed it.  A child that finished
    its atexit phase exited, whatever the number; 129-159 otherwise reads as a signal."""
    root = next((p for p in procs if p.pid == facts.root_pid and p.status is not None), None)
    if facts.init is None or root is None or root.status is None or root.status.code is None:
        return
    children = sorted((p for p in procs if p.pid != root.pid and p.ppid(facts) == root.pid and p.status is None),
                      key=lambda p: p.began)
    if not children:
        return
    child, code = children[0], root.status.code
    finished = any(e.get("k") == "done" for i in child.images for e in i.events)
    if 128 < code < 160 and not finished:
        child.status = ExitStatus(child.pid, None, code - 128, root.status.at)
    else:
        child.status = ExitStatus(child.pid, code, None, root.status.at)
    child.reaped_by = f"parent {root.pid}"
    child.from_init = True


def _entries(proc: _Proc, facts: RunFacts, leftovers: set[int]) -> list[Process]:
    """One report entry per program image the process ran."""
    role = role_of(proc.pid, proc.ppid(facts), facts.root_pid)
    final = _final_end(proc, proc.pid in leftovers, facts)
    if not proc.images:
        return [_uninstrumented(proc, role, _outside_argv(proc, facts), final, facts)]
    entries = []
    before = _image_before_the_probe(proc)
    if before is not None:
        entries.append(_uninstrumented(proc, role, before, End(EXEC, exec_argv=_argv_of(proc.images[0])), facts))
    for index, image in enumerate(proc.images):
        last = index == len(proc.images) - 1
        exec_event = _last_of(image.events, "exec")
        if not last:
            end = End(EXEC, exec_argv=exec_event.get("argv") if exec_event else None)
        elif exec_event is not None and _is_last(image, exec_event) and proc.status is not None:
            # exec'd into a program the probe could not follow (not Python, or -I/-E)
            end = End(EXEC, exec_argv=exec_event.get("argv"))
            entries.append(_from_image(image, proc, role, end, facts))
            argv = [str(a) for a in exec_event.get("argv") or []]
            entries.append(_uninstrumented(proc, role, argv, final, facts))
            continue
        else:
            end = final
            if end.how == EXITED and _last_of(image.events, "os_exit") is not None:
                end.how = OS_EXIT
        entries.append(_from_image(image, proc, role, end, facts))
    return entries


def _image_before_the_probe(proc: _Proc) -> Optional[list[str]]:
    """The argv of an image that ran before the first instrumented one, if one did.

    A process started as ``python -I`` (or anything the probe cannot enter) that
    execs into a probed Python leaves only the second image's events.  gsup knows
    of the first when its parent recorded spawning that very argv and gsup saw it
    running it.  (A sighting alone could be the moment between fork and exec,
    still showing the parent's argv: that is no image of its own.)
    """
    if proc.seen is None or proc.spawn_argv is None or not proc.images:
        return None
    first = _argv_of(proc.images[0])
    if proc.seen.argv == proc.spawn_argv and first and proc.seen.argv != first:
        return list(proc.seen.argv)
    return None


def _outside_argv(proc: _Proc, facts: RunFacts) -> list[str]:
    """The argv of a process the probe never ran in, from the best witness there is.

    For the process gsup launched, the argv it launched, recorded at launch: a
    later read of /proc could be a retitled program or a shell caught as it
    ended.  For any other, a command line read from /proc, else what its parent
    recorded starting.  The kernel's short name comes last: a shell read while
    it ended has no command line left and reads as ``sh``, which is no argv.
    """
    if proc.pid == facts.root_pid and facts.command:
        return list(facts.command)
    if proc.seen is not None and proc.seen.argv:
        return list(proc.seen.argv)
    if proc.spawn_argv:
        return list(proc.spawn_argv)
    return [proc.seen.name] if proc.seen is not None and proc.seen.name else []


def _argv_of(image: Image) -> list[str]:
    return [str(a) for a in (image.start or {}).get("argv") or []]


def _uninstrumented(proc: _Proc, role: str, argv: list[str], end: End, facts: RunFacts) -> Process:
    """An entry for a program image the probe never ran in: only the outside view."""
    entry = Process(pid=proc.pid, ppid=proc.ppid(facts), role=role, argv=argv, instrumented=False, end=end,
                    uninstrumented_reason=_why_unrecorded(proc, facts)
                    or _why_uninstrumented(argv, _lifetime(proc, facts), end, _forked_from(proc), facts.deep))
    _set_times(entry, None, proc, facts)
    return entry


def _final_end(proc: _Proc, left_running: bool, facts: RunFacts) -> End:
    end = _wait_end(proc, left_running, facts)
    if proc.from_init:
        end.source = INIT_SOURCE
    return end


def _wait_end(proc: _Proc, left_running: bool, facts: RunFacts) -> End:
    status = proc.status
    if status is None and _ended_with_pid1(proc, facts):
        return End(SIGNALED, signal="SIGKILL", reaped_by=nspids.KERNEL)
    if status is None:
        return End(UNKNOWN, reason=_why_unknown(proc, facts))
    if status.signal is not None:
        end = End(SIGNALED, signal=signal_name(status.signal), reaped_by=proc.reaped_by)
    else:
        end = End(EXITED, code=status.code, reaped_by=proc.reaped_by)
    if left_running:
        return End(LEFT_RUNNING, then=end)
    return end


def _ended_with_pid1(proc: _Proc, facts: RunFacts) -> bool:
    """Did the kernel SIGKILL it because PID 1 ended?  In a real namespace, a
    process still running (not a zombie, not through its own exit) when PID 1
    ended dies then, and is reaped inside the namespace, so no status reaches gsup.
    "Still running" is what gsup's last look with PID 1 alive saw (the grace's
    SIGKILL looks just before it sends), and no record of its own exit follows."""
    if facts.container not in (ROOT_NS, USER_NS) or proc.pid == facts.root_pid or proc.seen is None:
        return False
    root = next((s for s in facts.statuses if s.pid == facts.root_pid), None)
    if root is None or not proc.seen.with_root or proc.seen.alive:
        return False
    return not any(e.get("k") in ("done", "os_exit") for i in proc.images for e in i.events)


def _why_unknown(proc: _Proc, facts: RunFacts) -> str:
    if proc.seen is not None and proc.seen.alive:
        return "still running when gsup stopped watching"
    parent = proc.ppid(facts)
    if parent is not None and any(image.start and image.start.get("pid") == parent for image in facts.images):
        return f"its parent (pid {parent}) has not collected its status (yet)"
    if parent is not None:
        return f"reaped by its parent (pid {parent}), which is not instrumented"
    if proc.seen is None and not proc.images:
        return "only its parent's record of starting it is known"
    return "no wait status reached gsup"


def _from_image(image: Image, proc: _Proc, role: str, end: End, facts: RunFacts) -> Process:
    start = image.start or {}
    argv = [str(a) for a in start.get("argv") or (proc.seen.argv if proc.seen else [])]
    entry = Process(
        pid=proc.pid, ppid=proc.ppid(facts), role=role, argv=argv,
        instrumented=True, end=end, python=start.get("py"), forked=bool(start.get("fork")),
        opaque_handlers=int(start.get("ncb") or 0), unreadable_events=image.unreadable,
    )
    exit_event = image.first("exit")
    entry.atexit_began = exit_event is not None
    entry.exception = exit_event.get("exc") if exit_event else None
    _exception_origin(entry, image)
    entry.cancelled_tasks = _cancelled_tasks(image.events)
    entry.lost_logs = _lost_logs(image.events)
    entry.handlers = _handlers(image.events, facts.launched)
    entry.watched, entry.watch_missing = _watched(image.events, facts.launched)
    entry.signal_handlers = _signal_handlers(image.events, entry, facts.launched)  # reads entry.exception
    entry.kills = [(int(e.get("pid", -e.get("pgid", 0))), int(e["sig"])) for e in image.of_kind("kill")]
    entry.pgid = start.get("pg") if isinstance(start.get("pg"), int) else None
    entry.sent = [_sent(e, entry.pid, facts.launched) for e in image.of_kind("kill") if e.get("sig")]  # 0: liveness
    entry.reraised = _reraised(image.events, proc.pid)
    entry.stop_at = _stop_at(image.events, facts)
    for call in entry.watched:
        call.before_stop = call.started is not None and (entry.stop_at is None or call.started < entry.stop_at)
    _set_times(entry, image, proc, facts)
    return entry


def _sent(event: Event, pid: int, launched: float) -> Sent:
    """A kill/killpg/raise_signal/pthread_kill record as the report shows it (``pid``: the sender's,
    the receiver of what it sent itself)."""
    group = event.get("pgid")
    receiver = -int(group) if isinstance(group, int) else int(event.get("pid", pid))
    return Sent(receiver, signal_name(int(event["sig"])), float(event["t"]) - launched,
                via=str(event.get("via") or ("killpg" if group is not None else "kill")))


def _reraised(events: list[Event], pid: int) -> Optional[str]:
    """The signal this process sent itself after one of its Python handlers for it ran
    and its default action was put back (uvicorn's capture_signals, coverage.py's
    SIGTERM handler): the last such, by name.  That is why such a process dies by the
    signal with atexit never run, although its handler ran."""
    installed: dict[int, str] = {}
    handled: set[int] = set()
    found: Optional[str] = None
    for event in events:
        kind, signum = event.get("k"), event.get("sig")
        if not isinstance(signum, int):
            continue
        if kind in ("sig0", "sig"):
            installed[signum] = str(event.get("handler"))
        elif kind == "sigrun":
            handled.add(signum)
        elif kind == "kill" and event.get("pid") in (pid, 0) and signum in handled \
                and installed.get(signum) == "SIG_DFL":
            found = signal_name(signum)
    return found


def _stop_at(events: list[Event], facts: RunFacts) -> Optional[float]:
    """When this process began to stop, seconds since launch: the first signal gsup sent
    (to any process: a stop reaches workers through their master's pipes and events too,
    hypercorn's worker through a multiprocessing Event), a Python signal handler's first
    run, or its atexit phase or ``os._exit``, whichever came first.  Work done before is
    start-up's."""
    moments = [a.at for a in facts.actions]
    moments += [float(e["t"]) - facts.launched for e in events if e.get("k") in ("sigrun", "exit", "os_exit")]
    return min(moments) if moments else None


def _handlers(events: list[Event], launched: float) -> list[Handler]:
    """Replay reg/inherit/unreg/begin/end/raise events into handler outcomes,
    each run placed in time on the report's clock (seconds since ``launched``)."""
    handlers: dict[int, Handler] = {}
    order = 0
    for event in events:
        kind, hid = event.get("k"), event.get("h")
        if not isinstance(hid, int):
            continue
        if kind in ("reg", "inherit"):
            handlers[hid] = Handler(kind=str(event.get("kind", "atexit")), name=str(event.get("name", "?")),
                                    module=str(event.get("module", "")), where=str(event.get("where", "")),
                                    inherited=kind == "inherit")
            continue
        handler = handlers.get(hid)
        if handler is None:
            continue
        if kind == "unreg":
            handler.status = UNREGISTERED
        elif kind == "begin" and handler.order is None:
            order += 1
            handler.order, handler.status = order, INTERRUPTED
            handler.started = _since(event, launched)
        elif kind == "begin":  # run again (threading's callbacks, when a first _shutdown() raised)
            handler.runs += 1
            handler.status, handler.exception = INTERRUPTED, None
            handler.started, handler.ended = _since(event, launched), None
        elif kind == "raise":
            handler.status, handler.exception = RAISED, str(event.get("exc"))
            handler.ended = _since(event, launched)
        elif kind == "end" and handler.status != RAISED:
            handler.status, handler.duration = RAN, float(event.get("dur", 0.0))
            handler.ended = _since(event, launched)
    return list(handlers.values())


def _since(event: Event, launched: float) -> Optional[float]:
    """An event's time on the report's clock: every probe event carries ``t``,
    CLOCK_MONOTONIC, which is system-wide, so gsup's launch time subtracts."""
    moment = event.get("t")
    return float(moment) - launched if isinstance(moment, (int, float)) else None


def _lost_logs(events: list[Event]) -> list[LostLogs]:
    """Records held by logging handlers as the process left (after atexit, or at os._exit)."""
    noted = _last_of(events, "logs")
    if noted is None:
        return []
    if noted.get("at") == "os_exit":
        exited = _last_of(events, "os_exit")
        code = exited.get("code") if exited is not None else "?"
        why = f"logging.shutdown never ran (os._exit({code}))"
        return [LostLogs(str(h), str(t), int(n), why) for h, t, n in _held(noted)]
    return [LostLogs(str(h), str(t), int(n), _after_shutdown(str(h))) for h, t, n in _held(noted)]


def _held(event: Event) -> list[list[Any]]:
    held = event.get("held")
    return [item for item in held if isinstance(item, list) and len(item) == 3] if isinstance(held, list) else []


def _after_shutdown(handler: str) -> str:
    if handler == "QueueHandler":
        return ("still queued at exit: no QueueListener drained it "
                "(logging.shutdown does not stop one; call listener.stop())")
    return "still held after logging.shutdown (a MemoryHandler without a target, or flushOnClose=False)"


def _cancelled_tasks(events: list[Event]) -> list[CancelledTask]:
    """The tasks asyncio.run cancelled at its end: the last such round, each with how its cleanup went
    (no record after the cancel: the process died while it ran)."""
    tasks: dict[int, CancelledTask] = {}
    for event in events:
        number = event.get("i")
        if not isinstance(number, int):
            continue
        if event.get("k") == "aio.cancel":
            if number == 0:
                tasks = {}  # a new round (asyncio.run called again)
            tasks[number] = CancelledTask(str(event.get("name", "?")), str(event.get("coro", "?")),
                                          str(event.get("at", "")), "interrupted")
        elif event.get("k") == "aio.cancelled" and number in tasks:
            tasks[number].state = str(event.get("state", "?"))
    return list(tasks.values())


def _exception_origin(entry: Process, image: Image) -> None:
    """The exception a signal handler raised, when it is the one that ended the main thread:
    the same type as the one atexit began with, or a SystemExit (which Python never notes,
    so ``exception`` is null without this), atexit reached or not."""
    raised = _last_of(image.events, "sigexc")
    if raised is None:
        return
    kind = str(raised.get("exc"))
    if entry.exception not in (None, kind) or (entry.exception is None and kind != "SystemExit"):
        return  # caught by the program: something else ended it
    entry.exception = kind
    where = str(raised.get("where") or "")
    signame = signal_name(int(raised.get("sig", 0)))
    entry.exception_origin = (f"{raised.get('repr')} raised by {signame} handler {raised.get('handler')}"
                              + (f" at {where.rpartition('/')[2]}" if where else ""))


def _watched(events: list[Event], launched: float) -> tuple[list[Handler], list[str]]:
    """Calls of watched functions from watch.begin/end/raise events, and the
    ``MODULE:QUALNAME`` the probe could not find.  An end without a begin in this
    image belongs to a call begun before a fork: it is the parent's call."""
    calls: dict[int, Handler] = {}
    missing: list[str] = []
    for event in events:
        kind, cid = event.get("k"), event.get("c")
        if kind == "watch.missing":
            missing.append(f"{event.get('module')}:{event.get('qualname')}")
        elif kind == "watch.begin" and isinstance(cid, int) and cid not in calls:
            calls[cid] = Handler(kind="watched", name=str(event.get("name", "?")), module=str(event.get("module", "")),
                                 where=str(event.get("where", "")), status=INTERRUPTED, order=len(calls) + 1,
                                 started=_since(event, launched))
        elif kind in ("watch.end", "watch.raise") and isinstance(cid, int) and cid in calls:
            call = calls[cid]
            call.status, call.duration = (RAN if kind == "watch.end" else RAISED), float(event.get("dur", 0.0))
            call.ended = _since(event, launched)
            if kind == "watch.raise":
                message = str(event.get("msg") or "")
                call.exception = f"{event.get('exc')}: {message}" if message else str(event.get("exc"))
    return list(calls.values()), missing


def _signal_handlers(events: list[Event], entry: Process, launched: float) -> list[SignalHandler]:
    """Per signal, the last Python handler installed and every earlier one that
    ran, each with its runs.

    A run belongs to the handler installed when it happened (events are in
    order): a server whose handler runs, restores the default and re-raises
    (uvicorn) still shows that its handler ran.  Before 3.11 the probe leaves
    CPython's default SIGINT handler bare (a wrapper would show in
    KeyboardInterrupt tracebacks); its runs are then unknown (None) unless a
    KeyboardInterrupt ended the program or escaped an exit handler, which proves one.
    """
    installed: dict[int, str] = {}
    runs: dict[tuple[int, str], int] = defaultdict(int)
    times: dict[tuple[int, str], list[float]] = defaultdict(list)
    order: list[tuple[int, str]] = []
    for event in events:
        signum = event.get("sig")
        if not isinstance(signum, int):
            continue
        if event.get("k") in ("sig0", "sig"):
            installed[signum] = str(event.get("handler"))
        elif event.get("k") == "sigrun" and signum in installed:
            runs[(signum, installed[signum])] += 1
            moment = _since(event, launched)
            if moment is not None:
                times[(signum, installed[signum])].append(moment)
            if (signum, installed[signum]) not in order:
                order.append((signum, installed[signum]))
    shown = sorted(set(order) | set(installed.items()), key=lambda pair: (pair[0], pair not in order,
                                                                           order.index(pair) if pair in order else 0))
    out = []
    for signum, handler in shown:
        count = runs[(signum, handler)]
        if handler in ("SIG_DFL", "None") or (not count and installed.get(signum) != handler):
            continue
        invoked: Optional[bool] = count > 0
        if handler == "default_int_handler" and _before_311(entry.python) and not count:
            invoked = True if _keyboard_interrupt_seen(entry) else None
        out.append(SignalHandler(signal_name(signum), handler, invoked, count, times[(signum, handler)]))
    return out


def _keyboard_interrupt_seen(entry: Process) -> bool:
    """A KeyboardInterrupt ended the program, or escaped one of its exit handlers
    (a Ctrl-C during atexit: the handler raised, the next ones ran, exit 0)."""
    return entry.exception == "KeyboardInterrupt" or any(
        h.exception == "KeyboardInterrupt" for h in entry.handlers)


def _before_311(python: Optional[str]) -> bool:
    """``"3.9.18"`` → True: compared as numbers ("3.9" sorts after "3.11" as text)."""
    try:
        return tuple(int(p) for p in (python or "").split(".")[:2]) < (3, 11)
    except ValueError:
        return False


def _set_times(entry: Process, image: Optional[Image], proc: _Proc, facts: RunFacts) -> None:
    if image is not None and image.events:
        entry.started = float(image.events[0]["t"]) - facts.launched
    elif proc.seen is not None:
        entry.started = proc.seen.first_seen - facts.launched
    if proc.status is not None:
        entry.ended = proc.status.at - facts.launched


def _mark_orphans(processes: list[Process], procs: list[_Proc], facts: RunFacts) -> None:
    """Orphaned: its parent ended while it still ran, or gsup adopted it before
    anyone saw its parent.  An ending nobody saw proves neither."""
    ended_at = {p.pid: p.status.at for p in procs if p.status is not None}
    by_pid = {p.pid: p for p in procs}
    for process in processes:
        if process.role == "parent":
            continue
        if process.ppid is None:
            process.orphaned = True
            continue
        own = ended_at.get(process.pid)
        parent_end = ended_at.get(process.ppid)
        child, parent = by_pid.get(process.pid), by_pid.get(process.ppid)
        gone = _gone_by(child, facts) if child is not None else None
        dying = _dying_from(parent, facts) if parent is not None else None
        died_first = gone is not None and dying is not None and gone < dying
        process.orphaned = process.end.how == LEFT_RUNNING or (
            parent_end is not None and own is not None and parent_end < own and not died_first)


def _gone_by(proc: _Proc, facts: RunFacts) -> Optional[float]:
    """A moment by which the process was certainly finished: the SIGKILL that
    killed it, or the last thing it did, when that was its ``os._exit`` or the
    end of its atexit phase.  (Collection times cannot tell: a zombie whose
    parent never waited is collected only after that parent has died.)"""
    if proc.status is not None and proc.status.signal == 9:
        sent = _signal_times(proc.pid, 9, facts)
        if sent:
            return min(sent)
    image = proc.images[-1] if proc.images else None
    if image is None or not image.events:
        return None
    last = image.events[-1]
    return float(last["t"]) if last.get("k") in ("done", "os_exit") else None


def _dying_from(proc: _Proc, facts: RunFacts) -> Optional[float]:
    """The earliest moment a process began to end: the signal that killed it
    was sent, its atexit phase began, or it called ``os._exit``."""
    moments = _signal_times(proc.pid, proc.status.signal, facts) if proc.status and proc.status.signal else []
    for image in proc.images:
        moments += [float(e["t"]) for e in image.events if e.get("k") in ("exit", "os_exit")]
    return min(moments) if moments else None


def _signal_times(pid: int, signum: int, facts: RunFacts) -> list[float]:
    """When ``signum`` was sent to ``pid``, by gsup or by a process of the tree."""
    sent = [a.at + facts.launched for a in facts.actions if a.signum == signum and pid in a.pids]
    return sent + [float(e["t"]) for image in facts.images for e in image.of_kind("kill")
                   if e.get("pid") == pid and e.get("sig") == signum]


def _last_of(events: list[Event], kind: str) -> Optional[Event]:
    for event in reversed(events):
        if event.get("k") == kind:
            return event
    return None


def _is_last(image: Image, event: Event) -> bool:
    """Nothing followed ``event`` in its image: an exec that went through (a
    failed one returns to the program, which goes on writing events)."""
    return all(e.get("n", 0) <= event.get("n", 0) for e in image.events)


def _why_unrecorded(proc: _Proc, facts: RunFacts) -> Optional[str]:
    """Records the probe made, or would have made, that are lost: no guess about the process is fair."""
    if proc.unrecorded and facts.records_lost:
        return f"its probe ran but could not write a record ({facts.records_lost})"
    if facts.records_lost and proc.pid and not any(i.pid == proc.pid for i in facts.images):
        argv = proc.seen.argv if proc.seen else proc.spawn_argv or []
        if argv and "python" in argv[0].rsplit("/", 1)[-1] and not _isolated(argv):
            return f"no probe record: {facts.records_lost}"
    return None


def _flags(argv: list[str]) -> str:
    """The interpreter's one-letter flags in ``argv`` (``-Wignore::ImportWarning`` is no ``-I``)."""
    return "".join(option[1:] for option in _interpreter_options(argv[1:]) if option[1:2] not in ("W", "X"))


def _isolated(argv: list[str]) -> bool:
    """Started with -I, -E or -S: Python ignores the probe's PYTHONPATH."""
    return any(flag in _flags(argv) for flag in "IES")


STARTUP = 1.0  # seconds: a Python that ran longer without a probe record had no probe, not too little time


def _forked_from(proc: _Proc) -> Optional[int]:
    """The instrumented parent that recorded forking it (a spawn record with no argv is a fork)."""
    return proc.spawned_by if proc.spawned_by is not None and proc.spawn_argv is None else None


def _why_uninstrumented(argv: list[str], lifetime: Optional[float], end: End, forked_from: Optional[int],
                        deep: Optional[str] = None) -> str:
    """Why no probe record exists, from what is known; a guess says it is one.

    A Python killed before its start-up reached the probe leaves no record,
    exactly as one whose environment lost gsup's variables: a signal soon
    after its start tells them apart, so a short life is stated as the fact it
    is.  One that exited by itself went through its start-up, probe or not.
    A fork of a probed parent carries the probe in memory: no environment is
    to blame there.
    """
    if not argv:
        return "never seen running: only its exit status is known"
    name = argv[0].rsplit("/", 1)[-1]
    if "python" not in name:
        return "not a Python program"
    flags = _flags(argv)
    if "S" in flags:
        return "started with -S: Python skipped site, so gsup's probe was not loaded"
    for flag in "IE":
        if flag in flags and deep:
            return f"started with -{flag}: --deep reached only the site-packages of {deep}"
        if flag in flags:
            return f"started with -{flag}: Python ignores PYTHONPATH, so gsup's probe was not loaded; use --deep"
    if lifetime is not None and lifetime < STARTUP and end.how == SIGNALED:
        return f"it ended {_duration(lifetime)} after it started, before the probe's first record"
    if forked_from is not None:
        return f"a fork of pid {forked_from}, whose probe it inherited, yet no record of its own reached the session"
    if lifetime is not None:
        return (f"no probe record in its {_duration(lifetime)} of running: its environment "
                "may not have carried gsup's (scrubbed env?)")
    return "no probe record: its environment may not have carried gsup's (scrubbed env?)"


def _lifetime(proc: _Proc, facts: RunFacts) -> Optional[float]:
    """Seconds from its start to its end (or to the end of the run), where both are known.

    The start is the kernel's (a tree snapshot's create time, to a clock tick),
    else its parent's record of starting it; the end is its wait status.
    """
    started = proc.seen.started if proc.seen is not None and proc.seen.started else proc.spawned_at
    if started is None:
        return None
    ended = proc.status.at if proc.status is not None else facts.finished
    return max(0.0, ended - started)


def _duration(seconds: float) -> str:
    """``12 ms``, ``1.5 s``: a lifetime as a reader takes it in."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _interpreter_options(args: list[str]) -> list[str]:
    """Python's own short options: those before the script, ``-m`` or ``-c``."""
    options: list[str] = []
    values = iter(args)
    for arg in values:
        if not arg.startswith("-") or arg.startswith("--") or arg[1:2] in ("m", "c"):
            break
        if arg in ("-W", "-X"):
            next(values, None)  # their value is the next argument
            continue
        options.append(arg)
    return options
