"""The guardian: the process between gsup and the program, so nothing outlives gsup.

A SIGKILLed gsup runs no cleanup, and its orphans would re-parent to init and
keep running, a ``setsid`` daemon included (process groups miss it).  So gsup
does not start the program itself: it starts this small process, which

* is the program's parent and a child subreaper, so every orphan of the tree
  re-parents to it and stays findable through ``/proc/<pid>/task/*/children``;
* reaps every process of the tree and sends each wait status to gsup down a
  pipe, one JSON line per status, then ``{"empty": true}`` once the tree is gone;
* has ``PR_SET_PDEATHSIG``, so the kernel tells it when gsup dies, however gsup
  dies; then it stops every descendant, looks again until nothing new appears,
  kills them all, logs what it did in the session, reaps them, and exits.

It is a fork of gsup that runs :func:`main` at once (``launch._fork_guardian``): an
interpreter of its own would start first, and that start came before the program's
(issue 17: gsup run's fixed cost).  The fork is made what an ``exec`` would have made
of it: gsup's signal handlers and wake-up fd gone, its close-on-exec descriptors
closed, its name (``comm``) ``gsup-guardian``.  With ``--deep`` it runs as ``python -I
-S -c LOADER guardian.py`` below deep.py instead: the standard library only, no site,
no probe.  Either way its code uses the standard library only, so it is never part of the
experiment, and it starts the program before importing ``json``.  It holds the
session directory open: the proof that it is this session's guardian.  It ignores the
signals a terminal or a process manager sends to gsup's process group (INT, TERM,
HUP, QUIT): gsup decides what the program gets.  It exits once the tree is empty.

Arguments (of :func:`main`; with --deep, its command line):
``GSUP_PID LAUNCHED SESSION_DIR STDOUT_TO_STDERR CLOSED [NAMESPACE] -- ARGV...``
with the status pipe on fd 3, and optionally the program's stdout and stderr
pipes on fds 4 and 5 (``--ready-output``).  CLOSED lists the program's standard
fds to close (``0,2``, or ``-``): gsup's own were closed, and the program sees
them as it would without gsup.

NAMESPACE ``pid`` is container mode: the guardian unshares a new PID namespace
(namespaces.py, loaded by its path: nothing of gsup is imported) before it
starts the program, so the program is PID 1 of it and the guardian its parent
outside, as a container runtime's shim is.  Orphans then re-parent to PID 1,
not to the guardian; when PID 1 ends the kernel kills the rest, so the
guardian's only child is PID 1 and its death leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the same, with plain ints: signal imports enum, a tenth of Python's start-up

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
STATUS_FD, STDOUT_FD, STDERR_FD = 3, 4, 5
CLD_EXITED = 1
ON_GSUP_DEATH = signal.SIGUSR1


class Guardian:
    def __init__(self, gsup_pid: int, launched: float, session_dir: str) -> None:
        self.gsup_pid = gsup_pid
        self.launched = launched
        self.session_dir = session_dir
        self.orphaned = False  # gsup is gone: statuses go to the session's log instead

    def prepare(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(ON_GSUP_DEATH, self._on_gsup_death)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        prctl(PR_SET_PDEATHSIG, int(ON_GSUP_DEATH))
        prctl(PR_SET_NAME, b"gsup-guardian")  # what ps -o comm and top show: a fork of gsup reads as gsup
        for fd in (STATUS_FD, STDOUT_FD, STDERR_FD):
            try:
                os.set_inheritable(fd, False)  # the program gets its own copies, not these
            except OSError:
                pass

    def spawn(self, argv: list[str], stdout_to_stderr: bool, closed: list[int],
              env: dict[str, str] | None = None) -> int:
        actions: list[tuple[int, ...]] = []
        if _is_open(STDOUT_FD):
            actions += [(os.POSIX_SPAWN_DUP2, STDOUT_FD, 1), (os.POSIX_SPAWN_DUP2, STDERR_FD, 2)]
        elif stdout_to_stderr:
            actions.append((os.POSIX_SPAWN_DUP2, 2, 1))
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in closed]
        catchable = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
        program = argv[0]
        if "/" not in program:
            from shutil import which

            program = which(program) or program
        return os.posix_spawn(program, argv, os.environ if env is None else env, file_actions=actions, setpgroup=0,
                              setsigdef=catchable, setsigmask=set())

    def reap_until_empty(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED)
            except ChildProcessError:
                return
            if info is None:
                continue
            exited = info.si_code == CLD_EXITED
            self.report({"pid": info.si_pid, "code": info.si_status if exited else None,
                         "signal": None if exited else info.si_status, "at": time.monotonic()})

    def report(self, record: dict[str, object]) -> None:
        if not self.orphaned:
            try:
                os.write(STATUS_FD, (dumps(record) + "\n").encode())
                return
            except OSError:
                self.orphaned = True  # gsup is gone even if the death signal has not come yet
        record = dict(record, at=float(record["at"]) - self.launched)  # type: ignore[arg-type]
        self._log("exits.jsonl", record)

    def _on_gsup_death(self, signum: int, frame: object) -> None:
        if os.getppid() == self.gsup_pid:
            return  # someone else sent it: gsup is alive
        self.orphaned = True
        killed = end_descendants()
        if killed:
            self._log("actions.jsonl", {"signal": "SIGKILL", "signum": int(signal.SIGKILL), "target": "tree",
                                        "pids": sorted(killed), "at": time.monotonic() - self.launched,
                                        "by": "guardian"})

    def _log(self, name: str, record: dict[str, object]) -> None:
        try:
            fd = os.open(os.path.join(self.session_dir, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            os.write(fd, (dumps(record) + "\n").encode())
        finally:
            os.close(fd)


def end_descendants() -> list[int]:
    """SIGSTOP every descendant until no new one appears, then SIGKILL them all.

    Stopping first means a process forking in a loop cannot outrun the kill:
    once everything seen is stopped, nothing can start anything new.
    """
    stopped: set[int] = set()
    for _ in range(1000):
        fresh = [pid for pid in descendants(os.getpid()) if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            _send(pid, signal.SIGSTOP)
            stopped.add(pid)
    return [pid for pid in stopped if _send(pid, signal.SIGKILL)]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def dumps(record: dict[str, object]) -> str:
    """``json.dumps(record)``, importing json only for a value other than a number,
    None or a boolean (an error message, a list): a status line needs none of it."""
    return "{" + ", ".join(f'"{key}": {_json_value(value)}' for key, value in record.items()) + "}"


def _json_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # what json.dumps writes for an int or a finite float
    import json

    return json.dumps(value)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                out.extend(int(p) for p in file.read().split())
        except OSError:
            continue
    return out


def _send(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)  # only our own descendants, which we do not reap before this
        return True
    except OSError:
        return False


def prctl(option: int, arg: int | bytes) -> int:
    """``prctl(option, arg, 0, 0, 0)``, through ``_ctypes``, the C half of ctypes (gsup's
    own subreaper call is this one too: ``supervisor.reaper``).

    Its Python half (``import ctypes``: ~2 ms, a fifth of Python's start-up) would
    precede every launch, and does nothing here that ``_ctypes.call_function`` does
    not: the arguments are C ints (or a ``char *``) either way.  Where ``_ctypes``
    lacks these functions (they are not public API; 3.9-3.13 have them), ctypes
    itself does the call.  ``dlopen(None)`` is the program itself, as in
    ``ctypes.CDLL(None)`` (the stubs allow only a path)."""
    try:
        import _ctypes

        call, address = _ctypes.call_function, _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]
    except AttributeError:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0))
    return int(call(address, (option, arg, 0, 0, 0)))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def enter_namespace(kind: str) -> str:
    """Unshare the namespace NAMESPACE names for the program to come; how it was
    done (``root`` or ``user-namespace``), or raise the module's ``Unavailable``."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "namespaces.py")
    spec = importlib.util.spec_from_file_location("_gsup_namespaces", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    how = str(module.enter({"pid": module.CLONE_NEWPID}[kind]))
    # New credentials (a user namespace) clear the parent-death signal: arm it again.
    prctl(PR_SET_PDEATHSIG, int(ON_GSUP_DEATH))
    return how


def main(args: list[str], unblock: set[int] | None = None, env: dict[str, str] | None = None) -> int:
    """As a fork of gsup: ``unblock`` is the signal mask to go back to once prepared (the
    fork starts with every signal held back), ``env`` the program's environment."""
    gsup_pid, launched, session_dir, to_stderr = int(args[0]), float(args[1]), args[2], args[3] == "1"
    closed = [int(fd) for fd in args[4].split(",")] if args[4] != "-" else []
    options, argv = args[:args.index("--")], args[args.index("--") + 1:]
    guardian = Guardian(gsup_pid, launched, session_dir)
    guardian.prepare()
    if unblock is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblock)
    spawned: dict[str, object] = {}
    if len(options) > 5:
        try:
            spawned["namespace"] = enter_namespace(options[5])
        except Exception as err:  # namespaces.Unavailable: its message is the user's one line
            guardian.report({"error": str(err), "usage": True, "at": time.monotonic()})
            return 1
    if os.getppid() != gsup_pid:
        return 1  # gsup died before the death signal was armed: start nothing
    try:
        pid = guardian.spawn(argv, to_stderr, closed, env)
    except OSError as err:
        guardian.report({"error": err.strerror or str(err), "at": time.monotonic()})
        return 1
    for fd in (STDOUT_FD, STDERR_FD):
        try:
            os.close(fd)  # gsup must see end-of-file once the program's side is closed
        except OSError:
            pass
    try:
        # Held open until the guardian exits, and never passed on (close-on-exec): the proof,
        # read in /proc by ``gsup kill`` and ``gsup report``, that this process is the
        # guardian of this session (discovery.check_bound).  Opened once the program is
        # started and fds 4 and 5 (which say whether its output is piped) are closed, and
        # before gsup learns the program's pid, so no reader can look before it is there.
        os.open(session_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        pass  # the session directory is gone: nobody can read the session either
    guardian.report({"spawned": pid, **spawned, "at": time.monotonic()})
    guardian.reap_until_empty()
    guardian.report({"empty": True, "at": time.monotonic()})  # gsup can report now, not after our exit
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))  # nothing to flush: every write was an os.write
