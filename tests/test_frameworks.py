"""Servers gsup knows by name: kinds, framework hooks and explanations in the server's own terms.

The apps are the atlas's (``tests/atlas/apps``), at the versions of the
``frameworks`` extra.  Each outcome was first observed without gsup (as a child
subreaper, wait statuses and marker files written by the hooks):

* aiohttp ``run_app`` on TERM: on_shutdown, on_cleanup and atexit run, exit 0;
* hypercorn on TERM: the spawned worker runs the lifespan shutdown and atexit,
  the main process and the resource tracker exit 0;
* Django runserver on TERM: the autoreloader's handler calls ``sys.exit(0)``,
  ``subprocess.run`` SIGKILLs the server child on the way out, the autoreloader exits 0;
* gunicorn + UvicornWorker on INT: the master sends SIGQUIT, the workers do not
  stop on it, and the master SIGKILLs them after ``--graceful-timeout`` (3.0 s
  measured with 3): no lifespan shutdown, no atexit in the workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, SERVER_MINORS, Gsup, free_port, role, server_bin

pytest.importorskip("aiohttp")
pytest.importorskip("hypercorn")
pytest.importorskip("django")

APPS = Path(__file__).parent / "atlas" / "apps"
BIN = Path(PYTHON).parent
Proc = dict[str, Any]


@pytest.fixture
def apps(gsup: Gsup) -> Path:
    for app in APPS.glob("*.py"):
        shutil.copy(app, gsup.workdir)
    return gsup.workdir


def stopped(gsup: Gsup, signal: str, port: int, *command: str) -> dict[str, Any]:
    return gsup.report("--signal", signal, "--ready-port", str(port), "--after", "1s", "--grace", "8s",
                       "--", *command)


def watched(proc: Proc, startup: bool = False) -> list[tuple[str, str]]:
    return [(w["name"], w["status"]) for w in proc["watched"] if bool(w.get("before_stop")) == startup]


def test_aiohttp_hooks_run_on_term(gsup: Gsup, apps: Path) -> None:
    port = free_port()
    server = role(stopped(gsup, "TERM", port, PYTHON, "aio_app.py", str(port)), "parent")
    assert server["end"]["how"] == "exited" and server["end"]["code"] == 0
    assert watched(server, startup=True) == [("Application.startup", "ran")]
    assert watched(server) == [("Application.shutdown", "ran"), ("Application.cleanup", "ran")]
    assert {h["name"]: h["status"] for h in server["handlers"]}["app_bye"] == "ran"


def test_hypercorn_worker_runs_its_lifespan_shutdown(gsup: Gsup, apps: Path) -> None:
    port = free_port()
    report = stopped(gsup, "TERM", port, str(BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "asgi_app:app")
    kinds = {p["kind"]: p for p in report["processes"]}
    assert sorted(kinds) == ["hypercorn", "hypercorn worker", "multiprocessing resource tracker"]
    worker = kinds["hypercorn worker"]
    assert ("Lifespan.wait_for_startup", "ran") in watched(worker, startup=True)
    assert ("Lifespan.wait_for_shutdown", "ran") in watched(worker)
    assert {h["name"]: h["status"] for h in worker["handlers"]}["app_bye"] == "ran"
    assert report["leftovers"] == []


def test_django_autoreloader_kills_its_server(gsup: Gsup, apps: Path) -> None:
    port = free_port()
    report = stopped(gsup, "TERM", port, PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}")
    reloader, server = role(report, "parent"), role(report, "child")
    assert (reloader["kind"], server["kind"]) == ("Django autoreloader", "Django server")
    assert reloader["end"]["code"] == 0 and server["end"]["signal"] == "SIGKILL"
    assert server["explanation"].startswith(
        f"killed with SIGKILL by its parent {reloader['pid']} (Django autoreloader): SIGKILL cannot be handled")
    assert [(s["signal"], s["pid"]) for s in reloader["sent"]] == [("SIGKILL", server["pid"])]


@pytest.mark.parametrize("minor", SERVER_MINORS)
def test_gunicorn_uvicorn_worker_killed_after_graceful_timeout(gsup: Gsup, apps: Path, minor: int) -> None:
    """The issue's report said "SIGKILL cannot be handled, nothing ran": the worker's handler
    had run, and the master waited graceful_timeout before its SIGKILL.  On each CPython the
    pins support."""
    port = free_port()
    gunicorn = server_bin(minor, "gunicorn", "uvicorn") / "gunicorn"
    report = stopped(gsup, "INT", port, str(gunicorn), "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                     "--graceful-timeout", "3", "-b", f"127.0.0.1:{port}", "asgi_app:app")
    assert {p["python"].rsplit(".", 1)[0] for p in report["processes"] if p["instrumented"]} == {f"3.{minor}"}
    master = role(report, "parent")
    workers = [p for p in report["processes"] if p["role"] == "child"]
    assert master["kind"] == "gunicorn master" and master["end"]["code"] == 0
    assert [w["kind"] for w in workers] == ["gunicorn worker"] * 2
    for worker in workers:
        assert worker["end"]["signal"] == "SIGKILL"
        assert watched(worker, startup=True) == [("LifespanOn.startup", "ran")] and watched(worker) == []
        text = worker["explanation"]
        assert text.startswith(f"killed with SIGKILL by its parent {master['pid']} (gunicorn master), "), text
        assert "after the SIGQUIT it had sent (gunicorn's graceful_timeout): its Python handler " in text, text
        assert text.endswith("; the ASGI lifespan shutdown never ran"), text
        assert "nothing ran" not in text
