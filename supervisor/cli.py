"""The ``gsup`` command: parse, call the API, map errors to exit codes.

No logic lives here.  Heavy modules (rich, psutil, the runner) are imported
inside the commands so that ``gsup --version`` and ``gsup --help`` start fast.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Optional

import click

from supervisor import __version__
from supervisor.errors import ExitCode, GsupError

if TYPE_CHECKING:
    from supervisor.runner import RunOptions

RUN_HELP = """Run a Python program, watch its whole process tree, and report which exit
handlers ran in which process and how each process ended.

\b
  gsup run app.py [ARGS]...
  gsup run -m package.module [ARGS]...
  gsup run -- gunicorn app:app          (any command)

gsup's options come first; everything from the program on belongs to it.
With --signal, gsup sends one signal to --target once it exists and the tree
has settled (or --after a delay), waits --grace for the tree to end, then
SIGKILLs what is left.  Ctrl-C is forwarded to the program's process group;
a second Ctrl-C SIGKILLs what is left.  The report follows either way.
"""


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    click.echo(f"gsup: error: {message}", err=True)
    sys.exit(int(code))


def entry() -> None:
    """Run the command line: click's usage errors become one line and exit 2, too."""
    try:
        code = main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("interrupted", ExitCode.INTERRUPTED)
    except click.UsageError as err:
        fail(err.format_message(), ExitCode.USAGE)
    except click.ClickException as err:
        fail(err.format_message(), err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


class _Command(click.Command):
    """gsup's options end where the program begins: at SCRIPT, at ``--``, or
    right after ``-m MODULE`` (so ``-m json.tool --help`` is the module's help).
    Also remembers whether the program came after ``--`` (a command)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = self._end_options_after_module(args)
        original = list(args)
        rest = super().parse_args(ctx, args)
        program = ctx.params.get("program") or ()
        index = len(original) - len(program) - 1
        ctx.meta["gsup.command"] = bool(program) and index >= 0 and original[index] == "--"
        return rest

    def _end_options_after_module(self, args: list[str]) -> list[str]:
        takes_value = {name for p in self.params if isinstance(p, click.Option) and not p.is_flag
                       for name in p.opts + p.secondary_opts}
        position = 0
        while position < len(args):
            arg = args[position]
            if arg == "--" or not arg.startswith("-"):
                return args  # a command or a script: click's own rules already stop there
            if arg == "-m":
                return [*args[: position + 2], "--", *args[position + 2:]]
            if arg.startswith("-m") and not arg.startswith("--"):
                return [*args[: position + 1], "--", *args[position + 1:]]
            position += 2 if arg in takes_value else 1
        return args


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="gsup")
def main() -> None:
    """gsup: which exit handlers run when a process tree gets a signal."""


@main.command(cls=_Command, help=RUN_HELP,
              context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option("-m", "module", metavar="MODULE", help="Run a module, as python -m does.")
@click.option("--python", "python", metavar="PATH", help="Interpreter for SCRIPT and -m (default: python on PATH).")
@click.option("--json", "as_json", is_flag=True, help="JSON report alone on stdout (program output goes to stderr).")
@click.option("-s", "--signal", "sig", metavar="SIG", help="Send this signal once: 9, KILL, SIGKILL, term...")
@click.option("-t", "--target", metavar="WHO", help="parent (default), child, group, tree or pid:N.")
@click.option("--after", metavar="DURATION", help="Send that long after launch (3, 3s, 500ms, 1m).")
@click.option("--grace", default="10s", show_default=True, metavar="DURATION",
              help="After a signal, or once the launched process ended, wait this long, then SIGKILL the rest.")
@click.option("--settle", default="500ms", show_default=True, metavar="DURATION",
              help="Without --after: how long the tree must be quiet before the signal.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.argument("program", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, module: Optional[str], python: Optional[str], as_json: bool, sig: Optional[str],
        target: Optional[str], after: Optional[str], grace: str, settle: str, quiet: bool,
        program: tuple[str, ...]) -> None:
    _guard(lambda: _run(ctx.meta.get("gsup.command", False), module, python, as_json, sig, target, after,
                        grace, settle, quiet, list(program)))


def _run(is_command: bool, module: Optional[str], python: Optional[str], as_json: bool, sig: Optional[str],
         target: Optional[str], after: Optional[str], grace: str, settle: str, quiet: bool,
         program: list[str]) -> None:
    from supervisor import launch, options
    from supervisor.runner import RunOptions

    run_options = RunOptions(argv=[], json_stdout=as_json, grace=options.parse_duration(grace),
                             settle=options.parse_duration(settle))
    if sig is not None:
        run_options.signal = options.parse_signal(sig)
        run_options.target = options.parse_target(target or "parent")
        run_options.after = options.parse_duration(after) if after is not None else None
    elif target is not None or after is not None:
        raise GsupError("--target and --after need --signal")
    if module is not None:
        interpreter = launch.check_python(python) if python else launch.default_python()
        run_options.argv = launch.module_command(interpreter, module, program)
    elif is_command:
        run_options.argv = launch.external_command(program)
    elif program:
        interpreter = launch.check_python(python) if python else launch.default_python()
        run_options.argv = launch.script_command(interpreter, program[0], program[1:])
    else:
        raise GsupError("nothing to run: give SCRIPT, -m MODULE or -- COMMAND")
    _execute(run_options, quiet)


def _execute(run_options: RunOptions, quiet: bool) -> None:
    from rich.console import Console

    from supervisor.display import make_display
    from supervisor.render import render
    from supervisor.runner import Runner

    runner = Runner(run_options, make_display(quiet))
    report = runner.run()
    if run_options.json_stdout:
        import json

        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        Console(highlight=False).print(render(report))
    if runner.shot_error is not None:
        fail(str(runner.shot_error))
    if report.incomplete:
        fail("report incomplete: " + "; ".join(report.incomplete), ExitCode.INCOMPLETE)


@main.command()
@click.option("-s", "--signal", "sig", default="TERM", show_default=True, metavar="SIG",
              help="Signal: 9, KILL, SIGKILL, term...")
@click.option("-t", "--target", default="parent", show_default=True, metavar="WHO",
              help="parent, child (every direct child), group, tree or pid:N.")
@click.option("--session", "session_id", metavar="ID", help="Which run (default: the newest live one; see gsup ps).")
@click.option("--wait", is_flag=True, help="Wait for the targets to end and say what happened in them.")
@click.option("--timeout", default=None, metavar="DURATION", help="With --wait: give up after this long.")
def kill(sig: str, target: str, session_id: Optional[str], wait: bool, timeout: Optional[str]) -> None:
    """Send a signal to a process of a running `gsup run`, from another terminal."""
    _guard(lambda: _kill(sig, target, session_id, wait, timeout))


def _kill(sig: str, target: str, session_id: Optional[str], wait: bool, timeout: Optional[str]) -> None:
    from supervisor import control, options

    signum = options.parse_signal(sig)
    parsed = options.parse_target(target)
    limit = options.parse_duration(timeout) if timeout is not None else None
    result = control.kill(session_id, signum, parsed)
    if result.note:
        click.echo(f"gsup: {result.note}", err=True)
    names = ", ".join(f"{p.pid} ({' '.join(p.argv)[:40]})" for p in result.targets)
    click.echo(f"sent {result.action.signal} to {result.action.target} in session {result.session.id}: {names}")
    if not wait:
        return
    still = control.wait_for(result.targets, limit)
    if still:
        fail(f"still running after {timeout}: {', '.join(str(p.pid) for p in still)}", ExitCode.INCOMPLETE)
    for proc in control.outcomes(result.session, [p.pid for p in result.targets]):
        click.echo(f"{proc.pid} ({proc.role}): {proc.explanation}")


@main.command()
def ps() -> None:
    """List live gsup sessions and their process trees."""
    _guard(_ps)


def _ps() -> None:
    from supervisor import control

    found = control.live_sessions()
    if not found:
        click.echo("no live gsup session")
        return
    for live in found:
        session = live.session
        click.echo(f"session {session.id}  gsup pid {session.gsup.pid}  {' '.join(session.command)}")
        for proc in sorted(live.tree.live(), key=lambda p: p.first_seen):
            role = live.tree.role(proc.pid, proc.ppid)
            click.echo(f"  {proc.pid:>7}  {role:<10}  {' '.join(proc.argv)[:60]}")


def _guard(action: Any) -> None:
    """Run a command; user errors become one line and their exit code, never a traceback."""
    try:
        action()
    except GsupError as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        click.echo("gsup: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except (SystemExit, click.exceptions.Exit, click.ClickException):
        raise
    except Exception as err:
        if os.environ.get("GSUP_DEBUG"):
            raise
        fail(f"internal error: {type(err).__name__}: {err} (set GSUP_DEBUG=1 for a traceback)", ExitCode.INCOMPLETE)
