"""``make transparency``: CPython's own test suite as the referee of the probe's invisibility.

Each chosen module of each interpreter's ``test`` package runs twice, plain
(``python -m test``) and under ``gsup run --python X -m test``, in the same
environment (the harness's, without ``PYTHON*`` and ``GSUP_*`` variables, so
``PYTHONUNBUFFERED`` and ``PYTHONDONTWRITEBYTECODE`` of a developer's shell
count on neither side).  Both write ``--junit-xml``; every test case must end
the same way (passed, skipped, failure, error) on both sides.  A module whose
results differ runs again, both sides, and only a difference seen both times
counts (CPython's suite has a few timing-dependent tests).  A difference
matching :data:`ALLOWED` (with its reason) is listed, not counted.

The default set (:data:`SUBSET`) fits a few minutes on two cores for five
interpreters; ``--full`` (``make transparency FULL=1``) runs every module of
it whole, and :data:`FULL_EXTRA` too.  Exits 1 on any difference not allowed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: tests.helpers

from tests.helpers import pyenv_pythons

GSUP = Path(sys.executable).with_name("gsup")
TIMEOUT = 1200.0  # one side of one module; regrtest's own --timeout ends a hung test first
TEST_TIMEOUT = "300"

# module -> --match patterns (none: the whole module), chosen for what the probe touches
# (atexit, signals, fork/exec/wait, threads' exit, fds, site, sys, logging's shutdown) and
# for time (with SLOW left out): about 45 s per interpreter and side on an idle core.
SUBSET: dict[str, tuple[str, ...]] = {
    "test_atexit": (),
    "test_signal": (),
    "test_faulthandler": (),
    "test_site": (),
    "test_sys": (),
    "test_logging": (),
    "test.test_asyncio.test_unix_events": (),
    "test.test_asyncio.test_runners": (),
    "test_threading": ("*ThreadTests*", "*ThreadJoinOnShutdown*", "*SubinterpThreadingTests*", "*AtexitTests*",
                       "*MiscTestCase*", "*InterruptMainTests*"),
    "test_subprocess": ("*POSIXProcessTestCase*", "*RunFuncTestCase*", "*ContextManagerTests*"),
    "test_os": ("*ForkTests*", "*PidTests*", "*ExecTests*", "*KillTests*", "*FDInheritanceTests*",
                "*TestInvalidFD*", "*PosixUidGidTests*", "*EnvironTests*"),
    "test_inspect": ("*test_os_module_has_signatures*", "*TestSignatureObject*", "*TestSignatureDefinitions*"),
}

# module -> --ignore patterns: the slowest cases (timeouts, races that sleep), left to --full
SLOW: dict[str, tuple[str, ...]] = {
    "test_signal": ("*SiginterruptTest*", "*ItimerTest*"),
    "test_logging": ("*test_race", "*test_listen*", "*test_noserver", "*TimedRotatingFileHandlerTest*"),
    "test_faulthandler": ("*later_twice", "*later_fd", "*later_cancel", "*later_file", "*later_repeat"),
    "test_subprocess": ("*test_check_output_timeout", "*test_communicate_repeated_call_after_stdout_close"),
}

# also, whole, under --full
FULL_EXTRA = ("test_concurrent_futures", "test_multiprocessing_forkserver", "test_multiprocessing_spawn",
              "test_pty", "test_popen", "test_posix", "test_thread", "test_cmd_line", "test_cmd_line_script",
              "test_threadsignals", "test_pickle", "test_pydoc", "test_asyncio")

# (test id glob, minors it applies to or () for all): why a real program cannot notice.
# Only what the probe cannot avoid belongs here; everything else is a bug to fix.
ALLOWED: dict[tuple[str, tuple[int, ...]], str] = {
}

OUTCOMES = ("passed", "skipped", "failure", "error")


@dataclass
class Side:
    """One run of one module on one interpreter: plain or under gsup."""

    python: str
    version: str
    module: str
    under_gsup: bool
    directory: Path
    code: int = 0
    seconds: float = 0.0
    cases: dict[str, tuple[str, str]] = field(default_factory=dict)  # test id -> (outcome, last message line)
    totals: str = ""  # the suite's own counts: what a nameless <testcase/> (3.13, a subtest's error) leaves


@dataclass
class Difference:
    version: str
    module: str
    test: str
    plain: tuple[str, str]
    gsup: tuple[str, str]
    allowed: str | None = None

    def line(self) -> str:
        why = f"  [allowed: {self.allowed}]" if self.allowed else ""
        detail = self.gsup[1] or self.plain[1]
        return (f"  {self.version} {self.test}: plain {self.plain[0]}, under gsup {self.gsup[0]}"
                f"{' — ' + detail if detail else ''}{why}")


def base_env(home: Path) -> dict[str, str]:
    """The environment of both sides: the harness's, without Python's and gsup's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GSUP_", "COVERAGE_"))}
    env.update(GSUP_HOME=str(home), NO_COLOR="1")
    return env


def run_side(side: Side, patterns: tuple[str, ...], full: bool, deep: bool) -> Side:
    side.directory.mkdir(parents=True, exist_ok=True)
    xml = side.directory / "results.xml"
    xml.unlink(missing_ok=True)
    regrtest = ["-m", "test", "--timeout", TEST_TIMEOUT, "--junit-xml", str(xml)]
    for pattern in () if full else patterns:
        regrtest += ["-m", pattern]
    for pattern in () if full else SLOW.get(side.module, ()):
        regrtest += ["-i", pattern]
    regrtest.append(side.module)
    gsup = [str(GSUP), "run", "-q", "--grace", "5s", *(["--deep"] if deep else []), "--python", side.python]
    command = [*gsup, *regrtest] if side.under_gsup else [side.python, *regrtest]
    started = time.monotonic()
    with open(side.directory / "output.log", "wb") as log:
        try:
            side.code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=base_env(side.directory / "gsup-home"), cwd=side.directory,
                                       timeout=TIMEOUT, check=False).returncode
        except subprocess.TimeoutExpired:
            side.code = -1
    side.seconds = time.monotonic() - started
    side.cases, side.totals = read_junit(xml)
    return side


def read_junit(path: Path) -> tuple[dict[str, tuple[str, str]], str]:
    """test id -> (outcome, the last line of its message) from regrtest's ``--junit-xml``, and
    the suites' error and failure counts (3.13.0 writes a subtest's error as an empty
    ``<testcase />``, and the test it belongs to is then absent: the counts still show it)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}, ""
    suites = [*root.iter("testsuite")]
    totals = " ".join(f"{what}={sum(int(x.get(what) or 0) for x in suites)}" for what in ("errors", "failures"))
    cases = {}
    for case in (c for c in root.iter("testcase") if c.get("name")):
        outcome, message = "passed", ""
        for tag in ("error", "failure", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = tag
                text = (found.text or found.get("message") or "").strip()
                message = text.splitlines()[-1][:200] if text else ""
        cases[str(case.get("name"))] = (outcome, message)
    return cases, totals


def allowed_because(test: str, minor: int) -> str | None:
    for (pattern, minors), why in ALLOWED.items():
        if fnmatch.fnmatchcase(test, pattern) and (not minors or minor in minors):
            return why
    return None


def compare(plain: Side, probed: Side) -> list[Difference]:
    minor = int(plain.version.split(".")[1])
    found = []
    if not plain.cases or not probed.cases:
        missing = "no results" if not plain.cases else ""
        found.append(Difference(plain.version, plain.module, f"{plain.module} (whole module)",
                                (f"exit {plain.code}", missing), (f"exit {probed.code}",
                                                                   "" if probed.cases else "no results")))
        return [] if plain.cases == probed.cases and plain.code == probed.code else found
    if plain.totals != probed.totals:
        found.append(Difference(plain.version, plain.module, f"{plain.module} (suite counts)", (plain.totals, ""),
                                (probed.totals, ""), allowed_because(f"{plain.module} (suite counts)", minor)))
    for test in sorted(set(plain.cases) | set(probed.cases)):
        mine, theirs = plain.cases.get(test, ("absent", "")), probed.cases.get(test, ("absent", ""))
        if mine[0] != theirs[0]:
            found.append(Difference(plain.version, plain.module, test, mine, theirs, allowed_because(test, minor)))
    return found


def run_module(python: str, version: str, module: str, base: Path, full: bool, retries: int,
               deep: bool) -> list[Difference]:
    """Both sides of one module; again while they differ, keeping what differed every time."""
    patterns = SUBSET.get(module, ())
    persistent: dict[str, Difference] | None = None
    for attempt in range(1 + retries):
        sides = [run_side(Side(python, version, module, gsup, base / version / module / f"{name}-{attempt}"),
                          patterns, full, deep)
                 for gsup, name in ((False, "plain"), (True, "gsup"))]
        found = {d.test: d for d in compare(*sides)}
        persistent = found if persistent is None else {t: d for t, d in found.items() if t in persistent}
        cases = len(sides[0].cases)
        print(f"transparency: {version} {module}: {cases} cases, {len(found)} differ "
              f"(plain {sides[0].seconds:.0f}s exit {sides[0].code}, gsup {sides[1].seconds:.0f}s exit "
              f"{sides[1].code}){' — again' if found and attempt < retries else ''}", flush=True)
        if not persistent:
            break
    return list((persistent or {}).values())


def interpreters(only: list[str]) -> list[tuple[str, str]]:
    found = [(".".join(map(str, version)), str(exe)) for _, (version, exe) in sorted(pyenv_pythons().items())]
    return [(v, exe) for v, exe in found if not only or any(v == o or v.startswith(o + ".") for o in only)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="every module whole, and the extra ones")
    parser.add_argument("--python", action="append", default=[], help="only these versions (3.12, 3.9.18...)")
    parser.add_argument("--module", action="append", default=[], help="only these test modules")
    parser.add_argument("--jobs", type=int, default=2, help="modules run at once (default 2)")
    parser.add_argument("--deep", action="store_true", help="run the gsup side with --deep (-I children probed too)")
    parser.add_argument("--retries", type=int, default=1, help="runs again of a module that differs (default 1)")
    parser.add_argument("--dir", type=Path, default=None, help="where runs happen (default: a temp dir, kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write every difference to this file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    modules = args.module or [*SUBSET, *(FULL_EXTRA if args.full else ())]
    targets = interpreters(args.python)
    if not targets:
        print("transparency: no pyenv CPython 3.9-3.13 found", file=sys.stderr)
        return 2
    base = args.dir or Path(tempfile.mkdtemp(prefix="gsup-transparency-"))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_module, exe, version, module, base, args.full, args.retries, args.deep)
                   for version, exe in targets for module in modules]
        differences = [d for future in futures for d in future.result()]
    counted = [d for d in differences if d.allowed is None]
    for difference in differences:
        print(difference.line())
    if args.json:
        args.json.write_text(json.dumps([d.__dict__ for d in differences], indent=2) + "\n")
    print(f"transparency: {len(targets)} interpreters x {len(modules)} modules, {len(counted)} differences, "
          f"{len(differences) - len(counted)} allowed ({time.monotonic() - started:.0f} s; runs in {base})")
    if not counted:
        shutil.rmtree(base, ignore_errors=True) if args.dir is None else None
    return 1 if counted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
