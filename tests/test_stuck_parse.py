"""The reading side of stacks, in-process: faulthandler's text into threads, the diagnosis, the rich view.

The blocks are what the probe writes (``_gsup_probe/stacks.py``); the programs
behind the frames are written to a temporary directory, so that the source
lines the diagnosis quotes are real.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from rich.console import Console

from supervisor import stacks
from supervisor.control import Stacked
from supervisor.model import INTERRUPTED, NOT_RUN, Action, End, Frame, Handler, Process, Stuck
from supervisor.render import action_text, stacks_view, stuck_text

PROBE = "/venv/supervisor/_probe/_gsup_probe"
LIB = "/nonexistent/lib/python3.11"  # a standard library path with no file behind it: no source line


def block(path: Path, body: str, notes: str = "") -> str:
    return (f"# gsup-stacks pid=42 t=10.5\n# threads [[1,\"MainThread\",false],[2,\"holder\",true]]\n{notes}"
            + textwrap.dedent(body).format(prog=path, probe=PROBE, lib=LIB) + "# end\n")


def program(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent("""\
        import threading
        lock = threading.Lock()

        def hold():
            with lock:
                wait_forever()

        def save_state():
            with lock:
                pass

        def on_term(signum, frame):
            save_state()
        """))
    return path


LOCKED = """\
    Thread 0x0000000000000002 (most recent call first):
      File "{prog}", line 6 in hold
      File "{lib}/threading.py", line 982 in run

    Current thread 0x0000000000000001 (most recent call first):
      File "{probe}/stacks.py", line 41 in write
      File "{probe}/__init__.py", line 664 in on_stacks_signal
      File "{prog}", line 9 in save_state
      File "{prog}", line 13 in on_term
      File "{probe}/__init__.py", line 612 in wrapper
      File "{prog}", line 20 in <module>
    """


def test_parse_keeps_the_programs_frames_and_names_the_threads(tmp_path: Path) -> None:
    prog = program(tmp_path)
    capture = stacks.parse(block(prog, LOCKED, "# running 3\n"))
    assert capture is not None and (capture.pid, capture.at, capture.running) == (42, 10.5, 3)
    main, holder = capture.threads
    assert (main.name, main.main, main.daemon) == ("MainThread", True, False)
    assert (holder.name, holder.main, holder.daemon) == ("holder", False, True)
    assert main.frames == [Frame(str(prog), 9, "save_state"), Frame(str(prog), 13, "on_term"),
                           Frame(str(prog), 20, "<module>")]
    assert capture.signal_frame == Frame(str(prog), 13, "on_term")


def test_an_answer_still_being_written_is_not_read(tmp_path: Path) -> None:
    assert stacks.parse(block(program(tmp_path), LOCKED)[: -len(stacks.END)]) is None
    assert stacks.parse("") is None


def test_a_blocked_exit_handler_waiting_on_a_lock_another_thread_holds(tmp_path: Path) -> None:
    prog = program(tmp_path)
    capture = stacks.parse(block(prog, LOCKED))
    assert capture is not None
    proc = Process(pid=42, ppid=1, role="parent", argv=["python", "app.py"], instrumented=True, end=End("signaled"),
                   handlers=[Handler("atexit", "close_db", "__main__", f"{prog}:30", status=NOT_RUN),
                             Handler("atexit", "save_state", "__main__", f"{prog}:8", status=INTERRUPTED,
                                     started=1.0)])
    stuck = stacks.diagnose(proc, capture, at=10.7)
    assert stuck == Stuck("handler-blocked",
                          "save_state blocked at app.py:9 on `with lock:` for 9.7 s (waiting on a lock held by "
                          "thread 'holder' (app.py:6 in hold)); close_db never ran",
                          thread="MainThread", frame=Frame(str(prog), 9, "save_state"), source="with lock:",
                          handler="save_state", seconds=stuck.seconds, holder="holder", not_run=["close_db"])
    assert stuck.seconds is not None and abs(stuck.seconds - 9.7) < 1e-9


def test_the_rich_view_of_a_diagnosis_an_action_and_gsup_stacks(tmp_path: Path) -> None:
    prog = program(tmp_path)
    capture = stacks.parse(block(prog, LOCKED))
    assert capture is not None
    console = Console(color_system=None, width=100, record=True)
    stuck = Stuck("lock", "main thread waiting on a lock at app.py:9", frame=Frame(str(prog), 9, "save_state"),
                  source="with lock:")
    console.print(stuck_text(stuck))
    console.print(action_text(Action("SIGINT", 2, "group", [7], 1.0, by="2nd ctrl-c")))
    console.print(action_text(Action("SIGKILL", 9, "tree", [7], 2.1, by="3rd ctrl-c")))
    console.print(stacks_view("42-abcd", [Stacked(42, 1, "parent", ["python", "app.py"], capture),
                                          Stacked(43, 42, "child", ["sleep", "9"], "no stack (not a Python process)")]))
    assert console.export_text() == textwrap.dedent(f"""\
        stuck: main thread waiting on a lock at app.py:9
            {prog}:9
              with lock:
        2nd Ctrl-C forwarded as SIGINT to the group (7)
        3rd Ctrl-C: gsup SIGKILLed the tree (7)
        session 42-abcd
        ├── 42 parent  python app.py
        │   ├── thread 'MainThread' (main)
        │   │     {prog}:9 in save_state
        │   │         with lock:
        │   │     {prog}:13 in on_term
        │   │         save_state()
        │   │     {prog}:20 in <module>
        │   └── thread 'holder' (daemon)
        │         {prog}:6 in hold
        │             wait_forever()
        │         {LIB}/threading.py:982 in run
        └── 43 child  sleep 9
            └── no stack (not a Python process)
        """)
