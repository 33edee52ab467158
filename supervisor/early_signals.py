"""TERM and HUP that ``gsup run`` receives before its loop listens: kept, then forwarded like any other.

gsup spends its first tens of milliseconds (much more on a loaded machine)
importing click, rich and psutil before its run loop installs its own
handlers.  A SIGTERM in that window (``timeout 1 gsup run``, the Python API
ending a run that timed out, a CI runner cancelling a job) used to kill gsup
outright: no session, no report, and what happened depended on how busy the
machine was.  The console script calls :func:`collect` first thing for
``gsup run``; the loop's own handlers :func:`take` what came, and the act
phase forwards it to the program's group as soon as the program runs, as it
does for a signal that comes later, so the run always has a report.

SIGINT is not kept: a Ctrl-C before the program runs means "stop", and
Python's own handler ends gsup at once ("gsup: interrupted", exit 130).
"""

from __future__ import annotations

import signal
from types import FrameType

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

CAUGHT = (signal.SIGTERM, signal.SIGHUP)  # what a supervisor or a closing terminal sends to stop gsup
UNBLOCKED = (signal.SIGINT, *CAUGHT)
_received: list[int] = []
_before: dict[int, object] = {}  # the dispositions collect() replaced, restored after the run


def _keep(signum: int, frame: Optional[FrameType]) -> None:
    _received.append(signum)


def collect() -> None:
    """Keep TERM and HUP from now on, until the run loop's handlers replace these.

    They and INT are unblocked too: a mask inherited from whatever started gsup
    would otherwise hold them back for the whole run, and gsup could never pass
    them on."""
    for signum in CAUGHT:
        _before[signum] = signal.signal(signum, _keep)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, UNBLOCKED)


def take(replaced: dict[int, object]) -> list[int]:
    """The signals kept so far, oldest first (forgotten here).

    ``replaced`` maps each signal to the handler the run loop's handler just
    replaced; where that is ours, the one before it takes its place, so the
    dispositions restored after the run are those gsup started with."""
    for signum, handler in replaced.items():
        if handler is _keep:
            replaced[signum] = _before[signum]
    taken = list(_received)
    del _received[:len(taken)]
    return taken
