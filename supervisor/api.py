"""gsup from Python: ``run()`` and ``matrix()`` return the typed reports.

    from supervisor import run
    report = run("app.py", signal="KILL", target="child", grace=2)
    assert report.role("child").fired == []

Each call runs ``gsup run --json`` (or ``gsup matrix --json``) as a
subprocess and reads its report back.  gsup never runs inside the caller:
its runner makes its process a child subreaper, reaps every child with
``waitid(P_ALL)`` and installs signal handlers, so in-process it would steal
the exit statuses of the caller's other children, and two runs could not
share one process.  A subprocess also isolates crashes and makes parallel
runs trivial.

Whatever happens while waiting (a timeout, Ctrl-C, a failing test), the gsup
subprocess is ended the way a user would end it (``gsup_child.end_gsup``):
SIGTERM, which gsup forwards to the program's group before reporting; a second
SIGTERM, on which gsup SIGKILLs the whole tree; SIGKILL to gsup itself only as
the last resort.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from signal import Signals
from typing import Any, Callable, Optional, TypeVar, Union

from supervisor.errors import ExitCode, GsupError
from supervisor.gsup_child import GSUP, end_gsup, error_line, parse_document, read_output, wait_gsup
from supervisor.matrix_report import MatrixReport
from supervisor.model import Report

T = TypeVar("T")

Duration = Union[float, str]  # seconds, or what the command line takes: "3s", "500ms"
SignalLike = Union[str, int, Signals]
PathLike = Union[str, "os.PathLike[str]"]


class RunError(GsupError):
    """gsup ended without a report to return: ``str(err)`` is its one-line
    message, ``exit_code`` its exit code, ``output`` everything it wrote on
    stderr (the program's output included), ``report`` the report if one came."""

    def __init__(self, message: str, exit_code: int, output: str = "", report: Optional[Report] = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[assignment]  # gsup's own code, not always an ExitCode
        self.output = output
        self.report = report


class RunTimeout(RunError):
    """The ``timeout`` passed before gsup finished; gsup was ended (see the module's docstring)."""


class Gsup:
    """gsup with a fixed environment and working directory (the pytest fixture binds
    ``GSUP_HOME``); remembers the gsup processes it started until they end."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, cwd: Optional[PathLike] = None) -> None:
        self.env = dict(env or {})
        self.cwd = cwd
        self.running: set[subprocess.Popen[bytes]] = set()

    def __repr__(self) -> str:
        return f"Gsup(env={self.env!r}, cwd={self.cwd!r})"

    def run(self, script: Optional[PathLike] = None, *args: str, module: Optional[str] = None,
            command: Union[Sequence[str], str, None] = None, signal: Optional[SignalLike] = None,
            target: Optional[str] = None, stop: Optional[str] = None, after: Optional[Duration] = None,
            grace: Optional[Duration] = None, kill_after: Optional[Duration] = None,
            settle: Optional[Duration] = None, ready_port: Optional[int] = None,
            ready_output: Optional[str] = None, ready_file: Optional[PathLike] = None,
            ready_timeout: Optional[Duration] = None, expect: Sequence[str] = (), watch: Sequence[str] = (),
            watch_preset: Sequence[str] = (), python: Optional[str] = None, deep: bool = False,
            container: Optional[str] = None, init: Optional[str] = None,
            env: Optional[Mapping[str, str]] = None, cwd: Optional[PathLike] = None,
            timeout: Optional[float] = None) -> Report:
        """``gsup run``: the same options as the command line (durations in seconds or
        as strings), one of ``script``, ``module=`` or ``command=``.

        ``python`` defaults to this interpreter; ``env`` is added to the environment.
        ``container``: ``"namespace"`` (PID 1 of a new PID namespace, what ``--stop docker``
        implies), ``"emulate"`` or ``"off"``; ``init``: ``"auto"``, ``"tini"`` or ``"gsup"``.
        Returns the report even when an expectation failed (``report.ok`` is False) or
        it is incomplete.  Raises :class:`RunError` when the experiment did not happen:
        bad input, a signal that could not be sent (exit 2), a ``ready_*`` condition
        that never came (exit 4), no report; the report is attached if the program
        had started.  Raises :class:`RunTimeout` after ``timeout`` seconds (gsup is
        ended, its report attached)."""
        flags = _flags({"--signal": _signal(signal), "--target": target, "--stop": stop, "--after": after,
                        "--grace": grace, "--kill-after": kill_after, "--settle": settle,
                        "--ready-port": ready_port, "--ready-output": ready_output, "--ready-file": ready_file,
                        "--ready-timeout": ready_timeout, "--expect": expect, "--watch": watch,
                        "--watch-preset": watch_preset, "--python": python or sys.executable})
        flags += ["--deep"] if deep else []
        flags += [f"--{name}={value}" for name, value in (("container", container), ("init", init)) if value]
        argv = ["run", "--json", "-q", *flags, *_program(script, args, module, command)]
        code, document, output = self._call(argv, env, cwd, timeout)
        report = _typed(Report.from_json, document)
        _check(code, output, report is not None, timeout if code is None else None, report)
        assert report is not None
        return report

    def matrix(self, script: Optional[PathLike] = None, *args: str, module: Optional[str] = None,
               command: Union[Sequence[str], str, None] = None,
               signals: Union[Sequence[SignalLike], str, None] = None,
               targets: Union[Sequence[str], str, None] = None, jobs: Optional[int] = None,
               network: Optional[str] = None, after: Optional[Duration] = None,
               grace: Optional[Duration] = None, kill_after: Optional[Duration] = None,
               settle: Optional[Duration] = None, ready_port: Optional[int] = None,
               ready_output: Optional[str] = None, ready_file: Optional[PathLike] = None,
               ready_timeout: Optional[Duration] = None, expect: Sequence[str] = (), watch: Sequence[str] = (),
               watch_preset: Sequence[str] = (), junit: Optional[PathLike] = None, python: Optional[str] = None,
               deep: bool = False, env: Optional[Mapping[str, str]] = None, cwd: Optional[PathLike] = None,
               timeout: Optional[float] = None) -> MatrixReport:
        """``gsup matrix``: every signal of ``signals`` (default TERM, INT, KILL) to every
        target of ``targets`` (default parent, child; a stop preset is a scenario of its
        own), each in a fresh tree, ``jobs`` starting at a time (default: one per core; one whose
        signal was sent makes room for the next, up to three times ``jobs``), each in its own
        network namespace (``network="shared"``: the host's).  Raises as :meth:`run` does."""
        flags = _flags({"--signals": _joined(signals), "--targets": _joined(targets), "--jobs": jobs,
                        "--network": network,
                        "--after": after, "--grace": grace, "--kill-after": kill_after, "--settle": settle,
                        "--ready-port": ready_port, "--ready-output": ready_output, "--ready-file": ready_file,
                        "--ready-timeout": ready_timeout, "--expect": expect, "--watch": watch,
                        "--watch-preset": watch_preset, "--junit": junit, "--python": python or sys.executable})
        flags += ["--deep"] if deep else []
        argv = ["matrix", "--json", "-q", *flags, *_program(script, args, module, command)]
        code, document, output = self._call(argv, env, cwd, timeout)
        result = _typed(MatrixReport.from_json, document)
        _check(code, output, result is not None, timeout if code is None else None)
        assert result is not None
        return result

    def close(self) -> None:
        """End every gsup this object started that is still running (from another thread)."""
        end_gsup(list(self.running))

    def _call(self, argv: list[str], env: Optional[Mapping[str, str]], cwd: Optional[PathLike],
              timeout: Optional[float]) -> tuple[Optional[int], Optional[dict[str, Any]], str]:
        """Run gsup to its end; (exit code or None on timeout, its JSON document, its stderr).

        Its output goes to files, not pipes: a report bigger than a pipe would
        otherwise block gsup while this side only waits for it to end."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([*GSUP, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env={**os.environ, **self.env, **(env or {})}, cwd=cwd or self.cwd)
            self.running.add(proc)
            try:
                code: Optional[int] = wait_gsup(proc, timeout)
            finally:
                self.running.discard(proc)
                output = read_output(err)
                sys.stderr.write(output)  # the program's own output, as `gsup run --json` shows it
            return code, parse_document(read_output(out)), output


def _check(code: Optional[int], output: str, has_document: bool, timed_out: Optional[float],
           report: Optional[Report] = None) -> None:
    """Raise unless there is a result to return (see :meth:`Gsup.run`)."""
    if code is None:
        raise RunTimeout(f"gsup did not finish within {timed_out}s: it was ended", -1, output, report)
    if code in (ExitCode.USAGE, ExitCode.NOT_READY) or not has_document:  # the experiment did not happen
        raise RunError(error_line(output) or f"gsup exited with code {code} and no report", code, output, report)


def _typed(read: Callable[[dict[str, Any]], T], document: Optional[dict[str, Any]]) -> Optional[T]:
    """``document`` as a typed object; None (no report) when it is missing or damaged,
    so the caller raises RunError with gsup's own words instead of a KeyError."""
    if document is None:
        return None
    try:
        return read(document)
    except (KeyError, TypeError, ValueError):
        return None


def _program(script: Optional[PathLike], args: Sequence[str], module: Optional[str],
             command: Union[Sequence[str], str, None]) -> list[str]:
    """The program part of gsup's command line; TypeError unless exactly one form is given."""
    if sum(given is not None for given in (script, module, command)) != 1:
        raise TypeError("give exactly one of script, module= or command=")
    if module is not None:
        return ["-m", module, *args]
    if command is not None:
        if args:
            raise TypeError("command= takes the whole command line; extra arguments go in it")
        return ["--", *(shlex.split(command) if isinstance(command, str) else command)]
    path = os.fspath(script)  # type: ignore[arg-type]
    return [f"./{path}" if path.startswith("-") else path, *args]  # never read as a gsup option


def _flags(values: Mapping[str, Any]) -> list[str]:
    """``{"--grace": 2.5, "--expect": ["a", "b"]}`` → ``["--grace", "2.5", "--expect", "a", ...]``."""
    flags: list[str] = []
    for flag, value in values.items():
        if isinstance(value, (list, tuple)):
            for item in value:
                flags += [flag, str(item)]
        elif value is not None:
            flags += [flag, _text(value)]
    return flags


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError(f"expected a number or a string, got {value!r}")
    if isinstance(value, float):
        return repr(value)  # 0.5 stays 0.5; gsup reads a bare number as seconds
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _signal(value: Optional[SignalLike]) -> Optional[str]:
    if isinstance(value, Signals):
        return value.name
    return None if value is None else str(value)


def _joined(values: Union[Sequence[SignalLike], str, None]) -> Optional[str]:
    if values is None or isinstance(values, str):
        return values
    return ",".join(str(_signal(v)) for v in values)


_DEFAULT = Gsup()
run = _DEFAULT.run
matrix = _DEFAULT.matrix
