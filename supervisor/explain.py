"""One sentence per process that a user can act on: why it ended as it did.

Rules are checked most specific first; each reads only the report's facts
(wait status, the probe's events, the actions gsup took), never program output.
"""

from __future__ import annotations

from supervisor.model import (
    EXEC,
    EXITED,
    INTERRUPTED,
    LEFT_RUNNING,
    NOT_RUN,
    OS_EXIT,
    RAISED,
    SIGNALED,
    UNKNOWN,
    Action,
    Process,
)
from supervisor.signals import signal_name

SHELLS = ("sh", "dash", "bash", "ash", "busybox", "zsh", "ksh", "mksh")
FIX = "fix: a SIGTERM handler that exits, exec-form CMD, or --init (tini)"


def explain(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    text = (_container_ending(proc, everyone, actions) or _ending(proc, everyone, actions)) + _celery_tasks(proc)
    if proc.orphaned and proc.end.reaped_by == "gsup" and proc.end.how in (EXITED, OS_EXIT) and proc.role != "parent":
        # It lived on after its parent and ended by itself: gsup reaped the orphan (a signal
        # to the whole tree orphans children by a hair's breadth: no news there).
        text += "; orphaned, it was reaped by gsup (in a container, PID 1 would have to, or it stays a zombie)"
    if not proc.instrumented:
        return f"not instrumented ({proc.uninstrumented_reason}); {text}"
    return text


def _container_ending(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    """What PID 1 of a PID namespace changes: dropped signals, a shell left as PID 1,
    an init in between, the rest of the namespace killed by the kernel; empty outside container mode."""
    init = next((p for p in everyone if p.nspid == 1), None)
    if proc.end.source and init is not None:
        return (f"{_ending(proc, everyone, actions)}; the init (PID 1, pid {init.pid}) passed the signal on, and "
                f"this end is read from its exit status {init.end.code} (an init exits 128+N when signal N killed "
                "its child)")
    child = next((p for p in everyone if p.end.source and p.ppid == proc.pid), None)
    if child is not None:
        return (f"the init: it passed the signal on to its child (pid {child.pid}) and exited with its status, "
                f"{proc.end.code}")
    if proc.end.reaped_by == "kernel":
        return (f"killed with SIGKILL by the kernel when PID 1 (pid {_pid1(everyone)}) ended: every process of a "
                f"PID namespace dies with its PID 1 (its status stayed inside){_never_got(proc, actions)}"
                f"{_skipped(proc)}")
    if proc.nspid == 1 and proc.end.how == EXITED and proc.end.code == 130 and proc.exception == "KeyboardInterrupt":
        return (f"{_ending(proc, everyone, actions)}; as PID 1 it could not die by the SIGINT CPython re-raises "
                "at the end (the kernel drops it: no handler), so CPython exited 130 instead")
    dropped = [a for a in actions if proc.pid in a.dropped]
    if proc.role != "parent" or not dropped:  # the launched process is PID 1 (or plays it, emulated)
        return ""
    first = dropped[0]
    kernel = "by the kernel" if proc.nspid == 1 else "(emulated: the kernel's rule for PID 1)"
    said = f"{first.signal} had been dropped {kernel}: PID 1 had no handler for it"
    fix = FIX
    if _is_shell(proc) and any(p.ppid == proc.pid for p in everyone):
        child = next(p for p in everyone if p.ppid == proc.pid)
        said = (f"shell-form CMD: {proc.argv[0]} is PID 1 and never passes {first.signal} on; "
                f"{_script(child)} never got it ({first.signal} dropped by the kernel: the shell has no handler)")
        fix = "fix: exec form (CMD [\"python\", \"app.py\"]) or exec in the shell"
    if proc.end.how != SIGNALED or proc.end.signal != "SIGKILL":
        return ""
    killed = next((a for a in actions if a.signal == "SIGKILL" and proc.pid in a.pids and a.at >= first.at), None)
    when = ""
    if killed is not None:
        who = _GRACE_OF.get(killed.by, "the grace")
        when = f" when {who} {killed.at - first.at:.0f} s ran out"
    return f"killed by SIGKILL{when}; {said}; nothing ran{_skipped(proc)}; {fix}"


_GRACE_OF = {"stop docker": "docker stop's", "stop docker-init": "docker stop's", "stop k8s": "the kubelet's"}


def _pid1(everyone: list[Process]) -> str:
    return next((str(p.pid) for p in everyone if p.nspid == 1), "?")


def _never_got(proc: Process, actions: list[Action]) -> str:
    """A process the stop signal never reached (it went to PID 1 alone, which dropped it)."""
    stop = next((a for a in actions if a.dropped), None)
    if stop is None or proc.pid in stop.pids:
        return ""
    return f"; the {stop.signal} never reached it"


def _is_shell(proc: Process) -> bool:
    return bool(proc.argv) and proc.argv[0].rsplit("/", 1)[-1] in SHELLS


def _script(proc: Process) -> str:
    """``app.py``: the script a Python process ran, else its program's name."""
    scripts = [a for a in proc.argv[1:] if a.endswith(".py")]
    return scripts[0].rsplit("/", 1)[-1] if scripts else (proc.argv[0].rsplit("/", 1)[-1] if proc.argv else "it")


def _ending(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    end = proc.end
    if end.how == LEFT_RUNNING:
        return _left_running(proc, everyone)
    if end.how == EXEC:
        argv = " ".join(end.exec_argv or []) or "another program"
        return f"replaced itself with exec ({argv}): atexit skipped{_skipped(proc)}"
    if end.how == OS_EXIT:
        if proc.atexit_began:  # ran them itself first, as a 3.13 multiprocessing child does
            return (f"ran its atexit handlers itself ({', '.join(_began(proc))}), then left through "
                    f"os._exit({end.code}){_inside_watched(proc)}{_skipped(proc)}")
        return f"left through os._exit({end.code}){_inside_watched(proc)}: atexit skipped{_skipped(proc)}"
    if end.how == UNKNOWN:
        return f"exit status unknown: {end.reason}{_handlers_summary(proc)}"
    if end.how == SIGNALED:
        return _signaled(proc, everyone, actions)
    return _exited(proc, everyone, actions)


def _signaled(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    sig = proc.end.signal or "?"
    sender = _sender(proc, sig, everyone, actions)
    interrupted = [h.label for h in proc.handlers if h.status == INTERRUPTED]
    if interrupted:
        return (f"killed with {sig}{sender} while exit handler {interrupted[0]} was running "
                f"(interrupted){_skipped(proc, 'also ')}")
    if _inside_watched(proc):
        return f"killed with {sig}{sender}{_inside_watched(proc)} (interrupted){_ran_or_skipped(proc)}"
    if sig == "SIGKILL":
        return _sigkilled(proc, sender, everyone, actions)
    handled = [s for s in proc.signal_handlers if s.signal == sig and s.invoked]
    if handled and proc.reraised == sig:
        return (f"got {sig}{sender}: its Python handler {handled[0].handler} ran, restored {sig}'s default "
                f"and re-raised it: died by {sig}, so atexit did not run{_on_purpose(proc)}{_skipped(proc)}"
                f"{_hooks_missed(proc)}")
    if sig == "SIGINT" and proc.exception == "KeyboardInterrupt" and proc.atexit_began:
        return (f"got SIGINT{sender}: KeyboardInterrupt, atexit ran{_ran_summary(proc)}, "
                "then died by SIGINT as CPython does")
    if handled:
        return (f"got {sig}{sender}: its Python handler {handled[0].handler} ran, then the process "
                f"died by {sig}{_ran_or_skipped(proc)}")
    if proc.instrumented and not any(s.signal == sig for s in proc.signal_handlers):
        return (f"{sig}{sender} had no Python handler: the default action killed the process "
                f"before atexit could run{_skipped(proc)}")
    return f"killed by {sig}{sender}{_ran_or_skipped(proc)}"


def _sigkilled(proc: Process, sender: str, everyone: list[Process], actions: list[Action]) -> str:
    """SIGKILL ends a process at once; what ran before it did (a signal handler, a hook, an
    exit handler) is said, with the signal that asked it to stop and how long it had."""
    ran = _began(proc) + [w.label for w in proc.watched if w.status != INTERRUPTED and not w.before_stop]
    handled = [s for s in proc.signal_handlers if s.invoked and s.signal not in _NOT_A_STOP]
    if handled:
        first = handled[0]
        waited = _waited(proc, first.signal, everyone)
        asked = "" if waited else _sender(proc, first.signal, everyone, actions)
        text = (f"killed with SIGKILL{sender}{waited}: its Python handler {first.handler} had run for "
                f"{first.signal}{asked}")
        if ran:
            text += f" and {', '.join(ran)} had run"
        return f"{text}, but it had not finished stopping{_skipped(proc)}{_hooks_missed(proc)}"
    if ran:
        return f"killed with SIGKILL{sender} after {', '.join(ran)} had run{_skipped(proc)}{_hooks_missed(proc)}"
    return f"killed with SIGKILL{sender}: SIGKILL cannot be handled, nothing ran{_skipped(proc)}{_hooks_missed(proc)}"


# Signals a handler may run for that ask no process to stop (a child ended, a window resized...).
_NOT_A_STOP = frozenset(("SIGKILL", "SIGCHLD", "SIGWINCH", "SIGCONT", "SIGALRM", "SIGURG", "SIGPIPE", "SIGIO"))


def _waited(proc: Process, first: str, everyone: list[Process]) -> str:
    """How long the process that SIGKILLed ``proc`` gave it after asking it to stop with ``first``."""
    for other in everyone:
        asked = [s.at for s in other.sent if s.pid == proc.pid and s.signal == first and s.at is not None]
        killed = [s.at for s in other.sent if s.pid == proc.pid and s.signal == "SIGKILL" and s.at is not None]
        if asked and killed and other.pid != proc.pid:
            # gunicorn's Arbiter.stop: TERM (graceful) or QUIT (quick), then graceful_timeout, then KILL
            stopping = other.kind == "gunicorn master" and first in ("SIGTERM", "SIGQUIT")
            setting = " (gunicorn's graceful_timeout)" if stopping else ""
            return f", {killed[-1] - asked[0]:.1f} s after the {first} it had sent{setting}"
    return ""


# A server that re-raises on purpose, and where its users' cleanup belongs instead.
_ON_PURPOSE = {
    "uvicorn": "uvicorn does this on purpose; put cleanup in the lifespan shutdown",
    "hypercorn": "put cleanup in the lifespan shutdown",
}


def _on_purpose(proc: Process) -> str:
    """The server's own reason, when the process runs one (a gunicorn worker running uvicorn's
    Server shows in its watched calls)."""
    servers = [(proc.kind or "").split(" ")[0]] + [w.module.split(".")[0] for w in proc.watched]
    note = next((_ON_PURPOSE[s] for s in servers if s in _ON_PURPOSE), None)
    return f" ({note})" if note else ""


# Framework hooks (watched by the presets) whose start-up half ran: the shutdown half should follow.
_PAIRS = {
    "LifespanOn.startup": ("LifespanOn.shutdown", "the ASGI lifespan shutdown"),
    "Lifespan.wait_for_startup": ("Lifespan.wait_for_shutdown", "the ASGI lifespan shutdown"),
    "Application.startup": ("Application.shutdown", "aiohttp's on_shutdown"),
}


def _hooks_missed(proc: Process) -> str:
    """Shutdown hooks that never ran although their start-up half did: ``; the ASGI lifespan shutdown never ran``."""
    began = {w.name for w in proc.watched}
    missed = [what for start, (stop, what) in _PAIRS.items() if start in began and stop not in began]
    return f"; {' and '.join(missed)} never ran" if missed else ""


def _exited(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    code = proc.end.code
    start = f"exited with code {code}"
    received = [s for s in proc.signal_handlers if s.invoked]
    if received and received[0].handler == "default_int_handler":
        escaped = next((h for h in proc.handlers if h.exception == "KeyboardInterrupt"), None)
        how = (f" while its exit handlers ran: the KeyboardInterrupt escaped {escaped.name}" if escaped is not None
               else ": the KeyboardInterrupt it raised was caught")
        start = f"got SIGINT{how}, and the process exited with code {code}"
    elif received:
        sender = _sender(proc, received[0].signal, everyone, actions)
        start = (f"got {received[0].signal}{sender}: its Python handler {received[0].handler} ran and the "
                 f"process exited with code {code}")
    if proc.exception and proc.exception != "SystemExit":  # sys.exit() is how a program asks to end
        start += f" after an unhandled {proc.exception}"
    if not proc.instrumented:
        return start
    start += _children_first(proc, everyone) + _kills_sent(proc, everyone)
    if proc.atexit_began:
        return f"{start}; atexit ran{_ran_summary(proc)}"
    return f"{start} without running atexit{_skipped(proc)}"


def _children_first(proc: Process, everyone: list[Process]) -> str:
    """Children this process reaped itself: often why it exited (werkzeug's 247)."""
    reaped = [p for p in everyone if p.end.reaped_by == f"parent {proc.pid}"]
    if not reaped:
        return ""
    ends = ", ".join(f"{p.pid} {_short_end(p)}" for p in reaped)
    return f", after its child{'ren' if len(reaped) > 1 else ''} ended ({ends})"


def _kills_sent(proc: Process, everyone: list[Process]) -> str:
    """Signals this process sent to others of the tree (``Popen.kill`` and friends)."""
    sent = []
    for pid, signum in proc.kills:
        if pid != proc.pid and any(p.pid == pid for p in everyone):
            relation = "child " if any(p.pid == pid and p.ppid == proc.pid for p in everyone) else ""
            sent.append(f"{signal_name(signum)} to its {relation}{pid}")
    return f", having sent {', '.join(sent)}" if sent else ""


def _short_end(proc: Process) -> str:
    if proc.end.how == SIGNALED:
        return f"killed by {proc.end.signal}"
    if proc.end.how == OS_EXIT:
        return f"os._exit({proc.end.code})"
    return f"exit {proc.end.code}"


def _left_running(proc: Process, everyone: list[Process]) -> str:
    parent = next((p for p in everyone if p.pid == proc.ppid and p.end.how != LEFT_RUNNING), None)
    why = f"orphaned when its parent (pid {proc.ppid}) ended" if parent is not None and proc.orphaned else \
        "still running when the tree should have ended"
    then = proc.end.then
    fate = ""
    if then is not None:
        fate = f"; gsup then ended it ({then.signal or f'exit {then.code}'})"
    return f"left running: {why}{fate}{_skipped(proc)}"


def _sender(proc: Process, sig: str, everyone: list[Process], actions: list[Action]) -> str:
    """Who sent ``sig``: gsup's own actions first, then a kill() the probe saw."""
    for action in reversed(actions):
        if action.signal == sig and proc.pid in action.pids:
            if action.by.startswith("stop "):
                return f" by the `--stop {action.by[5:]}` sequence"
            return _BY.get(action.by, " by gsup")
    for other in everyone:
        for pid, signum in other.kills:
            # os.killpg reaches every member: the group's leader (billiard's workers lead their
            # own) and those in it when they started (a later setpgid is not seen)
            group = pid < 0 and -pid in (proc.pid, proc.pgid)
            if (pid == proc.pid or group) and signal_name(signum) == sig and other.pid != proc.pid:
                relation = "its parent" if other.pid == proc.ppid else "process"
                through = f" to its process group {-pid}" if group else ""
                if other.kind:
                    return f" by {relation} {other.pid} ({other.kind}){through}"
                return f" by {relation} (pid {other.pid}){through}"
    return ""


_BY = {
    "gsup kill": " by `gsup kill`",
    "ctrl-c": " from Ctrl-C (gsup forwarded it to the group)",
    "2nd ctrl-c": " from the 2nd Ctrl-C (gsup forwarded it to the group again)",
    "3rd ctrl-c": " by gsup at the 3rd Ctrl-C",
    "gsup received": " forwarded by gsup, which received it",
    "grace": " by gsup when the grace period ran out",
    "leftovers": " by gsup, which ended what was left running",
    "guardian": " by gsup's guardian, because gsup itself had died",
}


def _began(proc: Process) -> list[str]:
    """Labels of the handlers that began, in the order they began (``fired``, qualified)."""
    return [h.label for h in sorted(proc.handlers, key=lambda h: h.order or 0) if h.order is not None]


def _inside_watched(proc: Process) -> str:
    """A watched call that began and never ended: where the process was when it died."""
    inside = [w.label for w in proc.watched if w.status == INTERRUPTED]
    return f" while watched {inside[-1]} was running" if inside else ""


def _ran_summary(proc: Process) -> str:
    ran = _began(proc)
    if not ran:
        return " (no handlers registered)" if not proc.handlers else " (none of its handlers began)"
    raised = [h.label for h in proc.handlers if h.status == RAISED]
    text = f" {', '.join(ran)}"
    if raised:
        text += f" ({', '.join(raised)} raised)"
    return text + _skipped(proc)


def _ran_or_skipped(proc: Process) -> str:
    return f"; atexit ran{_ran_summary(proc)}" if proc.atexit_began else _skipped(proc)


def _skipped(proc: Process, also: str = "") -> str:
    waiting = [h.label for h in reversed(proc.handlers) if h.status == NOT_RUN]
    if not waiting:
        return ""
    return f"; {also}not run: {', '.join(waiting)}"


def _handlers_summary(proc: Process) -> str:
    return f"; handlers that began: {', '.join(proc.fired)}" if proc.fired else _skipped(proc)



CELERY_TASK = "task "  # how the probe's celery preset names a task run (module "celery"): "task NAME[ID]"
ACKS_LATE = " (acks_late)"


def _celery_tasks(proc: Process) -> str:
    """What became of each Celery task this pool process did not finish (the celery preset).

    Observed against Redis (tests/test_celery.py): a task with ``acks_late`` has not
    acknowledged its message, so it runs again: the worker requeues it on a cold
    shutdown, and after a SIGKILL the broker redelivers it once its visibility timeout
    passes (Redis: one hour by default).  Any other task acknowledged its message on
    receipt: nothing runs it again."""
    unfinished = [w for w in proc.watched if w.module == "celery" and w.name.startswith(CELERY_TASK)
                  and w.status in (INTERRUPTED, RAISED)]
    sentences = []
    for call in unfinished:
        task = call.name[len(CELERY_TASK):].removesuffix(ACKS_LATE)
        if call.name.endswith(ACKS_LATE):
            sentences.append(f"Celery task {task} did not finish; acks_late, so its message was never acknowledged "
                             "and the task runs again (requeued by the worker on a cold shutdown, or redelivered "
                             "by the broker once its visibility timeout passes after a SIGKILL)")
        else:
            sentences.append(f"Celery task {task} did not finish and is lost: its message was acknowledged on "
                             "receipt (set acks_late=True for it to run again)")
    return "".join(f"; {sentence}" for sentence in sentences)
