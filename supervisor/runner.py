"""``gsup run``'s protocol: launch, wait until ready, act, drain, report.

Each phase lives in ``supervisor/phases/`` with its inputs explicit and a
record out; :func:`run` strings them together and says, in one place, what
happens when one fails: a GsupError or an interruption kills everything and
is raised; any other error still kills, reaps and reports what is known.
gsup's own signal handlers stay installed until the report is built, so a
late Ctrl-C cannot lose it.

Launch early, import late: only what starting the program needs is imported
with this module.  What watches, acts and reports (psutil, the tree, the report
and its explanations) is imported by :func:`_while_launching` while the guardian
starts the program, so for a short program gsup's imports overlap its start-up
instead of preceding it (issue 17: gsup run's fixed cost).
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from supervisor import discovery, reaper
from supervisor import session as sessions
from supervisor.errors import ExitCode, GsupError
from supervisor.phases import start
from supervisor.phases.display import Display
from supervisor.phases.journal import Journal
from supervisor.phases.loop import EventLoop, OwnSignals
from supervisor.phases.plan import RunOptions, RunPlan, take_stopping_fd
from supervisor.phases.start import Launched
from supervisor.readiness import Readiness
from supervisor.records import dataclass, replace

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

if TYPE_CHECKING:
    from supervisor.model import Report
    from supervisor.phases.act import Actor
    from supervisor.phases.ready import ReadyResult
    from supervisor.tree import Tree


@dataclass(frozen=True)
class Outcome:
    """A run's report, and what went wrong that the report alone does not say."""

    report: Report
    shot_error: Optional[GsupError]  # the plan's signal could not be sent (exit 2)
    not_ready: Optional[GsupError]  # a --ready-* condition never held (exit 4)


@dataclass(frozen=True)
class _Watch:
    """What watches and acts on a launched tree: built once the program runs."""

    launched: Launched
    tree: Tree
    loop: EventLoop
    actor: Actor

    @classmethod
    def around(cls, launched: Launched, plan: RunPlan, own: OwnSignals, journal: Journal,
               display: Display) -> _Watch:
        from supervisor.phases.act import Actor
        from supervisor.phases.send import Sender
        from supervisor.tree import Tree

        tree = Tree(os.getpid(), launched.root_pid, launched.guardian_pid, container=launched.container is not None)
        actor = Actor(plan, Sender(tree, launched, journal, display), own, display)
        return cls(launched, tree, EventLoop(launched, tree, own, journal, display, actor.on_death), actor)

    def first_look(self, readiness: Readiness) -> None:
        """The tree as launched; the next look soon if a signal or a --ready-* condition waits."""
        self.loop.look(self.launched.at, expecting=self.actor.pending or readiness.wanted,
                       settling=self.actor.pending)


def run(options: RunOptions, display: Display) -> Outcome:
    """One run of one program, from launch to report.  A run that raises leaves its
    session saying why (:func:`_left_without_report`), never looking like gsup's death."""
    plan = replace(RunPlan.from_options(options), stopping_fd=take_stopping_fd())
    journal = Journal(sessions.create(list(plan.argv)))
    try:
        return _run(plan, journal, display)
    except BaseException as err:
        _left_without_report(journal.session, err)
        raise


def _while_launching() -> None:
    """gsup's work that can wait until the guardian starts the program: old sessions
    pruned, and everything a run needs from then on imported (see the module docstring)."""
    sessions.prune(keep=sessions.KEEP_ENDED, slack=sessions.PRUNE_SLACK)
    import supervisor.phases.act
    import supervisor.phases.finish
    import supervisor.phases.ready
    import supervisor.phases.send
    import supervisor.tree  # noqa: F401


def _run(plan: RunPlan, journal: Journal, display: Display) -> Outcome:
    readiness = plan.readiness()
    with OwnSignals() as own, ExitStack() as pipes:
        if not reaper.become_subreaper():
            journal.note("gsup could not become a child subreaper: orphans' endings are unknown")
        watch: Optional[_Watch] = None
        ready: Optional[ReadyResult] = None
        try:
            launched = start.launch(plan, journal.session, readiness, display, meanwhile=_while_launching)
            pipes.callback(launched.close)
            from supervisor.phases.act import act
            from supervisor.phases.ready import wait_until_ready

            watch = _Watch.around(launched, plan, own, journal, display)
            start.announce(launched, journal.session, display)
            watch.first_look(readiness)
            ready = wait_until_ready(plan, readiness, watch.loop, watch.actor, display)
            act(watch.loop, watch.actor, ready.at)
        except GsupError:
            _kill_everything(watch, "gsup could not go on")
            raise
        except Exception as err:  # a bug or a vanished session dir: keep what is known
            journal.note(f"gsup stopped watching early: {type(err).__name__}: {err}")
            _kill_everything(watch, "gsup failed")
            if watch is not None:
                watch.loop.reap_after_failure()
        except BaseException:
            _kill_everything(watch, "gsup interrupted")
            raise
        finally:
            display.close()
        return _report(plan, journal, readiness, watch, ready)


def _left_without_report(session: sessions.Session, err: BaseException) -> None:
    """Record how the session ended when gsup leaves without a report: it could not
    start the program (the reason, and gsup's exit code for it), or it stopped after."""
    if isinstance(err, GsupError):
        reason, code = str(err), int(err.exit_code)
    elif isinstance(err, KeyboardInterrupt):
        reason, code = "interrupted", int(ExitCode.INTERRUPTED)
    else:
        reason, code = f"{type(err).__name__}: {err}", int(ExitCode.INCOMPLETE)
    state = discovery.NOT_STARTED if session.root is None else discovery.GSUP_DIED
    try:
        session.end(state, reason, code)
    except OSError:
        pass  # the session directory is gone: nobody can read it either


def _kill_everything(watch: Optional[_Watch], why: str) -> None:
    if watch is not None:
        watch.actor.kill_everything(why)


def _report(plan: RunPlan, journal: Journal, readiness: Readiness, watch: Optional[_Watch],
            ready: Optional[ReadyResult]) -> Outcome:
    """Drain, then build the report from every phase's record, however far the run got
    (``ready`` None: the run never got to wait)."""
    from supervisor.phases.act import Acted
    from supervisor.phases.finish import build_report, drain
    from supervisor.phases.ready import ReadyResult, ready_record

    ready = ready if ready is not None else ReadyResult()
    acted = watch.actor.record() if watch is not None else Acted([], [], None)
    launched = watch.launched if watch is not None else None
    drained = drain(journal, watch.tree if watch is not None else None, acted.actions)
    built = build_report(plan, journal, launched, watch.loop.statuses if watch is not None else [],
                         acted, ready_record(readiness, ready, launched.at if launched else 0.0), drained)
    return Outcome(built, acted.shot_error, ready.error)
