"""``gsup matrix``: one real run per scenario, one table, one exit code.

The forked program (``FORKED``, in tests/helpers.py) makes every scenario end
quickly and differently: the child blocks reading a pipe whose only writer is
the parent, so it leaves (running its handler) as soon as the parent is gone,
however that happened.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional
from xml.etree import ElementTree

import pytest

from tests.helpers import EXAMPLES, FORKED, PYTHON, Gsup, Program, free_port, own_fired, role, wait_until

FAST = ("--python", PYTHON, "--grace", "2s", "--settle", "200ms")
SCENARIOS = ["SIGTERM→parent", "SIGTERM→child", "SIGINT→parent", "SIGINT→child", "SIGKILL→parent", "SIGKILL→child"]
# scenario -> (parent's end, parent's handlers that ran, child's end, child's handlers that ran)
OUTCOMES = {
    "SIGTERM→parent": (("signaled", "SIGTERM"), [], ("exited", 0), ["child_cleanup"]),
    "SIGTERM→child": (("exited", 0), ["parent_cleanup"], ("signaled", "SIGTERM"), []),
    "SIGINT→parent": (("signaled", "SIGINT"), ["parent_cleanup"], ("exited", 0), ["child_cleanup"]),
    "SIGINT→child": (("exited", 0), ["parent_cleanup"], ("signaled", "SIGINT"), ["child_cleanup"]),
    "SIGKILL→parent": (("signaled", "SIGKILL"), [], ("exited", 0), ["child_cleanup"]),
    "SIGKILL→child": (("exited", 0), ["parent_cleanup"], ("signaled", "SIGKILL"), []),
}


def ending(proc: dict[str, Any]) -> tuple[str, Any]:
    end = proc["end"]
    return end["how"], end["signal"] if end["how"] == "signaled" else end["code"]


def test_default_matrix_of_a_forked_program(gsup: Gsup, program: Program) -> None:
    script = program(FORKED)
    result = gsup.run("matrix", "--json", *FAST, str(script))
    assert result.returncode == 0, result.stderr
    document = result.report
    assert document["schema"] == "gsup.matrix/1" and document["ok"] and document["complete"]
    assert document["command"] == [PYTHON, str(script)]
    assert [s["name"] for s in document["scenarios"]] == SCENARIOS
    assert all(s["exit_code"] == 0 and s["ok"] and s["stop"] is None for s in document["scenarios"])
    assert [(s["signal"], s["target"]) for s in document["scenarios"]][:2] == [("SIGTERM", "parent"),
                                                                               ("SIGTERM", "child")]
    for scenario, run in zip(document["scenarios"], document["runs"]):
        parent, child = role(run, "parent"), role(run, "child")
        assert (ending(parent), own_fired(parent), ending(child), own_fired(child)) == OUTCOMES[scenario["name"]]
        assert run["actions"][0]["signal"] + "→" + run["actions"][0]["target"] == scenario["name"]
    assert len({run["session"] for run in document["runs"]}) == 6  # a fresh tree each time
    assert "gsup: SIGKILL→child: ok" in result.stderr  # not a terminal: one line per scenario


def test_jobs_run_scenarios_side_by_side(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """Each run spins (so gsup does not see a settled tree) until it sees the
    other's marker file: both can only end by their signal if they ran at once."""
    script = program(f"""
        import os, signal, sys, time

        open(os.path.join({str(tmp_path)!r}, f"running-{{os.getpid()}}"), "w").close()
        deadline = time.monotonic() + 30
        while len([n for n in os.listdir({str(tmp_path)!r}) if n.startswith("running-")]) < 2:
            if time.monotonic() > deadline:
                sys.exit(1)
        signal.pause()
    """)
    result = gsup.run("matrix", "--json", "-q", "--jobs", "2", "--signals", "TERM,KILL", "--targets", "parent",
                      *FAST, str(script))
    assert result.returncode == 0, result.stderr
    document = result.report
    assert [ending(role(run, "parent")) for run in document["runs"]] == [("signaled", "SIGTERM"),
                                                                         ("signaled", "SIGKILL")]
    assert result.stderr == ""  # -q


def test_a_scenario_waiting_for_its_shutdown_makes_room_for_the_next(gsup: Gsup, program: Program,
                                                                      tmp_path: Path) -> None:
    """Two jobs, three scenarios: once a run has sent its signal, the next starts beside it.
    Each program's exit handler waits until the third program has started: without that
    overlap the first two would wait until gsup SIGKILLs them at the end of the grace."""
    script = program(f"""
        import atexit, os, signal, sys, time

        def wait_for_the_third():
            deadline = time.monotonic() + 30
            while len([n for n in os.listdir({str(tmp_path)!r}) if n.startswith("started-")]) < 3:
                if time.monotonic() > deadline:
                    os._exit(1)
                time.sleep(0.01)

        open(os.path.join({str(tmp_path)!r}, f"started-{{os.getpid()}}"), "w").close()
        atexit.register(wait_for_the_third)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: sys.exit(0))
        signal.pause()
    """)
    result = gsup.run("matrix", "--json", "-q", "--jobs", "2", "--signals", "TERM,INT,HUP", "--targets", "parent",
                      "--python", PYTHON, "--grace", "20s", "--settle", "200ms", str(script))
    assert result.returncode == 0, result.stderr
    runs = result.report["runs"]
    assert [ending(role(run, "parent")) for run in runs] == [("exited", 0)] * 3
    assert [own_fired(role(run, "parent")) for run in runs] == [["wait_for_the_third"]] * 3


def test_one_job_runs_scenarios_start_to_end(gsup: Gsup, program: Program) -> None:
    """--jobs 1 (what a matrix without private networks asks for): no overlap at all."""
    script = program(FORKED)
    result = gsup.run("matrix", "--json", "-q", "--jobs", "1", "--signals", "TERM,INT,KILL", "--targets", "child",
                      *FAST, str(script))
    assert result.returncode == 0, result.stderr
    runs = result.report["runs"]
    for earlier, later in zip(runs, runs[1:]):
        assert later["started"] >= earlier["started"] + earlier["duration"] - 0.01  # report times are rounded


def test_stop_preset_is_a_scenario_of_its_own(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    script = program(FORKED)
    junit = tmp_path / "gsup.xml"
    result = gsup.run("matrix", "--json", "--signals", "KILL", "--targets", "child,ctrl-c", "--junit", str(junit),
                      *FAST, str(script))
    assert result.returncode == 0, result.stderr
    suite = ElementTree.parse(junit).getroot()
    assert [case.get("name") for case in suite.iter("testcase")] == ["SIGKILL→child", "stop ctrl-c"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    document = result.report
    assert [(s["name"], s["signal"], s["target"], s["stop"]) for s in document["scenarios"]] == [
        ("SIGKILL→child", "SIGKILL", "child", None), ("stop ctrl-c", "SIGINT", "group", "ctrl-c")]
    group = document["runs"][1]
    assert group["stop"] == "ctrl-c"
    assert own_fired(role(group, "parent")) == ["parent_cleanup"]
    assert own_fired(role(group, "child")) == ["child_cleanup"]


@pytest.mark.slow
def test_flask_matrix_without_leftovers_fails_on_kill_to_the_parent(gsup: Gsup) -> None:
    """The seed's whole experiment in one command: only SIGKILL to the reloader's
    parent orphans the serving child, which gsup then finds left running."""
    result = gsup.run("matrix", "--python", PYTHON, "--grace", "2s", "--expect", "no leftovers",
                      str(EXAMPLES / "flask_app.py"), env={"PORT": str(free_port()), "COLUMNS": "100"})
    assert result.returncode == 1, result.stderr
    table = result.stdout
    for name in SCENARIOS:
        assert name in table
    assert "left running" in table and "exit 247" in table and "✓ shutdown3" in table and "✗ shutdown" in table
    kill_parent = next(line for line in table.splitlines() if "SIGKILL→parent" in line)
    assert "SIGKILL" in kill_parent.split("│")[2] and "left running" in kill_parent
    assert "✗ no leftovers" in kill_parent
    assert result.stderr.splitlines()[-1].startswith(
        "gsup: error: 1 of 6 scenarios failed: SIGKILL→parent; each run's output is in ")
    assert "gsup: SIGKILL→parent: no leftovers did not hold (left running" in result.stderr
    logs = Path(result.stderr.splitlines()[-1].rsplit(" ", 1)[-1])
    assert "Running on http://127.0.0.1" in (logs / "05-SIGKILL-parent.log").read_text()  # the program's output


def test_sigterm_to_the_matrix_ends_the_running_scenario(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """How the API stops a matrix: the running gsup is ended, and ends its tree."""
    marker = tmp_path / "running"
    script = program(f"""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scenario's INT changes nothing: a 60 s grace
        open({str(marker)!r}, "w").close()
        signal.pause()
    """)
    matrix = gsup.start("matrix", "--signals", "INT", "--targets", "parent", "--grace", "60s", "--python", PYTHON,
                        str(script))
    wait_until(marker.exists, what="the scenario's program to run")
    matrix.send_signal(signal.SIGTERM)
    result = gsup.finish(matrix, timeout=30)
    assert result.returncode == 130, result.stderr
    assert (result.stdout, result.stderr.splitlines()[-1]) == ("", "gsup: interrupted")
    # and the harness checks that gsup run and its program have ended


@pytest.mark.parametrize(("args", "message"), [
    (("--signals", "TERM,FOO"), "invalid signal 'FOO'"),
    (("--signals", ""), "--signals is empty"),
    (("--targets", "parent,pid:12"), "--targets pid:12: a pid belongs to one run"),
    (("--targets", "parent,nobody"), "invalid target 'nobody' in --targets: use parent, child, group, tree or a stop"),
    (("--jobs", "0"), "invalid --jobs 0"),
    (("--kill-after", "1s"), "--kill-after goes with the timeout stop preset"),
    (("--expect", "child: shutdown ran fast"), "--expect"),
    (("--grace", "soon"), "invalid duration 'soon'"),
])
def test_bad_input_runs_nothing(gsup: Gsup, program: Program, args: tuple[str, ...], message: str) -> None:
    script = program(FORKED)
    result = gsup.run("matrix", *args, "--python", PYTHON, str(script))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("gsup: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not gsup.home.exists() or not any(gsup.home.iterdir())  # no session, no log directory


def test_missing_program_is_bad_input(gsup: Gsup) -> None:
    result = gsup.run("matrix", "--python", PYTHON, "missing.py")
    assert (result.returncode, result.stderr) == (2, "gsup: error: missing.py: no such file\n")


def test_table_shows_watched_calls_and_who_ended_a_survivor(gsup: Gsup, program: Program) -> None:
    """A watched function is a row of its own (``name()``), and a SIGKILL that came from
    gsup's grace, not from the scenario, says so: it is not what the environment did."""
    program("def cleanup():\n    pass\n", "mod.py")
    script = program("""
        import atexit, signal, time, mod
        signal.signal(signal.SIGTERM, lambda *a: mod.cleanup())  # cleans up, but does not exit
        atexit.register(mod.cleanup)
        print("ready", flush=True)
        while True:
            time.sleep(60)
    """)
    result = gsup.run("matrix", "--python", PYTHON, "--signals", "TERM", "--targets", "parent", "--grace", "1s",
                      "--ready-output", "ready", "--watch", "mod:cleanup", str(script), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    lines = [line.strip("│ ").split("│") for line in result.stdout.splitlines() if "│" in line]
    cells = [cell.strip() for line in lines for cell in line]
    assert "SIGKILL (grace)" in cells and "✓ cleanup()" in cells and "✗ mod.cleanup" in cells, result.stdout


ONE_PROCESS = "import time; time.sleep(2)"


def test_default_matrix_of_a_one_process_program_has_no_child_scenarios_to_fail(gsup: Gsup, program: Program,
                                                                                tmp_path: Path) -> None:
    """The default targets are parent,child: a program that starts no child is no error (exit 0),
    its child scenarios say "no child process"; piped, the table has no trailing spaces."""
    script = program(ONE_PROCESS)
    junit_file = tmp_path / "junit.xml"
    result = gsup.run("matrix", "-q", "--python", PYTHON, "--signals", "TERM", "--junit", str(junit_file),
                      str(script))
    assert result.returncode == 0, result.stderr
    assert "no child process" in result.stdout
    assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == []
    assert 'skipped="1"' in junit_file.read_text()
    document = gsup.run("matrix", "-q", "--json", "--python", PYTHON, "--signals", "TERM", str(script)).report
    assert [(s["name"], s["ok"], s["skipped"]) for s in document["scenarios"]] == [
        ("SIGTERM→parent", True, None), ("SIGTERM→child", True, "no child process")]


def test_a_child_asked_for_explicitly_is_still_an_error_when_missing(gsup: Gsup, program: Program) -> None:
    result = gsup.run("matrix", "-q", "--python", PYTHON, "--signals", "TERM", "--targets", "child",
                      str(program(ONE_PROCESS)))
    assert result.returncode == 2
    assert "SIGTERM→child: --signal was never sent: no child process appeared" in result.stderr


def test_a_piped_run_report_has_no_trailing_spaces(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--python", PYTHON, "--", "sh", "-c", "true")
    assert result.returncode == 0, result.stderr
    assert "not seen by the probe" in result.stdout
    assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == []


# -- side by side: a network namespace per scenario, {port} on the host's network (issue 17) --------------

# Binds a port, says so with a marker file, and holds it until the other scenario has done the same:
# both can only get there if they ran at once and the port did not clash.
HOLDS_PORT = """
    import os, signal, socket, sys, time

    port, markers = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    open(os.path.join(markers, f"bound-{{port}}-{{os.getpid()}}"), "w").close()
    deadline = time.monotonic() + 30
    while len([n for n in os.listdir(markers) if n.startswith("bound-")]) < 2:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.01)
    signal.pause()
"""


def _bound_ports(markers: Path) -> list[int]:
    return sorted(int(name.split("-")[1]) for name in os.listdir(markers))


def test_scenarios_side_by_side_each_have_their_own_network(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """The same fixed port, twice at once: each scenario's loopback is its own, and
    --ready-port is read from inside the scenario's namespace."""
    markers = tmp_path / "markers"
    markers.mkdir()
    script = program(HOLDS_PORT.format())
    port = "5000"  # the Flask default, whatever the host has on it
    result = gsup.run("matrix", "--json", "-q", "--jobs", "2", "--signals", "TERM,INT", "--targets", "parent",
                      "--ready-port", port, *FAST, str(script), port, str(markers))
    assert result.returncode == 0, result.stderr
    assert _bound_ports(markers) == [5000, 5000]
    runs = result.report["runs"]
    assert [(run["ready"]["condition"], run["ready"]["ok"]) for run in runs] == [("port 5000 listening", True)] * 2
    assert [ending(role(run, "parent")) for run in runs] == [("signaled", "SIGTERM"), ("signaled", "SIGINT")]
    assert [len(run["processes"]) for run in runs] == [1, 1]  # each report holds its own tree only


def test_port_placeholder_on_the_shared_network(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    script = program(HOLDS_PORT.format())
    result = gsup.run("matrix", "--json", "-q", "--jobs", "2", "--network", "shared", "--signals", "TERM,INT",
                      "--targets", "parent", "--ready-port", "{port}", *FAST, str(script), "{port}", str(markers))
    assert result.returncode == 0, result.stderr
    ports = _bound_ports(markers)
    assert len(set(ports)) == 2, ports
    assert sorted(run["ready"]["condition"] for run in result.report["runs"]) == [f"port {p} listening" for p in ports]


def test_port_placeholder_belongs_to_the_matrix(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--ready-port", "{port}", "--python", PYTHON, str(program("pass\n")))
    assert (result.returncode, result.stderr) == (
        2, "gsup: error: invalid port '{port}': use 1-65535 (a placeholder of gsup matrix only)\n")


def test_jobs_default_to_the_cores() -> None:
    from supervisor import scenarios

    plan = scenarios.make_plan("TERM", "parent", None, _params(), False, ["python", "app.py"])
    assert plan.jobs == len(os.sched_getaffinity(0))


def _params() -> dict[str, Any]:
    names = ("python", "after", "grace", "settle", "ready_port", "ready_output", "ready_file", "ready_timeout",
             "kill_after", "module")
    return {**dict.fromkeys(names), "expect": (), "watch": (), "watch_presets": (), "program": ("app.py",)}


@pytest.mark.parametrize(("network", "jobs", "outcome"), [
    ("isolated", None, "refused"), ("isolated", 2, "refused"), ("isolated", 1, "note"), ("shared", None, "none")])
def test_without_namespaces_side_by_side_is_refused_unless_one_at_a_time(
        monkeypatch: pytest.MonkeyPatch, network: str, jobs: Optional[int], outcome: str) -> None:
    """Where unshare is not allowed (a container without CAP_SYS_ADMIN), runs side by side
    would share ports: refused with the reason, unless --jobs 1 asked for one at a time."""
    from supervisor import netns, scenarios
    from supervisor.errors import GsupError

    why = "no private network namespace (a user namespace: unshare: Operation not permitted)"
    monkeypatch.setattr(netns, "unavailable", lambda: why)
    plan = scenarios.make_plan("TERM", "parent", jobs, _params(), False, ["python", "app.py"])
    if outcome == "refused":
        with pytest.raises(GsupError, match=r"^no private .*: use --jobs 1 to run one at a time, or --network shared"):
            scenarios.isolate(plan, network, jobs)
        return
    note = scenarios.isolate(plan, network, jobs)
    assert plan.wrapper == []
    assert note == (f"{why}: running one at a time on the host's network" if outcome == "note" else None)


def test_each_scenario_runs_under_the_namespace_wrapper() -> None:
    from supervisor import netns, scenarios

    if netns.unavailable() is not None:
        pytest.skip(f"no network namespaces here: {netns.unavailable()}")
    plan = scenarios.make_plan("TERM", "parent", 2, _params(), False, ["python", "app.py"])
    assert scenarios.isolate(plan, "isolated", 2) is None
    argv = plan.argv(plan.scenarios[0], 4242)
    assert argv[:5] == [sys.executable, "-I", "-S", scenarios.NETNS, "--"] and argv[-1] == "app.py"
