"""The act phase: send the plan's signal when the tree is ready or settled, pass on
gsup's own signals, and escalate when the grace runs out.

What happens when the grace runs out is :meth:`Actor.on_grace_over`, one
decision table; everything gsup does to the tree goes through a :class:`Sender`.
Every SIGKILL gsup sends because a wait ran out (the grace, a preset's timeout,
--ready-timeout, the third Ctrl-C) comes after :meth:`Actor.take_stacks`: the
stacks of every process about to be killed, so that the report can say where each
one was stuck.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

from supervisor import stacks
from supervisor.errors import GsupError
from supervisor.model import Action
from supervisor.options import Target
from supervisor.phases.display import Display
from supervisor.phases.loop import EventLoop, OwnSignals
from supervisor.phases.plan import RunPlan
from supervisor.phases.send import Sender
from supervisor.reaper import ExitStatus
from supervisor.records import dataclass, field
from supervisor.tree import Seen, describe_live, resolve_target

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

    from supervisor.phases.loop import Alarm

CTRL_C_KILLS = 3  # the Ctrl-C that SIGKILLs: the first two are forwarded, as a terminal would
ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}
TARGET_PATIENCE = 5.0  # a quiet tree may still start the target later: wait this long for it


@dataclass(frozen=True)
class Acted:
    """What the act phase did: its sends, what it killed as left running, and why the plan's signal failed."""

    actions: list[Action]
    leftovers: list[int]
    shot_error: Optional[GsupError]
    grace: Optional[tuple[float, float]] = None  # (seconds, time.monotonic() when the window began)
    stacks: dict[int, stacks.Answer] = field(default_factory=dict)  # taken before the escalation, by pid
    pre_stop: Optional[dict[str, object]] = None  # a pod's preStop hook: what ran, how long, its outcome


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
        self.stacks: dict[int, stacks.Answer] = {}
        self.ctrl_c = 0  # Ctrl-Cs (SIGINTs to gsup) so far: the third escalates
        self.pre_stop: Optional[dict[str, object]] = None

    def record(self) -> Acted:
        grace = (self.plan.grace, self.grace_began) if self.grace_began is not None else None
        return Acted(self.sender.actions, self.leftovers, self.shot_error, grace=grace, stacks=self.stacks,
                     pre_stop=self.pre_stop)

    def alarm(self) -> Optional[float]:
        return self.deadline

    def on_death(self, status: ExitStatus, now: float) -> None:
        """The launched process ended: in a container the rest ends with it; the grace starts."""
        if status.pid != self.root_pid or self.root_ended is not None:
            return
        self.root_ended = now
        if self.plan.namespace:
            self.pending = False  # the kernel has already ended every other process of the namespace
        elif self.plan.container is not None or (self.plan.stop is not None and self.plan.stop.ends_with_root):
            self._end_container()
        if self.deadline is None:
            self._begin_grace(now)

    def on_own_signals(self, now: float) -> None:
        """Ctrl-C: forward SIGINT to the program's group, as a terminal would, and
        again on the second (which is what breaks ``threading._shutdown`` and aborts
        atexit callbacks, as in a terminal); the third ends what is left with SIGKILL,
        stacks first.  TERM/HUP sent to gsup: forwarded once, the second escalates."""
        while self.own.pending:
            signum = signal.Signals(self.own.pending.pop(0))
            if signum == signal.SIGINT:
                self._on_ctrl_c(now)
                continue
            by = "gsup received"
            if any(a.by == by for a in self.sender.actions):
                self.sender.escalating = True
                self.kill_everything(f"second {signum.name}", by=by, stacks_first=True)
                continue
            self.sender.forward(signum, by)
            if self.deadline is None:
                self._begin_grace(now)

    def _on_ctrl_c(self, now: float) -> None:
        self.ctrl_c += 1
        nth = ORDINALS.get(self.ctrl_c, f"{self.ctrl_c}th")
        if self.ctrl_c >= CTRL_C_KILLS:
            self.sender.escalating = True
            self.kill_everything(f"{nth} Ctrl-C", by=f"{nth} ctrl-c", stacks_first=True)
            return
        left = CTRL_C_KILLS - self.ctrl_c
        again = "again to SIGKILL" if left == 1 else f"{left} more to SIGKILL"
        self.display.note(f"{nth} Ctrl-C: SIGINT to the program's process group ({again})")
        self.sender.forward(signal.SIGINT, "ctrl-c" if self.ctrl_c == 1 else f"{nth} ctrl-c")
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
        began = time.monotonic()
        if plan.pre_stop is not None:
            from supervisor import hooks  # a pod's preStop only: it loads urllib and subprocess (~20 ms)

            self.pre_stop = hooks.run_pre_stop(plan.pre_stop, plan.grace)
            self.display.note(f"preStop {plan.pre_stop}: {self.pre_stop['outcome']}")
        try:
            action = self.sender.send(plan.signal, plan.target, by=plan.shooter)
            if plan.stop is not None and plan.stop.also is not None:
                self.sender.send_also(plan.stop.also, action)
        except GsupError as err:
            self.shot_error = err
            self.kill_everything("the signal could not be sent")
            return
        # The kubelet's grace counts the preStop hook's time too.
        self._begin_grace(began if plan.pre_stop is not None else time.monotonic())
        self._tell_stopping()

    def _tell_stopping(self) -> None:
        """Tell ``gsup matrix`` (if it launched this run) that the signal is sent: one byte.
        Called once: the plan's signal is sent once (``pending`` is cleared first)."""
        fd = self.plan.stopping_fd
        if fd is None:
            return
        try:
            os.write(fd, b"s")
            os.close(fd)
        except OSError:
            pass  # the matrix is gone: it ends this run anyway

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
            self.kill_tree(by=self.plan.shooter)
        elif self.root_ended is not None:
            killed = self.kill_tree(by="leftovers")
            self.leftovers = sorted({p.pid for p in killed} | set(self.leftovers))
            self.display.note(f"left running after the grace period: {', '.join(map(str, self.leftovers))}")
        elif stop is not None and stop.kill is not None and self.plan.namespace:
            # The runtime kills the container's init; the kernel then kills the rest of its namespace.
            self.display.note(f"{stop.name}: {grace:g}s over, SIGKILL to PID 1")
            self.take_stacks([p.pid for p in self.tree.live()])  # all of them die with PID 1
            self.sender.send_quietly(signal.SIGKILL, Target("parent"), by=self.plan.shooter)
        elif stop is not None and stop.kill is not None:
            self.display.note(f"{stop.name}: {grace:g}s over, SIGKILL to the {stop.kill}")
            if stop.kill.kind == "tree":
                self.kill_tree(by=self.plan.shooter)
            else:
                self.take_stacks([p.pid for p in self._members(stop.kill)])
                self.sender.send_quietly(signal.SIGKILL, stop.kill, by=self.plan.shooter)
        else:
            self.display.note(f"grace period of {grace:g}s over: SIGKILL to what is left")
            self.kill_tree(by="grace")

    def kill_tree(self, by: str) -> list[Seen]:
        """Every live process's stacks, then SIGKILL to all of them."""
        self.take_stacks([p.pid for p in self.tree.live()])
        return self.sender.kill("tree", by)

    def kill_everything(self, why: str, by: str = "gsup", stacks_first: bool = False) -> None:
        """SIGKILL every live descendant, however the run is going; ``stacks_first``
        when a wait ran out (a user wants to know where it was stuck)."""
        self.pending = False
        self.tree.snapshot()
        if self.tree.live():
            if stacks_first:
                self.take_stacks([p.pid for p in self.tree.live()])
            self.display.note(f"{why}: SIGKILL to what is left")
            self.sender.kill("tree", by)

    def take_stacks(self, pids: list[int]) -> None:
        """The stacks of ``pids``, all about to be SIGKILLed, waited for (bounded).  Each process
        stops itself once it has answered: it runs nothing of the program's after its stacks."""
        if not pids:
            return
        began = time.monotonic()
        answers = stacks.request(pids, self.sender.journal.session.events_dir, then_stop=True)
        self.stacks.update(answers)
        got = sum(isinstance(a, stacks.Capture) for a in answers.values())
        self.display.note(f"stacks of {got} of {len(pids)} process(es) taken in {time.monotonic() - began:.2f}s")

    def never_sent(self) -> None:
        """The tree ended with the plan's signal still waiting for its target: say so."""
        if self.pending:
            everyone = describe_live(list(self.tree.history.values()), self.tree)
            self.shot_error = GsupError(f"--signal was never sent: no {self.plan.target} process "
                                        f"appeared before the tree ended; the tree was: {everyone}")

    def _end_container(self) -> None:
        """The main process of an emulated container ended: the kernel would kill the rest at once."""
        self.pending = False
        self.tree.snapshot()
        if self.tree.live():
            name = self.plan.stop.name if self.plan.stop is not None else "container"
            self.display.note(f"{name}: the main process ended, SIGKILL to the rest of the container")
            self.sender.kill("tree", by=self.plan.shooter)

    def _members(self, target: Target) -> list[Seen]:
        try:
            return resolve_target(target, self.tree.live(), self.root_pid, self.tree)
        except GsupError:
            return []

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
