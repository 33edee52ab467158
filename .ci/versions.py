"""``make versions``: gsup itself installs and runs on every supported CPython.

For each CPython 3.9-3.13 under pyenv (the interpreters the tests find): a
throwaway venv in ``.venv-versions/<version>``, a non-editable ``pip install``
of the source, then a smoke run: ``gsup --version``, and ``gsup run --json
--signal TERM --target child`` on a program with a forked child, whose report
must say what CPython does.  One line per version; exit 1 if any failed.

The test suite runs gsup on the venv's Python only (with each version as the
*program's* interpreter, tests/test_versions.py); this is where gsup's own code
meets 3.9.  Each install builds from a private copy of the source, so the
versions can install side by side without sharing a ``build/`` directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import PYENV_MINORS, REQUIRE_ALL_PYTHONS, pyenv_pythons, pyenv_versions_dir  # noqa: E402

VENVS = ROOT / ".venv-versions"
JOBS = 2  # the machine has two cores; pip is busy for most of an install
INSTALL_TIMEOUT = 600
SMOKE_TIMEOUT = 60

SMOKE = """
    import atexit, os, time

    def parent_handler():
        pass

    def child_handler():
        pass

    atexit.register(parent_handler)
    pid = os.fork()
    if pid == 0:
        atexit.register(child_handler)
        time.sleep(60)  # gsup's SIGTERM, which has no Python handler, ends it here
        os._exit(1)
    os.waitpid(pid, 0)
"""


class Failed(Exception):
    """One version's install or smoke run went wrong; the message says how."""


def clean_env(home: Path) -> dict[str, str]:
    """No PYTHON* or GSUP_* from the caller: what is measured is the fresh venv alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GSUP_", "VIRTUAL_ENV"))}
    env.update(GSUP_HOME=str(home), NO_COLOR="1")
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    """stdout of ``argv``; a failure carries the end of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{Path(argv[0]).name} {' '.join(argv[1:3])}: no end after {timeout}s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise Failed(f"{Path(argv[0]).name} {' '.join(argv[1:3])} exited {done.returncode}:\n{tail}")
    return done.stdout


def install(python: Path, venv: Path) -> None:
    """A fresh venv and ``pip install SOURCE`` (not editable) from a copy of the tree."""
    shutil.rmtree(venv, ignore_errors=True)
    env = clean_env(venv / "home")
    run([str(python), "-m", "venv", str(venv)], env, ROOT, INSTALL_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="gsup-src-") as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "supervisor", src / "supervisor", ignore=shutil.ignore_patterns("__pycache__"))
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(src)], env, venv, INSTALL_TIMEOUT)


def smoke(venv: Path, version: str) -> str:
    """``gsup --version`` and one signalled run; the report checked.  Returns what it showed."""
    env = clean_env(venv / "home")
    gsup = str(venv / "bin" / "gsup")
    said = run([gsup, "--version"], env, venv, SMOKE_TIMEOUT).strip()
    if not said.startswith("gsup, version "):
        raise Failed(f"gsup --version said {said!r}")
    program = venv / "smoke.py"
    program.write_text(textwrap.dedent(SMOKE).lstrip())
    out = run([gsup, "run", "-q", "--json", "--python", str(venv / "bin" / "python"),
               "--signal", "TERM", "--target", "child", str(program)], env, venv, SMOKE_TIMEOUT)
    check_report(json.loads(out), version)
    return said


def check_report(report: dict[str, Any], version: str) -> None:
    """The parent exits 0 and runs its handler; the forked child dies by SIGTERM and runs none."""
    def fail(what: str) -> Failed:
        return Failed(f"report: {what}\n{json.dumps(report, indent=1)[:3000]}")

    if report.get("schema") != "gsup.report/1" or report.get("complete") is not True or report.get("leftovers"):
        raise fail("not a complete gsup.report/1 without leftovers")
    parents = [p for p in report["processes"] if p["role"] == "parent"]
    children = [p for p in report["processes"] if p["role"] == "child" and p["forked"]]
    if len(parents) != 1 or len(children) != 1:
        raise fail("expected one parent and one forked child")
    parent, child = parents[0], children[0]
    ends = [(p["python"], p["end"]["how"], p["end"]["code"], p["end"]["signal"],
             [(h["name"], h["status"]) for h in p["handlers"]]) for p in (parent, child)]
    if ends != [(version, "exited", 0, None, [("parent_handler", "ran")]),
                (version, "signaled", None, "SIGTERM", [("parent_handler", "not-run"), ("child_handler", "not-run")])]:
        raise fail(f"endings {ends}")
    actions = [(a["signal"], a["target"], a["pids"], a["by"]) for a in report["actions"]]
    if actions != [("SIGTERM", "child", [child["pid"]], "gsup")]:
        raise fail(f"actions {actions}")


def one(minor: int, found: dict[int, tuple[tuple[int, ...], Path]]) -> tuple[bool, str]:
    """(passed, its line) for CPython 3.<minor>."""
    if minor not in found:
        required = os.environ.get(REQUIRE_ALL_PYTHONS) == "1"
        status = "FAILED" if required else "skipped"
        return not required, f"3.{minor:<6} {status}  not installed under {pyenv_versions_dir()}"
    version = ".".join(map(str, found[minor][0]))
    venv = VENVS / version
    started = time.monotonic()
    try:
        install(found[minor][1], venv)
        installed = time.monotonic()
        said = smoke(venv, version)
    except Failed as exc:
        return False, f"{version:<8} FAILED  {exc}"
    done = time.monotonic()
    return True, (f"{version:<8} ok      {said}; install {installed - started:.1f}s, smoke {done - installed:.1f}s: "
                  "parent exited 0 and ran its handler, forked child killed by SIGTERM ran none")


def main() -> int:
    found = pyenv_pythons()
    VENVS.mkdir(exist_ok=True)
    passed = True
    with ThreadPoolExecutor(JOBS) as pool:
        for ok, line in pool.map(lambda minor: one(minor, found), PYENV_MINORS):  # in order, as each ends
            print(line, flush=True)
            passed = passed and ok
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
