"""What each process of a server's tree is ("gunicorn master", "uvicorn server"), from its argv, the probe and the tree.

Roles (parent, child, grandchild) say where a process stands; servers run several
processes with the same command line (gunicorn's master and its forked workers,
werkzeug's and Django's reloader and the server they restart), and only what each
one is tells a report's reader which is which.  A pure function of the report's
facts: the command line, the frameworks the probe saw imported (``uses`` records),
whether it was forked, and its parent's kind.  A process gsup does not recognise
has no kind (None): nothing is guessed.
"""

from __future__ import annotations

from supervisor.model import Process

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

_PYTHON_VALUE_OPTIONS = ("-W", "-X")


def program_of(argv: list[str]) -> str:
    """``gunicorn`` for ``python /venv/bin/gunicorn app``, ``-m uvicorn`` for ``python -m uvicorn``,
    ``-c`` for ``python -c CODE``: the program a command line runs, by the name users know."""
    if not argv:
        return ""
    first = argv[0].rsplit("/", 1)[-1]
    if not first.startswith("python"):
        return first
    rest = iter(argv[1:])
    for arg in rest:
        if arg in _PYTHON_VALUE_OPTIONS:
            next(rest, None)
        elif arg in ("-m", "-c"):
            return f"-m {next(rest, '')}" if arg == "-m" else "-c"
        elif not arg.startswith("-"):
            return arg.rsplit("/", 1)[-1]
    return first


def kinds(processes: list[Process], uses: dict[int, set[str]]) -> dict[int, Optional[str]]:
    """Each process's kind (by pid), parents before children; ``uses``: pid -> frameworks imported."""
    found: dict[int, Optional[str]] = {}
    by_pid = {p.pid: p for p in processes}
    for proc in sorted(processes, key=lambda p: (p.started is None, p.started or 0.0, p.pid)):
        parent = by_pid.get(proc.ppid) if proc.ppid is not None else None
        parent_kind = found.get(parent.pid) if parent is not None else None
        found[proc.pid] = kind_of(proc, parent, parent_kind, uses.get(proc.pid, set()), processes)
    return found


def kind_of(proc: Process, parent: Optional[Process], parent_kind: Optional[str], uses: set[str],
            everyone: list[Process]) -> Optional[str]:
    """One process's kind, or None."""
    text = " ".join(proc.argv)
    program = program_of(proc.argv)
    for recognise in (_multiprocessing, _gunicorn, _uvicorn, _hypercorn, _celery, _reloaders, _aiohttp):
        kind = recognise(proc, text, program, parent, parent_kind, uses, everyone)
        if kind is not None:
            return kind
    return None


def _same_program(proc: Process, other: Optional[Process]) -> bool:
    """The same command line, run by the same program: a reloader restarts its own with
    ``sys.executable``, which may be spelt otherwise than the interpreter it was started as,
    and (werkzeug before Python 3.10, without ``sys.orig_argv``) with the script's path
    made absolute."""
    if other is None or len(other.argv) != len(proc.argv):
        return False
    return (all(_same_arg(a, b) for a, b in zip(other.argv[1:], proc.argv[1:]))
            and program_of(other.argv) == program_of(proc.argv))


def _same_arg(first: str, second: str) -> bool:
    """Equal, or one the absolute spelling of the other (relative) path: ``app.py`` and
    ``/srv/app.py``, ``./app.py`` too."""
    if first == second:
        return True
    relative, absolute = sorted((first, second), key=lambda a: a.startswith("/"))
    if relative.startswith("/") or not absolute.startswith("/") or relative.startswith("-"):
        return False
    while relative.startswith("./"):
        relative = relative[2:]
    return bool(relative) and absolute.endswith("/" + relative)


def _multiprocessing(proc: Process, text: str, program: str, parent: Optional[Process],
                     parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    if "multiprocessing.resource_tracker import main" in text:
        return "multiprocessing resource tracker"
    if "multiprocessing.forkserver import main" in text:
        return "multiprocessing forkserver"
    if "spawn_main" not in text and "--multiprocessing-fork" not in text:
        return None
    spawned_by = {
        "uvicorn reloader": "uvicorn server", "uvicorn supervisor": "uvicorn worker",
        "hypercorn": "hypercorn worker", "celery main": "celery pool worker",
    }
    return spawned_by.get(parent_kind or "", "multiprocessing spawned worker")


def _gunicorn(proc: Process, text: str, program: str, parent: Optional[Process],
              parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    if parent_kind == "gunicorn master" and (proc.forked or _same_program(proc, parent)):
        return "gunicorn worker"
    if program in ("gunicorn", "-m gunicorn") or "gunicorn" in uses:
        return "gunicorn master"
    return None


def _uvicorn(proc: Process, text: str, program: str, parent: Optional[Process],
             parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    if program not in ("uvicorn", "-m uvicorn"):
        return "uvicorn server" if "uvicorn" in uses and parent_kind is None else None
    if "--reload" in proc.argv:
        return "uvicorn reloader"
    workers = _option(proc.argv, "--workers")
    if workers is not None and workers != "1":
        return "uvicorn supervisor"
    return "uvicorn server"


def _hypercorn(proc: Process, text: str, program: str, parent: Optional[Process],
               parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    return "hypercorn" if program in ("hypercorn", "-m hypercorn") else None


def _celery(proc: Process, text: str, program: str, parent: Optional[Process],
            parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    if parent_kind == "celery main" and proc.forked:
        return "celery pool worker"
    if program in ("celery", "-m celery") and " worker" in text:
        return "celery main"
    return None


def _reloaders(proc: Process, text: str, program: str, parent: Optional[Process],
               parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    """werkzeug's and Django's reloaders restart the same command line in a child (which
    serves): the process whose parent runs the same command is the server."""
    django = "runserver" in proc.argv or "django" in uses
    werkzeug = "werkzeug" in uses or (program in ("flask", "-m flask") and "run" in proc.argv)
    if not django and not werkzeug and parent_kind not in ("werkzeug reloader", "Django autoreloader"):
        return None
    name = "Django" if django or parent_kind == "Django autoreloader" else "werkzeug"
    if _same_program(proc, parent) and parent_kind is not None:
        return f"{name} server"
    restarts = any(p.ppid == proc.pid and _same_program(proc, p) for p in everyone)
    if restarts or (django and "--noreload" not in proc.argv):
        return "Django autoreloader" if name == "Django" else "werkzeug reloader"
    return f"{name} server"


def _aiohttp(proc: Process, text: str, program: str, parent: Optional[Process],
             parent_kind: Optional[str], uses: set[str], everyone: list[Process]) -> Optional[str]:
    """``web.run_app`` (the probe saw ``aiohttp.web_runner`` imported, which the client never needs)."""
    return "aiohttp server" if "aiohttp" in uses else None


def _option(argv: list[str], name: str) -> Optional[str]:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None
