"""``make stress``: random programs, random signals, random timing; gsup must lose nothing and invent nothing.

Each scenario (``plans.make``) is a generated program (``programs.source``)
run under ``gsup run --json`` with its own ``GSUP_HOME``.  Afterwards:

* leftovers: no process carrying this scenario's ``STRESS_SCENARIO`` is alive
  (psutil over every process of the machine);
* missing / invented: the report against the program's marker files
  (``checks.compare``);
* crashes: a gsup traceback, an unexplained exit code, JSON that does not parse;
* probe: a line naming the probe (``_gsup_probe``, ``sitecustomize``) in the
  program's output (``checks.probe_lines``).

``--storm`` runs fork storms under signal storms instead (``storm.py``).

It ends with one summary line and exits non-zero if any count is not zero.
The seed is printed first; each discrepancy names its scenario, program and
command, and the last line the one command that runs every failed scenario
again (``--seed S [--pythons] --only N ...``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the checkout: tests.helpers

import checks
import plans
import programs
import storm

from supervisor.pytest_plugin import end_processes, processes_where
from tests.helpers import error_lines, pyenv_pythons

SCRIPT = Path(__file__).resolve()
BIN = Path(sys.executable).parent
GSUP = BIN / "gsup"
GRACE = "2s"
TIMEOUT = 120.0  # a gsup that has not finished by then is hung: a crash
CATEGORIES = ("leftover", "missing", "invented", "crash", "probe")
Case = Union[plans.Scenario, storm.Storm]


@dataclass
class Result:
    """One scenario's outcome, ready to print."""

    scenario: Case
    directory: Path
    command: list[str]
    findings: list[checks.Finding] = field(default_factory=list)
    notes: list[checks.Finding] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, category: str) -> int:
        return sum(1 for f in self.findings if f.category == category)


def pythons(use_pyenv: bool) -> list[str]:
    """The target interpreters: the venv's, and with ``--pythons`` pyenv's 3.9-3.13 (the ones the tests use)."""
    found = [str(BIN / "python")]
    if use_pyenv:
        found += [str(exe) for _, (_, exe) in sorted(pyenv_pythons().items())]
    return found


def carrying(name: str, value: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment has ``name=value``."""
    return [proc for proc in processes_where(lambda environ: environ.get(name) == value) if _alive(proc)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _no_core_dumps() -> None:
    """SIGQUIT dumps core by default: not here (the limit is inherited by gsup and its tree)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_one(scenario: Case, base: Path, run_id: str) -> Result:
    directory = base / f"{scenario.number:03d}"
    shutil.rmtree(directory, ignore_errors=True)
    markers = directory / "markers"
    markers.mkdir(parents=True)
    program = directory / "program.py"
    if isinstance(scenario, storm.Storm):
        program.write_text(storm.source(scenario, markers, directory / "program.log"))
        shot: list[str] = []  # the storm's signals are the program's own
    else:
        program.write_text(programs.source(scenario, markers, directory / "program.log"))
        shot = ["--signal", scenario.signal, "--target", scenario.target]
    command = [str(GSUP), "run", "--json", "-q", "--grace", GRACE, "--python", scenario.python,
               *shot, *scenario.timing, str(program)]
    scenario_id = f"{run_id}-{scenario.number}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSUP_")}
    env.update(GSUP_HOME=str(directory / "home"), STRESS_RUN=run_id, STRESS_SCENARIO=scenario_id, NO_COLOR="1")
    result = Result(scenario, directory, command)
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=directory, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as err:
        code, stdout, stderr = -1, _text(err.stdout), _text(err.stderr)
        result.findings.append(checks.Finding("crash", "hang", f"gsup still running after {TIMEOUT:g}s"))
    result.seconds = time.monotonic() - started
    _check_leftovers(result, scenario_id)
    (directory / "gsup.stdout").write_text(stdout)
    (directory / "gsup.stderr").write_text(stderr)
    report, findings, reason = checks.judge_exit(code, stdout, stderr)
    result.findings += findings
    log = directory / "program.log"
    result.findings += checks.probe_lines(log.read_text(errors="replace") if log.exists() else "", stderr)
    if isinstance(scenario, storm.Storm):
        result.findings += storm.check(scenario, report, markers) if report is not None else []
        return result
    if reason:
        result.notes.append(checks.Finding("note", f"exit 2 ({reason.strip(' :')}...)", _error_line(stderr)))
        result.findings += checks.check_no_target(scenario, report) if report is not None else []
    if report is not None:
        outcome = checks.compare(scenario, report, markers)
        result.findings += outcome.findings
        result.notes += outcome.notes
    return result


def _error_line(stderr: str) -> str:
    return next(iter(error_lines(stderr)), "")


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def _check_leftovers(result: Result, scenario_id: str) -> None:
    left = carrying("STRESS_SCENARIO", scenario_id)
    for proc in left:
        try:
            what = f"pid {proc.pid} {' '.join(proc.cmdline())[:120]}"
        except psutil.Error:
            what = f"pid {proc.pid}"
        result.findings.append(checks.Finding("leftover", "alive", f"{what} still running after gsup exited"))
    end_processes(left)


def again(seed: int, flags: str, numbers: list[int]) -> str:
    """The one command that runs these scenarios again, as they ran: ``flags`` are the options that
    choose the scenarios (``--storm``, ``--pythons``: the interpreters are part of the plan)."""
    only = "".join(f" --only {n}" for n in numbers)
    return f"{BIN / 'python'} {SCRIPT}{flags} --seed {seed}{only}"


def print_result(result: Result, seed: int, verbose: bool, flags: str = "") -> None:
    """``flags``: the options that choose the scenarios (``--storm``, ``--pythons``), for the replay line."""
    scenario = result.scenario
    shown = result.findings + (result.notes if verbose else [])
    if not shown:
        return
    what = f" in a storm of {scenario.describe()}" if isinstance(scenario, storm.Storm) else ""
    print(f"stress: scenario {scenario.number} (seed {seed}): {len(result.findings)} discrepancies{what}")
    for finding in shown:
        print(f"  {finding.category} [{finding.kind}] {finding.detail}")
    print(f"  program: {result.directory / 'program.py'}")
    print(f"  command: cd {result.directory} && GSUP_HOME=home {shlex.join(result.command)}")
    print(f"  again:   {again(seed, flags, [scenario.number])}")
    sys.stdout.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenarios", type=int, default=200, help="how many scenarios (default 200)")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run at once (default 2)")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default: random)")
    parser.add_argument("--only", type=int, action="append", default=[], help="run only scenario N (repeatable)")
    parser.add_argument("--pythons", action="store_true", help="also pyenv's Python 3.9+ as targets, at random")
    parser.add_argument("--storm", action="store_true", help="fork storms under signal storms instead (storm.py)")
    parser.add_argument("--verbose", action="store_true", help="also show each legitimate difference")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's directory, not only failures")
    parser.add_argument("--dir", type=Path, default=None, help="where scenarios run (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    _no_core_dumps()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(2), "big")
    base = args.dir or Path(tempfile.gettempdir()) / f"gsup-stress-{seed}"
    base.mkdir(parents=True, exist_ok=True)
    numbers = args.only or list(range(1, args.scenarios + 1))
    targets = pythons(args.pythons)
    run_id = uuid.uuid4().hex
    flags = " --storm" * args.storm + " --pythons" * args.pythons  # they choose the scenarios: replays keep them
    print(f"stress: seed {seed}, {len(numbers)} scenarios on {len(targets)} interpreter(s), in {base}", flush=True)
    started = time.monotonic()
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        make = storm.make if args.storm else plans.make
        futures = [pool.submit(run_one, make(seed, n, targets), base, run_id) for n in numbers]
        for future in futures:
            result = future.result()
            results.append(result)
            print_result(result, seed, args.verbose, flags)
            if not result.findings and not args.keep:
                shutil.rmtree(result.directory, ignore_errors=True)
    stray = carrying("STRESS_RUN", run_id)
    end_processes(stray)
    counts = {c: sum(r.count(c) for r in results) for c in CATEGORIES}
    counts["leftover"] += len(stray)
    notes = Counter(n.kind for r in results for n in r.notes)
    kinds = Counter(f"{f.category} [{f.kind}]" for r in results for f in r.findings)
    if kinds:
        print("stress: discrepancies by kind: " + "; ".join(f"{n} {what}" for what, n in sorted(kinds.items())))
    if notes:
        print("stress: legitimate differences, counted apart: "
              + "; ".join(f"{n} {what}" for what, n in sorted(notes.items())))
    elapsed = time.monotonic() - started
    print(f"stress: {len(results)} scenarios, {counts['leftover']} leftovers, {counts['missing']} missing, "
          f"{counts['invented']} invented, {counts['crash']} crashes, {counts['probe']} probe outputs "
          f"(seed {seed}, {elapsed:.0f} s)")
    failed = [r.scenario.number for r in results if r.findings]
    if failed:
        print(f"stress: again: {again(seed, flags, failed)}")
    return 1 if any(counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
