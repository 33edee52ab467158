"""The one place that reaps: gsup as child subreaper.

Only one party may collect a child's wait status; once it is collected nobody
else can learn it.  gsup launches with ``posix_spawn`` (no ``Popen`` trying to
reap behind its back), marks itself a child subreaper so orphaned descendants
re-parent to it, and collects every status here, with ``waitid`` so that the
kernel's own ``si_code`` says exited, killed or dumped core.
"""

from __future__ import annotations

import os
import time

from supervisor.guardian import PR_SET_CHILD_SUBREAPER, prctl
from supervisor.records import dataclass

_CLD_EXITED = 1


@dataclass(frozen=True)
class ExitStatus:
    """How one process ended, as its parent's wait saw it."""

    pid: int
    code: int | None  # exit code, when it exited
    signal: int | None  # the signal that killed it, when it was killed
    at: float  # time.monotonic() when reaped

    @classmethod
    def from_wait_status(cls, pid: int, status: int, at: float) -> ExitStatus:
        """From a raw ``waitpid`` status word (what the probe records)."""
        if os.WIFSIGNALED(status):
            return cls(pid, None, os.WTERMSIG(status), at)
        return cls(pid, os.WEXITSTATUS(status), None, at)


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process; False if unsupported."""
    try:
        return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def reap_ready() -> tuple[list[ExitStatus], bool]:
    """Collect every child that has ended; also whether any child is left."""
    reaped: list[ExitStatus] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return reaped, False
        except InterruptedError:
            continue
        if info is None or info.si_pid == 0:
            return reaped, True
        now = time.monotonic()
        if info.si_code == _CLD_EXITED:
            reaped.append(ExitStatus(info.si_pid, info.si_status, None, now))
        else:
            reaped.append(ExitStatus(info.si_pid, None, info.si_status, now))
