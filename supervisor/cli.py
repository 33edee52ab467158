"""The ``gsup`` command: parse, call the API, map errors to exit codes.

No logic lives here.  Heavy modules (rich, psutil, the runner) are imported
inside the commands so that ``gsup --version`` and ``gsup --help`` start fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

import click
from click.shell_completion import CompletionItem

from supervisor import __version__, run_command
from supervisor.errors import ExitCode, GsupError
from supervisor.run_command import fail, plug_std_streams, reader_gone

RUN_HELP = """Run a Python program, watch its whole process tree, and report which exit
handlers ran in which process and how each process ended.

\b
  gsup run app.py [ARGS]...
  gsup run -m package.module [ARGS]...
  gsup run -- gunicorn app:app          (any command)

gsup's options come first; everything from the program on belongs to it.
With --signal, gsup sends one signal to --target once it exists and the tree
has settled (or --after a delay), waits --grace for the tree to end, then
SIGKILLs what is left.  Ctrl-C is forwarded to the program's process group,
and so is a second one, as a terminal does (it breaks threading's wait for
non-daemon threads and aborts atexit callbacks); a third SIGKILLs what is
left.  Before any SIGKILL because a wait ran out, gsup takes every thread's
stack and the report says where each process was stuck.  The report follows
either way.
"""


def entry() -> None:
    """Run the command line: click's usage errors become one line and exit 2, too."""
    closed = plug_std_streams()  # first: nothing of gsup's may land on a closed 0, 1 or 2
    try:
        code = main(standalone_mode=False, obj=closed)
    except click.exceptions.Abort:
        fail("interrupted", ExitCode.INTERRUPTED)
    except click.UsageError as err:
        fail(err.format_message(), ExitCode.USAGE)
    except click.ClickException as err:
        fail(err.format_message(), err.exit_code)
    except BrokenPipeError:
        reader_gone()
    except SystemExit:
        if type(sys.stdout).__name__ == "_PacifyFlushWrapper":  # click's own output (--help) lost its reader
            reader_gone()
        raise
    sys.exit(code if isinstance(code, int) else 0)


OPTIONAL_VALUE = {"--container": "namespace", "--init": "auto"}  # options whose value is optional: bare, they mean this
# gsup's options end at the program: everything from SCRIPT (or ``--``) on is the program's,
# and an unknown option before it is a typo (a usage error with click's "Did you mean").
PROGRAM_SETTINGS: dict[str, Any] = {"allow_interspersed_args": False}

if TYPE_CHECKING:
    _ParamType = click.ParamType[Any, Any]  # generic from click 8.2 on; 8.1 is supported too
else:
    _ParamType = click.ParamType


class _Parsed(_ParamType):
    """A value one of gsup's parsers accepts, checked while the command line is read
    (a usage error, exit 2, before anything runs), with the values a shell can complete.

    The value stays the text typed: the command parses it again where the context
    is known (a ``pid:N`` target, a signal for ``gsup kill``)."""

    def __init__(self, name: str, parse: Callable[[str], object], values: Callable[[], list[str]]) -> None:
        self.name, self.parse, self.values = name, parse, values

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        try:
            self.parse(value)
        except GsupError as err:
            raise click.UsageError(str(err), ctx) from err  # gsup's own message, which names the option
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(v) for v in self.values() if v.lower().startswith(incomplete.lower())]


def _signal(text: str) -> object:
    from supervisor import options

    return options.parse_signal(text)


def _target(text: str) -> object:
    from supervisor import options

    return options.parse_target(text)


def _stop(text: str) -> object:
    from supervisor import stops

    return stops.parse_stop(text)


def _signal_names() -> list[str]:
    import signal

    return sorted(s.name[3:] for s in signal.Signals if not s.name.startswith("SIG_"))


def _target_names() -> list[str]:
    from supervisor import options

    return [*options.TARGET_KINDS, "pid:"]


def _stop_names() -> list[str]:
    from supervisor import stops

    return list(stops.PRESETS)


SIGNAL = _Parsed("signal", _signal, _signal_names)
TARGET = _Parsed("target", _target, _target_names)
STOP = _Parsed("preset", _stop, _stop_names)


class _Program(_ParamType):
    """The program and its arguments, passed on untouched; a shell completes file names."""

    name = "program"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type="file")]


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

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """``[OPTIONS] PROGRAM [ARGS]...``: the program is required (SCRIPT, -m MODULE or -- COMMAND),
        though click sees only a list that -m may leave empty."""
        return [self.options_metavar or "[OPTIONS]", "PROGRAM [ARGS]..."]

    def _end_options_after_module(self, args: list[str]) -> list[str]:
        takes_value = {name for p in self.params if isinstance(p, click.Option) and not p.is_flag
                       for name in p.opts + p.secondary_opts} - set(OPTIONAL_VALUE)
        position = 0
        while position < len(args):
            arg = args[position]
            if arg in ("--", "-") or not arg.startswith("-"):
                return args  # a command or a script (- is stdin's): click's own rules already stop there
            if arg in OPTIONAL_VALUE:  # its value only ever follows "=": the next word is the program's
                args = [*args[:position], f"{arg}={OPTIONAL_VALUE[arg]}", *args[position + 1:]]
            if arg == "-m":
                return [*args[: position + 2], "--", *args[position + 2:]]
            if arg.startswith("-m") and not arg.startswith("--"):
                return [*args[: position + 1], "--", *args[position + 1:]]
            position += 2 if arg in takes_value else 1
        return args


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="gsup")
@click.pass_context
def main(ctx: click.Context) -> None:
    """gsup: which exit handlers run when a process tree gets a signal."""
    if ctx.invoked_subcommand is None:  # bare ``gsup``: the help, exit 0 (not an error with the help inside)
        click.echo(ctx.get_help())


def program_options(func: Any) -> Any:
    """The options that say what to run and how to stop it: shared by ``run`` and ``matrix``."""
    decorators = [
        click.option("-m", "module", metavar="MODULE", help="Run a module, as python -m does."),
        click.option("--python", "python", metavar="PATH",
                     help="Interpreter for SCRIPT and -m (default: python on PATH)."),
        click.option("--json", "as_json", is_flag=True,
                     help="JSON report alone on stdout (program output goes to stderr)."),
        click.option("--after", metavar="DURATION",
                     help="Send that long after launch, or after readiness with --ready-* (3, 3s, 500ms, 1m)."),
        click.option("--grace", default=None, metavar="DURATION",
                     help="After the signal, or once the launched process ended, wait this long, then SIGKILL "
                          "the rest.  [default: 10s, or the --stop preset's]"),
        click.option("--kill-after", "kill_after", default=None, metavar="DURATION",
                     help="With --stop timeout: coreutils' -k (same as --grace)."),
        click.option("--time", "stop_time", default=None, metavar="DURATION",
                     help="With --stop docker/docker-init: docker stop's --time (same as --grace)."),
        click.option("--container", "container", is_flag=False, flag_value="namespace", default=None,
                     metavar="[=emulate]",
                     help="Run the program as PID 1 of a new PID namespace, as in a container (implied by "
                          "--stop docker/k8s); =emulate models the kernel's rules instead; =off for neither."),
        click.option("--init", "init", is_flag=False, flag_value="auto", default=None, metavar="[=tini|gsup]",
                     help="An init as PID 1 above the program, as docker run --init (implies --container): tini "
                          "if installed, else gsup's own."),
        click.option("--settle", default="500ms", show_default=True, metavar="DURATION",
                     help="Without --after or --ready-*: how long the tree must be quiet before the signal."),
        click.option("--ready-port", "ready_port", metavar="PORT",
                     help="Ready once some process of the tree listens on this TCP port."),
        click.option("--ready-output", "ready_output", metavar="REGEX",
                     help="Ready once the program prints a line matching REGEX (output still passes through)."),
        click.option("--ready-file", "ready_file", metavar="PATH", help="Ready once PATH exists."),
        click.option("--ready-timeout", "ready_timeout", default="30s", show_default=True, metavar="DURATION",
                     help="Give up waiting for --ready-* after this long (exit 4, the tree is still reported)."),
        click.option("--expect", "expect", multiple=True, metavar="TEXT",
                     help="Something that must hold, e.g. 'child: shutdown ran' (repeatable; see README)."),
        click.option("--watch", "watch", multiple=True, metavar="MODULE:QUALNAME",
                     help="Report each call of this function like an exit handler (repeatable)."),
        click.option("--watch-preset", "watch_presets", multiple=True, metavar="NAME",
                     help="A built-in set of functions to watch (repeatable; see README)."),
        click.option("--deep", "deep", is_flag=True,
                     help="Also probe Python processes started with -I or -E (root only; see README)."),
        click.option("--junit", "junit", metavar="FILE", help="Also write a JUnit XML file for CI."),
        click.option("--html", "html", metavar="FILE", help="Also write the timeline as one self-contained HTML page."),
        click.option("--trace", "trace", metavar="FILE", help="Also write a Chrome/Perfetto trace (JSON)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@main.command(cls=_Command, help=RUN_HELP,
              context_settings=PROGRAM_SETTINGS)
@click.option("-s", "--signal", "sig", type=SIGNAL, metavar="SIG",
              help="Send this signal once: 9, KILL, SIGKILL, term...")
@click.option("-t", "--target", type=TARGET, metavar="WHO", help="parent (default), child, group, tree or pid:N.")
@click.option("--stdin", "stdin", metavar="null|tty|FILE",
              help="The program's stdin: /dev/null, the terminal (its group in the foreground: it reads it and gets "
                   "Ctrl-C itself), or a file.  [default: gsup's stdin]")
@click.option("--stop", "stop", type=STOP, metavar="PRESET",
              help="A real stop sequence: docker, k8s, docker-init, systemd, systemd-mixed, ctrl-c, timeout.")
@click.option("--dockerfile", "dockerfile", metavar="PATH",
              help="Run its ENTRYPOINT/CMD as PID 1 and stop it as docker stop does (STOPSIGNAL, --time, --init).")
@click.option("--pod", "pod", metavar="PATH",
              help="Run a Pod's or Deployment's container as PID 1 and stop it as the kubelet does (preStop, grace).")
@click.option("--container-name", "container_name", metavar="NAME", help="With --pod: which container.")
@click.option("--timeline/--no-timeline", "timeline", default=None,
              help="Show (or hide) the report's chronology.  [default: shown up to 40 moments]")
@program_options
@click.argument("program", nargs=-1, type=_Program())
@click.pass_context
def run(ctx: click.Context, /, sig: Optional[str], target: Optional[str], stop: Optional[str], stdin: Optional[str],
        **params: Any) -> None:
    closed = ctx.obj if isinstance(ctx.obj, frozenset) else frozenset()
    params = {**params, "sig": sig, "target": target, "stop": stop, "stdin": stdin}
    _guard(lambda: run_command.run(params, ctx.meta.get("gsup.command", False), closed))


MATRIX_HELP = """Run a program once per way of stopping it, and show in one table how each
process ended and which exit handlers ran in each scenario.

\b
  gsup matrix app.py                       (TERM, INT, KILL to parent and child)
  gsup matrix --signals TERM,KILL --targets parent,child,group,docker app.py
  gsup matrix --expect 'no leftovers' --json -m package.module

Every signal of --signals goes to every target of --targets, each scenario in a
fresh tree; a stop preset in --targets (docker, k8s, systemd, ...) is one
scenario of its own.  --jobs scenarios start at a time (default: one per core);
one whose signal was sent waits for its shutdown beside the next (up to 3 per
job; --jobs 1: one after the other).  Each runs in a private network namespace, so a server's fixed port never clashes
(--network shared: the host's network; then {port} in the program's arguments
or --ready-* becomes a free port per scenario).  The options of gsup run apply to every run;
--expect must hold in each.  The program's output goes to one log file per
scenario, named when a scenario fails.  Exits as gsup run would for the worst
run: 2 (bad input: then nothing runs), 4, 3, then 1 (an expectation failed).
"""


@main.command(cls=_Command, help=MATRIX_HELP,
              context_settings=PROGRAM_SETTINGS)
@click.option("--signals", default="TERM,INT,KILL", show_default=True, metavar="SIGS",
              help="Comma-separated signals to send, one scenario per signal and target.")
@click.option("--targets", default="parent,child", show_default=True, metavar="WHO",
              help="Comma-separated: parent, child, group, tree, or a --stop preset (a scenario of its own).")
@click.option("-j", "--jobs", default=None, type=int, metavar="N",
              help="Start N scenarios side by side; one waiting for its shutdown makes room for the next "
                   "(up to 3N at once; 1: one after the other).  [default: the number of cores]")
@click.option("--network", default="isolated", show_default=True, type=click.Choice(["isolated", "shared"]),
              help="isolated: each scenario in a private network namespace; shared: the host's ({port}).")
@program_options
@click.argument("program", nargs=-1, type=_Program())
@click.pass_context
def matrix(ctx: click.Context, /, signals: str, targets: str, jobs: Optional[int], network: str,
           **params: Any) -> None:
    _guard(lambda: _matrix(ctx, signals, targets, jobs, network, params))


def _matrix(ctx: click.Context, signals: str, targets: str, jobs: Optional[int], network: str,
            params: dict[str, Any]) -> None:
    """Check everything, run every scenario, show the table (or JSON), exit as the runs did."""
    from supervisor import exports, matrix_view, scenarios

    closed = ctx.obj if isinstance(ctx.obj, frozenset) else frozenset()
    run_options = run_command.build_run_options(scenarios.with_port(params, scenarios.SAMPLE_PORT),
                                                ctx.meta.get("gsup.command", False), closed)
    given = ctx.get_parameter_source("targets") is not click.core.ParameterSource.DEFAULT
    plan = scenarios.make_plan(signals, targets, jobs, params, ctx.meta.get("gsup.command", False),
                               run_options.argv, targets_given=given)
    note = scenarios.isolate(plan, network, jobs_asked=jobs)
    if note is not None:
        click.echo(f"gsup: {note}", err=True)
    progress = matrix_view.make_progress(params["quiet"], len(plan.scenarios))
    result = scenarios.execute(plan, scenarios.log_directory(), progress)
    matrix_view.show(result, params["as_json"])
    exports.write_matrix(result, params["html"], params["trace"])
    for line in matrix_view.failure_lines(result):
        click.echo(f"gsup: {line}", err=True)
    if params["junit"] is not None:
        matrix_view.write_junit(params["junit"], result)
    if result.exit_code:
        fail(matrix_view.summary(result), result.exit_code)


@main.command()
@click.option("-s", "--signal", "sig", default="TERM", show_default=True, type=SIGNAL, metavar="SIG",
              help="Signal: 9, KILL, SIGKILL, term...")
@click.option("-t", "--target", default="parent", show_default=True, type=TARGET, metavar="WHO",
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
    names = ", ".join(f"{p.pid} ({' '.join(p.command)[:40]})" for p in result.targets)
    click.echo(f"sent {result.action.signal} to {result.action.target} in session {result.session.id}: {names}")
    if not wait:
        return
    still = control.wait_for([p.identity for p in result.targets], limit)
    if still:
        fail(f"still running after {timeout}: {', '.join(str(p.pid) for p in still)}", ExitCode.INCOMPLETE)
    for proc in control.outcomes(result.session, [p.pid for p in result.targets]):
        click.echo(f"{proc.pid} ({proc.role}): {proc.explanation}")


@main.command()
@click.option("-a", "--all", "every", is_flag=True,
              help="Also list ended sessions: finished, could not start (why), or gsup died.")
@click.option("--stacks", "with_stacks", is_flag=True, help="Every thread's stack of every live session (gsup stacks).")
def ps(every: bool, with_stacks: bool) -> None:
    """List live gsup sessions and their process trees."""
    _guard(lambda: _ps(every, with_stacks))


def _ps(every: bool, with_stacks: bool = False) -> None:
    from supervisor import discovery
    from supervisor.ps import ended_lines, lines, refusal

    found, refused = discovery.live_sessions()
    if with_stacks:
        for why in refused:
            click.echo(refusal(why), err=True)
        for state, _ in found:
            _stacks(state.id, False)
        if not found:
            click.echo("no live gsup session")
        return
    for why in refused:
        click.echo(refusal(why), err=True)
    for line in ended_lines(discovery.all_sessions(), found) if every else lines(found):
        click.echo(line)


@main.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="JSON: every process with its threads and frames.")
def stacks(session_id: Optional[str], as_json: bool) -> None:
    """Every thread's Python stack in every process of a running `gsup run` (default: the newest).

    The probe writes them when asked (no ptrace, no root); a process it does
    not run in is listed with the reason it has no stack."""
    _guard(lambda: _stacks(session_id, as_json))


def _stacks(session_id: Optional[str], as_json: bool) -> None:
    from supervisor import control

    state, note, listing = control.stacks_of(session_id)
    if note:
        click.echo(f"gsup: {note}", err=True)
    if as_json:
        from supervisor import strictjson

        document = {"session": state.id, "processes": [p.to_json() for p in listing]}
        click.echo(strictjson.dumps(document, indent=2))
        return
    from supervisor.render import StdoutConsole, stacks_view

    StdoutConsole(highlight=False).print(stacks_view(state.id, listing))


@main.command("report")
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="The gsup.report/1 JSON instead of the tree.")
@click.option("--timeline/--no-timeline", "timeline", default=None,
              help="Show (or hide) the chronology.  [default: shown up to 40 moments]")
@click.option("--html", "html", metavar="FILE", help="Also write the timeline as one self-contained HTML page.")
@click.option("--trace", "trace", metavar="FILE", help="Also write a Chrome/Perfetto trace (JSON).")
def report_command(session_id: Optional[str], as_json: bool, timeline: Optional[bool], html: Optional[str],
                   trace: Optional[str]) -> None:
    """Show a run's report again, or rebuild it after gsup died (default: the newest session).

    Exit 3 when the report is partial: gsup died or is still running."""
    _guard(lambda: _report(session_id, as_json, (html, trace, timeline)))


def _report(session_id: Optional[str], as_json: bool,
            views: tuple[Optional[str], Optional[str], Optional[bool]] = (None, None, None)) -> None:
    from supervisor import control, exports

    report = control.recover(session_id)  # an empty SESSION is a session id, not "the newest"
    run_command.print_report(report, as_json, views[2])
    exports.write_report(report, views[0], views[1])
    if report.incomplete:
        fail("report incomplete: " + "; ".join(report.incomplete), ExitCode.INCOMPLETE)


@main.command()
@click.argument("name", default="report", metavar="[report|matrix]")
def schema(name: str) -> None:
    """Print the JSON Schema of the --json report (default) or of gsup matrix's output."""
    _guard(lambda: _schema(name))


def _schema(name: str) -> None:
    from supervisor import schema as schemas

    click.echo(schemas.text(name), nl=False)


def _guard(action: Any) -> None:
    """Run a command; user errors become one line and their exit code, never a traceback
    (click's own exceptions are click's to report)."""
    run_command.guard(action, (click.exceptions.Exit, click.ClickException))
