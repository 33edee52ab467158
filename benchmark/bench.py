"""Run every benchmark, print the table, write docs/benchmarks.md.

    .venv/bin/python -m benchmark                 # everything (what `make bench` runs)
    .venv/bin/python -m benchmark --only startup  # some of it; docs are then left alone

Exit status 0 when every figure was measured, met or MISSED; 1 when the
harness could not measure one (then the docs are not rewritten).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmark import programs, runs, startup, table
from benchmark.measure import GSUP, PYTHON, ROOT, Row, bench_env, wait_for

Bench = Callable[[dict[str, str], Path], list[Row]]


def cli_startup(env: dict[str, str], scratch: Path) -> list[Row]:
    """``gsup --version`` and ``gsup ps`` with no session, then ``gsup ps`` with one live run."""
    rows = startup.cli_startup(env, [("gsup --version start-up", [GSUP, "--version"], 3.0),
                                     ("gsup ps start-up (no session)", [GSUP, "ps"], 5.0)])
    with live_run(env, scratch):
        rows += startup.cli_startup(env, [("gsup ps start-up (one live run)", [GSUP, "ps"], 5.0)])
    return rows


@contextmanager
def live_run(env: dict[str, str], scratch: Path) -> Iterator[None]:
    """A ``gsup run`` of a sleeping program, for ``gsup ps`` to find."""
    program = programs.write(scratch, "long_sleeper.py", programs.SLEEPER)
    ready = scratch / "live-ready"
    argv = [GSUP, "run", "-q", "--python", PYTHON, str(program), str(ready), str(scratch / "live-done"), "600"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(ready, 60, lambda: proc.poll() is None)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)  # forwarded to the program's group; then gsup reports and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BENCHES: dict[str, list[tuple[str, Bench]]] = {
    "startup": [
        ("probe start-up", lambda env, scratch: [startup.probe_startup(env, scratch)]),
        ("probe per event", startup.probe_event_cost),
        ("CLI start-up", cli_startup),
        ("gsup run fixed cost", lambda env, scratch: [startup.run_fixed_cost(env, scratch)]),
    ],
    "run": [
        ("idle CPU", runs.idle),
        ("exit-to-report latency", runs.latency),
        ("scale", runs.scale),
        ("stacks", runs.stacks),
        ("seed scenario", runs.seed),
        ("container mode", runs.container),
        ("matrix", runs.matrix),
    ],
}


def measure(groups: list[str]) -> tuple[list[Row], list[tuple[str, str]]]:
    rows: list[Row] = []
    failures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="gsup-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        env = bench_env(scratch / "home")
        for group in groups:
            for name, bench in BENCHES[group]:
                print(f"bench: {name}...", flush=True)
                began = time.monotonic()
                try:
                    rows += bench(env, scratch)
                except Exception as err:
                    failures.append((name, f"{type(err).__name__}: {err}"))
                print(f"bench: {name}: {time.monotonic() - began:.1f} s", flush=True)
    return rows, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only this group")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    # The measured commands must read cached bytecode, as an installed gsup does, even
    # where PYTHONDONTWRITEBYTECODE kept edited modules from being cached.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "supervisor")], check=True)
    machine = table.Machine.now()
    began = time.monotonic()
    rows, failures = measure(args.only or list(BENCHES))
    machine.seconds = time.monotonic() - began
    machine.load.append(os.getloadavg()[0])
    print("\n" + table.terminal(rows, failures))
    targets = [r for r in rows if r.target is not None]
    print(f"\n{sum(r.met for r in targets)} of {len(targets)} targets met; {machine.seconds:.0f} s; "
          f"load average {machine.load[0]:.2f} -> {machine.load[1]:.2f}")
    if failures:
        print(f"{len(failures)} benchmark(s) could not be measured: {args.output} left as it was", file=sys.stderr)
        return 1
    if args.only:
        print(f"--only: {args.output} left as it was", file=sys.stderr)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table.markdown(rows, machine, "make bench"))
    print(f"written: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0
