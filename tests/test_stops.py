"""``--stop PRESET`` replays real stop sequences; ``--ready-*`` say when to start them.

The program: a parent with one child, both writing their pid to a file; the
child optionally ignores SIGTERM and another optionally leaves the process
group (``setsid``), which is what separates the presets from one another.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, Gsup, Program, free_port

TREE = """
    import atexit, os, signal, sys, time
    mode = sys.argv[1]
    atexit.register(lambda: open(f"{sys.argv[2]}/ran-{os.getpid()}", "w").close())
    if os.fork() == 0:
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if mode == "escaped":
            os.setsid()
        open(f"{sys.argv[2]}/child-{os.getpid()}", "w").close()
        while True:
            time.sleep(60)
    open(f"{sys.argv[2]}/parent-{os.getpid()}", "w").close()
    while True:
        time.sleep(60)
"""


def _run(gsup: Gsup, program: Program, tmp_path: Path, *args: str, mode: str = "plain") -> tuple[int, dict[str, Any]]:
    script = program(TREE)
    marks = tmp_path / "marks"
    marks.mkdir()
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--settle", "300ms", *args,
                      str(script), mode, str(marks))
    assert result.returncode == 0, result.stderr
    return result.returncode, result.report


def _ends(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    out = {}
    for proc in report["processes"]:
        end = proc["end"]
        final = end.get("then") or end
        out[proc["role"]] = (end["how"], final["signal"])
    return out


def _sent(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["signal"], a["target"], a["by"]) for a in report["actions"]]


def test_docker_term_to_the_root_then_kill_everything(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """As an ordinary child (--container=off): the real PID 1 case is tests/test_container_pid1.py."""
    _, report = _run(gsup, program, tmp_path, "--stop", "docker", "--container=off", "--grace", "1s",
                     mode="stubborn")
    assert report["stop"] == "docker"
    assert _sent(report) == [("SIGTERM", "parent", "stop docker"), ("SIGKILL", "tree", "stop docker")]
    assert _ends(report) == {"parent": ("signaled", "SIGTERM"), "child": ("signaled", "SIGKILL")}
    child = report["processes"][1]
    assert "--stop docker" in child["explanation"]


def test_systemd_term_and_cont_to_every_process(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    _, report = _run(gsup, program, tmp_path, "--stop", "systemd", "--grace", "1s", mode="stubborn")
    parent, child = (p["pid"] for p in report["processes"])
    term, cont, kill = report["actions"]
    assert (term["signal"], term["target"], sorted(term["pids"])) == ("SIGTERM", "tree", sorted([parent, child]))
    # SIGCONT follows at once, to whoever is still there: the child ignores SIGTERM, so it is.
    assert (cont["signal"], cont["target"]) == ("SIGCONT", "tree") and child in cont["pids"]
    # The main process is gone, but systemd's timeout still runs for the rest of the cgroup.
    assert (kill["signal"], kill["target"], kill["pids"], kill["by"]) == ("SIGKILL", "tree", [child], "stop systemd")
    assert _ends(report) == {"parent": ("signaled", "SIGTERM"), "child": ("signaled", "SIGKILL")}


def test_systemd_mixed_term_to_main_only_kill_to_all(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    _, report = _run(gsup, program, tmp_path, "--stop", "systemd-mixed", "--grace", "1s")
    # The child never got SIGTERM: only the final SIGKILL to the whole tree reached it.
    parent = report["processes"][0]["pid"]
    assert [a["signal"] for a in report["actions"] if a["signal"] != "SIGCONT"] == ["SIGTERM", "SIGKILL"]
    assert all(a["pids"] == [parent] for a in report["actions"] if a["signal"] in ("SIGTERM", "SIGCONT"))
    assert _ends(report) == {"parent": ("signaled", "SIGTERM"), "child": ("signaled", "SIGKILL")}


def test_ctrl_c_is_int_to_the_group(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    _, report = _run(gsup, program, tmp_path, "--stop", "ctrl-c", "--grace", "1s")
    assert _sent(report) == [("SIGINT", "group", "stop ctrl-c")]
    # Python's default SIGINT handler: KeyboardInterrupt, atexit runs, then death by SIGINT.
    assert _ends(report) == {"parent": ("signaled", "SIGINT"), "child": ("signaled", "SIGINT")}
    assert all(p["fired"] == ["<lambda>"] for p in report["processes"])


def test_timeout_misses_a_process_that_left_the_group(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    _, report = _run(gsup, program, tmp_path, "--stop", "timeout", "--kill-after", "1s", mode="escaped")
    assert _sent(report)[0] == ("SIGTERM", "group", "stop timeout")
    ends = _ends(report)
    assert ends["parent"] == ("signaled", "SIGTERM")
    assert ends["child"] == ("left-running", "SIGKILL")  # coreutils' timeout would have left it running
    assert report["leftovers"] == [report["processes"][1]["pid"]]


@pytest.mark.parametrize("args,message", [
    (["--stop", "nomad"],
     "invalid --stop 'nomad': use docker, k8s, docker-init, systemd, systemd-mixed, ctrl-c, timeout"),
    (["--stop", "docker", "--signal", "KILL"], "--stop sets the signal and target itself: drop --signal/--target"),
    (["--signal", "TERM", "--kill-after", "1s"], "--kill-after goes with --stop timeout (elsewhere, use --grace)"),
    (["--ready-port", "70000"], "invalid port 70000: use 1-65535"),
    (["--ready-output", "("], "invalid regular expression '(': missing ), unterminated subpattern at position 0"),
])
def test_bad_stop_and_ready_options(gsup: Gsup, program: Program, args: list[str], message: str) -> None:
    script = program("print('never')")
    result = gsup.run("run", *args, str(script))
    assert (result.returncode, result.stderr, result.stdout) == (2, f"gsup: error: {message}\n", "")


# -- readiness ------------------------------------------------------------------

SERVER = """
    import os, socket, sys, time
    print("starting", flush=True)
    for i in range(20000):           # far more than a pipe holds: gsup must keep reading
        print(f"noise {i}")
    sys.stdout.flush()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    sys.stderr.write("also on stderr\\n")  # all output before any readiness: the signal follows at once
    sys.stderr.flush()
    print("listening on", sys.argv[1], flush=True)
    server.listen()
    open(sys.argv[2], "w").close()
    while True:
        time.sleep(60)
"""


@pytest.mark.parametrize("how", ["port", "output", "file"])
def test_ready_then_signal(gsup: Gsup, program: Program, tmp_path: Path, how: str) -> None:
    port = free_port()
    flag = tmp_path / "flag"
    condition = {"port": ["--ready-port", str(port)], "output": ["--ready-output", r"^listening on \d+$"],
                 "file": ["--ready-file", str(flag)]}[how]
    script = program(SERVER)
    result = gsup.run("run", "--python", PYTHON, "-q", "--signal", "TERM", *condition,
                      str(script), str(port), str(flag))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Output passes through unchanged and in order, the report after it.
    assert lines[0] == "starting" and lines[1:20001] == [f"noise {i}" for i in range(20000)]
    assert lines[20001] == f"listening on {port}"
    assert "also on stderr" in result.stderr
    assert "gsup report:" in result.stdout
    (saved,) = gsup.home.glob("*/report.json")
    ready = json.loads(saved.read_text())["ready"]
    assert ready["ok"] and ready["condition"] == {
        "port": f"port {port} listening", "output": f"output matching {condition[1]!r}",
        "file": f"file {flag}"}[how]


def test_ready_output_matches_stderr_too_and_json_keeps_stdout_clean(gsup: Gsup, program: Program,
                                                                    tmp_path: Path) -> None:
    port = free_port()
    script = program(SERVER)
    result = gsup.run("run", "--json", "--python", PYTHON, "-q", "--signal", "TERM", "--ready-output",
                      "also on stderr", str(script), str(port), str(tmp_path / "flag"))
    assert result.returncode == 0, result.stderr
    report = result.report  # nothing of the program on stdout
    assert report["ready"]["ok"] and report["ready"]["condition"] == "output matching 'also on stderr'"
    assert report["actions"][0]["at"] >= report["ready"]["after"]
    assert "noise 19999" in result.stderr


def test_ready_output_waits_for_the_whole_line(gsup: Gsup, program: Program) -> None:
    """A line written in pieces (unbuffered output) matches only once whole: the
    start of one must not fire a pattern that its end would not match."""
    script = program("""
        import os, time
        os.write(1, b"listening on 4")  # the rest of the line never comes
        time.sleep(60)
    """)
    result = gsup.run("run", "--json", "--python", PYTHON, "-q", "--signal", "TERM",
                      "--ready-output", r"^listening on \d+$", "--ready-timeout", "1s", str(script))
    assert result.returncode == 4, result.stderr
    assert json.loads(result.stdout)["ready"]["ok"] is False
    assert "listening on 4" in result.stderr  # the piece still passed through


def test_readiness_that_never_comes(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as other:  # someone else listening on the port does not count
        other.bind(("127.0.0.1", port))
        other.listen()
        script = program("import time, atexit\natexit.register(print, 'bye')\ntime.sleep(60)\n")
        result = gsup.run("run", "--json", "--python", PYTHON, "-q", "--signal", "TERM",
                          "--ready-port", str(port), "--ready-timeout", "1s", str(script))
    assert result.returncode == 4
    assert result.stderr.endswith(f"gsup: error: not ready after 1s (--ready-timeout): no port {port} "
                                  f"listening; the tree was: {result.report['processes'][0]['pid']} "
                                  "(parent)\n")
    report = result.report
    assert report["ready"] == {"condition": f"port {port} listening", "ok": False, "after": None}
    assert [a["by"] for a in report["actions"]] == ["gsup"] and report["actions"][0]["signal"] == "SIGKILL"
    assert report["processes"][0]["end"]["signal"] == "SIGKILL"
