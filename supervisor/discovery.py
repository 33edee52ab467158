"""Find gsup's sessions, check their state files and list their live trees: standard library only.

This is the one reading of sessions for ``gsup ps`` (both its fast path and
click's), ``gsup kill`` and ``gsup report``; :mod:`supervisor.session` writes
them.  ``gsup ps`` start-up is a measured figure and importing psutil costs
about twice Python's own start-up, so nothing here imports psutil, click, rich,
pathlib or typing: processes are read from ``/proc`` (:mod:`supervisor.procfs`,
held to psutil's arithmetic), and paths are strings spelled as pathlib spells
them, because error messages show them and a guardian's command line holds one.

A session is refused, not listed, when its ``session.json`` is a link, not
ours, malformed, or names processes that are not its own (:func:`check_bound`).
"""

from __future__ import annotations

import os
import stat

from supervisor import procfs
from supervisor.errors import GsupError

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "gsup.session/1"

# How a session ended, its state file's ``state`` (added within gsup.session/1; a file
# without it reads as RUNNING, or FINISHED when its ``finished`` is true).  A RUNNING
# session whose gsup is gone reads as GSUP_DIED: gsup was killed before it could say.
RUNNING, FINISHED, NOT_STARTED, GSUP_DIED = "running", "finished", "could-not-start", "gsup-died"
ENDINGS = (RUNNING, FINISHED, NOT_STARTED, GSUP_DIED)

Listed = tuple[int, int, list[str]]  # a live process of a session's tree: pid, parent, command line


class Proc:
    """A process as psutil identifies it, pid and start time (:class:`supervisor.signals.Identity`
    without dataclasses, which cost more to import than this whole module)."""

    __slots__ = ("create_time", "pid")

    def __init__(self, record: Any) -> None:
        self.pid = int(record["pid"])
        self.create_time = float(record["create_time"])

    def running(self) -> bool:
        return running(self.pid, self.create_time)


def running(pid: int, create_time: float) -> bool:
    """``signals.identity(pid) == Identity(pid, create_time)``: that very process still exists."""
    info = procfs.stat(pid)
    return info is not None and procfs.create_time(info) == create_time


class State:
    """What a session's ``session.json`` says, every field converted and so checked."""

    def __init__(self, state: Any, directory: str) -> None:
        # The order of the conversions decides which error a damaged file raises: keep it.
        self.dir = directory
        self.id = str(state["id"])
        self.command = [str(a) for a in state["command"]]
        self.gsup = Proc(state["gsup"])
        self.started = float(state["started"])
        self.root = Proc(state["root"]) if state["root"] else None
        self.pgid = int(state["pgid"]) if state["pgid"] is not None else None
        finished = bool(state["finished"])
        self.launched = float(state.get("launched", 0.0))
        guardian = state.get("guardian")
        self.guardian = Proc(guardian) if guardian else None
        self.state = str(state.get("state") or (FINISHED if finished else RUNNING))
        if self.state not in ENDINGS:
            raise ValueError(self.state)
        self.reason = str(state["reason"]) if state.get("reason") is not None else None  # why it ended so
        self.exit_code = int(state["exit_code"]) if state.get("exit_code") is not None else None  # gsup's

    @property
    def finished(self) -> bool:
        """Its gsup wrote the report."""
        return self.state == FINISHED

    def is_live(self) -> bool:
        """The gsup that owns it still runs (same pid *and* start time)."""
        return self.state == RUNNING and self.gsup.running()

    def ending(self) -> str:
        """:data:`ENDINGS`: what the state says, with a RUNNING session whose gsup is gone GSUP_DIED."""
        return GSUP_DIED if self.state == RUNNING and not self.gsup.running() else self.state


def sessions_root() -> str:
    """``$GSUP_HOME``, else ``$XDG_RUNTIME_DIR/gsup``, else ``/tmp/gsup-<uid>``."""
    if os.environ.get("GSUP_HOME"):
        return os.environ["GSUP_HOME"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "gsup")
    return f"/tmp/gsup-{os.getuid()}"


def child(parent: str, name: str) -> str:
    """``str(Path(parent) / name)``: pathlib is imported only for a path it would respell."""
    path = os.path.join(parent, name)
    if os.path.normpath(path) == path:
        return path  # no "//", "/./", trailing "/" nor "x/..": pathlib leaves it as it is
    from pathlib import PurePath

    return str(PurePath(path))


def absolute(path: str) -> str:
    """``str(Path(path).absolute())`` for a path spelled as pathlib spells it."""
    if os.path.isabs(path):
        return path
    return os.getcwd() if path == "." else os.path.join(os.getcwd(), path)


def load(session_id: str) -> State:
    """Read a session's state, refusing anything malformed, foreign or linked (the
    sessions' directory itself included: the refusal ``gsup run`` gives for it)."""
    root = sessions_root()
    check_root(root)
    return _load(root, session_id)


def _load(root: str, session_id: str) -> State:
    from supervisor import strictjson  # here, not above: with no session at all, ``gsup ps`` never pays for json

    directory = child(root, session_id) if _plain_name(session_id) else ""
    if not directory or not _is_dir(directory):
        shown = session_id if len(session_id) <= 40 else session_id[:40] + "..."
        raise GsupError(f"no such session {shown!r}: see `gsup ps --all`")
    path = child(directory, "session.json")
    try:
        if os.lstat(directory).st_uid != os.getuid():
            raise GsupError(f"refusing session {session_id}: its directory is not yours")
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise GsupError(f"refusing session {session_id}: session.json is a link or not yours")
        with open(path) as file:
            state = strictjson.loads(file.read())
        if not isinstance(state, dict) or state.get("schema") != SCHEMA:
            raise ValueError("schema")
        return State(state, directory)
    except GsupError:
        raise
    except PermissionError:
        raise GsupError(f"refusing session {session_id}: its files are not readable by you") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise GsupError(f"malformed session file {path}: not written by this gsup") from None


def _plain_name(session_id: str) -> bool:
    """Could it name an entry of the sessions' directory (not empty, no path, not hidden, not too long)?"""
    return 0 < len(session_id) <= 255 and "/" not in session_id and "\0" not in session_id \
        and not session_id.startswith(".")


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def check_root(root: str) -> bool:
    """Whether the sessions' directory exists; GsupError if it is not ours or cannot be read,
    the refusal ``gsup run`` gives for it (:func:`supervisor.session.create`)."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise GsupError(f"cannot read session directory {root}: {err.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise GsupError(f"refusing session directory {root}: not a plain directory")
    if info.st_uid != os.getuid():
        raise GsupError(f"refusing session directory {root}: owned by uid {info.st_uid}, not {os.getuid()}")
    return True


def all_sessions() -> list[State]:
    """Every readable session, newest first; unreadable ones are skipped."""
    root = sessions_root()
    if not check_root(root):
        return []
    try:
        names = os.listdir(root)
    except OSError as err:
        raise GsupError(f"cannot read session directory {root}: {err.strerror}") from None
    found = []
    for name in names:
        if name.startswith("."):
            continue
        try:
            found.append(_load(root, name))
        except GsupError:
            continue
    return sorted(found, key=lambda s: s.started, reverse=True)


def choose(session_id: str | None) -> tuple[State, str | None]:
    """The live session a command means, and a note when gsup had to pick one."""
    if session_id is not None:
        state = load(session_id)
        if state.finished:
            raise GsupError(f"session {session_id} has finished: nothing to signal")
        if state.state == NOT_STARTED:
            raise GsupError(f"session {session_id} could not start ({state.reason}): nothing to signal")
        if not state.is_live():
            raise GsupError(f"stale session {session_id}: its gsup (pid {state.gsup.pid}) is gone")
        return state, None
    live = [s for s in all_sessions() if s.is_live()]
    if not live:
        raise GsupError("no live gsup session: start one with `gsup run`")
    note = None
    if len(live) > 1:
        others = ", ".join(s.id for s in live[1:])
        note = f"{len(live)} live sessions; chose the newest, {live[0].id} (others: {others}; use --session)"
    return live[0], note


def check_bound(state: State) -> None:
    """Refuse a session.json whose pids are not this session's processes.

    The file is private, but a pid and start time can be copied from any
    process of ours; the guardian is the proof: a child of the named gsup
    that holds this very session directory open (or, started with ``--deep``,
    names it in its command line).
    """
    guardian = state.guardian
    if guardian is None or not guardian.running():
        problem: str | None = "it names no running guardian"
    else:
        problem = _not_guardian(state, guardian.pid)
    if problem is not None:
        raise GsupError(f"refusing session {state.id}: {problem}; session.json damaged or tampered with?")


def _not_guardian(state: State, pid: int) -> str | None:
    """Why ``pid`` is not the guardian of ``state``'s gsup for its directory; None if it is."""
    info = procfs.stat(pid)
    if info is None:
        return "its guardian ended"
    if info.ppid == state.gsup.pid:
        directory = absolute(state.dir)
        argv = procfs.cmdline(pid)
        if argv is None:
            return "its guardian ended"
        if directory in argv or _holds_open(pid, directory):
            return None
    return f"pid {pid} is not the guardian of gsup pid {state.gsup.pid} for this session"


def _holds_open(pid: int, directory: str) -> bool:
    """Does ``pid`` have ``directory`` open (what the guardian does for its session)?"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == directory:
                return True
        except OSError:
            continue
    return False


def live_tree(state: State) -> list[Listed]:
    """The live processes below the session's gsup, parents first, after checking that
    its state names its own processes (GsupError otherwise).

    As :meth:`supervisor.tree.Tree.snapshot` sees them on a first look: the
    guardian is left out, and so is a process with neither a command line nor
    a name (a zombie, or gone meanwhile).
    """
    if state.root is None:
        raise GsupError(f"session {state.id} has not launched its program yet")
    check_bound(state)
    guardian = state.guardian.pid if state.guardian else None
    found = []
    for pid, info in procfs.descendants(state.gsup.pid):
        argv = None if pid == guardian else procfs.cmdline(pid)
        if argv is not None:
            found.append((pid, info.ppid, argv or [info.name]))
    if state.root.running() and state.root.pid not in {pid for pid, _, _ in found}:
        raise GsupError(f"refusing session {state.id}: its state names pid {state.root.pid} as the program, "
                        f"but that process is not below its gsup (pid {state.gsup.pid}): state tampered with?")
    return found


def live_sessions() -> tuple[list[tuple[State, list[Listed]]], list[str]]:
    """What ``gsup ps`` lists: each live session with its tree, and why any was refused.

    A refused session is left out: one damaged session must not hide the sound ones."""
    found, refused = [], []
    for state in all_sessions():
        if state.is_live() and state.root is not None:
            try:
                found.append((state, live_tree(state)))
            except GsupError as err:
                refused.append(str(err))
    return found, refused
