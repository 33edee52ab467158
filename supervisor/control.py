"""``gsup kill`` and ``gsup ps``: act on a live session from another terminal.

Only processes that belong to the session's tree are ever signalled: the tree
is read fresh from the session's gsup (a subreaper, so every descendant is below
it), and every send re-checks the process's identity through a pidfd.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor import session as sessions
from supervisor import signals
from supervisor.errors import GsupError
from supervisor.tree import Seen, Tree

if TYPE_CHECKING:  # `gsup ps` must start fast: the report machinery loads only for kill
    from supervisor.model import Action, Process, Report
    from supervisor.options import Target

STATUS_WAIT = 2.0  # seconds for the run's gsup to record a status after a death


@dataclass
class KillResult:
    session: sessions.Session
    action: Action
    targets: list[Seen]
    note: str | None


def session_tree(session: sessions.Session) -> Tree:
    """The live tree of a session, after checking its state names its own processes."""
    if session.root is None:
        raise GsupError(f"session {session.id} has not launched its program yet")
    check_bound(session)
    tree = Tree(session.gsup.pid, session.root.pid, session.guardian.pid if session.guardian else None)
    tree.snapshot()
    if signals.identity(session.root.pid) == session.root and session.root.pid not in {p.pid for p in tree.live()}:
        raise GsupError(f"refusing session {session.id}: its state names pid {session.root.pid} as the program, "
                        f"but that process is not below its gsup (pid {session.gsup.pid}): state tampered with?")
    return tree


def check_bound(session: sessions.Session) -> None:
    """Refuse a session.json whose pids are not this session's processes.

    The file is private, but a pid and start time can be copied from any
    process of ours; the guardian is the proof: a child of the named gsup
    whose command line names this very session directory.
    """
    import psutil

    guardian = session.guardian
    problem = None
    if guardian is None or signals.identity(guardian.pid) != guardian:
        problem = "it names no running guardian"
    else:
        try:
            proc = psutil.Process(guardian.pid)
            if proc.ppid() != session.gsup.pid or str(session.dir.absolute()) not in proc.cmdline():
                problem = f"pid {guardian.pid} is not the guardian of gsup pid {session.gsup.pid} for this session"
        except psutil.Error:
            problem = "its guardian ended"
    if problem is not None:
        raise GsupError(f"refusing session {session.id}: {problem}; session.json damaged or tampered with?")


def kill(session_id: str | None, signum: signal.Signals, target: Target) -> KillResult:
    from supervisor.model import Action
    from supervisor.tree import deliver

    session, note = sessions.choose(session_id)
    tree = session_tree(session)
    assert session.root is not None
    pgid = session.pgid or session.root.pid
    with sessions.sending(session):
        sent_at = time.monotonic()  # its effects may follow at once: the send is dated from its start
        reached = deliver(tree, target, signum, pgid)
        action = Action(signal=signum.name, signum=int(signum), target=str(target),
                        pids=sorted(p.pid for p in reached), at=sent_at - session.launched,
                        by="gsup kill", group=pgid if target.kind == "group" else None)
        session.append(session.actions_file, action.to_json())
    return KillResult(session, action, reached, note)


def wait_for(targets: list[Seen], timeout: float | None) -> list[Seen]:
    """Block until every target has ended (pidfds: no polling); those still running."""
    fds = {}
    for proc in targets:
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:
            continue
        if signals.identity(proc.pid) == proc.identity:
            fds[fd] = proc
        else:
            os.close(fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while fds:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(list(fds), [], [], remaining)
            if not ready:
                break
            for fd in ready:
                del fds[fd]
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
    return list(fds.values())


def outcomes(session: sessions.Session, pids: list[int]) -> list[Process]:
    """How ``pids`` ended, from the session's files, once a status is recorded."""
    deadline = time.monotonic() + STATUS_WAIT
    while True:
        built = rebuild(session)
        found = [p for p in built.processes if p.pid in pids]
        if all(p.end.how != "unknown" for p in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)  # the run's gsup writes the status a moment after the death


def rebuild(session: sessions.Session) -> Report:
    """A report from a session's files alone (what ``gsup kill --wait`` and a
    later look at a dead session can know)."""
    from supervisor import events, report
    from supervisor.reaper import ExitStatus

    statuses = []
    for record in sessions.read_jsonl(session.exits_file):
        try:
            statuses.append(ExitStatus(int(record["pid"]), record.get("code"), record.get("signal"),
                                       float(record["at"]) + session.launched))
        except (KeyError, TypeError, ValueError):
            continue
    facts = report.RunFacts(
        command=session.command, session=session.id, started_wall=session.started, launched=session.launched,
        root_pid=session.root.pid if session.root else 0, gsup_pid=session.gsup.pid,
        guardian_pid=session.guardian.pid if session.guardian else None,
        images=events.read_all(session.events_dir), seen=[],
        statuses=statuses, actions=sessions.read_actions(session), leftovers=[], finished=time.monotonic(),
    )
    return report.build(facts)


def recover(session_id: str | None) -> Report:
    """A session's report: the one its gsup saved, else rebuilt from its files.

    A gsup that was killed, or is still running, saved none: the rebuilt
    report is marked incomplete and says why, so nothing passes for whole.
    """
    from supervisor.model import Report

    session = sessions.load(session_id) if session_id else _newest()
    saved = session.dir / "report.json"
    if session.finished:
        try:
            return Report.from_json(json.loads(saved.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not saved (or damaged): rebuild it below
    built = rebuild(session)
    if session.is_live():
        built.incomplete.append(f"gsup (pid {session.gsup.pid}) is still running: the report so far")
    elif not session.finished:
        built.incomplete.append(f"gsup (pid {session.gsup.pid}) died before writing the report; "
                                "rebuilt from the session's files")
    else:
        built.incomplete.append("report.json missing or damaged; rebuilt from the session's files")
    return built


def _newest() -> sessions.Session:
    every = sessions.all_sessions()
    if not every:
        raise GsupError(f"no gsup session in {sessions.sessions_root()}")
    return every[0]


@dataclass
class LiveSession:
    session: sessions.Session
    tree: Tree


def live_sessions(refused: list[str] | None = None) -> list[LiveSession]:
    """What ``gsup ps`` lists.  Its fast path (supervisor/ps.py) reads the same from
    /proc and steps aside where ``session_tree`` refuses: a change here goes there too.

    A session whose state is refused is left out, and why goes to ``refused``:
    one damaged session must not hide the sound ones."""
    found = []
    for session in sessions.all_sessions():
        if session.is_live() and session.root is not None:
            try:
                found.append(LiveSession(session, session_tree(session)))
            except GsupError as err:
                if refused is None:
                    raise
                refused.append(str(err))
    return found
