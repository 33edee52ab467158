"""The drain and report phases: the last snapshot and actions once the tree is gone,
then the report, a function of every phase's record."""

from __future__ import annotations

import os
import time
from pathlib import Path

from supervisor import __version__, events, options, report, strictjson
from supervisor import session as sessions
from supervisor.discovery import FINISHED
from supervisor.model import Action, Ready, Report
from supervisor.phases.act import Acted
from supervisor.phases.journal import Journal
from supervisor.phases.plan import RunPlan
from supervisor.phases.start import Launched
from supervisor.reaper import ExitStatus
from supervisor.records import dataclass
from supervisor.tree import Seen, Tree

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional


@dataclass(frozen=True)
class Drained:
    """The tree's end: when, every process seen, and every send (gsup's and ``gsup kill``'s)."""

    finished: float
    seen: list[Seen]
    actions: list[Action]
    zombies: dict[int, int]  # parent pid -> most zombie children at one look (tree.py)


def drain(journal: Journal, tree: Optional[Tree], own_actions: list[Action]) -> Drained:
    """Close the session to new ``gsup kill`` senders, look at the tree a last time
    and wait for the senders already under way; never fails for want of the session's files."""
    finished = time.monotonic()
    session = journal.session
    try:
        session.end(FINISHED)
    except OSError as err:
        journal.note(f"session state not saved: {err.strerror}")
    if tree is not None:
        tree.snapshot()  # so nothing that has died is reported as still running
    # The session's log holds gsup's own actions and those of `gsup kill`.
    sessions.wait_for_senders(session)
    logged = sessions.read_actions(session)
    return Drained(finished, list(tree.history.values()) if tree is not None else [],
                   sorted(logged or own_actions, key=lambda a: a.at), dict(tree.zombies) if tree is not None else {})


def build_report(plan: RunPlan, journal: Journal, launched: Optional[Launched], statuses: list[ExitStatus],
                 acted: Acted, ready: Optional[Ready], drained: Drained) -> Report:
    """Build the report from the records, save it as report.json and return it."""
    session = journal.session
    if launched is not None and launched.statuses.ended_early:
        journal.note(launched.statuses.ended_early)
    lost = records_lost(session.events_dir)
    if lost:
        journal.note(f"the probe's records may be incomplete: {lost}")
    facts = report.RunFacts(
        command=list(plan.argv), session=session.id, started_wall=session.started,
        launched=launched.at if launched is not None else 0.0,
        root_pid=launched.root_pid if launched is not None else 0, gsup_pid=os.getpid(),
        guardian_pid=launched.guardian_pid if launched is not None else None,
        images=events.read_all(session.events_dir), seen=drained.seen, statuses=statuses,
        actions=drained.actions, leftovers=acted.leftovers, stacks=acted.stacks,
        finished=drained.finished, incomplete=journal.incomplete, version=__version__, ready=ready,
        stop=plan.stop_name, watching=options.watching(plan.watch, plan.watch_presets), deep=plan.deep,
        records_lost=lost, grace=acted.grace, container=launched.container if launched is not None else None,
        zombies=dict(drained.zombies), init=launched.init if launched is not None else None, pre_stop=acted.pre_stop,
        interpreter=plan.interpreter,
    )
    built = report.build(facts)
    try:
        (session.dir / "report.json").write_text(strictjson.dumps(built.to_json(), indent=2) + "\n")
    except OSError as err:
        built.incomplete.append(f"report.json not saved: {err.strerror}")
    return built


def records_lost(events_dir: Path) -> Optional[str]:
    """Why the probe's records may be missing, when the session's file system says so.

    A probe that cannot write stays silent (it must never disturb the program),
    so what it lost shows only here: the directory gone, or no room left in it.
    """
    if not events_dir.is_dir():
        return "the session directory was deleted while the program ran"
    try:
        room = os.statvfs(events_dir)
    except OSError:
        return None
    # A file system that counts no blocks or no inodes (btrfs has no inode count) is not full for that.
    if (room.f_blocks and not room.f_bavail) or (room.f_files and not room.f_favail):
        return "the session directory's file system is full"
    return None
