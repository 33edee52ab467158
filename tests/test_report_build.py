"""``report.build`` on hand-made facts: the rules a real run hits only by chance of timing.

A real run reaches these cases through a race (a shell seen the instant it
ended, a Python killed before its probe wrote), so each rule is held here on
the facts themselves; tests/test_edge_cases.py runs the real thing where it can
be made to happen every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor.events import Image
from supervisor.reaper import ExitStatus
from supervisor.report import RunFacts, build
from supervisor.tree import Seen

GSUP, ROOT, CHILD = 100, 101, 102
COMMAND = ["sh", "-c", "python -c pass & exit 0"]


def facts(**fields: Any) -> RunFacts:
    base: dict[str, Any] = dict(command=COMMAND, session="s", started_wall=1000.0, launched=50.0, root_pid=ROOT,
                                gsup_pid=GSUP, images=[], seen=[], statuses=[], actions=[], leftovers=[],
                                finished=53.0)
    return RunFacts(**{**base, **fields})


def seen(pid: int, argv: list[str], name: str, started: float, ppid: int = GSUP) -> Seen:
    return Seen(pid, create_time=float(pid), ppid=ppid, argv=argv, first_seen=started + 0.001, name=name,
                started=started)


def spawner(argv: list[str], at: float) -> Image:
    """The launched process as a probed Python that recorded starting ``CHILD``."""
    start = {"k": "start", "t": 50.01, "n": 1, "pid": ROOT, "ppid": GSUP, "argv": ["python", "app.py"]}
    spawn = {"k": "spawn", "t": at, "n": 2, "pid": CHILD, "argv": argv}
    return Image(ROOT, 5, 1, Path("x"), start=start, events=[start, spawn])


def test_a_shell_read_as_it_ended_keeps_the_command_gsup_launched() -> None:
    """Its command line was gone (empty), only its name ``sh`` was left: that is no argv."""
    report = build(facts(seen=[seen(ROOT, [], "sh", 50.0)], statuses=[ExitStatus(ROOT, 0, None, 50.02)]))
    assert report.processes[0].argv == COMMAND


def test_the_launched_process_keeps_the_argv_gsup_launched_whatever_proc_says() -> None:
    """gsup records what it launched; /proc is read only for processes it did not start.

    A read of ``/proc/<pid>/cmdline`` is a later witness: a retitled program, a
    shell read as it ended, an exec in progress each tell something else.
    """
    for read_back in (["sh"], ["retitled"], ["python3", "-I", "-S", "guardian.py"]):
        report = build(facts(seen=[seen(ROOT, read_back, "sh", 50.0)], statuses=[ExitStatus(ROOT, 0, None, 50.02)]))
        assert report.processes[0].argv == COMMAND


def test_a_child_read_amid_its_exec_keeps_what_its_parent_started() -> None:
    argv = ["/usr/bin/python3", "-I", "-c", "pass"]
    report = build(facts(images=[spawner(argv, 50.2)], seen=[seen(CHILD, [], "python3", 50.2, ppid=ROOT)],
                         statuses=[ExitStatus(CHILD, 0, None, 50.3), ExitStatus(ROOT, 0, None, 50.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.argv == argv


def test_a_name_is_all_there_is_when_nothing_else_said() -> None:
    report = build(facts(seen=[seen(ROOT, ["sh", "-c", "x"], "sh", 50.0), seen(CHILD, [], "worker", 50.1, ROOT)],
                         statuses=[ExitStatus(CHILD, 0, None, 50.3), ExitStatus(ROOT, 0, None, 50.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.argv == ["worker"]


def test_a_python_that_ended_at_once_is_not_blamed_on_its_environment() -> None:
    argv = ["/usr/bin/python3", "app.py"]
    report = build(facts(images=[spawner(argv, 50.2)], seen=[seen(CHILD, argv, "python3", 50.2, ppid=ROOT)],
                         statuses=[ExitStatus(CHILD, None, 9, 50.212), ExitStatus(ROOT, 0, None, 50.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.uninstrumented_reason == "it ended 12 ms after it started, before the probe's first record"


def test_a_python_never_seen_dates_its_start_from_its_parents_record() -> None:
    argv = ["/usr/bin/python3", "app.py"]
    report = build(facts(images=[spawner(argv, 50.2)],
                         statuses=[ExitStatus(CHILD, None, 9, 50.203), ExitStatus(ROOT, 0, None, 50.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.uninstrumented_reason == "it ended 3 ms after it started, before the probe's first record"


def test_a_python_that_ran_for_long_without_a_record_may_have_lost_the_environment() -> None:
    argv = ["/usr/bin/python3", "app.py"]
    report = build(facts(images=[spawner(argv, 50.2)], seen=[seen(CHILD, argv, "python3", 50.2, ppid=ROOT)],
                         statuses=[ExitStatus(CHILD, 0, None, 52.7), ExitStatus(ROOT, 0, None, 52.8)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.uninstrumented_reason == ("no probe record in its 2.5 s of running: its environment may not have "
                                           "carried gsup's (scrubbed env?)")


def empty_image(of: Seen) -> Image:
    """A record file the probe of ``of`` opened, with no line in it."""
    return Image(of.pid, of.starttime, 2, Path("y"))


def test_an_empty_record_of_a_process_killed_at_once_is_no_loss() -> None:
    argv = ["/usr/bin/python3", "app.py"]
    sighted = seen(CHILD, argv, "python3", 50.2, ppid=ROOT)
    report = build(facts(images=[spawner(argv, 50.2), empty_image(sighted)], seen=[sighted],
                         statuses=[ExitStatus(CHILD, None, 9, 50.205), ExitStatus(ROOT, 0, None, 50.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert not child.instrumented and child.handlers == []
    assert child.uninstrumented_reason == "it ended 5 ms after it started, before the probe's first record"
    assert report.incomplete == []


def test_an_empty_record_on_a_full_disk_is_a_loss() -> None:
    argv = ["/usr/bin/python3", "app.py"]
    sighted = seen(CHILD, argv, "python3", 50.2, ppid=ROOT)
    report = build(facts(images=[spawner(argv, 50.2), empty_image(sighted)], seen=[sighted],
                         records_lost="the disk is full",
                         statuses=[ExitStatus(CHILD, 0, None, 50.9), ExitStatus(ROOT, 0, None, 51.0)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.uninstrumented_reason == "its probe ran but could not write a record (the disk is full)"
    assert report.incomplete == [f"the probe could not record pid {CHILD} (the disk is full): handlers unknown"]


def test_a_fork_without_a_record_of_its_own_is_not_blamed_on_its_environment() -> None:
    """A fork carries its parent's probe in memory: a missing record is the probe's, not the environment's."""
    image = spawner(["unused"], 50.2)
    image.events[-1] = {"k": "spawn", "t": 50.2, "n": 2, "pid": CHILD}  # os.fork(): no argv
    argv = ["python", "app.py"]
    report = build(facts(images=[image], seen=[seen(CHILD, argv, "python", 50.2, ppid=ROOT)],
                         statuses=[ExitStatus(CHILD, 3, None, 52.2), ExitStatus(ROOT, 0, None, 52.4)]))
    [child] = [p for p in report.processes if p.pid == CHILD]
    assert child.uninstrumented_reason == (f"a fork of pid {ROOT}, whose probe it inherited, yet no record of its "
                                           "own reached the session")
