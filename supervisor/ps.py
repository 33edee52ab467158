"""``gsup ps`` without click, rich or psutil: the same lines, in a third of the time.

People type ``gsup ps`` to glance at what runs, and scripts poll it; through
click and psutil it cost about 7x Python's start-up.  This module imports only
``json`` (for session.json) and :mod:`supervisor.procfs`, and prints exactly
what ``gsup ps`` printed through the ordinary path (``cli._ps``):

* sessions are read with the checks of :func:`supervisor.session.load`, field
  by field in the same order, so a malformed, foreign or linked session is
  skipped here exactly when it is skipped there;
* each tree is what :meth:`supervisor.tree.Tree.snapshot` sees on a first look,
  in the same order;
* a session the ordinary path refuses (:func:`supervisor.control.check_bound`:
  no guardian of its own; or its program running outside its tree) makes this
  path step aside, so the refusal reads exactly as before.

Whenever this path cannot be sure to print the same thing (an unexpected error,
a stream click would re-wrap, an escape code click would strip), it prints
nothing and returns False, and the ordinary path answers, errors included.
tests/test_ps_fast.py compares the two.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from supervisor import procfs

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "gsup.session/1"  # supervisor.session.SCHEMA (importing it would load psutil)


class Unsure(Exception):
    """A case the ordinary path refuses or reports: it answers instead, in its own words."""


class Session:
    """What ``gsup ps`` needs of a session: the fields of session.json, checked."""

    def __init__(self, state: dict[str, Any], directory: str) -> None:
        # supervisor.session.load's conversions, in its order: the first field to
        # fail decides the exception, and so whether the session is skipped.
        self.dir = directory
        self.id = str(state["id"])
        self.command = [str(a) for a in state["command"]]
        self.gsup = (int(state["gsup"]["pid"]), float(state["gsup"]["create_time"]))
        self.started = float(state["started"])
        self.root = (int(state["root"]["pid"]), float(state["root"]["create_time"])) if state["root"] else None
        self.pgid = int(state["pgid"]) if state["pgid"] is not None else None
        self.finished = bool(state["finished"])
        self.launched = float(state.get("launched", 0.0))
        guardian = state.get("guardian")
        self.guardian = (int(guardian["pid"]), float(guardian["create_time"])) if guardian else None

    def is_live(self) -> bool:
        """As :meth:`supervisor.session.Session.is_live`."""
        return not self.finished and running(self.gsup)


def running(process: tuple[int, float]) -> bool:
    """``signals.identity(pid) == process``: that very process still exists."""
    info = procfs.stat(process[0])
    return info is not None and procfs.create_time(info) == process[1]


def sessions_root() -> str:
    """:func:`supervisor.session.sessions_root`, as a string."""
    if os.environ.get("GSUP_HOME"):
        return os.environ["GSUP_HOME"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "gsup")
    return f"/tmp/gsup-{os.getuid()}"


def load(root: str, name: str) -> Session | None:
    """One session, or None where :func:`supervisor.session.load` raises GsupError."""
    directory = os.path.join(root, name)
    if not os.path.isdir(directory):
        return None
    path = os.path.join(directory, "session.json")
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            return None
        with open(path) as f:
            state = json.loads(f.read())
        if not isinstance(state, dict) or state.get("schema") != SCHEMA:
            raise ValueError("schema")
        return Session(state, absolute(root, name))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def absolute(root: str, name: str) -> str:
    """``str((Path(root) / name).absolute())`` without pathlib, which costs a third of
    Python's start-up; where the two could spell it differently (a root that is not
    normalised), an empty string, which names no guardian's session."""
    if root == "." or os.path.normpath(root) != root:
        return ""
    return os.path.join(root if os.path.isabs(root) else os.path.join(os.getcwd(), root), name)


def all_sessions() -> list[Session]:
    """:func:`supervisor.session.all_sessions`: readable ones, newest first."""
    root = sessions_root()
    if not os.path.isdir(root):
        return []
    found = [load(root, name) for name in os.listdir(root) if not name.startswith(".")]
    return sorted((s for s in found if s is not None), key=lambda s: s.started, reverse=True)


def check_bound(session: Session) -> None:
    """:func:`supervisor.control.check_bound`: the session's guardian, a child of its gsup,
    names its directory; Unsure if not (the ordinary path then refuses the session)."""
    if session.guardian is None or not running(session.guardian):
        raise Unsure("no running guardian")
    info = procfs.stat(session.guardian[0])
    argv = procfs.cmdline(session.guardian[0])
    if info is None or info.ppid != session.gsup[0] or argv is None or not session.dir or session.dir not in argv:
        raise Unsure("not this session's guardian")


def role(pid: int, ppid: int, root_pid: int) -> str:
    """:func:`supervisor.tree.role_of` for a process seen with a parent."""
    if pid == root_pid:
        return "parent"
    return "child" if ppid == root_pid else "grandchild"


def live_tree(session: Session) -> list[tuple[int, int, list[str]]]:
    """(pid, parent, argv) of each process ``control.session_tree`` would show, in its order.

    As :meth:`supervisor.tree.Tree.snapshot` on a first look: the guardian is
    left out; a process is kept if a second look confirms it is the one first
    seen (psutil's pid-reuse check before ``ppid()``) and it has a command line
    or a name (zombies have neither).  Unsure if the program named in the
    state is running but not in the tree (``session_tree`` refuses that).
    """
    assert session.root is not None
    check_bound(session)
    guardian = session.guardian[0] if session.guardian else None
    found = []
    for pid, first in procfs.descendants(session.gsup[0]):
        if pid == guardian:
            continue
        info = procfs.stat(pid)
        if info is None or info.starttime != first.starttime:
            continue
        argv = procfs.cmdline(pid)
        if argv is not None:
            found.append((pid, info.ppid, argv or [info.name]))
    if running(session.root) and session.root[0] not in {pid for pid, _, _ in found}:
        raise Unsure("the program is not below its gsup")
    return found


def lines() -> list[str]:
    """Everything ``gsup ps`` prints, computed before anything is printed (as ``cli._ps``)."""
    found = [(s, live_tree(s)) for s in all_sessions() if s.is_live() and s.root is not None]
    if not found:
        return ["no live gsup session"]
    out = []
    for session, tree in found:
        assert session.root is not None
        out.append(f"session {session.id}  gsup pid {session.gsup[0]}  {' '.join(session.command)}")
        out += [f"  {pid:>7}  {role(pid, ppid, session.root[0]):<10}  {' '.join(argv)[:60]}"
                for pid, ppid, argv in tree]
    return out


def plain_stdout() -> bool:
    """Is stdout a stream click would write to as it is (no ASCII re-wrap)?"""
    import codecs

    encoding = getattr(sys.stdout, "encoding", None)
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name != "ascii"
    except LookupError:
        return False


def main() -> bool:
    """Print ``gsup ps``'s output; False, with nothing printed, if the ordinary path must answer."""
    if not plain_stdout():
        return False
    try:
        try:
            text = lines()
        except Exception:
            return False  # the ordinary path redoes it and reports the error as it always has
        if any("\x1b" in line for line in text):
            return False  # click strips escape codes when stdout is not a terminal
        for line in text:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()  # as click.echo does: a reader sees each line at once
    except (Exception, KeyboardInterrupt) as err:
        fail_as_cli(err)
    return True


def fail_as_cli(err: BaseException) -> None:
    """Report ``err`` exactly as the ordinary path would (one line, its exit code)."""
    from supervisor.cli import _guard

    def reraise() -> None:
        raise err

    _guard(reraise)
