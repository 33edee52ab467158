"""What ``gsup run`` does once its command line is read, without click.

Two readers lead here: the click command (:mod:`supervisor.cli`) and the fast
reader of :mod:`supervisor.run_args`, which reads an ordinary ``gsup run``
command line before click is imported (click alone costs more than Python's
start-up, and ``gsup run``'s fixed cost is paid on every run: issue 17).  Both
hand over the same ``params`` (click's names and values) and whether the
program came after ``--``; everything from there on is here, once, so the two
paths cannot drift apart.  The output helpers write as ``click.echo`` does
(one line, flushed; escape codes stripped off a terminal), so a line reads the
same whichever reader led here.
"""

from __future__ import annotations

import os
import sys

from supervisor.errors import ExitCode, GsupError

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn, Optional, TextIO

    from supervisor.model import Report
    from supervisor.phases.plan import RunOptions


# -- output, as click.echo writes it ------------------------------------------------


def echo(message: str, err: bool = False, nl: bool = True) -> None:
    """Write ``message`` and a newline, then flush, as ``click.echo`` does; off a terminal,
    ANSI escape codes are stripped, as click strips them."""
    stream: Optional[TextIO] = sys.stderr if err else sys.stdout
    if stream is None:
        return
    text = message + "\n" if nl else message
    if "\x1b" in text and not _isatty(stream):
        import re

        text = re.sub(r"\033\[[;?0-9]*[a-zA-Z]", "", text)  # click's _ansi_re
    stream.write(text)
    stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except Exception:
        return False


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    """One line on stderr, then ``code``; a closed stderr loses the line, never the code."""
    try:
        echo(f"gsup: error: {message}", err=True)
    except OSError:
        to_devnull(2)
    sys.exit(int(code))


def to_devnull(fd: int) -> None:
    """Point ``fd`` at /dev/null, so that what is still buffered for it cannot fail at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def reader_gone() -> NoReturn:
    """gsup's output pipe lost its reader (``gsup ps | head -1``): stop writing and exit
    quietly as a SIGPIPE death would show in a shell, 141 (README "Exit codes").

    gsup gets here only once its run (if any) has ended and its report is saved, so
    the program never notices.  Both streams go to /dev/null first, so that nothing
    still buffered fails again at exit."""
    for fd in (1, 2):
        to_devnull(fd)
    sys.exit(int(ExitCode.OUTPUT_CLOSED))


def guard(action: Callable[[], None], passing: tuple[type[BaseException], ...] = ()) -> None:
    """Run a command; user errors become one line and their exit code, never a traceback.

    ``passing``: exceptions that are someone else's to report (click's own)."""
    try:
        action()
    except GsupError as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        echo("gsup: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        reader_gone()
    except SystemExit:
        raise
    except Exception as err:
        if isinstance(err, passing) or os.environ.get("GSUP_DEBUG"):
            raise
        fail(f"internal error: {type(err).__name__}: {err} (set GSUP_DEBUG=1 for a traceback)", ExitCode.INCOMPLETE)


def plug_std_streams() -> frozenset[int]:
    """Which of gsup's stdin, stdout and stderr were closed (``2>&-``), each now /dev/null.

    A closed fd 0, 1 or 2 would be the next file gsup opens (a session file, a
    pipe), and gsup's own writes would land there; on /dev/null they vanish.  The
    program still gets them closed, as a shell would give them (:func:`supervisor.launch.closed_for_program`).
    """
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this very one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # a standard stream, passed on as any other (the guardian's)
            if fd and getattr(sys, ("stdin", "stdout", "stderr")[fd]) is None:  # Python saw it closed
                setattr(sys, ("stdin", "stdout", "stderr")[fd], open(fd, "w", closefd=False))  # noqa: SIM115
    return frozenset(closed)


# -- gsup run ------------------------------------------------------------------------


def run(params: dict[str, Any], is_command: bool, closed: frozenset[int]) -> None:
    """``gsup run`` with its command line read: ``params`` by click's names (``sig``,
    ``target``, ``stop``, ``stdin`` and :func:`supervisor.cli.program_options`'s)."""
    from supervisor import launch, options, stops

    sig, target, stop, stdin = params["sig"], params["target"], params["stop"], params["stdin"]
    replayed = _replayed(params, sig, target, stop)
    if replayed is not None:
        is_command = True
    run_options = build_run_options(params, is_command, closed)
    if replayed is not None:
        docker = "docker-init" if run_options.init else "docker"
        stop = docker if params["dockerfile"] else "k8s"
        run_options.stop_signal = options.parse_signal(replayed.stop_signal) if replayed.stop_signal else None
        run_options.grace = run_options.grace if run_options.grace is not None else replayed.grace
        run_options.pre_stop = replayed.pre_stop
    run_options.stdin = launch.parse_stdin(stdin) if stdin is not None else None
    if stop is not None:
        if sig is not None or target is not None:
            raise GsupError("--stop sets the signal and target itself: drop --signal/--target")
        run_options.stop = stops.parse_stop(stop)
    elif sig is not None:
        run_options.signal = options.parse_signal(sig)
        run_options.target = options.parse_target(target or "parent")
    elif target is not None or params["after"] is not None:
        raise GsupError("--target and --after need --signal or --stop")
    if params["kill_after"] is not None and run_options.stop != "timeout":
        raise GsupError("--kill-after goes with --stop timeout (elsewhere, use --grace)")
    if params["stop_time"] is not None and run_options.stop not in ("docker", "docker-init"):
        raise GsupError("--time goes with --stop docker or docker-init (elsewhere, use --grace)")
    execute(run_options, params["quiet"], params["junit"], (params["html"], params["trace"], params["timeline"]))


def _replayed(params: dict[str, Any], sig: Optional[str], target: Optional[str],
              stop: Optional[str]) -> Optional[Any]:
    """``--dockerfile``/``--pod``: the container they describe, its command put in place of a
    program (``python`` in it is ``--python``, whose folder also leads PATH for a shell form),
    and gsup moved to its working directory; None without either.  The command is then
    always a command (as after ``--``)."""
    if params["dockerfile"] and params["pod"]:
        raise GsupError("--dockerfile and --pod each describe the container: give one")
    if params["container_name"] and not params["pod"]:
        raise GsupError("--container-name goes with --pod")
    if not (params["dockerfile"] or params["pod"]):
        return None
    if params["program"] or params["module"] or sig or target or stop:
        raise GsupError("--dockerfile/--pod give the command and the stop sequence: drop the program, "
                        "--signal/--target/--stop")
    from pathlib import Path

    from supervisor import containers  # the Dockerfile and pod readers: only for these two options

    found = containers.read_dockerfile(Path(params["dockerfile"])) if params["dockerfile"] else \
        containers.read_pod(Path(params["pod"]), params["container_name"])
    python = params["python"]
    argv = list(found.argv)
    if python and argv[0] in ("python", "python3"):
        argv[0] = python
    if python:
        os.environ["PATH"] = os.path.dirname(os.path.abspath(python)) + os.pathsep + os.environ.get("PATH", "")
    if found.workdir is not None:
        os.chdir(found.workdir)
    params["program"], params["python"] = argv, None
    return found


def build_run_options(params: dict[str, Any], is_command: bool, closed: frozenset[int]) -> RunOptions:
    """Turn :func:`supervisor.cli.program_options` values into RunOptions (no signal yet);
    GsupError on bad input."""
    from supervisor import expect, launch, options
    from supervisor.phases.plan import RunOptions

    expect.parse_all(params["expect"])  # first: a mistyped --expect costs nothing, nothing is launched
    grace = next((params[k] for k in ("kill_after", "stop_time", "grace") if params[k] is not None), None)
    run_options = RunOptions(
        argv=[], json_stdout=params["as_json"], settle=options.parse_duration(params["settle"]),
        grace=options.parse_duration(grace) if grace is not None else None,
        after=options.parse_duration(params["after"]) if params["after"] is not None else None,
        ready_port=options.parse_port(params["ready_port"]) if params["ready_port"] is not None else None,
        ready_output=options.parse_regex(params["ready_output"]) if params["ready_output"] is not None else None,
        ready_file=_absolute(params["ready_file"]) if params["ready_file"] else None,
        ready_timeout=options.parse_duration(params["ready_timeout"]),
        expect=list(params["expect"]), watch=[options.parse_watch(w) for w in params["watch"]],
        watch_presets=options.parse_watch_presets(params["watch_presets"]),
        closed_streams=closed,
        container=options.parse_container(params["container"]) if params["container"] is not None else None,
        init=options.parse_init(params["init"]) if params["init"] is not None else None,
    )
    module, python, program = params["module"], params["python"], list(params["program"])
    needs_python = module is not None or not is_command or params["deep"]  # -m is parsed as a command too
    found = launch.find_python(python) if needs_python else None
    interpreter = found.path if found is not None else ""
    run_options.interpreter = found.found if found is not None else None
    if module is not None:
        run_options.argv = launch.module_command(interpreter, module, program)
    elif is_command:
        run_options.argv = launch.external_command(program)
    elif program:
        run_options.argv = launch.script_command(interpreter, program[0], program[1:])
    else:
        raise GsupError("nothing to run: give SCRIPT, -m MODULE or -- COMMAND")
    run_options.deep = interpreter if params["deep"] else None  # whose site-packages -I children read
    return run_options


def _absolute(path: str) -> Any:
    from pathlib import Path

    return Path(path).absolute()


def execute(run_options: RunOptions, quiet: bool, junit: Optional[str],
            views: tuple[Optional[str], Optional[str], Optional[bool]] = (None, None, None)) -> None:
    """Run, print the report, write --junit, then exit by priority (README "Exit codes"):
    2 (signal never sent, --junit unwritable), 4 (not ready), 3 (incomplete), 1 (an --expect failed)."""
    from supervisor import expect, runner
    from supervisor.display import make_display

    expectations = expect.parse_all(run_options.expect)
    outcome = runner.run(run_options, make_display(quiet, report_follows=not run_options.json_stdout))
    report = outcome.report
    report.expectations = expect.evaluate(expectations, report)
    print_report(report, run_options.json_stdout, views[2])
    if 1 in run_options.closed_streams:
        echo(f"gsup: stdout was closed: the report is saved, see `gsup report {report.session}`", err=True)
    junit_error: Optional[GsupError] = None
    if junit is not None:
        from supervisor import junit as junit_xml

        name = junit_xml.scenario_name(run_options.signal, run_options.target, run_options.stop)
        problem = outcome.shot_error or outcome.not_ready
        try:
            junit_xml.write(junit, [(name, report)], {name: str(problem)} if problem is not None else None)
        except GsupError as err:
            junit_error = err
    if views[0] is not None or views[1] is not None:  # imported only then: the timeline is not light
        from supervisor import exports

        try:
            exports.write_report(report, views[0], views[1])
        except GsupError as err:
            junit_error = junit_error or err
    for line in expect.failure_lines(report.expectations):
        echo(line, err=True)
    if outcome.shot_error is not None:
        fail(str(outcome.shot_error))
    if junit_error is not None:
        fail(str(junit_error))
    if outcome.not_ready is not None:
        fail(str(outcome.not_ready), ExitCode.NOT_READY)
    if report.incomplete:
        fail("report incomplete: " + "; ".join(report.incomplete), ExitCode.INCOMPLETE)
    if not report.ok:
        sys.exit(int(ExitCode.EXPECTATION_FAILED))


def print_report(report: Report, as_json: bool, timeline: Optional[bool] = None) -> None:
    if as_json:
        from supervisor import strictjson

        echo(strictjson.dumps(report.to_json(), indent=2))
    else:
        from supervisor.render import StdoutConsole, render

        StdoutConsole(highlight=False).print_lines(render(report, timeline))
