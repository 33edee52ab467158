"""Turn ``SCRIPT``, ``-m MODULE`` or ``-- COMMAND`` into a started process.

The program gets its own process group (so ``--target group`` and a forwarded
Ctrl-C reach all of it and never gsup), default signal dispositions and an
empty signal mask (so an ignored SIGINT inherited from a shell does not change
the experiment), and the probe through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from supervisor.errors import GsupError

# shutil and subprocess are imported where they are used: a run of a script with --python
# PATH needs neither, and together they cost a quarter of Python's start-up before the launch.

PROBE_DIR = str(Path(__file__).resolve().parent / "_probe")


def default_python() -> str:
    """What typing ``python`` would run: the active virtualenv first, then PATH."""
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.access(os.path.join(venv, "bin", "python"), os.X_OK):
        return os.path.join(venv, "bin", "python")
    found = which("python") or which("python3")
    if found is None:
        raise GsupError("no `python` on PATH: pass --python PATH")
    return found


def which(name: str) -> str | None:
    """``shutil.which``; shutil is imported only when a name must be searched on PATH."""
    import shutil

    return shutil.which(name)


def check_python(python: str) -> str:
    resolved = python if "/" in python else which(python)
    if resolved is None or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise GsupError(f"--python {python}: not an executable file")
    return resolved


def script_command(python: str, script: str, args: list[str]) -> list[str]:
    path = Path(script)
    try:
        path.stat()
    except PermissionError:  # a directory on the way that this user may not enter
        raise GsupError(f"{script}: not readable (permission denied)") from None
    except OSError:
        pass  # missing: said below
    if path.is_dir():
        raise GsupError(f"{script}: is a directory, not a Python script")
    if not path.is_file():
        raise GsupError(f"{script}: no such file")
    if not os.access(path, os.R_OK):
        raise GsupError(f"{script}: not readable")
    return [python, script, *args]


def module_command(python: str, module: str, args: list[str]) -> list[str]:
    """``python -m MODULE``, after checking that interpreter can find the module.

    The check runs in the target interpreter, with the program's working
    directory and path, because gsup's own environment may differ from it.  It
    walks the package path without importing anything: ``find_spec`` on a
    dotted name would run the parent packages' ``__init__`` outside gsup.
    """
    import subprocess

    finder = (
        "import sys\n"
        "from importlib.machinery import PathFinder\n"
        "from importlib.util import find_spec\n"
        "parts = sys.argv[1].split('.')\n"
        "spec = find_spec(parts[0])\n"
        "for i in range(1, len(parts)):\n"
        "    where = spec and spec.submodule_search_locations\n"
        "    spec = where and PathFinder.find_spec('.'.join(parts[:i + 1]), list(where))\n"
        "sys.exit(0 if spec else 1)\n"
    )
    try:
        found = subprocess.run(
            [python, "-c", finder, module], capture_output=True, timeout=60, check=False
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = False
    if not found:
        raise GsupError(f"unknown module {module!r} for {python}")
    return [python, "-m", module, *args]


def external_command(command: list[str]) -> list[str]:
    if not command:
        raise GsupError("nothing to run: give SCRIPT, -m MODULE or -- COMMAND")
    program = command[0]
    resolved = program if "/" in program else which(program)
    if resolved is None or not os.path.isfile(resolved):
        raise GsupError(f"{program}: command not found")
    if not os.access(resolved, os.X_OK):
        raise GsupError(f"{program}: not executable")
    return command


def probe_env(base: dict[str, str], events_dir: Path, watch: Sequence[str] = (),
              watch_presets: Sequence[str] = ()) -> dict[str, str]:
    """``base`` plus the probe: its directory first on PYTHONPATH, where to write, what to watch.

    ``GSUP_WATCH`` holds ``MODULE:QUALNAME`` specs and ``GSUP_WATCH_PRESETS``
    preset names, comma-separated; unset means none asked for.
    """
    env = dict(base)
    if watch:
        env["GSUP_WATCH"] = ",".join(watch)
    if watch_presets:
        env["GSUP_WATCH_PRESETS"] = ",".join(watch_presets)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PROBE_DIR + (os.pathsep + existing if existing else "")
    env["GSUP_EVENTS"] = str(events_dir)
    return env


def closed_for_program(closed: frozenset[int], stdout_to_stderr: bool, piped: bool) -> frozenset[int]:
    """The fds the program gets closed: what gsup got closed, where the program's
    stream is gsup's (with ``--json`` its stdout is gsup's stderr; ``--ready-output``
    pipes both through gsup, so they stay open for gsup to read)."""
    program = set(closed) - ({1, 2} if piped else set())
    if stdout_to_stderr and not piped:
        program.discard(1)
        if 2 in closed:
            program.add(1)
    return frozenset(program)


def deep_site_dirs(python: str) -> list[str]:
    """The site-packages directory ``--deep`` overlays for ``python`` (see deep.py):
    the first one that exists, as that interpreter sees it with ``-I`` (a venv's own)."""
    import subprocess

    ask = "import json, site; print(json.dumps(site.getsitepackages()))"
    try:
        found = subprocess.run([python, "-I", "-c", ask], capture_output=True, timeout=60, check=False)
        dirs = [d for d in json.loads(found.stdout) if os.path.isdir(d)]
    except (OSError, subprocess.TimeoutExpired, ValueError, TypeError):
        dirs = []
    if not dirs:
        raise GsupError(f"--deep: {python} has no site-packages directory to overlay")
    return [os.path.realpath(dirs[0])]


GUARDIAN = str(Path(__file__).resolve().with_name("guardian.py"))
# Runs guardian.py (its path, argv[1], stays in its command line) as a module, from its compiled
# bytecode: as a script it would be compiled again on every run.  The directory goes last on
# sys.path, so that none of gsup's modules can shadow the standard library's.
GUARDIAN_LOADER = ("import os, sys; sys.path.append(os.path.dirname(sys.argv.pop(1))); import guardian; "
                   "os._exit(guardian.main(sys.argv[1:]))")
DEEP = str(Path(__file__).resolve().with_name("deep.py"))
GUARDIAN_STATUS_FD = 3  # guardian.py's STATUS_FD; its program output pipes are 4 and 5
GUARDIAN_ENDS_TREE = signal.SIGUSR1  # guardian.py's ON_GSUP_DEATH: end the tree as if gsup had died


@dataclass
class Launched:
    """A started program: its pid, and gsup's guardian in between (see guardian.py)."""

    pid: int
    guardian: int
    statuses: int  # read end of the guardian's status pipe, non-blocking
    output: tuple[int, int] | None  # read ends of the program's stdout and stderr, if piped


def spawn(argv: list[str], env: dict[str, str], stdout_to_stderr: bool, session_dir: Path,
          launched: float, pipe_output: bool = False, closed: frozenset[int] = frozenset(),
          deep: Sequence[str] = (), meanwhile: Callable[[], None] = lambda: None) -> Launched:
    """Start the guardian, which starts ``argv`` in a new process group with
    default signal state; returns once the program runs (or raises GsupError).
    ``closed``: gsup's standard streams that were closed (see :func:`closed_for_program`).
    ``deep``: site-packages directories that deep.py overlays first (``--deep``).
    ``meanwhile``: gsup's own work done while the guardian starts (a Python start-up
    of its own), rather than before or after it; if it raises, the guardian is killed.

    ``posix_spawn`` rather than ``Popen``: gsup is the only reaper of its
    children, and a ``Popen`` object would try to reap its own.
    """
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    output = os.pipe2(os.O_CLOEXEC) if pipe_output else None
    errors = os.pipe2(os.O_CLOEXEC) if pipe_output else None
    actions = [(os.POSIX_SPAWN_DUP2, status_w, GUARDIAN_STATUS_FD)]
    if output is not None and errors is not None:
        actions += [(os.POSIX_SPAWN_DUP2, output[1], 4), (os.POSIX_SPAWN_DUP2, errors[1], 5)]
    command = [sys.executable, "-I", "-S", "-c", GUARDIAN_LOADER, GUARDIAN, str(os.getpid()), repr(launched),
               str(session_dir.absolute()),
               "1" if stdout_to_stderr else "0",
               ",".join(map(str, sorted(closed_for_program(closed, stdout_to_stderr, pipe_output)))) or "-",
               "--", *argv]
    if deep:
        command = [sys.executable, "-I", "-S", DEEP, PROBE_DIR, *deep, "--", *command]
    try:
        guardian = os.posix_spawn(sys.executable, command, env, file_actions=actions)
    except OSError as err:
        raise GsupError(f"cannot start gsup's guardian ({sys.executable}): {err.strerror}") from err
    finally:
        for fd in (status_w, *(output or ())[1:], *(errors or ())[1:]):
            os.close(fd)
    try:
        meanwhile()
    except BaseException:
        _first_record(status_r)  # by then its handler is in place: it kills the tree, reaps it and exits
        os.kill(guardian, GUARDIAN_ENDS_TREE)
        os.waitpid(guardian, 0)
        for fd in (status_r, *(output or ())[:1], *(errors or ())[:1]):
            os.close(fd)
        raise
    first = _first_record(status_r)
    if "spawned" not in first:
        os.close(status_r)
        for fd in (*(output or ())[:1], *(errors or ())[:1]):
            os.close(fd)
        os.waitpid(guardian, 0)
        error = str(first.get("error", "gsup guardian failed"))
        raise GsupError(error if error.startswith("--deep") else f"{argv[0]}: cannot start: {error}")
    os.set_blocking(status_r, False)
    piped = (output[0], errors[0]) if output is not None and errors is not None else None
    return Launched(int(str(first["spawned"])), guardian, status_r, piped)


def _first_record(fd: int) -> dict[str, object]:
    """The guardian's first line: ``{"spawned": pid}`` or ``{"error": why}``.

    Read a byte at a time: what follows it (the program may already have
    ended) belongs to the runner's reader, so not a byte more is taken.
    """
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return {"error": "gsup's guardian ended before starting the program"}
        data += chunk
    record = json.loads(data)
    return record if isinstance(record, dict) else {"error": "gsup's guardian said something unexpected"}
