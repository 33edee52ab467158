"""Harder endings: daemons, fork loops, shells in the middle, adoption.

Each case once produced a wrong report or a stuck gsup; each test fails if it
comes back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, Gsup, Program, role, statuses


def test_probe_never_writes_into_a_file_the_program_reopened(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """Daemons close every fd; the probe's number may come back for the program's log."""
    log = tmp_path / "app.log"
    script = program(f"""
        import atexit, os
        os.closerange(3, 256)
        out = open({str(log)!r}, "w")
        @atexit.register
        def close_log():
            out.write("closed\\n")
            out.close()
    """)
    proc = role(gsup.report(str(script)), "parent")
    assert log.read_text() == "closed\n"
    assert statuses(proc) == {"close_log": "ran"}
    assert proc["atexit_ran"] is True


def test_a_process_forking_in_a_loop_cannot_outrun_the_grace_kill(gsup: Gsup, program: Program) -> None:
    script = program("""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _ in range(1000):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            time.sleep(0.002)
    """)
    # a tree that forks every 2 ms never settles: --after sends the TERM (ignored) mid-loop
    result = gsup.run("run", "-q", "--json", "--python", PYTHON, "--signal", "TERM", "--after", "300ms",
                      "--grace", "500ms", str(script), timeout=60)
    assert result.returncode == 0, result.stderr
    report = result.report
    kills = [a for a in report["actions"] if a["by"] == "grace"]
    assert len(kills) == 1 and role(report, "parent")["pid"] in kills[0]["pids"]
    assert report["duration"] < 20
    assert all(p["end"]["how"] != "unknown" for p in report["processes"])
    # the gsup fixture fails the test if any forked child is still alive


def test_children_of_a_shell_that_already_exited(gsup: Gsup) -> None:
    """``sh -c 'python … & exit 0'``: the shell is gone before anyone sees its child."""
    result = gsup.run("run", "-q", "--json", "--", "sh", "-c", f"{PYTHON} -c 'import time; time.sleep(0.5)' & exit 0")
    assert result.returncode == 0, result.stderr
    report = result.report
    root = role(report, "parent")
    assert root["argv"][:2] == ["sh", "-c"] and root["instrumented"] is False
    adopted = [p for p in report["processes"] if p["pid"] != root["pid"]]
    assert len(adopted) == 1
    assert adopted[0]["role"] == "unknown" and adopted[0]["ppid"] is None
    assert adopted[0]["orphaned"] is True
    assert adopted[0]["end"]["reaped_by"] == "gsup" and adopted[0]["end"]["code"] == 0


def test_unknown_ending_is_not_called_orphaned(gsup: Gsup) -> None:
    result = gsup.run("run", "-q", "--json", "--", "sh", "-c", f"{PYTHON} -c pass; true")
    report = result.report
    python = role(report, "child")
    assert python["end"]["how"] == "unknown"
    assert python["orphaned"] is False


def test_sigkill_after_threading_callbacks_ran(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """threading._register_atexit callbacks run before thread joins and before atexit."""
    joining = tmp_path / "joining"
    script = program(f"""
        import atexit, threading, time
        from concurrent.futures import ThreadPoolExecutor
        atexit.register(print, "atexit handler")
        def hold():
            open({str(joining)!r}, "w").close()
            time.sleep(60)
        threading.Thread(target=hold).start()   # non-daemon: shutdown joins it
    """)
    report = gsup.report("--signal", "KILL", str(script))  # sent once the tree has settled: in the join
    assert joining.exists()
    proc = role(report, "parent")
    [threaded] = [h for h in proc["handlers"] if h["kind"] == "threading"]
    assert threaded["status"] == "ran"  # threading._shutdown runs these first, then joins
    assert proc["atexit_ran"] is False
    assert "_python_exit had run" in proc["explanation"]
    assert "nothing ran" not in proc["explanation"]
    assert statuses(proc, "builtins") == {"print": "not-run"}


def test_forked_children_hold_no_event_file_open_and_count_no_probe_markers(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, os, sys
        atexit.register(print, "handler")
        def event_fds():
            fds = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
                        fds.append(fd)
                except OSError:
                    pass
            return len(fds)
        pid = os.fork()
        if pid == 0:
            grandchild = os.fork()
            if grandchild == 0:
                sys.stderr.write(f"event fds in grandchild: {event_fds()}\\n")
                os._exit(0)
            os.waitpid(grandchild, 0)
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, str(script))
    assert "event fds in grandchild: 0\n" in result.stderr  # the probe holds no fd between events (issue 14)
    report = result.report
    forked = [p for p in report["processes"] if p["forked"]]
    assert len(forked) == 2
    assert {p["opaque_handlers"] for p in report["processes"]} == {0}


def test_module_run_imports_its_package_once(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("print('package init')\n")
    (tmp_path / "pkg" / "mod.py").write_text("print('module body')\n")
    result = gsup.run("run", "-q", "--python", PYTHON, "-m", "pkg.mod")
    assert result.returncode == 0
    assert result.stdout.count("package init") == 1
    missing = gsup.run("run", "-q", "--python", PYTHON, "-m", "pkg.nothere")
    assert missing.returncode == 2 and "unknown module 'pkg.nothere'" in missing.stderr
    assert "package init" not in missing.stdout


def test_module_check_runs_none_of_the_programs_code(gsup: Gsup, tmp_path: Path) -> None:
    """The check that ``-m MODULE`` exists runs the program's interpreter: its
    ``sitecustomize`` (found on the program's path) must not run there, in a process
    no report shows.  It runs once, in the program, and the report shows that process."""
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "ran"
    (site / "sitecustomize.py").write_text(
        f"import os\nfd = os.open({str(marker)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
        "os.write(fd, open('/proc/self/cmdline', 'rb').read().replace(b'\\0', b' ') + b'\\n')\nos.close(fd)\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("")
    result = gsup.run("run", "--json", "--python", PYTHON, "-m", "pkg.mod", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    python_runs = [line for line in marker.read_text().split("\n") if line and "bin/gsup " not in line]  # not gsup
    assert python_runs == [f"{PYTHON} -m pkg.mod "], python_runs


def test_everything_after_the_module_belongs_to_it(gsup: Gsup, tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text('{"a": 1}')
    result = gsup.run("run", "-q", "--python", PYTHON, "-m", "json.tool", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m json.tool")
    report = gsup.run("run", "-q", "--json", "--python", PYTHON, "-mjson.tool", "data.json", "--sort-keys").report
    assert role(report, "parent")["argv"][1:] == ["-m", "json.tool", "data.json", "--sort-keys"]


def test_after_counts_from_readiness(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """``--after`` with ``--ready-*`` waits that long once ready, as the README says, not from launch."""
    ready = tmp_path / "ready"
    script = program(f"import time\ntime.sleep(0.6)\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)\n")
    report = gsup.report("-q", "--signal", "TERM", "--ready-file", str(ready), "--after", "500ms", str(script))
    assert report["ready"]["ok"] is True
    [sent] = [a for a in report["actions"] if a["by"] == "gsup"]
    assert sent["at"] >= report["ready"]["after"] + 0.45, (sent, report["ready"])


FDS = """
import os, sys
seen = []
for fd in (0, 1, 2):
    try:
        os.fstat(fd)
        seen.append("open")
    except OSError:
        seen.append("closed")
with open(sys.argv[1], "w") as out:
    out.write(" ".join(seen))
"""


@pytest.mark.parametrize("closers", ["0<&-", "1>&-", "2>&-", "0<&- 1>&- 2>&-"])
@pytest.mark.parametrize("as_json", [False, True], ids=["view", "json"])
def test_closed_standard_streams(gsup: Gsup, program: Program, tmp_path: Path, closers: str, as_json: bool) -> None:
    """gsup started with stdin, stdout or stderr closed runs the program, which finds them
    closed as it would without gsup (with --json, its stdout is gsup's stderr), and the
    report is saved in the session."""
    import json
    import subprocess

    from tests.helpers import GSUP

    script, marker = program(FDS), tmp_path / "fds"
    plain = subprocess.run(["sh", "-c", f'exec "$@" {closers}', "sh", PYTHON, str(script), str(marker)],
                           check=True, timeout=60)
    expected = marker.read_text().split()
    if as_json:
        expected[1] = expected[2]
    marker.unlink()
    options = ["--json"] if as_json else []
    done = subprocess.run(["sh", "-c", f'exec "$@" {closers}', "sh", *GSUP, "run", "-q", *options, "--python", PYTHON,
                           str(script), str(marker)], env=gsup.env, cwd=gsup.workdir, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (plain.returncode, done.returncode) == (0, 0), done.stderr
    assert marker.read_text().split() == expected
    [saved] = gsup.home.glob("*/report.json")
    report = json.loads(saved.read_text())
    assert report["complete"] is True and role(report, "parent")["end"]["code"] == 0
    if as_json and "1>&-" not in closers:
        assert json.loads(done.stdout) == report
    if "1>&-" in closers and "2>&-" not in closers:  # where the report went, in gsup's one line
        assert done.stderr == f"gsup: stdout was closed: the report is saved, see `gsup report {report['session']}`\n"


def test_a_python_killed_before_its_probe_says_so_not_scrubbed_env(gsup: Gsup, program: Program,
                                                                   tmp_path: Path) -> None:
    """A child killed before its start-up reached the probe left no record: say when it ended, not guess why.

    The child's interpreter is a venv whose site-packages holds a ``.pth`` that sleeps: ``site`` runs it
    before it imports the probe's ``sitecustomize``, so the parent's SIGKILL always lands in between.
    """
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site_packages] = venv.glob("lib/python*/site-packages")
    (site_packages / "slow.pth").write_text("import time; time.sleep(60)\n")
    script = program(f"""
        import subprocess
        child = subprocess.Popen([{str(venv / "bin" / "python")!r}, "-c", "pass"])
        child.kill()
        child.wait()
    """)
    child = role(gsup.report(str(script)), "child")
    assert child["instrumented"] is False
    assert child["end"]["signal"] == "SIGKILL"
    reason = child["uninstrumented_reason"]
    assert reason.startswith("it ended ") and reason.endswith(" ms after it started, before the probe's first record")
    assert int(reason.split()[2]) < 1000


def test_a_child_seen_between_fork_and_exec_gets_its_own_command_line(gsup: Gsup, tmp_path: Path) -> None:
    """Seen after its fork, before its exec, a child's command line is still its parent's; a
    program the probe does not see reports no exec, so the tree reads it again when the kernel's
    name for it changes (a ``uname -p`` that Celery's worker runs showed as a second worker)."""
    seen = tmp_path / "seen"
    shell = f"( while [ ! -e {seen} ]; do :; done; exec sleep 0.2 ); true"
    run = gsup.start("run", "--json", "--", "sh", "-c", shell)
    assert run.stderr is not None
    line = next(line for line in run.stderr if "(child) running:" in line)  # gsup's progress line
    assert line.rstrip().endswith(shell)  # the parent's command line, before the exec
    seen.touch()
    report = gsup.finished_report(run)
    [child] = [p for p in report["processes"] if p["role"] == "child"]
    assert child["argv"] == ["sleep", "0.2"]
