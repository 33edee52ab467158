"""Turn ``SCRIPT``, ``-m MODULE`` or ``-- COMMAND`` into a started process.

The program gets its own process group (so ``--target group`` and a forwarded
Ctrl-C reach all of it and never gsup), default signal dispositions and an
empty signal mask (so an ignored SIGINT inherited from a shell does not change
the experiment), and the probe through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from supervisor.errors import GsupError

PROBE_DIR = str(Path(__file__).resolve().parent / "_probe")


def default_python() -> str:
    """What typing ``python`` would run: the active virtualenv first, then PATH."""
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.access(os.path.join(venv, "bin", "python"), os.X_OK):
        return os.path.join(venv, "bin", "python")
    found = shutil.which("python") or shutil.which("python3")
    if found is None:
        raise GsupError("no `python` on PATH: pass --python PATH")
    return found


def check_python(python: str) -> str:
    resolved = python if "/" in python else shutil.which(python)
    if resolved is None or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise GsupError(f"--python {python}: not an executable file")
    return resolved


def script_command(python: str, script: str, args: list[str]) -> list[str]:
    path = Path(script)
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
    resolved = program if "/" in program else shutil.which(program)
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


def spawn(argv: list[str], env: dict[str, str], stdout_to_stderr: bool) -> int:
    """Start ``argv`` in a new process group with default signal state; its pid.

    ``posix_spawn`` rather than ``Popen``: gsup is the only reaper of its
    children, and a ``Popen`` object would try to reap its own.
    """
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0]) or argv[0]
    catchable = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
    actions = [(os.POSIX_SPAWN_DUP2, 2, 1)] if stdout_to_stderr else []
    try:
        return os.posix_spawn(
            program, argv, env,
            file_actions=actions, setpgroup=0, setsigdef=catchable, setsigmask=set(),
        )
    except OSError as err:
        raise GsupError(f"{argv[0]}: cannot start: {err.strerror}") from err
