"""Test harness: run the real ``gsup`` command on real programs.

Every test gets its own session home (``GSUP_HOME``), and after it the harness
checks that no process that carried that home's probe environment is still
alive: a leftover fails the test (and is killed, so one failure does not
cascade).  Synchronisation is on files and ports with deadlines, never sleeps.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PYTHON = sys.executable  # the venv's interpreter: it has Flask
_SCRIPT = Path(sys.executable).with_name("gsup")
GSUP = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "supervisor"]
DEADLINE = 30.0


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout``."""
    end = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str = "/") -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return str(response.read().decode())
    except Exception:
        return None


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))


class Gsup:
    """Runs ``gsup`` with an isolated session home and a known environment."""

    def __init__(self, home: Path, workdir: Path) -> None:
        self.home = home
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GSUP_")}
        self.env.update(GSUP_HOME=str(home), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
        self.started: list[subprocess.Popen[str]] = []

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            stdin: int | None = subprocess.DEVNULL) -> Result:
        done = subprocess.run([*GSUP, *args], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})}, cwd=self.workdir, stdin=stdin, check=False)
        check_output(done.stdout)
        return Result(done.returncode, done.stdout, done.stderr)

    def report(self, *args: str, **kwargs: Any) -> dict[str, Any]:
        """``gsup run --json ARGS`` that must succeed; its report."""
        result = self.run("run", "--json", "--python", PYTHON, *args, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.report

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen([*GSUP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env, **(env or {})}, cwd=self.workdir, stdin=subprocess.DEVNULL)
        self.started.append(proc)
        return proc

    def probe_env(self) -> dict[str, str]:
        return dict(self.env)

    def leftovers(self) -> list[psutil.Process]:
        """Live processes started under this home: gsup itself or its program."""
        found = []
        marker = str(self.home)
        for proc in psutil.process_iter():
            try:
                environ = proc.environ()
            except psutil.Error:
                continue
            if environ.get("GSUP_HOME") == marker or environ.get("GSUP_EVENTS", "").startswith(marker):
                found.append(proc)
        return found


@pytest.fixture
def gsup(tmp_path: Path) -> Iterator[Gsup]:
    home = tmp_path / "gsup-home"
    runner = Gsup(home, tmp_path)
    yield runner
    for proc in runner.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = runner.leftovers()
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    assert not left, f"processes left running: {[(p.pid, p.info if hasattr(p, 'info') else '') for p in left]}"
    for saved in sorted(home.glob("*/report.json")):  # also covers runs whose stdout the test read itself
        check_saved(saved, home)


@pytest.fixture
def program(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a program from a dedented source; returns its path."""

    def write(source: str, name: str = "prog.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    return write


# -- reading reports ----------------------------------------------------------

SCHEMAS = {"gsup.report/1": "report", "gsup.matrix/1": "matrix"}  # a document's "schema" -> shipped schema


@functools.cache
def schema_validator(name: str) -> Any:
    """The shipped schema ``name``, compiled once per test session: checking every report stays cheap.
    The registry lets ``matrix-1.json`` reach ``report-1.json`` by its ``$ref``."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    from supervisor import schema

    registry: Registry[Any] = Registry().with_resources(
        (file, Resource.from_contents(schema.load(each))) for each, file in schema.FILES.items())
    return Draft202012Validator(schema.load(name), registry=registry)


def schema_errors(document: Any) -> list[str]:
    """``/processes/0/end/how: ...`` for each way ``document`` breaks the schema its ``schema`` field names."""
    if not isinstance(document, dict) or document.get("schema") not in SCHEMAS:
        return []
    validator = schema_validator(SCHEMAS[document["schema"]])
    found = []
    for error in sorted(validator.iter_errors(document), key=lambda e: e.json_path):
        leaves = _innermost(error)
        reasons = " or ".join(leaf.message[:200] for leaf in leaves)
        found.append(f"/{'/'.join(map(str, leaves[0].absolute_path))}: {reasons}")
    return found


def _innermost(error: Any) -> list[Any]:
    """A oneOf/anyOf failure's own reasons, those deepest in the document: ``/ready/after: 0.2 is
    not of type 'null'`` says more than ``/ready: {...} is not valid under any of the given schemas``."""
    if not error.context:
        return [error]
    leaves = [leaf for branch in error.context for leaf in _innermost(branch)]
    deepest = max(len(leaf.absolute_path) for leaf in leaves)
    return [leaf for leaf in leaves if len(leaf.absolute_path) == deepest]


def check_output(stdout: str) -> None:
    """If gsup's stdout is a gsup document (``--json``), it must follow its schema, however the test reads it."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return  # the rich view, the program's own output, or nothing
    check_schema(document, "gsup's stdout")


def check_saved(path: Path, home: Path) -> None:
    """A session's report.json must follow the schema; one cut short (gsup killed while writing it) is skipped."""
    try:
        document = json.loads(path.read_text())
    except ValueError:
        return
    check_schema(document, str(path.relative_to(home)))


def check_schema(document: Any, origin: str) -> None:
    """Fail the test if a gsup document does not follow its shipped JSON Schema."""
    errors = schema_errors(document)
    if errors:
        pytest.fail(f"{origin} does not follow {document['schema']}:\n  " + "\n  ".join(errors[:10]), pytrace=False)


def role(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The one process with that role (fails if there is not exactly one)."""
    found = [p for p in report["processes"] if p["role"] == name]
    assert len(found) == 1, f"expected one {name}, got {[(p['pid'], p['role']) for p in report['processes']]}"
    return found[0]


def statuses(proc: dict[str, Any], module: str = "__main__") -> dict[str, str]:
    """handler name -> status, for the program's own handlers."""
    return {h["name"]: h["status"] for h in proc["handlers"] if h["module"] == module}


def own_fired(proc: dict[str, Any], module: str = "__main__") -> list[str]:
    """The program's own handlers that began, in order (libraries register theirs too)."""
    began = [h for h in proc["handlers"] if h["module"] == module and h["order"] is not None]
    return [h["name"] for h in sorted(began, key=lambda h: h["order"])]


# -- interpreters: each supported CPython as the program's ---------------------

PYENV_MINORS = (9, 10, 11, 12, 13)  # the CPython 3.x a program under gsup may run on
REQUIRE_ALL_PYTHONS = "GSUP_REQUIRE_ALL_PYTHONS"  # .ci/run sets it to 1: a missing interpreter fails


def pyenv_versions_dir() -> Path:
    """Where pyenv keeps its interpreters: ``$PYENV_ROOT/versions``, else ``~/.pyenv/versions``."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    return Path(root) / "versions"


def pyenv_pythons(minors: tuple[int, ...] = PYENV_MINORS) -> dict[int, tuple[tuple[int, ...], Path]]:
    """3.<minor> -> (version, its ``bin/python3``), the newest patch release of each found under pyenv.
    Only plain ``3.X.Y`` directories count (not ``3.13.0t`` or a virtualenv).  Stdlib only: ``make
    versions`` (``.ci/versions.py``) finds the interpreters the tests find."""
    found: dict[int, tuple[tuple[int, ...], Path]] = {}
    versions = pyenv_versions_dir()
    for entry in sorted(versions.iterdir()) if versions.is_dir() else []:
        parts = entry.name.split(".")
        exe = entry / "bin" / "python3"
        if len(parts) != 3 or parts[0] != "3" or not all(p.isdigit() for p in parts) or not exe.exists():
            continue
        version = tuple(int(p) for p in parts)
        if version[1] in minors and (version[1] not in found or version > found[version[1]][0]):
            found[version[1]] = (version, exe)
    return found


def pyenv_python(minor: int) -> tuple[tuple[int, ...], str]:
    """CPython 3.<minor>'s version and interpreter.  When it is missing the test skips, or fails
    under ``GSUP_REQUIRE_ALL_PYTHONS=1``: CI must not pass by skipping what it was meant to check."""
    found = pyenv_pythons((minor,)).get(minor)
    if found is None:
        reason = f"no CPython 3.{minor} under {pyenv_versions_dir()}"
        if os.environ.get(REQUIRE_ALL_PYTHONS) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ALL_PYTHONS}=1 requires every one", pytrace=False)
        pytest.skip(reason)
    return found[0], str(found[1])
