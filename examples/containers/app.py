"""A service for the container examples: cleanup in atexit; a SIGTERM handler with `handler` on the command line."""

import atexit
import signal
import sys
import time


def cleanup() -> None:
    print("cleanup: flushed and closed", flush=True)


atexit.register(cleanup)
if "handler" in sys.argv[1:]:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # exit: atexit runs
print("serving", flush=True)
while True:
    time.sleep(60)
