"""``kinds``: what each process of a server's tree is, from argv, the probe's ``uses`` records and the tree.

The command lines are the ones these servers really run (seen with ``ps`` while
each ran, without gsup); the real servers under gsup are in test_frameworks.py
and test_servers.py.
"""

from __future__ import annotations

from typing import Optional

import pytest

from supervisor.kinds import kinds, program_of
from supervisor.model import End, Process

PY = "/venv/bin/python"
SPAWN = [PY, "-B", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
         "--multiprocessing-fork"]
TRACKER = [PY, "-B", "-c", "from multiprocessing.resource_tracker import main;main(4)"]


def proc(pid: int, ppid: Optional[int], argv: list[str], forked: bool = False, started: float = 0.0) -> Process:
    return Process(pid=pid, ppid=ppid, role="parent" if ppid is None else "child", argv=argv, instrumented=True,
                   end=End("exited", code=0), forked=forked, started=started + pid / 1000)


def kinds_of(*procs: Process, uses: Optional[dict[int, set[str]]] = None) -> list[Optional[str]]:
    found = kinds(list(procs), uses or {})
    return [found[p.pid] for p in procs]


@pytest.mark.parametrize(("argv", "program"), [
    ([PY, "/venv/bin/gunicorn", "-w", "2", "app:app"], "gunicorn"),
    (["/venv/bin/uvicorn", "app:app"], "uvicorn"),
    ([PY, "-X", "dev", "-m", "uvicorn", "app:app"], "-m uvicorn"),
    ([PY, "-c", "pass"], "-c"),
    ([PY, "manage.py", "runserver"], "manage.py"),
    ([], ""),
])
def test_program_of(argv: list[str], program: str) -> None:
    assert program_of(argv) == program


def test_gunicorn_master_and_forked_workers() -> None:
    argv = [PY, "/venv/bin/gunicorn", "-w", "2", "app:app"]
    assert kinds_of(proc(10, None, argv), proc(11, 10, argv, forked=True), proc(12, 10, argv, forked=True)) == [
        "gunicorn master", "gunicorn worker", "gunicorn worker"]


def test_uvicorn_reloader_server_and_tracker() -> None:
    reloader = proc(10, None, [PY, "/venv/bin/uvicorn", "--reload", "app:app"])
    assert kinds_of(reloader, proc(11, 10, TRACKER), proc(12, 10, SPAWN)) == [
        "uvicorn reloader", "multiprocessing resource tracker", "uvicorn server"]


def test_uvicorn_supervisor_and_workers() -> None:
    supervisor = proc(10, None, ["/venv/bin/uvicorn", "--workers=2", "app:app"])
    assert kinds_of(supervisor, proc(11, 10, SPAWN), proc(12, 10, SPAWN)) == [
        "uvicorn supervisor", "uvicorn worker", "uvicorn worker"]
    assert kinds_of(proc(10, None, ["/venv/bin/uvicorn", "app:app"])) == ["uvicorn server"]


def test_hypercorn_and_its_worker() -> None:
    assert kinds_of(proc(10, None, [PY, "/venv/bin/hypercorn", "app:app"]), proc(11, 10, SPAWN)) == [
        "hypercorn", "hypercorn worker"]


def test_django_autoreloader_and_server() -> None:
    argv = [PY, "manage.py", "runserver", "127.0.0.1:8000"]
    restarted = ["/usr/bin/python3.11", *argv[1:]]  # sys.executable, spelt otherwise
    assert kinds_of(proc(10, None, argv), proc(11, 10, restarted)) == ["Django autoreloader", "Django server"]
    assert kinds_of(proc(10, None, [*argv, "--noreload"])) == ["Django server"]


def test_werkzeug_reloader_and_server_from_the_probe() -> None:
    """``python app.py`` says nothing: the probe's record of werkzeug.serving being imported does."""
    argv = [PY, "app.py"]
    both = {10: {"werkzeug"}, 11: {"werkzeug"}}
    assert kinds_of(proc(10, None, argv), proc(11, 10, argv), uses=both) == ["werkzeug reloader", "werkzeug server"]
    assert kinds_of(proc(10, None, argv), uses={10: {"werkzeug"}}) == ["werkzeug server"]
    assert kinds_of(proc(10, None, argv), proc(11, 10, argv)) == [None, None]


@pytest.mark.parametrize("script", ["app.py", "./app.py"])
def test_werkzeug_reloader_on_python_3_9_restarts_with_the_script_made_absolute(script: str) -> None:
    """Without ``sys.orig_argv`` (3.9), werkzeug restarts ``python app.py`` as
    ``python /srv/app.py``: still the reloader and its server."""
    both = {10: {"werkzeug"}, 11: {"werkzeug"}}
    parent, child = proc(10, None, [PY, script]), proc(11, 10, [PY, "/srv/app.py"])
    assert kinds_of(parent, child, uses=both) == ["werkzeug reloader", "werkzeug server"]
    elsewhere = proc(11, 10, [PY, "/srv/other.py"])  # another script: not a restart of its own
    assert kinds_of(parent, elsewhere, uses=both) == ["werkzeug server", "werkzeug server"]


def test_celery_main_and_pool_workers() -> None:
    argv = ["/venv/bin/celery", "-A", "tasks", "worker", "-c", "2"]
    assert kinds_of(proc(10, None, argv), proc(11, 10, argv, forked=True)) == ["celery main", "celery pool worker"]


def test_multiprocessing_alone() -> None:
    forkserver = [PY, "-c", "from multiprocessing.forkserver import main; main(3, 4, ['__main__'])"]
    assert kinds_of(proc(10, None, [PY, "job.py"]), proc(11, 10, SPAWN), proc(12, 10, forkserver)) == [
        None, "multiprocessing spawned worker", "multiprocessing forkserver"]


def test_aiohttp_server_from_the_probe() -> None:
    assert kinds_of(proc(10, None, [PY, "app.py"]), uses={10: {"aiohttp"}}) == ["aiohttp server"]
