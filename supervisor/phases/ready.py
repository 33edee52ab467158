"""The wait-until-ready phase: turn the loop until every ``--ready-*`` condition holds,
``--ready-timeout`` passes (then everything is killed), or the tree ends first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from supervisor.errors import ExitCode, GsupError
from supervisor.model import Ready
from supervisor.phases.act import Actor, turns
from supervisor.phases.display import Display
from supervisor.phases.loop import EventLoop
from supervisor.phases.plan import RunPlan
from supervisor.readiness import Readiness
from supervisor.tree import Tree, describe_live, scope_of


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
    scoped = _ForTarget(plan, readiness, loop.tree, display)
    for now in turns(loop, actor, lambda: timeout_at, expecting=True):
        if scoped.holds(now):
            display.note(f"ready after {now - launched:.2f}s: {readiness.describe()}{scoped.whose()}")
            return ReadyResult(at=now)
        if now >= timeout_at:
            everyone = describe_live(loop.tree.live(), loop.tree)
            error = GsupError(f"not ready after {plan.ready_timeout:g}s (--ready-timeout): no "
                              f"{readiness.describe()}{scoped.whose()}{scoped.early()}; the tree was: {everyone}",
                              ExitCode.NOT_READY)
            actor.kill_everything("never ready")
            return ReadyResult(error=error)
    return ReadyResult()


class _ForTarget:
    """The ``--ready-*`` conditions, held by the signal's target (and what it started).

    A Flask debug app's reloader parent prints the banner and opens the socket
    before its child exists; ready on those, ``-t child`` was signalled before it
    had registered a handler.  So: the port must be held by the target or a
    descendant, a line counts only once the target exists, and a target still on a
    CPU (importing) gets up to ``--settle`` more to finish starting.
    """

    def __init__(self, plan: RunPlan, readiness: Readiness, tree: Tree, display: Display) -> None:
        self.target, self.settle = plan.target, plan.settle
        self.readiness, self.tree, self.display = readiness, tree, display
        self.held_since: Optional[float] = None
        self.said_waiting = False

    def holds(self, now: float) -> bool:
        scope = scope_of(self.target, self.tree)
        self.readiness.target_exists = scope is not None
        if scope is None:
            self._say_waiting()
            return False
        pids = [p.pid for p in scope]
        if not self.readiness.holds(pids):
            self.held_since = None
            return False
        self.held_since = self.held_since if self.held_since is not None else now
        return not self.tree.starting(pids) or now - self.held_since >= self.settle

    def _say_waiting(self) -> None:
        """Once: the condition holds elsewhere in the tree, but the target is not there yet."""
        elsewhere = self.readiness.early_output or (
            self.readiness.pattern is None and self.readiness.holds([p.pid for p in self.tree.live()]))
        if elsewhere and not self.said_waiting:
            self.said_waiting = True
            self.display.note(f"{self.readiness.describe()}, but no {self.target} process yet: waiting for it")

    def whose(self) -> str:
        scoped = self.target is not None and self.target.kind in ("child", "pid")
        return f" (in the {self.target} process)" if scoped else ""

    def early(self) -> str:
        if self.readiness.early_output:
            return f"; the matching line came before the {self.target} process existed, so it was not its"
        return ""


def ready_record(readiness: Readiness, result: ReadyResult, launched: float) -> Optional[Ready]:
    """The report's ``ready``: None when no condition was asked for."""
    if not readiness.wanted:
        return None
    after = result.at - launched if result.at is not None else None
    return Ready(readiness.describe(), result.at is not None, after)
