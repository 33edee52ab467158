"""What ``gsup run`` costs while it watches: idle CPU, exit-to-report latency,
a 200-process tree, every thread's stack on request, and the seed scenario against
the same steps done by hand."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchmark import programs, views
from benchmark.measure import GSUP, PYTHON, ROOT, Row, cpu_ns, helpers_of, interleaved, median, rel, wait_for

IDLE_SLEEP = 10.0
LATENCY_RUNS = 20
TREE_SIZE = 200
SNAPSHOT_RUNS = 15
REBUILD_RUNS = 7
SEED_RUNS = 6  # each way, interleaved
STACKS_TREE = (10, 20)  # Python processes, threads in each
STACKS_RUNS = 20
SEED_TIMEOUT = 120
CONTAINER_RUNS = 15  # each way, interleaved
MATRIX_ROUNDS = 3
MATRIX_SCENARIOS = [("TERM", "parent"), ("TERM", "child"), ("INT", "parent"), ("INT", "child"), ("KILL", "parent"),
                    ("KILL", "child")]  # gsup matrix's default six


def idle(env: dict[str, str], scratch: Path) -> list[Row]:
    """gsup's CPU time (and its helpers') over a program's 10 s sleep."""
    program = programs.write(scratch, "sleeper.py", programs.SLEEPER)
    ready, done = scratch / "idle-ready", scratch / "idle-done"
    argv = [GSUP, "run", "-q", "--python", PYTHON, str(program), str(ready), str(done), str(IDLE_SLEEP)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(ready, 60, lambda: proc.poll() is None)
        pids = [proc.pid, *helpers_of(proc.pid)]
        start, before = time.monotonic(), [cpu_ns(pid) for pid in pids]
        wait_for(done, IDLE_SLEEP + 60, lambda: proc.poll() is None)
        elapsed, used = time.monotonic() - start, [cpu_ns(pid) - b for pid, b in zip(pids, before)]
        if proc.wait(timeout=60) != 0:
            raise RuntimeError(f"gsup run exited with {proc.returncode}")
    finally:
        _stop(proc)
    split = f" (gsup {used[0] / 1e6:.1f} ms, its guardian {sum(used[1:]) / 1e6:.1f} ms)" if len(pids) > 1 else ""
    return [Row("idle CPU of gsup run", sum(used) / (elapsed * 1e9) * 100, 0.5, "%",
                f"{sum(used) / 1e6:.1f} ms on a CPU{split} over {elapsed:.2f} s of the program's sleep",
                f"{rel(GSUP)} run -q --python {rel(PYTHON)} sleeper.py READY DONE {IDLE_SLEEP:g}  "
                "(programs in benchmark/programs.py)")]


def latency(env: dict[str, str], scratch: Path) -> list[Row]:
    """From the program's last instant (CLOCK_MONOTONIC, system-wide) to the report's first byte.

    The session's files say when gsup recorded the status, which splits the
    figure into "noticing the death" and "building and printing the report".
    """
    program = programs.write(scratch, "last_words.py", programs.LAST_WORDS)
    taken, noticed = [], []
    for run in range(LATENCY_RUNS):
        stamp = scratch / f"last-words-{run}"
        argv = [GSUP, "run", "--json", "-q", "--python", PYTHON, str(program), str(stamp), "0.3"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            first = os.read(proc.stdout.fileno(), 1)
            seen = time.monotonic_ns() / 1e9
            report = json.loads(first + proc.stdout.read())
            if proc.wait(timeout=60) != 0 or not report["complete"]:
                raise RuntimeError(f"gsup run exited with {proc.returncode}")
        finally:
            _stop(proc)
        died = int(stamp.read_text()) / 1e9
        taken.append((seen - died) * 1e3)
        noticed.append((_status_recorded(Path(env["GSUP_HOME"]) / report["session"]) - died) * 1e3)
    return [Row("exit-to-report latency", median(taken), 20.0, "ms",
                f"median of {LATENCY_RUNS}: {median(taken):.1f} ms (min {min(taken):.1f}, max {max(taken):.1f}); "
                f"gsup recorded the status {median(noticed):.1f} ms after the death (median); the rest is gsup "
                "ending its loop, building the report and printing it",
                f"{rel(GSUP)} run --json -q --python {rel(PYTHON)} last_words.py STAMP 0.3  (os._exit after 0.3 s)")]


def _status_recorded(session: Path) -> float:
    """CLOCK_MONOTONIC when gsup recorded the last wait status of a finished session."""
    launched = json.loads((session / "session.json").read_text())["launched"]
    last = (session / "exits.jsonl").read_text().splitlines()[-1]
    return float(launched) + float(json.loads(last)["at"])


def scale(env: dict[str, str], scratch: Path) -> list[Row]:
    """A 200-process tree: every process reported, gsup's peak memory, report rebuild, Tree.snapshot."""
    forest = programs.write(scratch, "forest.py", programs.FOREST)
    wrapper = programs.write(scratch, "peak_rss.py", programs.PEAK_RSS)
    rss = scratch / "peak-rss"
    argv = [PYTHON, str(wrapper), str(rss), "run", "--json", "-q", "--python", PYTHON, str(forest),
            str(TREE_SIZE), str(scratch / "forest-ready"), "1.5"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"gsup run exited with {done.returncode}: {done.stderr[-500:]}")
    report = json.loads(done.stdout)
    command = f"{rel(GSUP)} run --json -q --python {rel(PYTHON)} forest.py {TREE_SIZE} READY 1.5  (forked children)"
    rows = [
        Row("scale: processes reported", len(report["processes"]), TREE_SIZE + 1, "processes",
            f"{len(report['processes'])} of {TREE_SIZE + 1} (the parent and its {TREE_SIZE} children)", command,
            at_least=True),
        Row("scale: gsup peak memory", int(rss.read_text()) / 1024, 80.0, "MB",
            f"ru_maxrss of the gsup process itself, read as it exits, after tracking {TREE_SIZE + 1} processes "
            "(benchmark/programs.py PEAK_RSS runs gsup's own entry point)", command),
        _rebuild(env, report["session"]),
        _snapshot(env, forest, scratch),
        *views.views(report, scratch),
    ]
    return rows


def stacks(env: dict[str, str], scratch: Path) -> list[Row]:
    """Signal → last dump complete: ``stacks.request`` over 10 Python processes x 20 threads of a live run."""
    count, threads = STACKS_TREE
    program = programs.write(scratch, "threaded.py", programs.THREADED)
    ready = scratch / "stacks-ready"
    ready.mkdir()
    argv = [GSUP, "run", "-q", "--python", PYTHON, str(program), str(count), str(threads), str(ready)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(ready.iterdir())) < count:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"only {len(list(ready.iterdir()))} of {count} processes got ready")
            time.sleep(0.01)
        taken = _request_stacks(env, count, threads)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return [Row("stacks: signal → last dump complete", median(taken) * 1e3, 100.0, "ms",
                f"{count} Python processes × {threads} threads, median of {len(taken)} requests "
                f"(slowest {max(taken) * 1e3:.1f} ms)",
                f"supervisor.stacks.request over a live `gsup run threaded.py {count} {threads}` in-process")]


def _request_stacks(env: dict[str, str], count: int, threads: int) -> list[float]:
    os.environ["GSUP_HOME"] = env["GSUP_HOME"]
    from supervisor import discovery
    from supervisor import stacks as capture

    [(state, tree)] = discovery.live_sessions()[0]
    pids, events = [pid for pid, _, _ in tree], Path(state.dir) / "events"
    taken = []
    for _ in range(STACKS_RUNS):
        start = time.perf_counter()
        answers = capture.request(pids, events)
        taken.append(time.perf_counter() - start)
        got = [a for a in answers.values() if isinstance(a, capture.Capture)]
        if len(got) != count or any(len(a.threads) != threads for a in got):
            raise RuntimeError(f"{len(got)} of {count} processes answered: {answers}")
    return taken


def _rebuild(env: dict[str, str], session_id: str) -> Row:
    """``control.rebuild`` (read the session's files, ``report.build``) on the 200-process run."""
    os.environ["GSUP_HOME"] = env["GSUP_HOME"]
    from supervisor import control, session

    loaded = session.load(session_id)
    taken = []
    for _ in range(REBUILD_RUNS):
        start = time.perf_counter()
        built = control.rebuild(loaded)
        taken.append(time.perf_counter() - start)
    if len(built.processes) != TREE_SIZE + 1:
        raise RuntimeError(f"the rebuilt report has {len(built.processes)} processes")
    return Row("scale: report build", median(taken) * 1e3, 200.0, "ms",
               f"supervisor.control.rebuild of the {TREE_SIZE + 1}-process session, median of {REBUILD_RUNS}",
               "control.rebuild(session.load(ID)) in-process")


def _snapshot(env: dict[str, str], forest: Path, scratch: Path) -> Row:
    """``Tree(...).snapshot()`` in this process over a 200-process tree it started."""
    from supervisor.tree import Tree

    ready = scratch / "snapshot-ready"
    root = subprocess.Popen([PYTHON, str(forest), str(TREE_SIZE), str(ready), "stdin"], env=env,
                            stdin=subprocess.PIPE)
    try:
        wait_for(ready, 60, lambda: root.poll() is None)
        first, again = [], []
        steady = Tree(os.getpid(), root.pid)
        steady.snapshot()
        for _ in range(SNAPSHOT_RUNS):
            start = time.perf_counter()
            seen = Tree(os.getpid(), root.pid).snapshot()
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            steady.snapshot()
            again.append(time.perf_counter() - start)
            if len(seen) != TREE_SIZE + 1:
                raise RuntimeError(f"a snapshot saw {len(seen)} processes")
    finally:
        assert root.stdin is not None
        root.stdin.close()
        root.wait(timeout=60)
    return Row("scale: Tree.snapshot", median(first) * 1e3, 50.0, "ms",
               f"a fresh Tree's first look at {TREE_SIZE + 1} processes, median of {SNAPSHOT_RUNS}; "
               f"a later look at the same tree: {median(again) * 1e3:.1f} ms",
               "supervisor.tree.Tree(os.getpid(), root).snapshot() in-process")


def seed(env: dict[str, str], scratch: Path) -> list[Row]:
    """The seed scenario through gsup against the same steps by hand, wall time, interleaved."""
    with_ready: list[float] = []
    with_settle: list[float] = []
    by_hand: list[float] = []
    for run in range(SEED_RUNS):
        sides = [(with_ready, lambda e: _seed_gsup(e, ready=True)), (by_hand, _seed_by_hand),
                 (with_settle, lambda e: _seed_gsup(e, ready=False))]
        for results, side in sides if run % 2 == 0 else reversed(sides):
            results.append(side({**env, "PORT": str(_free_port())}))
    hand = median(by_hand)
    command = (f"PORT=N {rel(GSUP)} run --python {rel(PYTHON)} --signal KILL --target child --grace 3s "
               "{}examples/flask_app.py  vs  start it, poll HTTP until it answers, kill -9 the child, "
               "wait for the parent")
    return [
        Row("seed scenario overhead", (median(with_ready) / hand - 1) * 100, 10.0, "%",
            f"gsup {median(with_ready):.2f} s, by hand {hand:.2f} s (wall, medians of {SEED_RUNS} each, "
            "interleaved); both sides wait for the server to be ready, gsup with --ready-port",
            command.format("--ready-port N ")),
        Row("seed scenario, default settle (info)", (median(with_settle) / hand - 1) * 100, None, "%",
            f"gsup {median(with_settle):.2f} s: without a readiness condition gsup waits for the tree to "
            "settle for --settle (500 ms) before the signal, a wait by design, not overhead",
            command.format("")),
    ]


def _seed_gsup(env: dict[str, str], ready: bool) -> float:
    argv = [GSUP, "run", "--python", PYTHON, "--signal", "KILL", "--target", "child", "--grace", "3s",
            *(["--ready-port", env["PORT"]] if ready else []), "examples/flask_app.py"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=SEED_TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"gsup run exited with {done.returncode}")
    return elapsed


def _seed_by_hand(env: dict[str, str]) -> float:
    import psutil

    start = time.perf_counter()
    parent = subprocess.Popen([PYTHON, "examples/flask_app.py"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SEED_TIMEOUT
        while not _answers(int(env["PORT"])):
            if parent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Flask app never answered")
            time.sleep(0.01)
        children = psutil.Process(parent.pid).children()
        if len(children) != 1:
            raise RuntimeError(f"expected the reloader's one child, found {len(children)}")
        os.kill(children[0].pid, signal.SIGKILL)
        parent.wait(timeout=SEED_TIMEOUT)
        return time.perf_counter() - start
    finally:
        _stop(parent)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Leave nothing running after a benchmark that failed half-way.

    TERM first: gsup forwards it to the program's group and reports; a Flask
    parent ends its reloader child.  Whatever is left of the tree is then killed.
    """
    if proc.poll() is not None:
        return
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for left in tree:
        try:
            left.kill()
        except psutil.Error:
            pass


def container(env: dict[str, str], scratch: Path) -> list[Row]:
    """Container mode's cost at launch: from launch to the program's first probe record
    (the report's ``started`` of the launched process), as PID 1 of a new PID namespace
    against an ordinary child; the median difference of interleaved runs."""
    program = programs.write(scratch, "hello.py", "print('hello')\n")

    def started(*mode: str) -> Callable[[], float]:
        argv = [GSUP, "run", "--json", "-q", *mode, "--python", PYTHON, str(program)]

        def once() -> float:
            done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
            (root,) = [p for p in json.loads(done.stdout)["processes"] if p["role"] == "parent"]
            return float(root["started"])

        return once

    plain, contained = interleaved(CONTAINER_RUNS, [started(), started("--container")])
    extra = (median(contained) - median(plain)) * 1e3
    return [Row("container mode: launch to first probe record", extra, 20.0, "ms",
                f"median {median(contained) * 1e3:.1f} ms as PID 1 of a new PID namespace against "
                f"{median(plain) * 1e3:.1f} ms as an ordinary child, {CONTAINER_RUNS} runs each, interleaved",
                f"{rel(GSUP)} run --json -q [--container] --python {rel(PYTHON)} hello.py  "
                "(report: processes[0].started)")]


def matrix(env: dict[str, str], scratch: Path) -> list[Row]:
    """The Flask debug app's six scenarios side by side (each in its own network namespace,
    all on the app's fixed port) against one scenario alone, wall time, interleaved."""
    common = ["--json", "-q", "--python", PYTHON, "--grace", "2s", "--ready-port", "5000"]
    app = str(ROOT / "examples" / "flask_app.py")
    six: list[float] = []
    six_at_once: list[float] = []
    one: list[float] = []
    for _ in range(MATRIX_ROUNDS):
        six.append(_matrix_time(env, [*common, app]))
        six_at_once.append(_matrix_time(env, ["--jobs", "6", *common, app]))
        one += [_matrix_time(env, ["--signals", sig, "--targets", who, *common, app]) for sig, who in MATRIX_SCENARIOS]
    alone = median(one)
    cores = len(os.sched_getaffinity(0))
    command = f"{rel(GSUP)} matrix --json -q --python {rel(PYTHON)} --grace 2s --ready-port 5000 examples/flask_app.py"
    return [
        Row("matrix: 6 Flask scenarios vs one", median(six) / alone, 2.5, "x",
            f"6 scenarios {median(six):.2f} s with --jobs {cores} (the cores), one alone {alone:.2f} s (medians: "
            f"{MATRIX_ROUNDS} matrices, each of the 6 scenarios alone {MATRIX_ROUNDS} times, interleaved); "
            f"6 serially would take about {sum(one) / MATRIX_ROUNDS:.2f} s",
            f"{command}  vs  the same with --signals SIG --targets WHO"),
        Row("matrix: the same, --jobs 6 (info)", median(six_at_once) / alone, None, "x",
            f"6 scenarios {median(six_at_once):.2f} s, all six starting at once: twelve Flask interpreters "
            "importing on the same cores; --jobs (the cores) starts them as the cores allow, and a scenario "
            "waiting for its shutdown (the app's 0.5 s atexit sleep, the reloader, --grace) makes room for the next",
            command.replace("matrix ", "matrix --jobs 6 ")),
    ]


def _matrix_time(env: dict[str, str], args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([GSUP, "matrix", *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=SEED_TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"gsup matrix exited with {done.returncode}: {done.stderr[-300:]}")
    return elapsed
