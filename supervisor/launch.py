"""Turn ``SCRIPT``, ``-m MODULE`` or ``-- COMMAND`` into a started process.

The program gets its own process group (so ``--target group`` and a forwarded
Ctrl-C reach all of it and never gsup), default signal dispositions and an
empty signal mask (so an ignored SIGINT inherited from a shell does not change
the experiment), and the probe through ``PYTHONPATH``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import termios
from collections.abc import Callable, Sequence
from pathlib import Path

from supervisor.errors import GsupError
from supervisor.records import dataclass

# shutil and subprocess are imported where they are used: a run of a script with --python
# PATH needs neither, and together they cost a quarter of Python's start-up before the launch.

PROBE_DIR = str(Path(__file__).resolve().parent / "_probe")


@dataclass(frozen=True)
class Interpreter:
    """The Python gsup launches, and how it was found (said in the report)."""

    path: str
    found: str  # "--python", "VIRTUAL_ENV", "PATH", then the shim it stood behind, if any


def find_python(python: str | None) -> Interpreter:
    """``--python``, else what typing ``python`` would run; a shim resolved to the real interpreter.

    A pyenv or asdf shim is a shell script: launched as the program, its helper
    processes (bash, ``pyenv exec``) became the tree's parent and child, ended
    "unknown", and ``--target child`` hit a helper.  So gsup asks the shim once
    which interpreter it runs (``sys.executable``) and launches that.
    """
    if python:
        path, how = check_python(python), "--python"
    else:
        path, how = default_python()
    if not _is_script(path):
        return Interpreter(path, how)
    real = _behind_shim(path)
    return Interpreter(real, f"{how}: {path} is a shim ({_shim_kind(path)}), it runs {real}")


def default_python() -> tuple[str, str]:
    """What typing ``python`` would run: the active virtualenv first, then PATH; and which it was."""
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.access(os.path.join(venv, "bin", "python"), os.X_OK):
        return os.path.join(venv, "bin", "python"), "VIRTUAL_ENV"
    found = which("python") or which("python3")
    if found is None:
        raise GsupError("no `python` on PATH: pass --python PATH")
    return found, "PATH"


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(2) == b"#!"
    except OSError:
        return False


def _shim_kind(path: str) -> str:
    parts = Path(path).parts
    return next((tool for tool in ("pyenv", "asdf", "mise", "rtx") if any(tool in part for part in parts)),
                "a script")


def _behind_shim(shim: str) -> str:
    """The interpreter a shim runs, as it says itself (in gsup's directory, whose version file it reads)."""
    import subprocess

    try:
        asked = subprocess.run([shim, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                               timeout=60, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GsupError(f"{shim} is a shim and could not say which Python it runs: {err}") from err
    real = asked.stdout.strip()
    if asked.returncode != 0 or not real or not os.access(real, os.X_OK):
        why = (asked.stderr.strip().splitlines() or [f"exit {asked.returncode}"])[-1]
        raise GsupError(f"{shim} is a shim and could not say which Python it runs: {why}; pass --python PATH")
    return real


def which(name: str) -> str | None:
    """``shutil.which``; shutil is imported only when a name must be searched on PATH."""
    import shutil

    return shutil.which(name)


def check_python(python: str) -> str:
    """``--python``: a path, or a name on PATH, that is an executable file."""
    resolved = python if "/" in python else which(python)
    if resolved is None or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise GsupError(f"--python {python}: not an executable file")
    return resolved


def parse_stdin(text: str) -> str:
    """``--stdin``: ``null`` (/dev/null), ``tty`` (the terminal gsup is in the foreground of), or a readable file."""
    if text == "null":
        return os.devnull
    if text == "tty":
        try:
            foreground = os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
        except OSError:
            foreground = False
        if not foreground:
            raise GsupError("--stdin tty: gsup's stdin is not a terminal it runs in the foreground of")
        return text
    path = Path(text)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise GsupError(f"--stdin {text}: not a readable file (or use null, tty)")
    return str(path.absolute())


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
    dotted name would run the parent packages' ``__init__`` outside gsup.  Nor
    does it run the program's ``sitecustomize`` or ``usercustomize``: empty ones
    first on its path hide them (the program's code would run in a process no
    report shows), and leave the path before the search.
    """
    import tempfile  # here: it imports shutil and random, which a run that is no -m never needs

    with tempfile.TemporaryDirectory(prefix="gsup-module-check-") as hiding:
        for name in ("sitecustomize.py", "usercustomize.py"):
            Path(hiding, name).write_text("")
        found = _module_found(python, module, hiding)
    if not found:
        raise GsupError(f"unknown module {module!r} for {python}")
    return [python, "-m", module, *args]


def _module_found(python: str, module: str, hiding: str) -> bool:
    """Does ``python`` find ``module``, with ``hiding`` first on PYTHONPATH while it starts?"""
    import subprocess

    finder = (
        "import sys\n"
        "sys.path[:] = [p for p in sys.path if p != sys.argv[2]]\n"
        "from importlib.machinery import PathFinder\n"
        "from importlib.util import find_spec\n"
        "parts = sys.argv[1].split('.')\n"
        "spec = find_spec(parts[0])\n"
        "for i in range(1, len(parts)):\n"
        "    where = spec and spec.submodule_search_locations\n"
        "    spec = where and PathFinder.find_spec('.'.join(parts[:i + 1]), list(where))\n"
        "sys.exit(0 if spec else 1)\n"
    )
    existing = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": hiding + (os.pathsep + existing if existing else "")}
    try:
        return subprocess.run(
            [python, "-c", finder, module, hiding], capture_output=True, timeout=60, check=False, env=env
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
    namespace: str | None = None  # container mode: how the guardian made the PID namespace (root, user-namespace)


def spawn(argv: list[str], env: dict[str, str], stdout_to_stderr: bool, session_dir: Path,
          launched: float, pipe_output: bool = False, closed: frozenset[int] = frozenset(),
          deep: Sequence[str] = (), namespace: str | None = None, stdin: str | None = None,
          meanwhile: Callable[[], None] = lambda: None) -> Launched:
    """Start the guardian, which starts ``argv`` in a new process group with
    default signal state; returns once the program runs (or raises GsupError).
    ``closed``: gsup's standard streams that were closed (see :func:`closed_for_program`).
    ``deep``: site-packages directories that deep.py overlays first (``--deep``).
    ``namespace``: ``pid`` to start ``argv`` as PID 1 of a new PID namespace (container mode).
    ``stdin``: a file the program reads instead of gsup's stdin (``--stdin null`` is /dev/null).
    ``meanwhile``: gsup's own work done while the guardian starts (a Python start-up
    of its own), rather than before or after it; if it raises, the guardian is killed.

    ``posix_spawn`` rather than ``Popen``: gsup is the only reaper of its
    children, and a ``Popen`` object would try to reap its own.
    """
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    output = output_channel(2 if stdout_to_stderr else 1) if pipe_output else None
    errors = output_channel(2) if pipe_output else None
    actions: list[tuple[int | str, ...]] = [(os.POSIX_SPAWN_DUP2, status_w, GUARDIAN_STATUS_FD)]
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0))
    if output is not None and errors is not None:
        actions += [(os.POSIX_SPAWN_DUP2, output[1], 4), (os.POSIX_SPAWN_DUP2, errors[1], 5)]
    arguments = [str(os.getpid()), repr(launched), str(session_dir.absolute()), "1" if stdout_to_stderr else "0",
                 ",".join(map(str, sorted(closed_for_program(closed, stdout_to_stderr, pipe_output)))) or "-",
                 *([namespace] if namespace else []), "--", *argv]
    try:
        if deep:
            command = [sys.executable, "-I", "-S", DEEP, PROBE_DIR, *deep, "--", sys.executable, "-I", "-S", "-c",
                       GUARDIAN_LOADER, GUARDIAN, *arguments]
            guardian = os.posix_spawn(sys.executable, command, env, file_actions=actions)
        else:
            guardian = _fork_guardian(arguments, env, actions)
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
        plain = error.startswith("--deep") or first.get("usage")  # a whole sentence already (no namespace, ...)
        raise GsupError(error if plain else f"{argv[0]}: cannot start: {error}")
    os.set_blocking(status_r, False)
    piped = (output[0], errors[0]) if output is not None and errors is not None else None
    made = first.get("namespace")
    return Launched(int(str(first["spawned"])), guardian, status_r, piped, str(made) if made else None)


def _fork_guardian(arguments: list[str], env: dict[str, str], actions: list[tuple[int | str, ...]]) -> int:
    """The guardian as a fork of gsup: running ``guardian.main`` at once, with no
    interpreter of its own to start first (that start came before the program's).

    The child is what ``exec`` would have made of it: every signal held back across
    the fork and gsup's handlers and wake-up fd gone before any is let through (a
    Ctrl-C to the group must not run gsup's code in it), ``actions`` applied as
    ``posix_spawn`` would, and every close-on-exec descriptor closed, so that it holds
    no end of a pipe gsup waits on.  No thread runs in gsup yet; the child only calls
    ``os._exit``."""
    from supervisor import guardian

    held = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child ends in os._exit, and is tested as a process
            code = 1
            try:
                import gc

                gc.disable()  # a collection would copy gsup's whole heap, page by page
                signal.set_wakeup_fd(-1)
                for signum in signal.valid_signals():
                    if callable(signal.getsignal(signum)):
                        signal.signal(signum, signal.SIG_DFL)
                _apply(actions)
            except BaseException as err:
                _tell_gsup(err)
                os._exit(1)
            try:
                code = guardian.main(arguments, unblock=held, env=env)
            finally:
                os._exit(code)
        return pid
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _tell_gsup(err: BaseException) -> None:
    """A forked guardian that failed before it could start the program says why, as the
    guardian does (``{"error": ...}``), on the status pipe: the first action put it on fd 3."""
    why = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
    try:
        os.write(GUARDIAN_STATUS_FD, (json.dumps({"error": why or type(err).__name__}) + "\n").encode())
    except OSError:
        pass


def _apply(actions: list[tuple[int | str, ...]]) -> None:
    """``posix_spawn``'s file actions (the status pipe's on fd 3 first), then what its
    ``exec`` would close."""
    for action in actions:
        if action[0] == os.POSIX_SPAWN_DUP2:
            os.dup2(int(action[1]), int(action[2]))
        elif action[0] == os.POSIX_SPAWN_OPEN:
            fd = os.open(str(action[2]), int(action[3]), int(action[4]))
            if fd != int(action[1]):
                os.dup2(fd, int(action[1]))
                os.close(fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and not os.get_inheritable(fd):
                os.close(fd)
        except OSError:
            pass  # the listing's own descriptor, closed already


def output_channel(destination: int) -> tuple[int, int]:
    """(gsup's read end, the program's write end) for one output stream gsup passes on.

    A terminal where ``destination`` is one, so the program behaves as it would
    without gsup: line-buffered, in colour, as wide as the real terminal.  (Through
    a pipe a Python buffers its prints until exit, and Flask drops its colours.)
    Newlines stay newlines (no ``ONLCR``): the bytes gsup passes on are the
    program's own.  A pipe elsewhere.
    """
    if not os.isatty(destination):
        return os.pipe2(os.O_CLOEXEC)
    reader, writer = os.openpty()
    attributes = termios.tcgetattr(writer)
    attributes[1] &= ~termios.ONLCR
    termios.tcsetattr(writer, termios.TCSANOW, attributes)
    try:
        fcntl.ioctl(writer, termios.TIOCSWINSZ, fcntl.ioctl(destination, termios.TIOCGWINSZ, bytes(8)))
    except OSError:
        pass  # no size to copy: the program sees 80x24, as on a serial line
    return reader, writer


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
