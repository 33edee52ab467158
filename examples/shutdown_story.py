"""A shutdown worth drawing: a master and two workers, as a pre-fork server stops.

The master passes SIGTERM on to its workers and waits up to a second for them.
The first worker closes its database in an atexit handler (300 ms) and exits;
the second ignores SIGTERM (stuck in a call that never returns), outlives the
master, and is SIGKILLed when gsup's grace runs out.  The master exits 0 anyway.

    gsup run --signal TERM --grace 2s --ready-output 'workers ready' \
        --html shutdown.html examples/shutdown_story.py
"""

import atexit
import os
import signal
import subprocess
import sys
import time


def worker(stubborn: bool) -> None:
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        atexit.register(close_db)
    print(f"worker {os.getpid()} ready", flush=True)
    time.sleep(60)


def close_db() -> None:
    time.sleep(0.3)


def master() -> None:
    workers = [subprocess.Popen([sys.executable, __file__, "worker", kind], stdout=subprocess.PIPE, text=True)
               for kind in ("polite", "stubborn")]
    for proc in workers:
        assert proc.stdout is not None
        proc.stdout.readline()  # "worker N ready"

    def on_term(signum: int, frame: object) -> None:
        for proc in workers:
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        for proc in workers:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # a graceful timeout: the master leaves without it
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(lambda: None)
    print("workers ready", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2] == "stubborn")
    else:
        master()
