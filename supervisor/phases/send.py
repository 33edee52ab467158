"""Every signal gsup sends to the program's tree, each recorded as an Action as it goes.

A send is logged to the session's actions log (``gsup kill`` writes there
too), shown, and kept in ``actions``; its ``at`` counts from the launch and
is when the send began, since its effects may follow at once.
"""

from __future__ import annotations

import signal
import time

from supervisor import procfs, signals
from supervisor.errors import GsupError
from supervisor.model import Action
from supervisor.options import Target
from supervisor.phases.display import Display
from supervisor.phases.journal import Journal
from supervisor.phases.plan import EMULATE
from supervisor.phases.start import Launched
from supervisor.signals import Identity
from supervisor.tree import Seen, Tree, deliver, resolve_target

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

# after these a stopped process is left as it is: they stop it, continue it, or kill it anyway
_NO_WAKING = {signal.SIGKILL, signal.SIGCONT, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}


class Sender:
    """Sends signals within one tree and records them."""

    def __init__(self, tree: Tree, launched: Launched, journal: Journal, display: Display) -> None:
        self.tree = tree
        self.launched = launched
        self.journal = journal
        self.display = display
        self.actions: list[Action] = []
        self.escalating = False  # set once gsup forces the end: every send after it is an escalation

    def send(self, signum: signal.Signals, target: Target, by: str) -> Action:
        """Send ``signum`` to ``target`` within this tree; raises GsupError if it reaches none."""
        sent_at = time.monotonic()
        dropped = self._dropped_by_pid1(signum)
        if dropped and self.launched.container == EMULATE:
            reached = self._deliver_but_to_pid1(target, signum)
        else:
            reached = deliver(self.tree, target, signum, self.launched.root_pid)
        pids = sorted(p.pid for p in reached)
        action = self._record(signum, str(target), pids, by,
                              group=self.launched.root_pid if target.kind == "group" else None, sent_at=sent_at,
                              dropped=dropped if dropped and dropped[0] in pids else [])
        if signum not in _NO_WAKING:
            self._wake_stopped(action)
        return action

    def _wake_stopped(self, first: Action) -> None:
        """SIGCONT to the processes that got ``first`` while stopped, as a shell's ``kill`` does
        for a stopped job: a stopped process acts on no signal but SIGKILL until continued, so
        a TERM or a Ctrl-C to a program stopped by SIGTTIN waited for the grace's SIGKILL."""
        sent_at = time.monotonic()
        woken = [p.pid for p in self.tree.stopped() if p.pid in first.pids and signals.send(p.identity, signal.SIGCONT)]
        if woken:
            self._record(signal.SIGCONT, first.target, sorted(woken), first.by, group=first.group, sent_at=sent_at)

    def _deliver_but_to_pid1(self, target: Target, signum: signal.Signals) -> list[Seen]:
        """``--container=emulate``: the kernel would drop it for PID 1, so PID 1 does not get
        it; every other process ``target`` names does, one by one (a group's killpg would
        reach PID 1 too).  PID 1 counts as reached: the signal was sent to it, and dropped."""
        self.tree.snapshot()
        chosen = resolve_target(target, self.tree.live(), self.launched.root_pid, self.tree)
        return [p for p in chosen if p.pid == self.launched.root_pid or signals.send(p.identity, signum)]

    def _dropped_by_pid1(self, signum: signal.Signals) -> list[int]:
        """``[root]`` when the kernel will drop ``signum`` for PID 1: it has neither a handler
        for it nor blocks it (pid_namespaces(7); SIGKILL and SIGSTOP from outside always land).

        Decided from PID 1's masks just before the send, the kernel's own test
        (``sig_task_ignored`` for a ``SIGNAL_UNKILLABLE`` task).  An ignored signal is
        ignored by any process: that is no container rule, so it is not marked.
        """
        root = self.launched.root_pid
        if self.launched.container is None or signum in (signal.SIGKILL, signal.SIGSTOP):
            return []
        status = procfs.status(root)
        if status is None or status.disposition(signum) != "default":
            return []
        return [] if procfs.signals_waited_for(root) & (1 << (signum - 1)) else [root]

    def send_also(self, signum: signal.Signals, first: Action) -> None:
        """The second signal of a pair (systemd's SIGCONT), to exactly who got the first."""
        sent_at = time.monotonic()
        reached = [p.pid for p in self.tree.live() if p.pid in first.pids
                   and signals.send(p.identity, signum)]
        if reached:  # the first signal may already have ended them all
            self._record(signum, first.target, sorted(reached), first.by, group=first.group, sent_at=sent_at)

    def send_quietly(self, signum: signal.Signals, target: Target, by: str) -> None:
        try:
            self.send(signum, target, by)
        except GsupError:
            pass  # nobody left in it: nothing to do

    def forward(self, signum: signal.Signals, by: str) -> None:
        """A signal gsup received goes to the program's group, as a terminal sends it."""
        try:
            self.send(signum, Target("group"), by)
        except GsupError:
            self._record(signum, "group", [], by, group=self.launched.root_pid)  # nobody left to get it

    def kill(self, target: str, by: str) -> list[Seen]:
        """SIGKILL every live process of the tree, and what it starts meanwhile.

        One look then one kill misses children forked in between, and a process
        forking in a loop outruns it.  So everything seen is stopped first, the
        tree looked at again until nothing new appears, and only then killed.
        """
        stopped: dict[Identity, Seen] = {}
        for _ in range(1000):
            self.tree.snapshot()
            fresh = [p for p in self.tree.live() if p.identity not in stopped]
            if not fresh:
                break
            for proc in fresh:
                signals.send(proc.identity, signal.SIGSTOP)
                stopped[proc.identity] = proc
        sent_at = time.monotonic()
        killed = [p for p in stopped.values() if signals.send(p.identity, signal.SIGKILL)]
        if killed:
            self._record(signal.SIGKILL, target, [p.pid for p in killed], by, sent_at=sent_at)
        return killed

    def _record(self, signum: signal.Signals, target: str, pids: list[int], by: str,
                group: Optional[int] = None, sent_at: Optional[float] = None, dropped: Optional[list[int]] = None
                ) -> Action:
        at = sent_at if sent_at is not None else time.monotonic()
        action = Action(signal=signum.name, signum=int(signum), target=target, pids=pids,
                        at=at - self.launched.at, by=by, group=group, escalation=self.escalating,
                        dropped=dropped or [])
        self.actions.append(action)
        self.journal.log(self.journal.session.actions_file, action.to_json())
        self.display.action(action)
        return action
