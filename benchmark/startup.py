"""What gsup adds to starting Python: the probe's start-up and per-event cost, and
the CLI's own start-up (``gsup --version``, ``gsup ps``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmark import programs
from benchmark.measure import GSUP, PROBE_DIR, PYTHON, Row, interleaved, median, rel, spawn_time

STARTUP_RUNS = 40
FIXED_COST_RUNS = 15
EVENT_HANDLERS = 10_000
EVENT_RUNS = 7


def probe_env(env: dict[str, str], events: Path) -> dict[str, str]:
    return {**env, "PYTHONPATH": PROBE_DIR, "GSUP_EVENTS": str(events)}


def probe_startup(env: dict[str, str], scratch: Path) -> Row:
    events = scratch / "startup-events"
    events.mkdir()
    probed = probe_env(env, events)
    python = rel(PYTHON)
    plain_times, probe_times = interleaved(STARTUP_RUNS, [
        lambda: spawn_time([PYTHON, "-c", "pass"], env),
        lambda: spawn_time([PYTHON, "-c", "pass"], probed),
    ])
    plain, probe = median(plain_times), median(probe_times)
    return Row("probe start-up", probe / plain, 1.15, "x",
               f"python -c pass: {probe * 1e3:.1f} ms with the probe, {plain * 1e3:.1f} ms without "
               f"(medians of {STARTUP_RUNS} each, interleaved)",
               f"PYTHONPATH=supervisor/_probe GSUP_EVENTS=$(mktemp -d) {python} -c pass  vs  {python} -c pass")


def _handler_run(env: dict[str, str]) -> tuple[int, int]:
    """(ns to register, ns to run) EVENT_HANDLERS handlers, in a fresh interpreter."""
    done = subprocess.run([PYTHON, "-c", programs.EVENTS, str(EVENT_HANDLERS)], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    register, run = done.stdout.split()
    return int(register), int(run)


def _count_events(events: Path) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for file in events.iterdir():
        for line in file.read_text().splitlines():
            kind = line.split('"k":"', 1)[1].split('"', 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def probe_event_cost(env: dict[str, str], scratch: Path) -> list[Row]:
    """Per event: (time with the probe - time without) / events the probe wrote."""
    results: dict[str, list[tuple[int, int]]] = {"plain": [], "probe": []}
    kinds: dict[str, int] = {}
    for round_ in range(EVENT_RUNS):
        events = scratch / f"event-cost-{round_}"
        events.mkdir()
        order = ["plain", "probe"] if round_ % 2 == 0 else ["probe", "plain"]
        for side in order:
            results[side].append(_handler_run(env if side == "plain" else probe_env(env, events)))
        kinds = _count_events(events)
    registered, began, ended = kinds.get("reg", 0), kinds.get("begin", 0), kinds.get("end", 0)
    if registered < EVENT_HANDLERS or began < EVENT_HANDLERS or ended < EVENT_HANDLERS:
        raise RuntimeError(f"the probe wrote {kinds}, not {EVENT_HANDLERS} reg/begin/end events")
    command = (f"PYTHONPATH=supervisor/_probe GSUP_EVENTS=$(mktemp -d) {rel(PYTHON)} -c '<register {EVENT_HANDLERS} "
               "no-op handlers; atexit._run_exitfuncs()>'  vs  the same without the probe (benchmark/programs.py)")
    rows = []
    for index, (name, events_per_handler) in enumerate([("atexit.register", 1), ("handler run (begin + end)", 2)]):
        plain = median([r[index] for r in results["plain"]])
        probe = median([r[index] for r in results["probe"]])
        per_event = (probe - plain) / (EVENT_HANDLERS * events_per_handler) / 1e3
        rows.append(Row(f"probe per event: {name}", per_event, 5.0, "us",
                        f"{EVENT_HANDLERS} handlers: {probe / 1e6:.1f} ms with the probe, {plain / 1e6:.1f} ms "
                        f"without, {EVENT_HANDLERS * events_per_handler} events (medians of {EVENT_RUNS})", command))
    return rows


def cli_startup(env: dict[str, str], commands: list[tuple[str, list[str], float]]) -> list[Row]:
    """Each ``(name, argv, target ratio)`` against ``python -c pass``, all interleaved."""
    def timer(argv: list[str]) -> Callable[[], float]:
        return lambda: spawn_time(argv, env)

    times = interleaved(STARTUP_RUNS, [timer([PYTHON, "-c", "pass"]), *(timer(argv) for _, argv, _ in commands)])
    python = median(times[0])
    note = f"python -c pass {python * 1e3:.1f} ms (medians of {STARTUP_RUNS}, interleaved)"
    return [Row(name, median(taken) / python, target, "x", f"{median(taken) * 1e3:.1f} ms; {note}",
                f"{' '.join(rel(a) for a in argv)}  vs  {rel(PYTHON)} -c pass")
            for (name, argv, target), taken in zip(commands, times[1:])]


def run_fixed_cost(env: dict[str, str], scratch: Path) -> Row:
    """``gsup run --json`` of a one-handler program minus the same program run bare,
    against one ``python -c pass``: the median of per-pair differences, all interleaved,
    so a load change on the machine shifts both sides of a pair alike."""
    program = str(programs.write(scratch, "one_handler.py", programs.ONE_HANDLER))
    gsup_argv = [GSUP, "run", "--json", "--python", PYTHON, program]
    gsup, bare, empty = interleaved(FIXED_COST_RUNS, [
        lambda: spawn_time(gsup_argv, env, stderr_too=True),
        lambda: spawn_time([PYTHON, program], env),
        lambda: spawn_time([PYTHON, "-c", "pass"], env),
    ])
    fixed = median([g - b for g, b in zip(gsup, bare)])
    python = median(empty)
    return Row("gsup run fixed cost", fixed / python, 4.0, "x",
               f"gsup run {median(gsup) * 1e3:.1f} ms, bare {median(bare) * 1e3:.1f} ms: {fixed * 1e3:.1f} ms "
               f"more (median of {FIXED_COST_RUNS} pairs); python -c pass {python * 1e3:.1f} ms",
               f"({rel(GSUP)} run --json --python {rel(PYTHON)} one_handler.py) - ({rel(PYTHON)} one_handler.py)"
               f"  vs  {rel(PYTHON)} -c pass")
