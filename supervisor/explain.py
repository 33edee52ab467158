"""One sentence per process that a user can act on: why it ended as it did.

Rules are checked most specific first; each reads only the report's facts
(wait status, the probe's events, the actions gsup took), never program output.
"""

from __future__ import annotations

from supervisor.model import (
    EXEC,
    INTERRUPTED,
    LEFT_RUNNING,
    NOT_RUN,
    OS_EXIT,
    RAISED,
    RAN,
    SIGNALED,
    UNKNOWN,
    Action,
    Process,
)
from supervisor.signals import signal_name


def explain(proc: Process, everyone: list[Process], actions: list[Action]) -> str:
    text = _ending(proc, everyone, actions) + _celery_tasks(proc)
    if not proc.instrumented:
        return f"not instrumented ({proc.uninstrumented_reason}); {text}"
    return text


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
    return _exited(proc, everyone)


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
        if proc.fired:
            return f"killed with SIGKILL{sender} after {', '.join(_began(proc))} had run{_skipped(proc)}"
        watched_ran = [w.label for w in proc.watched if w.status == RAN]
        if watched_ran:  # a shutdown it had begun (Celery's worker_shutting_down), not "nothing ran"
            return (f"killed with SIGKILL{sender} after watched {', '.join(watched_ran)} had run; "
                    f"SIGKILL cannot be handled{_skipped(proc)}")
        return f"killed with SIGKILL{sender}: SIGKILL cannot be handled, nothing ran{_skipped(proc)}"
    handled = [s for s in proc.signal_handlers if s.signal == sig and s.invoked]
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


def _exited(proc: Process, everyone: list[Process]) -> str:
    code = proc.end.code
    start = f"exited with code {code}"
    received = [s for s in proc.signal_handlers if s.invoked]
    if received and received[0].handler == "default_int_handler":
        start = f"got SIGINT: the KeyboardInterrupt it raised was caught, and the process exited with code {code}"
    elif received:
        start = (f"got {received[0].signal}: its Python handler {received[0].handler} ran and the "
                 f"process exited with code {code}")
    if proc.exception:
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
            if pid == proc.pid and signal_name(signum) == sig and other.pid != proc.pid:
                relation = "its parent" if other.pid == proc.ppid else "process"
                return f" by {relation} (pid {other.pid})"
    return ""


_BY = {
    "gsup kill": " by `gsup kill`",
    "ctrl-c": " from Ctrl-C (gsup forwarded it to the group)",
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
