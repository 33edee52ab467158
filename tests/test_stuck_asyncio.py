"""asyncio: ``loop.add_signal_handler`` callbacks by their own name, and what ``asyncio.run`` cancels at its end.

asyncio installs ``_sighandler_noop`` with ``signal.signal`` and does the work
through its wakeup fd, so without the probe's help a report names the no-op.
At its end ``asyncio.run`` (and ``asyncio.Runner``, 3.11+) cancels every task
left and waits for them: a slow ``finally`` there is a hang a user must be
able to find.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import INTERPRETERS, PYTHON, Gsup, Program, minor_of, role
from tests.test_stuck_escalation import line_of, stuck_run

SERVICE = """
    import asyncio, signal

    async def worker():
        try:
            await asyncio.Event().wait()  # cancelled here
        finally:
            await asyncio.sleep({cleanup})  # cleanup

    async def main():
        me = asyncio.current_task()

        def on_term():
            me.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)
        asyncio.ensure_future(worker()).set_name("worker-task")
        await asyncio.sleep(0)
        open({ready!r}, "w").close()
        await asyncio.sleep(60)

    {run}
    """


def service(program: Program, tmp_path: Path, cleanup: float, run: str = "asyncio.run(main())") -> tuple[Path, Path]:
    ready = tmp_path / "ready"
    return program(textwrap.dedent(SERVICE).format(ready=str(ready), cleanup=cleanup, run=run)), ready


def task(proc: dict[str, Any]) -> dict[str, Any]:
    [cancelled] = proc["cancelled_tasks"]
    return cancelled


@pytest.mark.parametrize("python", INTERPRETERS)
def test_a_slow_finally_after_asyncio_run_cancels_its_task(gsup: Gsup, program: Program, tmp_path: Path,
                                                          python: str) -> None:
    prog, ready = service(program, tmp_path, cleanup=60)
    proc = stuck_run(gsup, prog, ready, python=python)
    [term] = [s for s in proc["signal_handlers"] if s["signal"] == "SIGTERM"]
    assert (term["handler"], term["invoked"], len(term["times"])) == ("main.<locals>.on_term", True, 1)
    assert task(proc) == {"name": "worker-task", "coroutine": "worker",
                          "awaiting": f"{prog}:{line_of(prog, 'cancelled here')}", "state": "interrupted"}
    stuck = proc["stuck"]
    assert stuck["kind"] == "awaiting-task" and stuck["waiting_for"] == ["worker-task"]
    assert stuck["frame"] == {"file": str(prog), "line": line_of(prog, "cleanup"), "function": "worker"}
    assert stuck["summary"] == (f"event loop waiting on task worker-task (worker), finishing its cleanup after "
                                f"asyncio.run cancelled it, at prog.py:{line_of(prog, 'cleanup')} on "
                                f"`await asyncio.sleep(60)  # cleanup`")


def test_a_quick_cleanup_is_reported_finished(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    prog, ready = service(program, tmp_path, cleanup=0.01)
    proc = stuck_run(gsup, prog, ready)
    assert task(proc)["state"] == "cancelled" and "stuck" not in proc
    assert proc["end"]["how"] == "exited"


@pytest.mark.skipif(minor_of(PYTHON) < (3, 11), reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_close_too(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    prog, ready = service(program, tmp_path, cleanup=60, run="with asyncio.Runner() as runner:\n    runner.run(main())")
    proc = stuck_run(gsup, prog, ready)
    assert task(proc)["state"] == "interrupted" and proc["stuck"]["kind"] == "awaiting-task"


def test_the_probe_leaves_the_loop_holding_the_programs_own_callback(gsup: Gsup, program: Program) -> None:
    """asyncio's own tests read the handle's callback: the probe names it, never wraps it."""
    prog = program("""
        import asyncio, signal

        def on_hup():
            pass

        async def main():
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            assert loop._signal_handlers[signal.SIGHUP]._callback is on_hup
            loop.remove_signal_handler(signal.SIGHUP)

        asyncio.run(main())
        """)
    proc = role(gsup.report(str(prog)), "parent")
    assert proc["end"]["code"] == 0
