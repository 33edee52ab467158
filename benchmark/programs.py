"""The programs the benchmarks run, written to a scratch directory.

Each synchronises with the harness through files (or its stdin), never
through timing guesses.
"""

from __future__ import annotations

from pathlib import Path

# Register N no-op handlers, then run them; prints the two durations in ns.
EVENTS = """
import atexit, sys, time

def noop():
    pass

n = int(sys.argv[1])
t0 = time.perf_counter_ns()
for _ in range(n):
    atexit.register(noop)
t1 = time.perf_counter_ns()
atexit._run_exitfuncs()
t2 = time.perf_counter_ns()
print(t1 - t0, t2 - t1)
"""

# Registers one atexit handler and exits: what gsup run's fixed cost is measured on.
ONE_HANDLER = """
import atexit

atexit.register(lambda: None)
"""

# Says it is asleep, sleeps, says it is done, exits.
SLEEPER = """
import sys, time
from pathlib import Path

Path(sys.argv[1]).touch()
time.sleep(float(sys.argv[3]))
Path(sys.argv[2]).touch()
"""

# Sleeps so gsup is idle in its loop, then writes CLOCK_MONOTONIC and dies at once.
LAST_WORDS = """
import os, sys, time

time.sleep(float(sys.argv[2]))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, str(time.monotonic_ns()).encode())
os._exit(0)
"""

# N forked children blocked on a pipe; they exit when it closes: after HOLD seconds,
# or when stdin reaches EOF if HOLD is "stdin".  The parent reaps them all.
FOREST = """
import os, sys, time
from pathlib import Path

n, ready, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3]
r, w = os.pipe()
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    kids.append(pid)
os.close(r)
Path(ready).touch()
if hold == "stdin":
    sys.stdin.read()
else:
    time.sleep(float(hold))
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
"""

# gsup itself, run in-process so that its own peak memory can be read at the very end.
# N Python processes (this one and N-1 children), each with T threads in all; each writes
# READY.<pid> once its threads run, then sleeps until killed.  argv: N T READY_DIR
THREADED = """
import os, subprocess, sys, threading, time
count, threads, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if count > 1:
    for _ in range(count - 1):
        subprocess.Popen([sys.executable, __file__, "1", str(threads), ready])
for _ in range(threads - 1):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
open(os.path.join(ready, "ready.%d" % os.getpid()), "w").close()
time.sleep(600)
"""

PEAK_RSS = """
import os, resource, sys

out = sys.argv[1]
sys.argv = ["gsup", *sys.argv[2:]]


def note():
    with open(out, "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


real_exit = os._exit


def _exit(code):  # gsup run ends with os._exit once its report is out (console.leave)
    note()
    real_exit(code)


os._exit = _exit
from supervisor.console import main
try:
    main()
finally:
    note()
"""


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(source.lstrip())
    return path
