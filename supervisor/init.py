"""gsup's tiny init: PID 1 that passes signals on to its one child and exits as the child did, as tini does.

``--stop docker-init`` (``docker run --init``) puts an init as PID 1 and the
program below it.  gsup uses tini where it is installed (``tini`` or
``docker-init`` on PATH); where not, this file stands in with tini's semantics:

* every catchable signal is *blocked* and taken with ``sigwaitinfo``: a blocked
  signal is never dropped for PID 1 (pid_namespaces(7)), which is how an init
  receives SIGTERM with no handler;
* each signal but SIGCHLD is sent on to the child (SIGKILL and SIGSTOP cannot
  be caught, so they act on the init itself);
* every process that ends is reaped (orphans re-parent to PID 1), so no zombie
  stays; when the child ends, the init exits with its code, or 128+N when a
  signal N killed it (tini's ``143`` for SIGTERM).

Standard library only, run as ``python -I -S init.py -- ARGV...``.
"""

from __future__ import annotations

import os
import signal
import sys

CLD_EXITED = 1


def main(argv: list[str]) -> int:
    catchable = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
    signal.pthread_sigmask(signal.SIG_BLOCK, catchable)
    program = argv[0] if "/" in argv[0] else _which(argv[0])
    child = os.posix_spawn(program, argv, os.environ, setsigmask=set(), setsigdef=catchable)
    while True:
        info = signal.sigwaitinfo(catchable)
        if info.si_signo != signal.SIGCHLD:
            _forward(child, info.si_signo)
            continue
        status = _reap(child)
        if status is not None:
            return status


def _forward(child: int, signum: int) -> None:
    try:
        os.kill(child, signum)
    except ProcessLookupError:
        pass  # it has just ended: its SIGCHLD is on the way


def _reap(child: int) -> int | None:
    """Reap whatever ended; the exit status to take on once ``child`` is among them."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return None
        if info is None or info.si_pid == 0:
            return None
        if info.si_pid == child:
            return info.si_status if info.si_code == CLD_EXITED else 128 + info.si_status


def _which(name: str) -> str:
    from shutil import which

    return which(name) or name


if __name__ == "__main__":
    os._exit(main(sys.argv[sys.argv.index("--") + 1:]))
