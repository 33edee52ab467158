"""Every thread's stack of the live tree, asked of the probe, and where each process was stuck.

The probe answers ``STACKS_SIGNAL`` with a block appended to
``<events dir>/<pid>.stacks`` (its format is in ``_gsup_probe/stacks.py``):
faulthandler's dump of every thread, with the threads' names and daemon flags.
:func:`request` asks every armed process at once and waits, bounded, for each
block to end; :func:`diagnose` turns a process's stacks and the probe's
records into one line a user can act on ("waiting for non-daemon thread
'poller' ...").  Stdlib and the report's data only: ``gsup stacks`` and
``gsup ps --stacks`` use it without psutil.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from supervisor.model import (
    AWAITING,
    BUSY,
    HANDLER_BLOCKED,
    INTERRUPTED,
    JOINING,
    LOCK,
    NOT_RUN,
    Frame,
    Handler,
    Process,
    Stuck,
    ThreadStack,
)
from supervisor.records import dataclass, field

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, Optional, Union

# The probe's choice too (``_arm_stacks``): real-time signals nobody uses.  On the first the
# probe writes its stacks and goes on; on the second it then stops itself (SIGSTOP), as gsup
# asks just before a SIGKILL: the program runs nothing between its stacks and its end (a
# program watching a wakeup fd, as gunicorn's workers do, would otherwise wake up for it).
STACKS_SIGNAL = signal.SIGRTMAX - 2
STACKS_THEN_STOP = signal.SIGRTMAX - 3
ANSWER_WAIT = 1.0  # seconds every process gets to write its stacks
POLL = 0.002  # seconds between looks at the files while they are written
END = "# end\n"
_PROBE_DIR = "/_gsup_probe/"
_STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages/|dist-packages/)")
_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')
_THREAD = re.compile(r"^(Current thread|Thread) 0x([0-9a-f]+) \(most recent call first\):$")
_LOCK = (re.compile(r"\bwith\s+([\w.]+)\s*:"), re.compile(r"([\w.]+)\.acquire\("))


@dataclass
class HeldLogs:
    """A logging handler still holding records when the stacks were taken."""

    handler: str
    target: str
    records: int


@dataclass
class Task:
    """An asyncio task of the loop running in the main thread, where it is suspended."""

    name: str
    coroutine: str
    frame: Optional[Frame]


@dataclass
class Capture:
    """One process's answer: every thread (main first), when, and what the probe noted with it."""

    pid: int
    at: float  # time.monotonic() in the process when it answered
    threads: list[ThreadStack]
    running: Optional[int] = None  # the probe's id of the exit handler running, if any
    signal_frame: Optional[Frame] = None  # the outermost signal handler running in the main thread
    logs: list[HeldLogs] = field(default_factory=list)
    uncaught: Optional[tuple[str, str, str]] = None  # the error that ended the main thread: type, repr, file:line
    tasks: list[Task] = field(default_factory=list)  # the main thread's running event loop's tasks

    @property
    def main(self) -> Optional[ThreadStack]:
        return next((t for t in self.threads if t.main), None)


# -- asking --------------------------------------------------------------------------


if TYPE_CHECKING:
    Answer = Union[Capture, str]  # a capture, or why there is none


def request(pids: list[int], events_dir: Path, then_stop: bool = False, wait: float = ANSWER_WAIT) -> dict[int, Answer]:
    """Ask every armed process of ``pids`` for its stacks at once; wait, bounded, for each
    answer.  A process that cannot answer gets the reason instead (it is never signalled:
    the default action of a real-time signal would kill it).  ``then_stop``: each stops
    itself once it has answered (only for processes gsup is about to SIGKILL)."""
    signum = STACKS_THEN_STOP if then_stop else STACKS_SIGNAL
    answers: dict[int, Answer] = {}
    asked: list[int] = []
    for pid in pids:
        reason = unarmed(pid, events_dir, signum)
        if reason is None:
            reason = _ask(pid, events_dir, signum)
        if reason is None:
            asked.append(pid)
        else:
            answers[pid] = reason
    deadline = time.monotonic() + wait
    while asked:
        for pid in list(asked):
            capture = read(events_dir, pid)
            if capture is not None:
                answers[pid] = capture
                asked.remove(pid)
        if not asked or time.monotonic() >= deadline:
            break
        time.sleep(POLL)  # no file-change notification in the stdlib; each look is a stat and a read
    for pid in asked:
        answers[pid] = f"no stack: no answer within {wait:g} s ({_main_thread_state(pid)})"
    return answers


def _main_thread_state(pid: int) -> str:
    """What the kernel says the main thread does: a Python thread that does not answer is in
    C code that never returns to the interpreter (a long computation, a call holding the GIL)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0].decode()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except (OSError, IndexError):
        return "it ended meanwhile"
    if state == "R":
        return "its main thread is running C code that does not return to Python"
    if state in ("T", "t"):
        return "it is stopped"
    waiting = f" in {wchan}" if wchan and wchan != "0" else ""
    return f"its main thread waits in the kernel{waiting} without returning to Python"


def unarmed(pid: int, events_dir: Path, signum: int = STACKS_SIGNAL) -> Optional[str]:
    """Why ``pid`` cannot answer (None: it can).  Armed means: the probe runs in its
    current image (an events file of this pid and start time) and a handler is in place
    for the signal (the kernel's SigCgt), which the program did not take over."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
        start, zombie = stat[19].decode(), stat[0] == b"Z"
        caught = int(_status_field(pid, "SigCgt"), 16)
    except (OSError, IndexError, ValueError):
        return "gone"
    if zombie:
        return "gone"
    files = sorted(events_dir.glob(f"{own_pid(pid)}-{start}-*.jsonl"))
    if not files:
        return "no stack (not a Python process, or not instrumented)"
    if not caught >> (signum - 1) & 1:
        return "no stack (the image gsup's probe saw was replaced, or has no handler for the request)"
    took_over = f'"sig":{int(signum)},"handler"'
    if any(took_over in f.read_text(errors="replace") for f in files):
        return f"no stack (the program handles {signal_label(signum)} itself)"
    return None


def own_pid(pid: int) -> int:
    """The pid process ``pid`` knows itself by, which names its probe's files: in container
    mode its pid inside the PID namespace (the last of NSpid: PID 1 is 1), else ``pid``."""
    try:
        return int(_status_field(pid, "NSpid").split()[-1])
    except (OSError, IndexError, ValueError):
        return pid


def signal_label(signum: int) -> str:
    return f"SIGRTMAX-{signal.SIGRTMAX - signum}" if signum > signal.SIGRTMIN else str(signum)


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise ValueError(name)


def _ask(pid: int, events_dir: Path, signum: int) -> Optional[str]:
    try:
        (events_dir / f"{pid}.stacks").unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        return f"no stack ({err.strerror})"
    try:
        os.kill(pid, signum)
    except OSError:
        return "gone"
    return None


# -- reading -------------------------------------------------------------------------


def read(events_dir: Path, pid: int) -> Optional[Capture]:
    """The last complete answer ``pid`` wrote, if any."""
    try:
        text = (events_dir / f"{own_pid(pid)}.stacks").read_text(errors="replace")
    except OSError:
        return None
    return parse(text)


def parse(text: str) -> Optional[Capture]:
    """The last complete block of a ``.stacks`` file (None: none is complete yet)."""
    if not text.endswith(END):
        return None
    block = text[text.rfind("# gsup-stacks "):]
    header: list[str] = []
    body: list[str] = []
    for line in block.splitlines():
        (header if line.startswith("# ") else body).append(line)
    fields = dict(part.partition("=")[::2] for part in header[0].split()[2:])
    notes = {line[2:].partition(" ")[0]: line[2:].partition(" ")[2] for line in header[1:]}
    capture = Capture(pid=int(fields.get("pid", 0)), at=float(fields.get("t", 0.0)), threads=[],
                      running=int(notes["running"]) if "running" in notes else None,
                      logs=[HeldLogs(str(h), str(t), int(n)) for h, t, n in _json_list(notes.get("logs"))])
    names = {int(i): (str(n), bool(d)) for i, n, d in _json_list(notes.get("threads"))}
    capture.tasks = [Task(str(n), str(c), _frame_at(str(w), str(c))) for n, c, w in _json_list(notes.get("tasks"))]
    uncaught = _json_list(f"[{notes['exc']}]") if "exc" in notes else []
    if uncaught:
        capture.uncaught = (str(uncaught[0][0]), str(uncaught[0][1]), str(uncaught[0][2]))
    _read_threads(body, names, capture)
    return capture


def _frame_at(where: str, function: str) -> Optional[Frame]:
    file, _, line = where.rpartition(":")
    return Frame(file, int(line), function.rpartition(".")[2]) if line.isdigit() else None


def _json_list(text: Optional[str]) -> list[list[Any]]:
    import json

    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [item for item in value if isinstance(item, list) and len(item) == 3] if isinstance(value, list) else []


def _read_threads(lines: list[str], names: dict[int, tuple[str, bool]], capture: Capture) -> None:
    """faulthandler's text into threads; the current thread (the one that ran the
    probe's handler: Python runs handlers in the main thread) is the main thread."""
    thread: Optional[ThreadStack] = None
    raw: list[Frame] = []
    for line in [*lines, "Thread 0x0 (most recent call first):"]:
        head = _THREAD.match(line)
        if head is None:
            found = _FRAME.match(line)
            if found is not None and thread is not None:
                raw.append(Frame(found[1], int(found[2]), found[3]))
            continue
        if thread is not None:
            _finish(thread, raw, capture)
        ident = int(head[2], 16)
        name, daemon = names.get(ident, (f"thread 0x{ident:x}", False))
        thread, raw = ThreadStack(ident, name, daemon, main=head[1] == "Current thread"), []
    capture.threads.sort(key=lambda t: not t.main)


def _finish(thread: ThreadStack, raw: list[Frame], capture: Capture) -> None:
    """Keep the program's frames; note where a probe-wrapped signal handler runs."""
    for inner, frame in zip(raw, raw[1:]):
        if thread.main and _is_probe(frame) and frame.function == "wrapper" and not _is_probe(inner):
            capture.signal_frame = inner  # walking outward: the last one kept is the outermost
    thread.frames = [f for f in raw if not _is_probe(f)]
    capture.threads.append(thread)


def _is_probe(frame: Frame) -> bool:
    return _PROBE_DIR in frame.file


def is_library(frame: Frame) -> bool:
    """A frame of the standard library (not the program's, not an installed package's)."""
    return bool(_STDLIB.search(frame.file))


def own_frame(thread: ThreadStack) -> Optional[Frame]:
    """The innermost frame of the program's own code (else the innermost at all)."""
    return next((f for f in thread.frames if not is_library(f)), thread.frames[0] if thread.frames else None)


def source(frame: Optional[Frame]) -> Optional[str]:
    """The line of source ``frame`` is on, stripped (None when the file cannot be read here)."""
    if frame is None:
        return None
    import linecache  # only with stacks to show: it imports tokenize, about a tenth of Python's start-up

    return linecache.getline(frame.file, frame.line).strip() or None


# -- where it was stuck --------------------------------------------------------------


def diagnose(proc: Process, capture: Capture, at: float) -> Optional[Stuck]:
    """One line per process: a blocked handler, a wait for non-daemon threads, a lock, or
    just where it was.  ``at``: seconds since launch when the stacks were taken."""
    main = capture.main
    if main is None or not main.frames:
        return None
    return (_handler_blocked(proc, capture, main, at) or _joining(proc, capture, main)
            or _on_lock(capture, main) or _awaiting(proc, capture, main) or _busy(main))


def _handler_blocked(proc: Process, capture: Capture, main: ThreadStack, at: float) -> Optional[Stuck]:
    handler, seconds = _exit_handler_in(proc, main, at)
    label = handler.label if handler is not None else None
    if label is None and capture.signal_frame is not None:
        label, seconds = _signal_handler_in(proc, capture.signal_frame, at)
    if label is None:
        return None
    frame = own_frame(main)
    line = source(frame)
    lock = _lock_wait(capture, main, frame)
    not_run = [h.label for h in proc.handlers if h.status == NOT_RUN and h.kind == "atexit"]
    text = f"{label} blocked at {_short(frame)}" + (f" on `{line}`" if line else "")
    text += f" for {seconds:.1f} s" if seconds is not None else ""
    text += f" ({lock[0]})" if lock else ""
    text += f"; {', '.join(not_run)} never ran" if not_run else ""
    return Stuck(HANDLER_BLOCKED, text, thread=main.name, frame=frame, source=line, handler=label,
                 seconds=seconds, holder=lock[1] if lock else None, not_run=not_run)


def _exit_handler_in(proc: Process, main: ThreadStack, at: float) -> tuple[Optional[Handler], Optional[float]]:
    """The exit handler the main thread is inside: its frame on the stack (outermost wins)."""
    for frame in reversed(main.frames):
        for handler in proc.handlers:
            if handler.status == INTERRUPTED and _runs(handler, frame):
                return handler, at - handler.started if handler.started is not None else None
    return None, None


def _runs(handler: Handler, frame: Frame) -> bool:
    """Is ``frame`` a frame of ``handler``'s function (same file, name, and below its def line)?"""
    file, _, line = handler.where.rpartition(":")
    return (file == frame.file and handler.name.rpartition(".")[2] == frame.function
            and line.isdigit() and frame.line >= int(line))


def _signal_handler_in(proc: Process, frame: Frame, at: float) -> tuple[Optional[str], Optional[float]]:
    for sig in proc.signal_handlers:
        if sig.handler.rpartition(".")[2] == frame.function:
            began = [t for t in sig.times if t <= at]
            return f"{sig.signal} handler {sig.handler}", at - began[-1] if began else None
    return f"signal handler {frame.function}", None


def _joining(proc: Process, capture: Capture, main: ThreadStack) -> Optional[Stuck]:
    """Python joins every non-daemon thread in ``threading._shutdown`` before atexit runs."""
    if not any(f.function == "_shutdown" and f.file.endswith("threading.py") for f in main.frames):
        return None
    waited = [t for t in capture.threads if not t.main and not t.daemon]
    if not waited:
        return None
    first = waited[0]
    frame = own_frame(first)
    names = ", ".join(f"'{t.name}'" for t in waited)
    plural = "s" if len(waited) > 1 else ""
    text = f"waiting for non-daemon thread{plural} {names}"
    text += f" ({_short(frame)} in {frame.function})" if frame is not None else ""
    not_run = [h.label for h in proc.handlers if h.status == NOT_RUN and h.kind == "atexit"]
    if not proc.atexit_began:
        text += "; atexit never started"
    text += f": make {'them' if plural else 'it'} daemon=True or stop {'them' if plural else 'it'} on shutdown"
    if not_run:
        text += f" ({', '.join(not_run)} never ran)"
    return Stuck(JOINING, text, thread=first.name, frame=frame, source=source(frame),
                 waiting_for=[t.name for t in waited], not_run=not_run)


def _awaiting(proc: Process, capture: Capture, main: ThreadStack) -> Optional[Stuck]:
    """The main thread waits in asyncio's event loop: say which tasks it still runs, and where."""
    if not capture.tasks or not any(f.function == "run_forever" and "/asyncio/" in f.file for f in main.frames):
        return None
    cleaning = {t.name for t in proc.cancelled_tasks if t.state == INTERRUPTED}
    tasks = sorted(capture.tasks, key=lambda t: t.name not in cleaning)
    first = tasks[0]
    line = source(first.frame)
    what = "finishing its cleanup after asyncio.run cancelled it" if first.name in cleaning else "running"
    text = f"event loop waiting on task {first.name} ({first.coroutine}), {what}, at {_short(first.frame)}"
    text += f" on `{line}`" if line else ""
    if len(tasks) > 1:
        text += f" (and {len(tasks) - 1} more task{'s' if len(tasks) > 2 else ''})"
    return Stuck(AWAITING, text, thread=main.name, frame=first.frame, source=line,
                 waiting_for=[t.name for t in tasks])


def _on_lock(capture: Capture, main: ThreadStack) -> Optional[Stuck]:
    frame = own_frame(main)
    lock = _lock_wait(capture, main, frame)
    if lock is None:
        return None
    line = source(frame)
    return Stuck(LOCK, f"main thread {lock[0]} at {_short(frame)}" + (f" on `{line}`" if line else ""),
                 thread=main.name, frame=frame, source=line, holder=lock[1])


def _busy(main: ThreadStack) -> Stuck:
    frame = own_frame(main)
    line = source(frame)
    where = f"{_short(frame)} in {frame.function}" if frame is not None else "?"
    return Stuck(BUSY, f"still running at {where}" + (f": `{line}`" if line else ""),
                 thread=main.name, frame=frame, source=line)


def _lock_wait(capture: Capture, thread: ThreadStack, frame: Optional[Frame]) -> Optional[tuple[str, Optional[str]]]:
    """("waiting on a lock held by thread 'x' (f.py:12 in hold)", "x") when ``frame`` waits on a lock."""
    line = source(frame) or ""
    name = next((m[1] for m in (p.search(line) for p in _LOCK) if m is not None), None)
    if name is None:
        return None
    short = name.rpartition(".")[2]
    for other in capture.threads:
        if other is thread:
            continue
        held = next((f for f in other.frames if not is_library(f) and _holds(f, short)), None)
        if held is not None:
            return f"waiting on a lock held by thread '{other.name}' ({_short(held)} in {held.function})", other.name
    return "waiting on a lock", None


def _holds(frame: Frame, name: str) -> bool:
    """Does the function of ``frame``, up to its current line, take the lock ``name``?"""
    import linecache

    taking = re.compile(rf"\bwith\s+(?:[\w.]*\.)?{re.escape(name)}\s*:|\b{re.escape(name)}\.acquire\(")
    for number in range(frame.line, max(0, frame.line - 60), -1):
        text = linecache.getline(frame.file, number)
        if taking.search(text):
            return True
        if text.lstrip().startswith(("def ", "async def ")):
            return False
    return False


def _short(frame: Optional[Frame]) -> str:
    return f"{frame.file.rpartition('/')[2]}:{frame.line}" if frame is not None else "?"
