"""Celery with a real broker: a worker with a prefork pool of 2, two tasks running (one
``acks_late``), one stop, and what became of the tasks, checked against Redis itself.

Observed first without gsup (Celery 5.7, Redis 7, prefork pool of 2, one acks_late task
and one not, both running):

* TERM, and INT: a warm shutdown.  The main process sends ``worker_shutting_down``
  (Warm); the running tasks finish; each pool process sends ``worker_process_shutdown``;
  the main process sends ``worker_shutdown`` and exits (0 on TERM, 1 on INT).  Both done.
* INT twice, and QUIT: a cold shutdown.  The main process SIGTERMs its pool processes
  (their ``_shutdown_cleanup`` raises SystemExit inside the task, each sends
  ``worker_process_shutdown``), sends ``worker_shutting_down`` (Cold), never
  ``worker_shutdown``.  The acks_late task is back in the queue; the other is lost
  (its result says RETRY, but no message is left to run it).
* ``--stop k8s`` with a grace shorter than the tasks: TERM starts a warm shutdown,
  the grace runs out, SIGKILL to every process.  No ``worker_process_shutdown``, no
  ``worker_shutdown``.  The acks_late task's message stays in Redis's ``unacked``
  hash (redelivered once the visibility timeout passes); the other is lost.

gsup's ``celery`` watch preset (on by default) reports the three signals where they
are sent and each task a pool process runs (``task NAME[ID]``, with ``(acks_late)``),
and the explanation says what becomes of a task that did not finish.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, SERVER_MINORS, Gsup, free_port, server_bin, wait_until

redis = pytest.importorskip("redis", reason="the celery extra (make install) is not installed")
pytest.importorskip("celery", reason="the celery extra (make install) is not installed")

APP = """
import os

from celery import Celery

app = Celery("tasks", broker=os.environ["BROKER"], backend=os.environ["BROKER"])
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True
MARKERS = os.environ["MARKERS"]


def began(name):
    open(os.path.join(MARKERS, "began-" + name), "w").close()
    if all(os.path.exists(os.path.join(MARKERS, "began-" + n)) for n in ("late", "early")):
        open(os.path.join(MARKERS, "both-running"), "w").close()


@app.task(acks_late=True)
def late(seconds):
    import time
    began("late")
    time.sleep(seconds)


@app.task
def early(seconds):
    import time
    began("early")
    time.sleep(seconds)
"""
WORKER = ["-m", "celery", "-A", "tasks", "worker", "-c", "2", "-P", "prefork", "--loglevel=WARNING", "-n", "w1@gsup"]
SIGNALS = "celery.signals."


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    """A Redis server of this test's own, on a free port, saving nothing."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, what="redis-server to answer")
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def worker_env(tmp_path: Path, broker: Any) -> dict[str, str]:
    (tmp_path / "tasks.py").write_text(APP)
    markers = tmp_path / "markers"
    markers.mkdir()
    port = broker.connection_pool.connection_kwargs["port"]
    return {"BROKER": f"redis://127.0.0.1:{port}/0", "MARKERS": str(markers), "PYTHONPATH": str(tmp_path)}


def submit(env: dict[str, str], cwd: Path, seconds: float, python: str = PYTHON) -> dict[str, str]:
    """Queue one acks_late task and one that is not, before the worker starts; their ids."""
    code = ("import json, tasks\n"
            f"print(json.dumps({{'late': tasks.late.delay({seconds}).id, 'early': tasks.early.delay({seconds}).id}}))")
    done = subprocess.run([python, "-c", code], env={**_base_env(), **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GSUP_")}


def run_worker(gsup: Gsup, env: dict[str, str], *stop: str, python: str = PYTHON) -> dict[str, Any]:
    result = gsup.run("run", "--json", "--python", python, "--ready-file", f"{env['MARKERS']}/both-running",
                      "--ready-timeout", "60s", *stop, *WORKER, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.report


def workers(report: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The worker's main process and its two pool processes."""
    main = next(p for p in report["processes"] if p["role"] == "parent")
    pool = [p for p in report["processes"] if p["ppid"] == main["pid"] and "celery" in " ".join(p["argv"])]
    assert len(pool) == 2, [p["argv"] for p in report["processes"]]
    return main, pool


def watched(proc: dict[str, Any]) -> dict[str, str]:
    return {w["name"]: w["status"] for w in proc["watched"]}


def task_of(proc: dict[str, Any]) -> str:
    [task] = [w["name"] for w in proc["watched"] if w["name"].startswith("task ")]
    return str(task)


def queued(broker: Any) -> list[str]:
    return [json.loads(m)["headers"]["id"] for m in broker.lrange("celery", 0, -1)]


def unacked(broker: Any) -> list[str]:
    return [json.loads(v)[0]["headers"]["id"] for v in broker.hvals("unacked")]


@pytest.mark.parametrize("minor", SERVER_MINORS)
def test_warm_shutdown_waits_for_the_tasks(gsup: Gsup, tmp_path: Path, broker: Any,
                                           worker_env: dict[str, str], minor: int) -> None:
    """On each CPython Celery's pins support."""
    python = str(server_bin(minor, "celery", "redis") / "python")
    ids = submit(worker_env, tmp_path, 1.5, python)
    report = run_worker(gsup, worker_env, "--signal", "TERM", "--grace", "30s", python=python)
    assert {p["python"].rsplit(".", 1)[0] for p in report["processes"] if p["instrumented"]} == {f"3.{minor}"}
    main, pool = workers(report)
    assert main["end"]["how"] == "exited" and main["end"]["code"] == 0
    assert watched(main)["worker_shutting_down"] == "ran" and watched(main)["worker_shutdown"] == "ran"
    for proc in pool:
        assert watched(proc)["worker_process_shutdown"] == "ran"
        assert watched(proc)[task_of(proc)] == "ran"
        assert "Celery task" not in proc["explanation"]
    assert sorted(task_of(p) for p in pool) == sorted([f"task tasks.late[{ids['late']}] (acks_late)",
                                                        f"task tasks.early[{ids['early']}]"])
    assert (queued(broker), unacked(broker)) == ([], [])


def test_cold_shutdown_requeues_the_acks_late_task_and_loses_the_other(gsup: Gsup, tmp_path: Path, broker: Any,
                                                                       worker_env: dict[str, str]) -> None:
    ids = submit(worker_env, tmp_path, 60)
    report = run_worker(gsup, worker_env, "--signal", "QUIT", "--grace", "30s")
    main, pool = workers(report)
    assert watched(main)["worker_shutting_down"] == "ran" and "worker_shutdown" not in watched(main)
    by_task = {task_of(p): p for p in pool}
    late = by_task[f"task tasks.late[{ids['late']}] (acks_late)"]
    early = by_task[f"task tasks.early[{ids['early']}]"]
    for proc in (late, early):
        assert proc["end"]["how"] == "signaled" and proc["end"]["signal"] == "SIGTERM"
        assert watched(proc)[task_of(proc)] == "raised" and watched(proc)["worker_process_shutdown"] == "ran"
    assert f"Celery task tasks.late[{ids['late']}] did not finish; acks_late" in late["explanation"]
    assert f"Celery task tasks.early[{ids['early']}] did not finish and is lost" in early["explanation"]
    assert (queued(broker), unacked(broker)) == ([ids["late"]], [])  # as the explanations say


def test_k8s_grace_running_out_kills_the_tasks(gsup: Gsup, tmp_path: Path, broker: Any,
                                               worker_env: dict[str, str]) -> None:
    ids = submit(worker_env, tmp_path, 60)
    report = run_worker(gsup, worker_env, "--stop", "k8s", "--grace", "2s")
    main, pool = workers(report)
    # the warm shutdown began, and never ended (other presets, weakref's, may add calls of their own)
    assert watched(main)["worker_shutting_down"] == "ran" and "worker_shutdown" not in watched(main)
    said = main["explanation"]  # "...its Python handler X had run for SIGTERM and Y had run, but..."
    assert said.startswith("killed with SIGKILL by the `--stop k8s` sequence"), said
    assert "celery.signals.worker_shutting_down" in said and "it had not finished stopping" in said, said
    by_task = {task_of(p): p for p in pool}
    late = by_task[f"task tasks.late[{ids['late']}] (acks_late)"]
    early = by_task[f"task tasks.early[{ids['early']}]"]
    for proc in (late, early):
        assert (proc["end"]["how"], proc["end"]["signal"]) == ("signaled", "SIGKILL")
        assert watched(proc)[task_of(proc)] == "interrupted" and "worker_process_shutdown" not in watched(proc)
        # --stop k8s runs the worker as PID 1 of its own PID namespace, as in a pod: the kubelet's
        # SIGKILL ends the main process, and the kernel then kills the pool with it
        assert proc["explanation"].startswith("killed with SIGKILL by the kernel when PID 1"), proc["explanation"]
    assert "runs again" in late["explanation"] and "is lost" in early["explanation"]
    assert (queued(broker), unacked(broker)) == ([], [ids["late"]])  # redelivered once the visibility timeout passes


def test_second_ctrl_c_turns_the_warm_shutdown_cold(gsup: Gsup, tmp_path: Path, broker: Any,
                                                    worker_env: dict[str, str]) -> None:
    """INT, then INT again once the warm shutdown has begun (sent with ``gsup kill``, as a
    second Ctrl-C in the worker's terminal would be): the same ending as QUIT."""
    ids = submit(worker_env, tmp_path, 60)
    run = gsup.start("run", "--json", "--python", PYTHON, "--ready-file", f"{worker_env['MARKERS']}/both-running",
                     *WORKER, env=worker_env)
    wait_until(lambda: Path(worker_env["MARKERS"], "both-running").exists() or run.poll() is not None,
               what="both tasks to run")
    sessions = list(gsup.home.glob("*/session.json"))
    assert len(sessions) == 1, sessions
    session = sessions[0].parent.name
    assert gsup.run("kill", "--session", session, "-s", "INT").returncode == 0
    wait_until(lambda: run.poll() is not None or _shutting_down(gsup.home / session), what="the warm shutdown")
    assert gsup.run("kill", "--session", session, "-s", "INT").returncode == 0
    report = gsup.finished_report(run, timeout=120)
    main, pool = workers(report)
    shutting = [w for w in main["watched"] if w["name"] == "worker_shutting_down"]
    assert len(shutting) == 2 and "worker_shutdown" not in watched(main)  # Warm, then Cold
    by_task = {task_of(p): p for p in pool}
    assert watched(by_task[f"task tasks.late[{ids['late']}] (acks_late)"])[
        f"task tasks.late[{ids['late']}] (acks_late)"] == "raised"
    assert "is lost" in by_task[f"task tasks.early[{ids['early']}]"]["explanation"]
    assert (queued(broker), unacked(broker)) == ([ids["late"]], [])


def _shutting_down(session: Path) -> bool:
    """Has the worker's main process begun its warm shutdown (the probe's watch event)?"""
    return any('"name":"worker_shutting_down"' in f.read_text() for f in (session / "events").glob("*.jsonl"))
