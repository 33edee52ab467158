"""Turn a :class:`plans.Scenario` into the source of one self-contained program.

Every role of the plan becomes a ``main_<role>`` function of the same file: the
root runs ``main_p``; forks and multiprocessing children call their role's
function; ``subprocess`` and ``exec`` re-run the file with ``--role ROLE``.

Each handler also leaves marker files, written with ``os.open``/``os.write``
(no buffering, no fsync: the kernel has the bytes once ``write`` returns, so a
SIGKILL cannot lose them), named ``<pid>-<image>-<name>-<what>-<run>`` where
``image`` is the monotonic clock at import (a fork shares it, an exec renews
it) and ``run`` counts the handler's calls in this process (1, 2...; 0 for
registrations).  The markers are the independent truth the report is checked
against:

* ``<name>-reg-0`` / ``-unreg-0``: after ``register`` / ``unregister`` returned;
* ``<name>-begin-<k>``: the k-th call's first line ran (exit and signal handlers);
* ``<name>-end-<k>``: its last line ran (inside the ``try``, so anything raised
  after it still shows as ``-raise``);
* ``<name>-raise-<k>``: an exception is leaving it;
* ``image-start-0``: this image imported the file, or was forked (content:
  ``isolated`` under ``python -I``, where the probe cannot run).  Every image
  writes it, so a pid's images, in order, match its report entries in order.
"""

from __future__ import annotations

from pathlib import Path

from plans import ChildPlan, HandlerPlan, ProcPlan, Scenario, SignalPlan

PRELUDE = '''\
import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

MARKERS = {markers!r}
LOG = {log!r}
IMAGE = "%x" % time.monotonic_ns()
_RUNS = {{}}


def _mark(name, what, run=0):
    path = "%s/%d-%s-%s-%s-%d" % (MARKERS, os.getpid(), IMAGE, name, what, run)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"isolated" if sys.flags.isolated else b"probed")
    os.close(fd)


def _begin(name):
    run = _RUNS[name] = _RUNS.get(name, 0) + 1
    _mark(name, "begin", run)
    return run


def _forked():
    _RUNS.clear()
    _mark("image", "start")


def _output_to_log():
    fd = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


_output_to_log()
_mark("image", "start")
os.register_at_fork(after_in_child=_forked)
'''

HANDLER_BODIES = {
    "fast": "pass",
    "slow": "time.sleep({seconds})",
    "long": "time.sleep({seconds})",
    "raise": "raise ValueError({name!r})",
    "os_exit": "os._exit(5)",
}

SIGNAL_BODIES = {
    "note": "pass",
    "slow": "time.sleep({seconds})",
    "exit": "sys.exit(0)",
    "raise": "raise RuntimeError({name!r})",
    "os_exit": "os._exit(7)",
    "redefault": "signal.signal(signum, signal.SIG_DFL)\n    os.kill(os.getpid(), signum)",
}


def _handler_def(handler: HandlerPlan) -> str:
    body = HANDLER_BODIES[handler.body].format(seconds=handler.seconds, name=handler.name)
    return (f"def {handler.name}():\n"
            f"    _k = _begin({handler.name!r})\n"
            f"    try:\n"
            f"        {body}\n"
            f"        _mark({handler.name!r}, 'end', _k)\n"
            f"    except BaseException:\n"
            f"        _mark({handler.name!r}, 'raise', _k)\n"
            f"        raise\n")


def _signal_def(sig: SignalPlan) -> str:
    body = SIGNAL_BODIES[sig.body].format(seconds=sig.seconds, name=sig.name)
    return f"def {sig.name}(signum, frame):\n    _begin({sig.name!r})\n    {body}\n"


def _register(handler: HandlerPlan) -> list[str]:
    call = "atexit.register" if handler.kind == "atexit" else "threading._register_atexit"
    lines = [f"{call}({handler.name})", f"_mark({handler.name!r}, 'reg')"]
    if handler.unregister and handler.kind == "atexit":
        lines += [f"atexit.unregister({handler.name})", f"_mark({handler.name!r}, 'unreg')"]
    return lines


def _start_child(index: int, child: ChildPlan) -> tuple[list[str], list[str]]:
    """Lines that start the child, and lines that wait for it (empty if it is not waited for)."""
    var, role = f"_c{index}", child.proc.role
    if child.kind == "fork":
        start = [f"{var} = os.fork()", f"if {var} == 0:", f"    main_{role}()", "    sys.exit(0)"]
        wait = [f"os.waitpid({var}, 0)"]
    elif child.kind == "daemon":
        middle = "os._exit(0)" if child.middle == "os_exit" else "sys.exit(0)"
        close = ["        os.closerange(3, 65536)"] if child.close_fds else []
        start = [f"{var} = os.fork()", f"if {var} == 0:", "    os.setsid()", "    if os.fork() == 0:",
                 *close, f"        main_{role}()", "        sys.exit(0)", f"    {middle}"]
        wait = [f"os.waitpid({var}, 0)"]
    elif child.kind in ("mp_fork", "mp_spawn"):
        method = child.kind[3:]
        start = [f"{var} = multiprocessing.get_context({method!r}).Process(target=main_{role}, "
                 f"daemon={child.mp_daemon})", f"{var}.start()"]
        wait = [f"{var}.join()"]
    else:
        flags = ', "-I"' if child.kind == "subprocess_isolated" else ""
        start = [f'{var} = subprocess.Popen([sys.executable{flags}, __file__, "--role", {role!r}])']
        wait = [f"{var}.wait()"]
    return start, wait if child.wait else []


def _ending(plan: ProcPlan) -> list[str]:
    exec_role = plan.exec_into.role if plan.exec_into is not None else ""
    return {
        "return": [],
        "exit": [f"sys.exit({plan.code})"],
        "raise": [f"raise RuntimeError('{plan.role} ends by raising')"],
        "os_exit": [f"os._exit({plan.code})"],
        "exec_python": [f'os.execv(sys.executable, [sys.executable, __file__, "--role", {exec_role!r}])'],
        "exec_isolated": [f'os.execv(sys.executable, [sys.executable, "-I", __file__, "--role", {exec_role!r}])'],
        "exec_sleep": [f'os.execv("/bin/sleep", ["sleep", "{max(plan.life, 0.5):.2f}"])'],
        "forever": ["time.sleep(30)"],
    }[plan.ending]


def _main_def(plan: ProcPlan) -> str:
    lines: list[str] = []
    for handler in plan.handlers:
        lines += _register(handler)
    for sig in plan.signals:
        lines.append(f"signal.signal(signal.SIG{sig.signal}, {sig.name})")
    for daemon, seconds in plan.threads:
        lines.append(f"threading.Thread(target=time.sleep, args=({seconds},), daemon={daemon}).start()")
    waits: list[str] = []
    for index, child in enumerate(plan.children, 1):
        start, wait = _start_child(index, child)
        lines += start
        waits += wait
    lines.append(f"time.sleep({plan.life})")
    lines += waits + _ending(plan)
    return f"def main_{plan.role}():\n" + "".join(f"    {line}\n" for line in lines)


def source(scenario: Scenario, markers: Path, log: Path) -> str:
    """The whole program: helpers, every handler and role, module-level handlers, dispatch."""
    parts = [PRELUDE.format(markers=str(markers), log=str(log))]
    for plan in scenario.plans():
        parts += [_handler_def(h) for h in plan.handlers]
        parts += [_signal_def(s) for s in plan.signals]
        parts.append(_main_def(plan))
    for handler in scenario.module_handlers:
        parts.append(_handler_def(handler))
        parts.append("".join(f"{line}\n" for line in _register(handler)))
    roles = ", ".join(f"{p.role!r}: main_{p.role}" for p in scenario.plans())
    parts.append(f"ROLES = {{{roles}}}\n\n"
                 "if __name__ == '__main__':\n"
                 "    ROLES[sys.argv[sys.argv.index('--role') + 1] if '--role' in sys.argv else 'p']()\n")
    return "\n\n".join(parts)
