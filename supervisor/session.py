"""A run's session directory, created and written by its gsup; read back as a :class:`Session`.

Finding sessions and checking their state files is :mod:`supervisor.discovery`'s
(standard library only, for ``gsup ps``); this module adds what ``gsup run``,
``gsup kill`` and ``gsup report`` need on top: pathlib paths and psutil
identities.  Layout of one session, under :func:`sessions_root`::

    <id>/session.json    who is running what, and how the session ended (``state``;
                         written atomically, 0600)
    <id>/events/         one append-only file per Python process image (the probe)
    <id>/exits.jsonl     every wait status gsup reaped, as it reaped it
    <id>/actions.jsonl   every signal gsup or ``gsup kill`` sent
    <id>/report.json     the report, once gsup has built it

All are strict JSON (:mod:`supervisor.strictjson`).

Everything a report needs is in these files, so a report can be rebuilt after
the fact, and ``gsup kill --wait`` can say how its targets ended.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from supervisor import discovery, strictjson
from supervisor.errors import GsupError
from supervisor.model import Action
from supervisor.records import asdict, dataclass, field
from supervisor.signals import Identity, identity

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any

KEEP_ENDED = 50  # finished or stale sessions kept for later reading; older ones are removed
PRUNE_SLACK = 25  # ...once there are this many more (see prune)


def sessions_root() -> Path:
    """:func:`supervisor.discovery.sessions_root`, as a Path."""
    return Path(discovery.sessions_root())


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
    state: str = discovery.RUNNING  # how it ended: discovery.ENDINGS, written by its gsup
    reason: str | None = None  # why it could not start, or why gsup left without a report
    exit_code: int | None = None  # gsup's exit code then
    launched: float = 0.0  # CLOCK_MONOTONIC at launch (system-wide): "at" fields count from it
    guardian: Identity | None = None  # between gsup and the program (guardian.py): never part of the tree

    @property
    def finished(self) -> bool:
        """Its gsup wrote the report."""
        return self.state == discovery.FINISHED

    def end(self, state: str, reason: str | None = None, exit_code: int | None = None) -> None:
        """Say in session.json how the session ended, so no reader mistakes it for gsup's death."""
        self.state, self.reason, self.exit_code = state, reason, exit_code
        self.save()

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
            "schema": discovery.SCHEMA,
            "id": self.id,
            "command": self.command,
            "gsup": asdict(self.gsup),
            "root": asdict(self.root) if self.root else None,
            "pgid": self.pgid,
            "started": self.started,
            "launched": self.launched,
            "finished": self.state != discovery.RUNNING,  # what readers older than "state" go by
            "guardian": asdict(self.guardian) if self.guardian else None,
            "state": self.state,
            "reason": self.reason,
            "exit_code": self.exit_code,
        }
        tmp = self.dir / f".session.json.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(strictjson.dumps(state))
        os.replace(tmp, self.dir / "session.json")

    def append(self, file: Path, record: dict[str, Any]) -> None:
        """Append one JSON line in one write, so a crash never splits a record."""
        line = (strictjson.dumps(record) + "\n").encode()
        fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def is_live(self) -> bool:
        """The gsup that owns it still runs (same pid *and* start time)."""
        return self.state == discovery.RUNNING and discovery.running(self.gsup.pid, self.gsup.create_time)

    @classmethod
    def of(cls, state: discovery.State) -> Session:
        """The session a state file describes, with pathlib's path and psutil's identities."""
        return cls(id=state.id, dir=Path(state.dir), command=state.command, gsup=_identity(state.gsup),
                   started=state.started, root=_maybe(state.root), pgid=state.pgid, state=state.state,
                   reason=state.reason, exit_code=state.exit_code, launched=state.launched,
                   guardian=_maybe(state.guardian))


def _identity(proc: discovery.Proc) -> Identity:
    return Identity(proc.pid, proc.create_time)


def _maybe(proc: discovery.Proc | None) -> Identity | None:
    return _identity(proc) if proc is not None else None


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
            record = strictjson.loads(line)
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
    """A fresh private session directory for this gsup process.  Old sessions are
    pruned by the caller (:func:`prune`), gsup run's while the guardian starts."""
    me = identity(os.getpid())
    assert me is not None
    root = _private_dir(sessions_root())
    session_id = f"{os.getpid()}-{os.urandom(2).hex()}"
    directory = root / session_id
    directory.mkdir(mode=0o700)
    (directory / "events").mkdir(mode=0o700)
    session = Session(id=session_id, dir=directory, command=command, gsup=me)
    session.save()
    return session


def prune(keep: int, slack: int = 0) -> None:
    """Remove ended sessions beyond the newest ``keep``; live ones are never touched.

    With ``slack``, only once there are more than ``keep + slack`` sessions: telling
    ended from live reads every session's state, which on every run cost about half
    of Python's start-up (issue 17); so a run prunes once in ``slack``."""
    if slack:
        try:
            if len(os.listdir(discovery.sessions_root())) <= keep + slack:
                return
        except OSError:
            return
    import shutil  # only here: shutil costs a tenth of Python's start-up, before gsup run's launch

    ended = [s for s in discovery.all_sessions() if not s.is_live()]
    for old in ended[keep:]:
        shutil.rmtree(old.dir, ignore_errors=True)


def load(session_id: str) -> Session:
    """:func:`supervisor.discovery.load`: a session's state, refusing anything malformed,
    foreign or linked."""
    return Session.of(discovery.load(session_id))


def all_sessions() -> list[Session]:
    """Every readable session, newest first; unreadable ones are skipped."""
    return [Session.of(state) for state in discovery.all_sessions()]
