"""The act phase: send the plan's signal when the tree is ready or settled, pass on
gsup's own signals, and escalate when the grace runs out.

What happens when the grace runs out is :meth:`Actor.on_grace_over`, one
decision table; everything gsup does to the tree goes through a :class:`Sender`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from supervisor.errors import GsupError
from supervisor.model import Action
from supervisor.options import Target
from supervisor.phases.display import Display
from supervisor.phases.loop import Alarm, EventLoop, OwnSignals
from supervisor.phases.plan import RunPlan
from supervisor.phases.send import Sender
from supervisor.reaper import ExitStatus
from supervisor.tree import describe_live, resolve_target

TARGET_PATIENCE = 5.0  # a quiet tree may still start the target later: wait this long for it


@dataclass(frozen=True)
class Acted:
    """What the act phase did: its sends, what it killed as left running, and why the plan's signal failed."""

    actions: list[Action]
    leftovers: list[int]
    shot_error: Optional[GsupError]
    grace: Optional[tuple[float, float]] = None  # (seconds, time.monotonic() when the window began)


class Actor:
    """What gsup does to the tree, and when: the plan's signal, gsup's own signals
    passed on, the grace after them and what its end kills."""

    def __init__(self, plan: RunPlan, sender: Sender, own: OwnSignals, display: Display) -> None:
        self.plan = plan
        self.sender = sender
        self.tree = sender.tree
        self.root_pid = sender.launched.root_pid
        self.own = own
        self.display = display
        self.pending = plan.signal is not None  # the plan's signal is still to be sent
        self.deadline: Optional[float] = None  # the grace's end: then SIGKILL whatever is left
        self.grace_began: Optional[float] = None  # when the first grace window began (for the timeline)
        self.root_ended: Optional[float] = None
        self.leftovers: list[int] = []
        self.shot_error: Optional[GsupError] = None

    def record(self) -> Acted:
        grace = (self.plan.grace, self.grace_began) if self.grace_began is not None else None
        return Acted(self.sender.actions, self.leftovers, self.shot_error, grace)

    def alarm(self) -> Optional[float]:
        return self.deadline

    def on_death(self, status: ExitStatus, now: float) -> None:
        """The launched process ended: in a container the rest ends with it; the grace starts."""
        if status.pid != self.root_pid or self.root_ended is not None:
            return
        self.root_ended = now
        if self.plan.stop is not None and self.plan.stop.ends_with_root:
            self._end_container()
        if self.deadline is None:
            self._begin_grace(now)

    def on_own_signals(self, now: float) -> None:
        """Ctrl-C (or TERM/HUP sent to gsup): forward it to the program's group,
        as a terminal would; a second one ends what is left with SIGKILL."""
        while self.own.pending:
            signum = signal.Signals(self.own.pending.pop(0))
            by = "ctrl-c" if signum == signal.SIGINT else "gsup received"
            if any(a.by == by for a in self.sender.actions):
                self.sender.escalating = True
                self.kill_everything(f"second {signum.name}", by=by)
                continue
            if signum == signal.SIGINT:
                self.display.note("Ctrl-C: SIGINT to the program's process group (again to SIGKILL)")
            self.sender.forward(signum, by)
            if self.deadline is None:
                self._begin_grace(now)

    def maybe_shoot(self, now: float, quiet_since: float, ready_at: Optional[float]) -> None:
        """Send the plan's signal once it is due: ``--after`` readiness (or launch), or once the tree
        has been quiet for ``--settle`` (at once when a --ready-* condition held)."""
        plan = self.plan
        assert plan.signal is not None and plan.target is not None
        since = ready_at if ready_at is not None else self.sender.launched.at  # --after counts from readiness
        if plan.after is not None and now < since + plan.after:
            return
        quiet_for = now - quiet_since
        settle = 0.0 if ready_at is not None else plan.settle
        if not self._target_exists(plan.target):
            patience = settle if plan.target.kind == "pid" else max(settle, TARGET_PATIENCE)
            if quiet_for < patience:
                return  # not yet: it may still appear
            # Quiet that long without it: fall through, so that send() says
            # what is there instead of waiting forever.
        elif plan.after is None and quiet_for < settle:
            return
        self.pending = False
        try:
            action = self.sender.send(plan.signal, plan.target, by=plan.shooter)
            if plan.stop is not None and plan.stop.also is not None:
                self.sender.send_also(plan.stop.also, action)
        except GsupError as err:
            self.shot_error = err
            self.kill_everything("the signal could not be sent")
            return
        self._begin_grace(time.monotonic())

    def _begin_grace(self, now: float) -> None:
        self.deadline = now + self.plan.grace
        if self.grace_began is None:
            self.grace_began = now

    def on_deadline(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self.on_grace_over()

    def on_grace_over(self) -> None:
        """The grace ran out: SIGKILL what is left, as the plan's environment would."""
        self.deadline = None
        self.tree.snapshot()
        if not self.tree.live():
            return
        self.sender.escalating = True
        stop, grace = self.plan.stop, self.plan.grace
        if self.root_ended is not None and stop is not None and stop.waits_for_tree:
            self.display.note(f"{stop.name}: {grace:g}s over, SIGKILL to what is left")
            self.sender.kill("tree", by=self.plan.shooter)
        elif self.root_ended is not None:
            killed = self.sender.kill("tree", by="leftovers")
            self.leftovers = sorted({p.pid for p in killed} | set(self.leftovers))
            self.display.note(f"left running after the grace period: {', '.join(map(str, self.leftovers))}")
        elif stop is not None and stop.kill is not None:
            self.display.note(f"{stop.name}: {grace:g}s over, SIGKILL to the {stop.kill}")
            if stop.kill.kind == "tree":
                self.sender.kill("tree", by=self.plan.shooter)
            else:
                self.sender.send_quietly(signal.SIGKILL, stop.kill, by=self.plan.shooter)
        else:
            self.display.note(f"grace period of {grace:g}s over: SIGKILL to what is left")
            self.sender.kill("tree", by="grace")

    def kill_everything(self, why: str, by: str = "gsup") -> None:
        """SIGKILL every live descendant, however the run is going."""
        self.pending = False
        self.tree.snapshot()
        if self.tree.live():
            self.display.note(f"{why}: SIGKILL to what is left")
            self.sender.kill("tree", by)

    def never_sent(self) -> None:
        """The tree ended with the plan's signal still waiting for its target: say so."""
        if self.pending:
            everyone = describe_live(list(self.tree.history.values()), self.tree)
            self.shot_error = GsupError(f"--signal was never sent: no {self.plan.target} process "
                                        f"appeared before the tree ended; the tree was: {everyone}")

    def _end_container(self) -> None:
        """The main process of a container ended: the kernel kills the rest at once."""
        assert self.plan.stop is not None
        self.pending = False
        self.tree.snapshot()
        if self.tree.live():
            self.display.note(f"{self.plan.stop.name}: the main process ended, SIGKILL to the rest of the container")
            self.sender.kill("tree", by=self.plan.shooter)

    def _target_exists(self, target: Target) -> bool:
        try:
            return bool(resolve_target(target, self.tree.live(), self.root_pid, self.tree))
        except GsupError:
            return False


def turns(loop: EventLoop, actor: Actor, *alarms: Alarm, expecting: bool = False) -> Iterator[float]:
    """The loop's turns with what every phase's turn does around its own step:
    gsup's own signals and a look at the tree (when due) before it, the grace's
    end after it.  ``expecting``: the phase waits for something, look often."""
    for now in loop.turns(actor.alarm, *alarms):
        actor.on_own_signals(now)
        loop.look_if_due(now, expecting=expecting or actor.pending, settling=actor.pending)
        yield now
        actor.on_deadline(now)


def act(loop: EventLoop, actor: Actor, ready_at: Optional[float]) -> None:
    """Send the plan's signal when due and escalate at the grace's end, until no
    process is left; the record is ``actor.record()``, kept even if a turn fails."""
    for now in turns(loop, actor):
        if actor.pending:
            actor.maybe_shoot(now, loop.last_change, ready_at)
    actor.never_sent()
