"""Shared test helpers: run gsup and read its JSON, write programs, wait on files with deadlines.

Plain functions and classes, imported as ``from tests.helpers import ...``; the
fixtures that hand them to a test (``gsup``, ``program``) are in conftest.py.
Every wait has a deadline and fails the test with what it waited for; none is
a bare sleep.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from supervisor.pytest_plugin import processes_where

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROBE_DIR = ROOT / "supervisor" / "_probe"
PYTHON = sys.executable  # the venv's interpreter: it has Flask
_SCRIPT = Path(sys.executable).with_name("gsup")
GSUP = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "supervisor"]
DEADLINE = 30.0

Program = Callable[..., Path]  # the ``program`` fixture: (source, name="prog.py") -> its path


# -- waiting --------------------------------------------------------------------


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


def wait_while_running(run: subprocess.Popen[str], look: Callable[[], Any], what: str) -> Any:
    """``wait_until(look)``, failing at once if the background ``gsup`` ends first:
    a run that died early is reported with its output, not as a 30 s timeout."""

    def checked() -> Any:
        if run.poll() is not None:
            raise AssertionError(f"gsup run ended while waiting for {what}: {run.communicate()}")
        return look()

    return wait_until(checked, what=what)


def pid_files(directory: Path) -> dict[str, int]:
    """``what -> pid`` for each ``<what>-<pid>`` file a program left in ``directory``."""
    named = (path.name.partition("-") for path in directory.iterdir())
    return {what: int(pid) for what, _, pid in named if pid}


def wait_for_pids(directory: Path, names: tuple[str, ...], what: str) -> dict[str, int]:
    """``pid_files(directory)`` once every one of ``names`` has written its file."""

    def complete() -> dict[str, int] | None:
        found = pid_files(directory)
        return found if all(name in found for name in names) else None

    return dict(wait_until(complete, what=what))


# -- the network ----------------------------------------------------------------


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


# -- running gsup ---------------------------------------------------------------


@dataclass
class Result:
    """A finished ``gsup``: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        """The JSON document gsup printed (``--json``): a report or a matrix."""
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

    def finish(self, proc: subprocess.Popen[str], timeout: float = 60) -> Result:
        """A ``start``-ed gsup once it has ended, its stdout checked as ``run`` checks it."""
        stdout, stderr = proc.communicate(timeout=timeout)
        check_output(stdout)
        return Result(proc.returncode, stdout, stderr)

    def finished_report(self, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
        """The complete report of a background ``gsup run --json`` that must succeed."""
        result = self.finish(proc, timeout)
        assert result.returncode == 0, result.stderr
        report = result.report
        assert report["complete"], report["incomplete"]
        return report

    def leftovers(self) -> list[psutil.Process]:
        """Live processes started under this home: gsup itself or its program."""
        marker = str(self.home)
        return processes_where(lambda environ: environ.get("GSUP_HOME") == marker
                               or environ.get("GSUP_EVENTS", "").startswith(marker))


def error_lines(stderr: str) -> list[str]:
    """gsup's ``gsup: error: ...`` lines."""
    return [line for line in stderr.splitlines() if line.startswith("gsup: error:")]


# -- writing programs -----------------------------------------------------------


def write_program(path: Path, source: str) -> Path:
    """Write a program from a dedented source; returns its path."""
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def ready_then_sleep(ready: Path) -> str:
    """A program that creates ``ready`` once it runs, then sleeps until it is signalled."""
    return f"import time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)\n"


def lose_session_mid_run(gsup: Gsup, program: Program, tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    """Start a ``gsup run --json``, then delete its session directory under it (a real fault, no mocks)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    path = program(f"""
        import os, time
        open({str(ready)!r}, "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
    """)
    proc = gsup.start("run", "--json", "--python", PYTHON, *options, str(path))
    wait_until(ready.exists, what="the program to start")
    for session_dir in gsup.home.iterdir():
        shutil.rmtree(session_dir)
    go.touch()
    return proc


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]  # run a command as a normal user


def nobody_python() -> str:
    """The system python3, which ``nobody`` may run (root's venv is out of its reach); skips the
    test where the machine cannot make a normal user of it (not root, no setpriv)."""
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if os.geteuid() != 0 or python is None or not shutil.which("setpriv"):
        pytest.skip("needs root, setpriv and a system python3 to become nobody")
    return python


@contextmanager
def nobody_workdir() -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory ``nobody`` may write, and the environment in which it runs gsup from this
    checkout with the venv's packages (``python -m supervisor``).  pytest's tmp_path is root's alone."""
    site = Path(sys.executable).parents[1] / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    with tempfile.TemporaryDirectory(dir="/tmp") as where:
        shared = Path(where)
        shared.chmod(0o777)
        yield shared, {"PATH": "/usr/bin:/bin", "GSUP_HOME": str(shared / "home"), "HOME": where, "NO_COLOR": "1",
                       "PYTHONPATH": f"{ROOT}:{site / 'site-packages'}"}


# A service that notes, in the file named by its first argument, what ran: its atexit handler
# and, when its second argument is "handler", a SIGTERM handler that exits (container tests).
MARKED_SERVICE = """
    import atexit, signal, sys, time
    marks = sys.argv[1]
    def mark(what):
        with open(marks, "a") as f:
            f.write(what + "\\n")
    atexit.register(mark, "atexit")
    if sys.argv[2] == "handler":
        def on_term(signum, frame):
            mark("handler")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
    time.sleep(60)
"""


# A parent and its forked child, each with an atexit handler, that end quickly and
# differently under every scenario: the child blocks reading a pipe whose only
# writer is the parent, so it leaves (running its handler) once the parent is gone.
FORKED = """
    import atexit, os, sys

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(writer)

        def child_cleanup():
            pass

        atexit.register(child_cleanup)
        os.read(reader, 1)  # returns at EOF: once the parent has gone
        sys.exit(0)
    os.close(reader)

    def parent_cleanup():
        pass

    atexit.register(parent_cleanup)
    os.waitpid(pid, 0)
"""


# -- reading reports ------------------------------------------------------------


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


def gunicorn_hooks(proc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(hook, status, file of the function that ran) for each gunicorn hook call, in order."""
    calls = sorted((w for w in proc["watched"] if w["module"] == "gunicorn"), key=lambda w: w["order"])
    return [(w["name"], w["status"], Path(w["where"].rpartition(":")[0]).name) for w in calls]


_ADDRESS = re.compile(r"0x[0-9a-f]+")


def without_addresses(text: str) -> str:
    """``text`` with each ``0x...`` address as ``0x?``: the only part of a traceback that differs run to run."""
    return _ADDRESS.sub("0x?", text)


# -- the shipped JSON Schemas ---------------------------------------------------

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


def lone_surrogates(document: Any) -> list[str]:
    """Every string (key or value) of a parsed JSON document that is not valid Unicode."""
    if isinstance(document, dict):
        return [bad for key, value in document.items() for bad in lone_surrogates(key) + lone_surrogates(value)]
    if isinstance(document, list):
        return [bad for item in document for bad in lone_surrogates(item)]
    if isinstance(document, str):
        try:
            document.encode("utf-8")
        except UnicodeEncodeError:
            return [document]
    return []


def check_saved(path: Path, home: Path) -> None:
    """A session's report.json must follow the schema; one cut short (gsup killed while writing it) is skipped."""
    try:
        document = json.loads(path.read_text())
    except ValueError:
        return
    check_schema(document, str(path.relative_to(home)))


def check_schema(document: Any, origin: str) -> None:
    """Fail the test if a gsup document does not follow its shipped JSON Schema, or
    holds a lone surrogate, which strict JSON parsers reject (supervisor/strictjson.py)."""
    bad = lone_surrogates(document)
    if bad:
        pytest.fail(f"{origin} holds lone surrogates, which strict JSON parsers reject: {bad[:5]}", pytrace=False)
    errors = schema_errors(document)
    if errors:
        pytest.fail(f"{origin} does not follow {document['schema']}:\n  " + "\n  ".join(errors[:10]), pytrace=False)


# -- interpreters: each supported CPython as the program's ---------------------

PYENV_MINORS = (9, 10, 11, 12, 13)  # the CPython 3.x a program under gsup may run on
REQUIRE_ALL_PYTHONS = "GSUP_REQUIRE_ALL_PYTHONS"  # .ci/run sets it to 1: a missing interpreter fails
PYTHON_TIMEOUT = 20  # for one program run; they take well under a second


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


def _interpreters() -> list[Any]:
    """One ``pytest.param`` per 3.9-3.13 in pyenv (newest patch; a missing one skips), plus ``sys.executable``."""
    found = pyenv_pythons()
    params = []
    for minor in PYENV_MINORS:
        if minor in found:
            version, exe = found[minor]
            params.append(pytest.param(str(exe), id=".".join(map(str, version))))
        else:
            skip = pytest.mark.skip(reason=f"no CPython 3.{minor} in {pyenv_versions_dir()}")
            params.append(pytest.param(None, id=f"3.{minor}-missing", marks=skip))
    here = ".".join(map(str, sys.version_info[:3]))
    params.append(pytest.param(sys.executable, id=f"running-{here}"))
    return params


INTERPRETERS = _interpreters()  # parametrize a test with ``python`` over these


@functools.cache
def minor_of(python: str) -> tuple[int, int]:
    """(major, minor) of an interpreter, asked once."""
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=PYTHON_TIMEOUT, check=True).stdout
    major, minor = out.split()
    return int(major), int(minor)


# -- the real servers on each CPython: a venv of the servers' pins per interpreter ----------

SERVER_ENVS = ROOT / ".venv-servers"  # 3.X/: built by make server-envs (tests/atlas/envs.py)
SERVER_MANIFEST = "pins.json"  # written last in each: what it holds, and which pins do not fit that Python


@dataclass(frozen=True)
class ServerEnv:
    """One CPython's venv of the servers' pins; gsup is not in it (it launches the venv's scripts)."""

    version: str  # "3.12.1"
    bin: Path
    installed: dict[str, str]  # package -> version
    unsupported: dict[str, str]  # package -> why it is not installed ("uvicorn==0.55.0 requires Python >=3.10")

    @property
    def python(self) -> str:
        return str(self.bin / "python")


def server_envs() -> dict[int, ServerEnv]:
    """3.<minor> -> its venv, for each one complete (its manifest is there)."""
    found = {}
    for minor in PYENV_MINORS:
        venv = SERVER_ENVS / f"3.{minor}"
        try:
            record = json.loads((venv / SERVER_MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        found[minor] = ServerEnv(record["python"], venv / "bin", record["installed"], record["unsupported"])
    return found


def server_bin(minor: int, *packages: str) -> Path:
    """The ``bin`` directory holding ``packages`` on CPython 3.<minor>: the venv's own when it is
    that Python (same pins), else its server venv.  A package that does not support that Python
    skips the test; a venv missing skips it too, or fails it under ``GSUP_REQUIRE_ALL_PYTHONS=1``."""
    if sys.version_info[:2] == (3, minor):
        return Path(PYTHON).parent
    env = server_envs().get(minor)
    if env is None:
        reason = f"no server venv for CPython 3.{minor} in {SERVER_ENVS} (make server-envs)"
        if os.environ.get(REQUIRE_ALL_PYTHONS) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ALL_PYTHONS}=1 requires every one", pytrace=False)
        pytest.skip(reason)
    for package in packages:
        if package in env.unsupported:
            pytest.skip(env.unsupported[package])
    return env.bin


SERVER_MINORS = [pytest.param(minor, id=f"3.{minor}") for minor in PYENV_MINORS]  # with server_bin in the test


# -- the probe alone: an interpreter started with the environment gsup gives a program ----


def plain_env() -> dict[str, str]:
    """The environment without gsup's probe: the baseline a run under gsup must match."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GSUP_", "PYTHON"))}


def base_env() -> dict[str, str]:
    """The test's environment without anything that could load or configure a probe."""
    env = {k: v for k, v in plain_env().items() if k != "COVERAGE_PROCESS_START"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the probe directory is shared with other runs
    return env


def probe_env(events: Path | str, pythonpath: str | None = None) -> dict[str, str]:
    """``base_env`` with the probe loaded and writing its events to ``events``."""
    env = base_env()
    env["PYTHONPATH"] = pythonpath if pythonpath is not None else str(PROBE_DIR)
    env["GSUP_EVENTS"] = str(events)
    return env


@dataclass
class PythonRun:
    """An ended interpreter, its output as bytes."""

    returncode: int
    stdout: bytes
    stderr: bytes

    def show(self) -> str:
        return (f"returncode={self.returncode}\n--- stdout\n{self.stdout.decode(errors='replace')}"
                f"--- stderr\n{self.stderr.decode(errors='replace')}")


def start_python(python: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([python, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_python(proc: subprocess.Popen[bytes]) -> PythonRun:
    """``proc`` once ended; one still running after ``PYTHON_TIMEOUT`` is killed and fails the test."""
    try:
        out, err = proc.communicate(timeout=PYTHON_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not end in {PYTHON_TIMEOUT}s:\n{out!r}\n{err!r}") from None
    return PythonRun(proc.returncode, out, err)


def run_python(python: str, args: list[str], env: dict[str, str], cwd: Path) -> PythonRun:
    return finish_python(start_python(python, args, env, cwd))


_RAW_ADDRESS = re.compile(rb"0x[0-9a-fA-F]+")


def normalised(result: PythonRun) -> tuple[int, bytes, bytes]:
    """What must not change with the probe: exit status and output, ``0x...`` addresses aside."""
    return (result.returncode, _RAW_ADDRESS.sub(b"0x?", result.stdout), _RAW_ADDRESS.sub(b"0x?", result.stderr))
