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
from supervisor.tree import describe_live


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
    for now in turns(loop, actor, lambda: timeout_at, expecting=True):
        if readiness.holds([p.pid for p in loop.tree.live()]):
            display.note(f"ready after {now - launched:.2f}s: {readiness.describe()}")
            return ReadyResult(at=now)
        if now >= timeout_at:
            everyone = describe_live(loop.tree.live(), loop.tree)
            error = GsupError(f"not ready after {plan.ready_timeout:g}s (--ready-timeout): no "
                              f"{readiness.describe()}; the tree was: {everyone}", ExitCode.NOT_READY)
            actor.kill_everything("never ready", stacks_first=True)
            return ReadyResult(error=error)
    return ReadyResult()


def ready_record(readiness: Readiness, result: ReadyResult, launched: float) -> Optional[Ready]:
    """The report's ``ready``: None when no condition was asked for."""
    if not readiness.wanted:
        return None
    after = result.at - launched if result.at is not None else None
    return Ready(readiness.describe(), result.at is not None, after)
