"""Where the probe's time per event goes: each step of its register and run paths, timed alone.

    .venv/bin/python -m benchmark.probe_profile

Runs itself again in a child with the probe loaded (PYTHONPATH, GSUP_EVENTS),
reaches the probe's objects through the closure of the patched
``atexit.register`` and its package (``_gsup_probe``, the one name it leaves
in ``sys.modules``), and times each step of the path with ``timeit``, best of
five, in microseconds per call.  The steps add up to (roughly) the per-event
figures of ``make bench``; the ones that dominate are what to make cheaper.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

from benchmark.measure import PROBE_DIR, PYTHON, ROOT

CALLS = 20_000


def per_call(func: Callable[[], object], calls: int = CALLS) -> float:
    """Best of five, in µs per call; NaN if the step no longer exists in the probe."""
    try:
        return min(timeit.repeat(func, number=calls, repeat=5)) / calls * 1e6
    except (AttributeError, KeyError, TypeError):
        return float("nan")


def _closure(func: Any) -> dict[str, Any]:
    return dict(zip(func.__code__.co_freevars, (cell.cell_contents for cell in func.__closure__ or ())))


def steps() -> list[tuple[str, float]]:
    """Time each step; must run where the probe is loaded."""
    import atexit

    probe = sys.modules["_gsup_probe"]
    cells = _closure(atexit.register)
    exits, real_register = cells["exits"], cells["real_register"]
    rec = exits.rec

    def noop() -> None:
        pass

    line = ('{"k":"reg","n":1,"t":1.000000,"h":1,"kind":"atexit"' + probe.describe(noop) + "}\n").encode()
    hid, _ = exits.new(noop, "atexit")
    timed: list[tuple[str, Callable[[], object]]] = [
        ("atexit.register, real (C), one call", lambda: real_register(noop)),
        ("atexit.register, the probe's, whole", lambda: atexit.register(noop)),
        ("  exits.new (id, markers, describe, emit)", lambda: exits.new(noop, "atexit")),
        ("    describe(func)", lambda: probe.describe(noop)),
        ("      innermost(func)", lambda: probe.innermost(noop)),
        ("      where(func)", lambda: probe.where(noop)),
        ("      js(text) x3", lambda: (probe.js("noop"), probe.js("__main__"), probe.js("/a/b.py:12"))),
        ("    the reg body: '%d %s %s' % ...",
         lambda: ',"h":%d,"kind":"%s"%s' % (1, "atexit", ',"name":"x"')),  # noqa: UP031 (as the probe does)
        ("    partial(...) (the marker, before and after)", lambda: probe.partial(exits.mark, 1)),
        ("    rec.emit('reg', body)", lambda: rec.emit("reg", ',"h":1,"kind":"atexit"')),
        ("      time.monotonic()", rec.monotonic),
        ("      format the line + encode", lambda: (
            '{"k":"%s","n":%d,"t":%.6f%s}\n' % ("reg", 1, 1.0, ',"h":1,"kind":"atexit"')).encode(  # noqa: UP031
                "utf-8", "backslashreplace")),
        ("      rec.write(line) (open, write, close)", lambda: rec.write(line.decode())),
        ("  real_register x3 (marker, func, marker)", lambda: (
            real_register(noop), real_register(noop), real_register(noop))),
        ("handler run: exits.begin(hid)", lambda: exits.begin(hid)),
        ("  HookProxy(...) made and set on each begin", lambda: probe._HookProxy(sys.unraisablehook, exits)),
        ("handler run: exits.end(hid) (held for the next begin)", lambda: (exits.end(hid), rec.held.clear())),
        ("handler run: the marker twice -> begin + end", lambda: (exits.handlers[hid][2](), exits.handlers[hid][3]())),
    ]
    found = [(name, per_call(step)) for name, step in timed]
    # Drop the registrations unrecorded: the probe's own _clear would write an "unreg" for each.
    _closure(atexit._clear)["real_clear"]()
    return found


def main() -> int:
    if "_gsup_probe" in sys.modules:
        for name, micros in steps():
            print(f"{micros:8.2f} µs  {name}")
        return 0
    with tempfile.TemporaryDirectory(prefix="gsup-probe-profile-") as events:
        env = {**os.environ, "PYTHONPATH": PROBE_DIR, "GSUP_EVENTS": events}
        return subprocess.run([PYTHON, "-m", "benchmark.probe_profile"], env=env, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
