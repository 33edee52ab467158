"""The per-run directory that lets ``gsup kill`` and ``gsup ps`` find a run.

Layout of one session, under :func:`sessions_root`::

    <id>/session.json    who is running what (written atomically, 0600)
    <id>/events/         one append-only file per Python process image (the probe)
    <id>/exits.jsonl     every wait status gsup reaped, as it reaped it
    <id>/actions.jsonl   every signal gsup or ``gsup kill`` sent

Everything a report needs is in these files, so a report can be rebuilt after
the fact, and ``gsup kill --wait`` can say how its targets ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supervisor.errors import GsupError
from supervisor.model import Action
from supervisor.signals import Identity, identity

SCHEMA = "gsup.session/1"
KEEP_ENDED = 50  # finished or stale sessions kept for later reading; older ones are removed


def sessions_root() -> Path:
    """``$GSUP_HOME``, else ``$XDG_RUNTIME_DIR/gsup``, else ``/tmp/gsup-<uid>``."""
    if os.environ.get("GSUP_HOME"):
        return Path(os.environ["GSUP_HOME"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "gsup"
    return Path(f"/tmp/gsup-{os.getuid()}")


def _private_dir(path: Path) -> Path:
    """Create ``path`` 0700, or check an existing one is ours and not a link."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise GsupError(f"refusing session directory {path}: not a plain directory") from None
    except OSError as err:
        raise GsupError(f"cannot create session directory {path}: {err.strerror}") from None
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise GsupError(f"refusing session directory {path}: not a plain directory")
    if info.st_uid != os.getuid():
        raise GsupError(f"refusing session directory {path}: owned by uid {info.st_uid}, not {os.getuid()}")
    return path


@dataclass
class Session:
    """One ``gsup run``: where its files are and which processes are its own."""

    id: str
    dir: Path
    command: list[str]
    gsup: Identity
    started: float = field(default_factory=time.time)
    root: Identity | None = None
    pgid: int | None = None
    finished: bool = False
    launched: float = 0.0  # CLOCK_MONOTONIC at launch (system-wide): "at" fields count from it
    guardian: Identity | None = None  # between gsup and the program (guardian.py): never part of the tree

    @property
    def events_dir(self) -> Path:
        return self.dir / "events"

    @property
    def exits_file(self) -> Path:
        return self.dir / "exits.jsonl"

    @property
    def actions_file(self) -> Path:
        return self.dir / "actions.jsonl"

    def save(self) -> None:
        """Write session.json atomically: readers never see half a file."""
        state = {
            "schema": SCHEMA,
            "id": self.id,
            "command": self.command,
            "gsup": asdict(self.gsup),
            "root": asdict(self.root) if self.root else None,
            "pgid": self.pgid,
            "started": self.started,
            "launched": self.launched,
            "finished": self.finished,
            "guardian": asdict(self.guardian) if self.guardian else None,
        }
        tmp = self.dir / f".session.json.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out)
        os.replace(tmp, self.dir / "session.json")

    def append(self, file: Path, record: dict[str, Any]) -> None:
        """Append one JSON line in one write, so a crash never splits a record."""
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def is_live(self) -> bool:
        """The gsup that owns it still runs (same pid *and* start time)."""
        return not self.finished and identity(self.gsup.pid) == self.gsup


@contextlib.contextmanager
def sending(session: Session) -> Iterator[None]:
    """Mark a ``gsup kill`` between its send and its log line.

    The signal may end the tree at once, and the run's gsup would then build
    its report before the action is logged; it waits for these marks instead
    (see :func:`wait_for_senders`).
    """
    mark = session.dir / f"sending-{os.getpid()}"
    try:
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        marked = True
    except OSError:
        marked = False  # the run's gsup may then report a moment too early: no worse than without
    try:
        yield
    finally:
        if marked:
            with contextlib.suppress(OSError):
                mark.unlink()


def wait_for_senders(session: Session, timeout: float = 2.0) -> None:
    """Until no live ``gsup kill`` is between its send and its log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for mark in session.dir.glob("sending-*"):
            pid = mark.name.partition("-")[2]
            if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
                busy = True
        if not busy:
            return
        time.sleep(0.005)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON-object lines of ``path``; anything else (a cut-off last line) is skipped."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_actions(session: Session) -> list[Action]:
    """Actions from the session's log (gsup's own and ``gsup kill``'s); bad lines skipped."""
    found = []
    for record in read_jsonl(session.actions_file):
        try:
            found.append(Action.from_json(record))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def create(command: list[str]) -> Session:
    """A fresh private session directory for this gsup process."""
    me = identity(os.getpid())
    assert me is not None
    root = _private_dir(sessions_root())
    session_id = f"{os.getpid()}-{os.urandom(2).hex()}"
    directory = root / session_id
    directory.mkdir(mode=0o700)
    (directory / "events").mkdir(mode=0o700)
    session = Session(id=session_id, dir=directory, command=command, gsup=me)
    session.save()
    prune(keep=KEEP_ENDED)
    return session


def prune(keep: int) -> None:
    """Remove ended sessions beyond the newest ``keep``; live ones are never touched."""
    ended = [s for s in all_sessions() if not s.is_live()]
    for old in ended[keep:]:
        shutil.rmtree(old.dir, ignore_errors=True)


def load(session_id: str) -> Session:
    """Read a session's state, refusing anything malformed, foreign or linked.

    ``gsup ps``'s fast path (supervisor/ps.py) repeats these checks without
    pathlib or psutil: a change here goes there too (tests/test_ps_fast.py)."""
    root = sessions_root()
    directory = root / session_id
    if "/" in session_id or session_id.startswith(".") or not directory.is_dir():
        raise GsupError(f"unknown session {session_id!r}: see `gsup ps` for live sessions")
    path = directory / "session.json"
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise GsupError(f"refusing session {session_id}: session.json is a link or not yours")
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or state.get("schema") != SCHEMA:
            raise ValueError("schema")
        session = Session(
            id=str(state["id"]),
            dir=directory,
            command=[str(a) for a in state["command"]],
            gsup=Identity(int(state["gsup"]["pid"]), float(state["gsup"]["create_time"])),
            started=float(state["started"]),
            root=Identity(int(state["root"]["pid"]), float(state["root"]["create_time"])) if state["root"] else None,
            pgid=int(state["pgid"]) if state["pgid"] is not None else None,
            finished=bool(state["finished"]),
            launched=float(state.get("launched", 0.0)),
            guardian=_identity(state.get("guardian")),
        )
    except GsupError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise GsupError(f"malformed session file {path}: not written by this gsup") from None
    return session


def _identity(record: Any) -> Identity | None:
    return Identity(int(record["pid"]), float(record["create_time"])) if record else None


def all_sessions() -> list[Session]:
    """Every readable session, newest first; unreadable ones are skipped."""
    root = sessions_root()
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.startswith("."):
            continue
        try:
            found.append(load(entry.name))
        except GsupError:
            continue
    return sorted(found, key=lambda s: s.started, reverse=True)


def choose(session_id: str | None) -> tuple[Session, str | None]:
    """The session a command means, and a note when gsup had to pick one."""
    if session_id is not None:
        session = load(session_id)
        if session.finished:
            raise GsupError(f"session {session_id} has finished: nothing to signal")
        if not session.is_live():
            raise GsupError(f"stale session {session_id}: its gsup (pid {session.gsup.pid}) is gone")
        return session, None
    live = [s for s in all_sessions() if s.is_live()]
    if not live:
        raise GsupError("no live gsup session: start one with `gsup run`")
    note = None
    if len(live) > 1:
        others = ", ".join(s.id for s in live[1:])
        note = f"{len(live)} live sessions; chose the newest, {live[0].id} (others: {others}; use --session)"
    return live[0], note
