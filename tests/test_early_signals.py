"""A signal ``gsup run`` gets before its loop listens is forwarded, not fatal, and leaves the
dispositions gsup started with.

The window is gsup's import of click, rich and psutil: tens of milliseconds, much more on a
loaded machine.  To land a signal in it every time, gsup is started with SIGTERM blocked and
already pending (both survive ``exec``): it is delivered the moment gsup unblocks it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from tests.helpers import GSUP, PYTHON, Gsup, Program

PENDING_TERM_THEN_EXEC = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
os.kill(os.getpid(), signal.SIGTERM)  # pending, blocked: exec keeps both
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_a_term_before_the_loop_listens_is_forwarded(gsup: Gsup, program: Program) -> None:
    script = program("import time\ntime.sleep(20)\n")  # without the forward it would sleep it out
    argv = [*GSUP, "run", "--json", "--python", PYTHON, "-q", "--grace", "5s", str(script)]
    done = subprocess.run([sys.executable, "-c", PENDING_TERM_THEN_EXEC, *argv], capture_output=True, text=True,
                          env=gsup.env, cwd=gsup.workdir, timeout=60, check=False)
    report = json.loads(done.stdout)
    root = report["processes"][0]
    assert root["end"]["signal"] == "SIGTERM", root["end"]
    assert [(a["signal"], a["by"]) for a in report["actions"]] == [("SIGTERM", "gsup received")]
    assert report["duration"] < 15


def test_collect_keeps_then_restores_what_gsup_started_with() -> None:
    """The mechanism alone, in a real process with real signals."""
    check = """
import os, signal
from supervisor import early_signals
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGINT})
signal.signal(signal.SIGHUP, signal.SIG_IGN)
early_signals.collect()
assert not {signal.SIGHUP, signal.SIGINT} & signal.pthread_sigmask(signal.SIG_BLOCK, set())  # unblocked
os.kill(os.getpid(), signal.SIGTERM)
os.kill(os.getpid(), signal.SIGHUP)
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C still stops gsup at once
replaced = {s: signal.signal(s, signal.SIG_DFL) for s in early_signals.CAUGHT}  # what the run loop does
print(early_signals.take(replaced), early_signals.take({}))
print(replaced[signal.SIGHUP] is signal.SIG_IGN, replaced[signal.SIGTERM] is signal.SIG_DFL)
"""
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.splitlines() == [f"[{int(signal.SIGTERM)}, {int(signal.SIGHUP)}] []", "True True"]
