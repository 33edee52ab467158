"""Watched functions: ``--watch MODULE:QUALNAME`` and the built-in watch sets.

Real programs under ``gsup run`` (and, for transparency on every interpreter,
under the probe alone): each call of a watched function is reported with how
it ended (ran, raised, interrupted), in the process that made it, and the
program behaves byte for byte as it does without gsup.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor import options
from tests.helpers import (
    INTERPRETERS,
    PYTHON,
    ROOT,
    Gsup,
    Program,
    base_env,
    finish_python,
    free_port,
    gunicorn_hooks,
    normalised,
    probe_env,
    role,
    run_python,
    start_python,
    wait_while_running,
    write_program,
)

MODULE = """
    import asyncio, os, sys, time

    def plain(x):
        return x * 2

    class Service:
        def stop(self):
            return "stopped"

        @classmethod
        def build(cls):
            return cls()

        @staticmethod
        def version():
            return 3

        class Pool:
            def close(self):
                return "closed"

    async def drain():
        await asyncio.sleep(0)
        return "drained"

    def steps():
        yield 1
        yield 2

    def bad():
        raise ValueError("boom")

    def stuck(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(marker + ".tmp", marker)
        time.sleep(60)

    def forker():
        return os.fork()
    """


def watched(proc: dict[str, Any], module: str = "mod") -> list[tuple[str, str]]:
    """(name, status) of the calls of ``module``'s functions, in the order they began."""
    calls = sorted((w for w in proc["watched"] if w["module"] == module), key=lambda w: w["order"])
    return [(w["name"], w["status"]) for w in calls]


def watch_args(*specs: str) -> list[str]:
    return [arg for spec in specs for arg in ("--watch", f"mod:{spec}")]


def test_functions_methods_and_coroutines(gsup: Gsup, program: Program) -> None:
    program(MODULE, "mod.py")
    prog = program("""
        import asyncio, inspect, mod
        print(mod.plain(2), mod.Service.build().stop(), mod.Service.version(), mod.Service.Pool().close(),
              asyncio.run(mod.drain()), list(mod.steps()))
        print(inspect.iscoroutinefunction(mod.drain), inspect.isgeneratorfunction(mod.steps),
              inspect.signature(mod.plain), mod.Service.stop.__qualname__)
        """)
    report = gsup.report(*watch_args("plain", "Service.stop", "Service.build", "Service.version",
                                     "Service.Pool.close", "drain", "steps"), str(prog))
    proc = role(report, "parent")
    assert proc["end"] == {"how": "exited", "code": 0, "signal": None, "reaped_by": "gsup"}
    assert watched(proc) == [("plain", "ran"), ("Service.build", "ran"), ("Service.stop", "ran"),
                             ("Service.version", "ran"), ("Service.Pool.close", "ran"), ("drain", "ran"),
                             ("steps", "ran")]
    first = min(proc["watched"], key=lambda w: w["order"])
    assert first["kind"] == "watched" and first["order"] == 1 and first["exception"] is None
    assert first["where"] == f"{prog.with_name('mod.py')}:3" and first["duration"] >= 0
    assert "watch_missing" not in proc


def test_raising_function_traceback_unchanged(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    program(MODULE, "mod.py")
    prog = program("import mod\nprint('before', flush=True)\nmod.bad()\n")
    bare = subprocess.run([PYTHON, str(prog)], capture_output=True, text=True, cwd=tmp_path, env=base_env(),
                          timeout=30, check=False)
    result = gsup.run("run", "-q", "--json", "--python", PYTHON, "--watch", "mod:bad", str(prog))
    assert result.returncode == 0, result.stderr
    assert bare.returncode == 1 and "ValueError: boom" in bare.stderr
    # --json sends the program's stdout to stderr: the same bytes, in the same order.
    assert result.stderr == bare.stdout + bare.stderr
    proc = role(result.report, "parent")
    assert proc["end"]["code"] == 1 and proc["exception"] == "ValueError"
    [call] = proc["watched"]
    assert (call["name"], call["status"], call["exception"]) == ("bad", "raised", "ValueError: boom")


def test_killed_inside_a_watched_function(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    program(MODULE, "mod.py")
    marker = tmp_path / "inside"
    prog = program("import mod, sys\nmod.plain(1)\nmod.stuck(sys.argv[1])\n")
    run = gsup.start("run", "--json", "--python", PYTHON, "--watch", "mod:plain", "--watch", "mod:stuck",
                     str(prog), str(marker))
    wait_while_running(run, marker.exists, what="the watched function to start")
    assert run.poll() is None, run.communicate()
    kill = gsup.run("kill", "--signal", "KILL")
    assert kill.returncode == 0, kill.stderr
    result = gsup.finish(run, timeout=30)
    assert result.returncode == 0, result.stderr
    proc = role(result.report, "parent")
    assert proc["end"]["signal"] == "SIGKILL"
    assert watched(proc) == [("plain", "ran"), ("stuck", "interrupted")]
    assert [w["duration"] for w in proc["watched"] if w["name"] == "stuck"] == [None]
    assert "while watched mod.stuck was running" in proc["explanation"], proc["explanation"]


def test_fork_calls_belong_to_the_process_that_made_them(gsup: Gsup, program: Program) -> None:
    program(MODULE, "mod.py")
    prog = program("""
        import os, mod
        mod.plain(1)
        pid = mod.forker()  # both processes return from it: only the parent began the call
        if pid == 0:
            mod.plain(2)
            raise SystemExit(0)
        os.waitpid(pid, 0)
        """)
    report = gsup.report(*watch_args("plain", "forker"), str(prog))
    parent, child = role(report, "parent"), role(report, "child")
    assert watched(parent) == [("plain", "ran"), ("forker", "ran")]
    assert child["forked"] and watched(child) == [("plain", "ran")]


def test_presets_finalize_logging_and_executor(gsup: Gsup, program: Program) -> None:
    prog = program("""
        import gc, logging, weakref
        from concurrent.futures import ThreadPoolExecutor

        class Resource:
            pass

        def collected():
            pass

        def at_exit():
            print("finalized at exit")

        first, second = Resource(), Resource()
        weakref.finalize(first, collected)
        weakref.finalize(second, at_exit)
        del first
        gc.collect()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(print, "task ran").result()
        logging.shutdown()
        """)
    proc = role(gsup.report(str(prog)), "parent")
    assert watched(proc, "__main__") == [("collected", "ran"), ("at_exit", "ran")]
    assert watched(proc, "concurrent.futures.thread") == [("ThreadPoolExecutor.shutdown", "ran")]
    assert watched(proc, "logging") == [("shutdown", "ran")]
    # the finalizer left for exit runs inside weakref's own atexit handler, after logging's explicit call
    order = {w["name"]: w["order"] for w in proc["watched"]}
    assert order["collected"] < order["ThreadPoolExecutor.shutdown"] < order["shutdown"] < order["at_exit"]
    assert "weakref.finalize._exitfunc" in proc["fired"]


@pytest.mark.parametrize(("presets", "modules"), [
    (["none"], set()),
    (["logging"], {"logging"}),
    (["logging,futures"], {"logging", "concurrent.futures.thread"}),
])
def test_choosing_presets(gsup: Gsup, program: Program, presets: list[str], modules: set[str]) -> None:
    prog = program("""
        import logging
        from concurrent.futures import ThreadPoolExecutor
        ThreadPoolExecutor(max_workers=1).shutdown()
        logging.shutdown()
        """)
    args = [arg for name in presets for arg in ("--watch-preset", name)]
    proc = role(gsup.report(*args, str(prog)), "parent")
    assert {w["module"] for w in proc["watched"]} == modules


def test_unknown_preset_is_bad_input(gsup: Gsup, program: Program) -> None:
    prog = program("print('never')\n")
    for value, words in (("flask", "invalid --watch-preset 'flask'"),
                         ("none,logging", "--watch-preset none turns every")):
        result = gsup.run("run", "--python", PYTHON, "--watch-preset", value, str(prog))
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"gsup: error: {words}") and result.stderr.count("\n") == 1
        assert "never" not in result.stdout


def test_missing_attribute_is_reported_and_harmless(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    program(MODULE, "mod.py")
    prog = program("import mod\nprint(mod.plain(21))\n")
    result = gsup.run("run", "--python", PYTHON, "--watch", "mod:nope", "--watch", "mod:Service.gone",
                      "--watch", "mod:plain", "-q", str(prog))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("42\n") and "watched mod:nope: not found" in result.stdout
    proc = role(gsup.report("--watch", "mod:nope", "--watch", "mod:Service.gone", "--watch", "mod:plain",
                            str(prog)), "parent")
    assert proc["watch_missing"] == ["mod:nope", "mod:Service.gone"]
    assert watched(proc) == [("plain", "ran")] and proc["end"]["code"] == 0


def test_preset_paths_a_version_lacks_are_skipped_silently(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """Starlette 1.0 dropped ``Router.shutdown``: the asgi preset must not call that missing."""
    for package in ("uvicorn", "uvicorn/lifespan", "starlette"):
        (tmp_path / package).mkdir()
        program("", f"{package}/__init__.py")
    program("""
        class LifespanOn:
            async def shutdown(self):
                return None
        """, "uvicorn/lifespan/on.py")
    program("class Router:\n    pass\n", "starlette/routing.py")
    prog = program("""
        import asyncio
        import starlette.routing
        from uvicorn.lifespan.on import LifespanOn
        asyncio.run(LifespanOn().shutdown())
        """)
    proc = role(gsup.report(str(prog)), "parent")
    assert watched(proc, "uvicorn.lifespan.on") == [("LifespanOn.shutdown", "ran")]
    assert "watch_missing" not in proc


def test_preset_names_match_the_probe() -> None:
    """gsup checks --watch-preset against its own list: it must be the probe's."""
    tree = ast.parse((ROOT / "supervisor" / "_probe" / "_gsup_probe" / "__init__.py").read_text())
    presets = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "WATCH_PRESETS" for t in node.targets))
    assert isinstance(presets, ast.Dict)
    assert tuple(ast.literal_eval(key) for key in presets.keys if key is not None) == options.WATCH_PRESETS


# -- gunicorn: hooks reported in the process that runs them -------------------------

GUNICORN_CONF = """
    import os

    control_socket_disable = True  # else one $HOME/.gunicorn/gunicorn.ctl for every run on the machine

    def post_worker_init(worker):
        # After init_signals: a TERM now reaches the worker's own handler, not the master's it inherited.
        booted = os.path.join(os.path.dirname(os.path.abspath(__file__)), "booted")
        os.makedirs(booted, exist_ok=True)
        open(os.path.join(booted, str(os.getpid())), "w").close()
        if len(os.listdir(booted)) == 2:
            print("watch-test: 2 workers booted", flush=True)

    def _mark(name):
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "%s-%d" % (name, os.getpid())), "w"):
            pass

    def on_exit(server):
        _mark("on_exit")

    def worker_exit(server, worker):
        _mark("worker_exit")

    def worker_int(worker):
        _mark("worker_int")
    """

GUNICORN_APP = """
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """


def test_gunicorn_term_hooks(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """gunicorn calls on_exit and child_exit in the master (Arbiter.halt, reap_workers) and
    worker_exit in each worker, in spawn_worker's ``finally`` after the worker loop
    ended; TERM makes workers leave their loop (handle_exit), so worker_int never runs."""
    conf = program(GUNICORN_CONF, "conf.py")
    program(GUNICORN_APP, "app.py")
    gunicorn = str(Path(PYTHON).with_name("gunicorn"))
    result = gsup.run("run", "--json", "--signal", "TERM", "--ready-output", "2 workers booted",
                      "--", gunicorn, "-c", str(conf), "-w", "2",
                      "-b", f"127.0.0.1:{free_port()}", "app:app")
    assert result.returncode == 0, result.stderr
    report = result.report
    master = role(report, "parent")
    workers = [p for p in report["processes"] if p["role"] == "child"]
    assert len(workers) == 2, [(p["pid"], p["role"], p["argv"]) for p in report["processes"]]
    assert master["end"] == {"how": "exited", "code": 0, "signal": None, "reaped_by": "gsup"}
    assert gunicorn_hooks(master) == [("child_exit", "ran", "config.py")] * 2 + [("on_exit", "ran", "conf.py")]
    for worker in workers:
        assert worker["end"]["how"] == "exited" and worker["end"]["code"] == 0
        assert gunicorn_hooks(worker) == [("worker_exit", "ran", "conf.py")]
    # What the hooks themselves left behind agrees with the report.
    marks = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("on_exit-", "worker_")))
    assert marks == sorted([f"on_exit-{master['pid']}"] + [f"worker_exit-{w['pid']}" for w in workers])
    assert report["leftovers"] == []


# -- transparency on every interpreter: the probe alone, with and without watching ----

TRANSPARENCY = """
    import asyncio, atexit, gc, inspect, sys, threading, traceback, weakref
    import mod

    def finalizer_error():
        raise RuntimeError("in a finalizer")

    class Thing:
        pass

    thing = Thing()
    weakref.finalize(thing, finalizer_error)
    del thing
    gc.collect()
    print(mod.plain(2), mod.Service.build().stop(), mod.Service.version(), list(mod.steps()))
    print(inspect.iscoroutinefunction(mod.drain), inspect.signature(mod.plain), mod.plain.__name__)
    try:
        asyncio.run(mod.drain())
        mod.bad()
    except ValueError:
        traceback.print_exc()
    atexit.register(mod.bad)
    worker = threading.Thread(target=mod.plain, args=(1,))
    worker.start()
    worker.join()
    mod.bad()
    """


@pytest.mark.parametrize("python", INTERPRETERS)
def test_watching_changes_nothing(python: str, tmp_path: Path) -> None:
    write_program(tmp_path / "mod.py", MODULE)
    prog = write_program(tmp_path / "prog.py", TRANSPARENCY)
    events = tmp_path / "events"
    events.mkdir()
    env = {**probe_env(events), "GSUP_WATCH": ",".join(
        f"mod:{n}" for n in ("plain", "Service.stop", "Service.build", "Service.version", "drain", "steps", "bad"))}
    baseline = run_python(python, [str(prog)], base_env(), tmp_path)
    probed = start_python(python, [str(prog)], env, tmp_path)
    with_probe = finish_python(probed)
    assert baseline.returncode == 1 and b"in a finalizer" in baseline.stderr, baseline.show()
    assert normalised(with_probe) == normalised(baseline), f"{with_probe.show()}\nwithout:\n{baseline.show()}"
    [image] = events.glob(f"{probed.pid}-*.jsonl")
    begun = [e for e in map(json.loads, image.read_text().splitlines()) if e["k"] == "watch.begin"]
    assert [(e["name"], e["th"] == "MainThread") for e in begun] == [
        ("finalizer_error", True), ("plain", True), ("Service.build", True), ("Service.stop", True),
        ("Service.version", True), ("steps", True), ("drain", True), ("bad", True), ("plain", False),
        ("bad", True), ("bad", True)]  # the last one: atexit calling the watched function
