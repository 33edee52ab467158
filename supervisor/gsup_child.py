"""A gsup run as a child process of this one: its command, waiting for it, ending it, reading what it wrote.

Both the Python API (``api.py``: one run) and ``gsup matrix`` (``scenarios.py``:
a loop of runs) start ``gsup run --json`` as a subprocess, and both must end it
the same careful way and read its report and its error line the same way.  This
module is the floor they share, below both; of gsup it imports only strictjson.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from signal import SIGTERM
from typing import IO, Any, Optional

from supervisor import strictjson

GSUP = [sys.executable, "-m", "supervisor"]  # the gsup of this very installation
PATIENCE = 5.0  # seconds gsup gets after each SIGTERM before the next step


def wait_gsup(proc: subprocess.Popen[bytes], timeout: Optional[float]) -> Optional[int]:
    """gsup's exit code, or None if ``timeout`` passed (gsup is then ended).
    Whatever else interrupts the wait (Ctrl-C, a failing test) ends gsup too."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        end_gsup([proc])
        return None
    except BaseException:
        end_gsup([proc])
        raise


def end_gsup(procs: Sequence[subprocess.Popen[bytes]], patience: float = PATIENCE) -> None:
    """End gsup processes so that nothing they started keeps running.

    The first SIGTERM is forwarded to the program's group and gsup reports; the
    second makes gsup SIGKILL its whole tree; SIGKILL to gsup is the last resort
    (its tree may then outlive it).  Each step waits at most ``patience``."""
    try:
        for _ in range(2):
            alive = [p for p in procs if p.poll() is None]
            for proc in alive:
                proc.send_signal(SIGTERM)
            deadline = time.monotonic() + patience
            for proc in alive:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def error_line(output: str) -> Optional[str]:
    """gsup's last ``gsup: error: ...`` message in ``output``, without the prefix."""
    lines = [line for line in output.splitlines() if line.startswith("gsup: error: ")]
    return lines[-1][len("gsup: error: "):] if lines else None


def parse_document(text: str) -> Optional[dict[str, Any]]:
    """gsup's JSON document, or None when there is none or it is not a JSON object
    (gsup crashed mid-write): the caller then says "no report" in gsup's own words."""
    try:
        document = strictjson.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def read_output(file: IO[bytes]) -> str:
    """All that gsup wrote to ``file`` (a temporary file it was given as stdout or stderr)."""
    file.seek(0)
    return file.read().decode(errors="replace")
