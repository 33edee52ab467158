"""Log records still held by logging handlers when a process ends: counted, never silently lost.

A MemoryHandler flushes only when full or closed, a QueueHandler's records wait
for a QueueListener: a process that ends without ``logging.shutdown`` (killed,
``os._exit``) or without stopping its listener loses them.  Counts come from
the probe's last look (after atexit, at ``os._exit``) or from the stacks gsup
takes before it SIGKILLs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Gsup, Program, role
from tests.test_stuck_escalation import stuck_run

PROGRAM = """
    import logging, logging.handlers, os, queue, signal, sys, time

    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    if {memory}:
        log.addHandler(logging.handlers.MemoryHandler(1000, target=logging.FileHandler({out!r})))
    else:
        records = queue.Queue()
        log.addHandler(logging.handlers.QueueHandler(records))
        listener = logging.handlers.QueueListener(records, logging.FileHandler({out!r}))
        if {listening}:
            listener.start()
            import atexit
            atexit.register(listener.stop)
    for number in range(30):
        log.info("record %d", number)
    {ending}
    open({ready!r}, "w").close()
    time.sleep(60)
    """


def run(gsup: Gsup, program: Program, tmp_path: Path, memory: bool, ending: str,
        listening: bool = False) -> dict[str, Any]:
    ready, out = tmp_path / "ready", tmp_path / "app.log"
    prog = program(textwrap.dedent(PROGRAM).format(memory=memory, listening=listening, ending=ending,
                                                   ready=str(ready), out=str(out)))
    if "os._exit" in ending:
        return role(gsup.report(str(prog)), "parent")
    return stuck_run(gsup, prog, ready)


def test_a_memory_handler_of_a_process_killed_after_the_grace(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    proc = run(gsup, program, tmp_path, memory=True, ending="signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    assert proc["lost_logs"] == [{"handler": "MemoryHandler", "target": str(tmp_path / "app.log"), "records": 30,
                                  "why": "logging.shutdown never ran (killed by SIGKILL)"}]


def test_a_memory_handler_at_os_exit(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    proc = run(gsup, program, tmp_path, memory=True, ending="os._exit(0)")
    assert [(lost["records"], lost["why"]) for lost in proc["lost_logs"]] == [
        (30, "logging.shutdown never ran (os._exit(0))")]


@pytest.mark.parametrize("listening", [False, True])
def test_a_queue_handler_whose_listener_never_drained_it(gsup: Gsup, program: Program, tmp_path: Path,
                                                         listening: bool) -> None:
    proc = run(gsup, program, tmp_path, memory=False, listening=listening,
               ending="signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))")
    assert proc["end"]["code"] == 0 and proc["atexit_ran"]
    if listening:
        assert "lost_logs" not in proc  # the listener was stopped at exit: every record written
        assert len((tmp_path / "app.log").read_text().splitlines()) == 30
        return
    [lost] = proc["lost_logs"]
    assert (lost["handler"], lost["target"], lost["records"]) == ("QueueHandler", "queue", 30)
    assert lost["why"].startswith("still queued at exit: no QueueListener drained it")


def test_a_memory_handler_flushed_by_logging_shutdown_loses_nothing(gsup: Gsup, program: Program,
                                                                   tmp_path: Path) -> None:
    proc = run(gsup, program, tmp_path, memory=True, ending="signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))")
    assert "lost_logs" not in proc and len((tmp_path / "app.log").read_text().splitlines()) == 30
