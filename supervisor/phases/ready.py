"""The wait-until-ready phase: turn the loop until every ``--ready-*`` condition holds,
``--ready-timeout`` passes (then everything is killed), or the tree ends first."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor import events
from supervisor.errors import ExitCode, GsupError
from supervisor.model import Ready
from supervisor.phases.act import Actor, turns
from supervisor.phases.display import Display
from supervisor.phases.loop import EventLoop
from supervisor.phases.plan import RunPlan
from supervisor.readiness import Readiness
from supervisor.records import dataclass
from supervisor.tree import Seen, Tree, describe_live, scope_of

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional


@dataclass(frozen=True)
class ReadyResult:
    """``at``: when it was ready (time.monotonic()); ``error``: the timeout came first;
    neither: nothing was asked for, or the tree ended first."""

    at: Optional[float] = None
    error: Optional[GsupError] = None


def wait_until_ready(plan: RunPlan, readiness: Readiness, loop: EventLoop, actor: Actor,
                     display: Display) -> ReadyResult:
    if not readiness.wanted:
        return ReadyResult()
    launched, timeout_at = loop.launched.at, loop.launched.at + plan.ready_timeout
    scoped = _ForTarget(plan, readiness, loop.tree, display, loop.journal.session.events_dir)
    for now in turns(loop, actor, lambda: timeout_at, expecting=True):
        if scoped.holds(now):
            readiness.ready = True
            display.note(f"ready after {now - launched:.2f}s: {readiness.describe()}{scoped.whose()}")
            return ReadyResult(at=now)
        if now >= timeout_at:
            everyone = describe_live(loop.tree.live(), loop.tree)
            error = GsupError(f"not ready after {plan.ready_timeout:g}s (--ready-timeout): no "
                              f"{readiness.describe()}{scoped.whose()}{scoped.early()}; the tree was: {everyone}",
                              ExitCode.NOT_READY)
            actor.kill_everything("never ready", stacks_first=True)
            return ReadyResult(error=error)
    return ReadyResult()


# For a process without a probe record: a line read this long after it started (its start
# is known to a clock tick, 10 ms) was not written by its parent just before starting it.
WRITER_MARGIN = 0.1


class _ForTarget:
    """The ``--ready-*`` conditions, held by the signal's target (and what it started).

    A Flask debug app's reloader parent prints the banner and opens the socket
    before its child exists; ready on those, ``-t child`` was signalled before it
    had registered a handler.  So: the port must be held by the target or a
    descendant, and a target still on a CPU (importing) gets up to ``--settle`` more
    to finish starting.  Which process wrote a line cannot be known (they share the
    pipe), so a line counts if gsup read it once it had seen the target, or once the
    target could write (its probe had started): the reloader's banner, printed just
    before it starts the child, does not; a gunicorn worker's, read before gsup's next
    look at the tree, does.
    """

    def __init__(self, plan: RunPlan, readiness: Readiness, tree: Tree, display: Display, events_dir: Path) -> None:
        self.target, self.settle, self.events_dir = plan.target, plan.settle, events_dir
        self.readiness, self.tree, self.display = readiness, tree, display
        self.held_since: Optional[float] = None
        self.said_waiting = False
        self.since: Optional[float] = None  # when the target (its first process) started

    def holds(self, now: float) -> bool:
        scope = scope_of(self.target, self.tree)
        if scope is None:
            self._say_waiting()
            return False
        pids = [p.pid for p in scope]
        self.since = min(min(p.first_seen for p in scope), self._could_write_from(scope))
        if not self.readiness.holds(pids, self.since):
            self.held_since = None
            return False
        self.held_since = self.held_since if self.held_since is not None else now
        return not self.tree.starting(pids) or now - self.held_since >= self.settle

    def _could_write_from(self, scope: list[Seen]) -> float:
        """When the target could first have written a line: its probe's first moment (a
        Python prints nothing before ``site`` loads the probe; a fork's probe opens its file
        at the fork), else its start plus :data:`WRITER_MARGIN`."""
        if self.readiness.matched_at is None:
            return min(p.started for p in scope) + WRITER_MARGIN  # no line to judge: no need to read the files
        opened = _probes_opened(self.events_dir)
        return min(opened.get(p.pid, p.started + WRITER_MARGIN) for p in scope)

    def _say_waiting(self) -> None:
        """Once: the condition holds elsewhere in the tree, but the target is not there yet."""
        elsewhere = self.readiness.holds([p.pid for p in self.tree.live()])
        if elsewhere and not self.said_waiting:
            self.said_waiting = True
            self.display.note(f"{self.readiness.describe()}, but no {self.target} process yet: waiting for it")

    def whose(self) -> str:
        scoped = self.target is not None and self.target.kind in ("child", "pid")
        return f" (in the {self.target} process)" if scoped else ""

    def early(self) -> str:
        matched = self.readiness.matched_at
        if matched is not None and (self.since is None or matched < self.since):
            return f"; the matching line came before the {self.target} process started, so it was not its"
        return ""


def _probes_opened(events_dir: Path) -> dict[int, float]:
    """pid → when its probe first opened its record file (time.monotonic()), from the file names."""
    opened: dict[int, float] = {}
    try:
        names = os.listdir(events_dir)
    except OSError:
        return opened
    for parsed in map(events.parse_name, names):
        if parsed is not None:
            pid, _, nanoseconds = parsed
            opened[pid] = min(opened.get(pid, float("inf")), nanoseconds / 1e9)
    return opened


def ready_record(readiness: Readiness, result: ReadyResult, launched: float) -> Optional[Ready]:
    """The report's ``ready``: None when no condition was asked for."""
    if not readiness.wanted:
        return None
    after = result.at - launched if result.at is not None else None
    return Ready(readiness.describe(), result.at is not None, after)
