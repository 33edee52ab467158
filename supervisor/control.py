"""``gsup kill``, ``gsup stacks`` and ``gsup report``: act on a session from another terminal.

Only processes that belong to the session's tree are ever signalled: the
session is found and checked by :mod:`supervisor.discovery` (its state must
name its own processes), the tree is read fresh from the session's gsup (a
subreaper, so every descendant is below it), and every send re-checks the
process's identity through a pidfd.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import TYPE_CHECKING

from supervisor import discovery, signals, strictjson
from supervisor import session as sessions
from supervisor.errors import ExitCode, GsupError
from supervisor.records import dataclass
from supervisor.tree import Seen, Tree, role_of

if TYPE_CHECKING:  # the report machinery loads only where it is used
    from supervisor.model import Action, Process, Report
    from supervisor.options import Target
    from supervisor.reaper import ExitStatus
    from supervisor.signals import Identity
    from supervisor.stacks import Answer

STATUS_WAIT = 2.0  # seconds for the run's gsup to record a status after a death


@dataclass
class KillResult:
    session: sessions.Session
    action: Action
    targets: list[Seen]
    note: str | None


def kill(session_id: str | None, signum: signal.Signals, target: Target) -> KillResult:
    from supervisor.model import Action
    from supervisor.tree import deliver

    state, note = discovery.choose(session_id)
    discovery.live_tree(state)  # refuses a session whose state names processes not its own
    session = sessions.Session.of(state)
    assert session.root is not None
    tree = Tree(session.gsup.pid, session.root.pid, session.guardian.pid if session.guardian else None)
    pgid = session.pgid or session.root.pid
    with sessions.sending(session):
        sent_at = time.monotonic()  # its effects may follow at once: the send is dated from its start
        reached = deliver(tree, target, signum, pgid)
        action = Action(signal=signum.name, signum=int(signum), target=str(target),
                        pids=sorted(p.pid for p in reached), at=sent_at - session.launched,
                        by="gsup kill", group=pgid if target.kind == "group" else None)
        session.append(session.actions_file, action.to_json())
    return KillResult(session, action, reached, note)


def wait_for(processes: list[Identity], timeout: float | None) -> list[Identity]:
    """Block until every process has ended (pidfds: no polling); those still running.

    A process already gone, or whose pid now names another, counts as ended.
    """
    fds = {fd: proc for proc in processes if (fd := _pidfd(proc)) is not None}
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


def _pidfd(proc: Identity) -> int | None:
    """A pidfd on ``proc``, or None if that very process is gone."""
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:
        return None
    if signals.identity(proc.pid) == proc:
        return fd
    os.close(fd)
    return None


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
    actions = sessions.read_actions(session)
    facts = report.RunFacts(
        command=session.command, session=session.id, started_wall=session.started, launched=session.launched,
        root_pid=session.root.pid if session.root else 0, gsup_pid=session.gsup.pid,
        guardian_pid=session.guardian.pid if session.guardian else None,
        images=events.read_all(session.events_dir), seen=[],
        statuses=statuses, actions=actions, leftovers=[], finished=_last_known(session, statuses, actions),
    )
    return report.build(facts)


def _last_known(session: sessions.Session, statuses: list[ExitStatus], actions: list[Action]) -> float:
    """Where a rebuilt report's duration ends: now while its gsup runs, else the last
    status or send recorded (a look days later must not read as days of running)."""
    if session.is_live():
        return time.monotonic()
    return max([session.launched, *(s.at for s in statuses), *(a.at + session.launched for a in actions)])


def recover(session_id: str | None) -> Report:
    """A session's report: the one its gsup saved, else rebuilt from its files.

    A gsup that was killed, or is still running, saved none: the rebuilt
    report is marked incomplete and says why, so nothing passes for whole.
    A session that could not start has no report: its reason is raised, with
    the exit code ``gsup run`` gave for it.
    """
    from supervisor.model import Report

    session = sessions.load(session_id) if session_id is not None else _newest()
    if session.state == discovery.NOT_STARTED:
        raise GsupError(f"session {session.id} could not start: {session.reason}", _exit_code(session.exit_code))
    saved = session.dir / "report.json"
    if session.finished:
        try:
            return Report.from_json(strictjson.loads(saved.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not saved (or damaged): rebuild it below
    built = rebuild(session)
    built.incomplete.append(_why_rebuilt(session))
    return built


def _why_rebuilt(session: sessions.Session) -> str:
    if session.is_live():
        return f"gsup (pid {session.gsup.pid}) is still running: the report so far"
    if session.state == discovery.GSUP_DIED:
        return (f"gsup (pid {session.gsup.pid}) stopped before writing the report ({session.reason}); "
                "rebuilt from the session's files")
    if not session.finished:
        return f"gsup (pid {session.gsup.pid}) died before writing the report; rebuilt from the session's files"
    return "report.json missing or damaged; rebuilt from the session's files"


def _exit_code(code: int | None) -> ExitCode:
    """The exit code a session's state recorded, if it is one of gsup's; else 2."""
    try:
        return ExitCode(code) if code is not None else ExitCode.USAGE
    except ValueError:
        return ExitCode.USAGE


def _newest() -> sessions.Session:
    every = sessions.all_sessions()
    if not every:
        raise GsupError(f"no gsup session in {sessions.sessions_root()}")
    return every[0]


@dataclass
class Stacked:
    """One live process of a session and its stacks (or why there are none), for ``gsup stacks``."""

    pid: int
    ppid: int
    role: str
    argv: list[str]
    answer: Answer

    def to_json(self) -> dict[str, object]:
        from supervisor.stacks import Capture

        answer = self.answer
        out: dict[str, object] = {"pid": self.pid, "ppid": self.ppid, "role": self.role, "argv": self.argv}
        if isinstance(answer, Capture):
            out["stacks"] = [t.to_json() for t in answer.threads]
        else:
            out["no_stack"] = answer
        return out


def stacks_of(session_id: str | None) -> tuple[discovery.State, str | None, list[Stacked]]:
    """Every live process of a session, with every thread's stack: asked of the probe
    (no ptrace, no root), which answers in the session's events directory."""
    from pathlib import Path

    from supervisor import stacks

    state, note = discovery.choose(session_id)
    tree = discovery.live_tree(state)
    answers = stacks.request([pid for pid, _, _ in tree], Path(state.dir) / "events")
    assert state.root is not None  # live_tree refuses a session that has not launched
    return state, note, [Stacked(pid, ppid, role_of(pid, ppid, state.root.pid), argv, answers[pid])
                         for pid, ppid, argv in tree]
