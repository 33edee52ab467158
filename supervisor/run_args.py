"""Read an ordinary ``gsup run`` command line without click, or say it cannot.

Importing click costs about three interpreter start-ups, and ``gsup run`` pays
it on every run before the program even starts (issue 17).  Most command
lines are plain: long options with their values, ``-s``/``-t``/``-q``/``-m``,
then the program.  :func:`read` reads those into exactly the ``params`` the
click command would build (:mod:`supervisor.cli`'s ``run``) and returns None
for anything else: help, an unknown or clustered option, a missing value, a
value that looks like an option, a value click's own checks would refuse.
Then click reads the line and answers as it always has, errors included, so
nothing a user sees depends on which reader ran.  ``OPTIONS`` mirrors the
click command's options; tests/test_run_args.py holds it to click's, option
by option, and compares both readers on many command lines.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, Optional

# What each option takes: a value (the last one given counts), a value each time
# (repeatable), nothing (a flag), or an optional value that only follows "=".
VALUE, MULTIPLE, FLAG, OPTIONAL = "value", "multiple", "flag", "optional"

# click's parameter name -> (its option strings, what it takes, its default).
# ``timeline`` is a pair: --timeline sets True, --no-timeline False.
OPTIONS: dict[str, tuple[tuple[str, ...], str, Any]] = {
    "sig": (("-s", "--signal"), VALUE, None),
    "target": (("-t", "--target"), VALUE, None),
    "stdin": (("--stdin",), VALUE, None),
    "stop": (("--stop",), VALUE, None),
    "dockerfile": (("--dockerfile",), VALUE, None),
    "pod": (("--pod",), VALUE, None),
    "container_name": (("--container-name",), VALUE, None),
    "timeline": (("--timeline", "--no-timeline"), FLAG, None),
    "module": (("-m",), VALUE, None),
    "python": (("--python",), VALUE, None),
    "as_json": (("--json",), FLAG, False),
    "after": (("--after",), VALUE, None),
    "grace": (("--grace",), VALUE, None),
    "kill_after": (("--kill-after",), VALUE, None),
    "stop_time": (("--time",), VALUE, None),
    "container": (("--container",), OPTIONAL, None),
    "init": (("--init",), OPTIONAL, None),
    "settle": (("--settle",), VALUE, "500ms"),
    "ready_port": (("--ready-port",), VALUE, None),
    "ready_output": (("--ready-output",), VALUE, None),
    "ready_file": (("--ready-file",), VALUE, None),
    "ready_timeout": (("--ready-timeout",), VALUE, "30s"),
    "expect": (("--expect",), MULTIPLE, ()),
    "watch": (("--watch",), MULTIPLE, ()),
    "watch_presets": (("--watch-preset",), MULTIPLE, ()),
    "deep": (("--deep",), FLAG, False),
    "junit": (("--junit",), VALUE, None),
    "html": (("--html",), VALUE, None),
    "trace": (("--trace",), VALUE, None),
    "quiet": (("-q", "--quiet"), FLAG, False),
}
# A bare --container or --init means this (cli.OPTIONAL_VALUE).
BARE = {"container": "namespace", "init": "auto"}

_BY_NAME = {opt: name for name, (opts, _, _) in OPTIONS.items() for opt in opts}


def read(args: list[str]) -> Optional[tuple[dict[str, Any], bool]]:
    """``params`` as click's ``run`` would get them from ``args`` (what follows ``run``),
    and whether the program came after ``--``; None where click must read the line."""
    params: dict[str, Any] = {name: default for name, (_, _, default) in OPTIONS.items()}
    position = 0
    while position < len(args):
        arg = args[position]
        if arg == "--":
            return _with_program(params, args[position + 1:], command=bool(args[position + 1:]))
        if not arg.startswith("-") or arg == "-":
            return _with_program(params, args[position:], command=False)
        name, value = _option(arg)
        if name is None:
            return None
        kind = OPTIONS[name][1]
        if kind == FLAG:
            if value is not None:
                return None  # --json=1: click's error
            params[name] = arg != "--no-timeline"
            position += 1
            continue
        if kind == OPTIONAL:
            params[name] = value if value is not None else BARE[name]
            position += 1
            continue
        if value is None:
            if position + 1 >= len(args):
                return None  # a missing value: click's error
            value = args[position + 1]
            position += 1
        position += 1
        if value.startswith("-") or not _acceptable(name, value):
            return None
        if name == "module":  # -m MODULE: all that follows is the module's (cli._Command)
            params["module"] = value
            return _with_program(params, args[position:], command=bool(args[position:]))
        if kind == MULTIPLE:
            params[name] = (*params[name], value)
        else:
            params[name] = value
    return _with_program(params, [], command=False)


def _option(arg: str) -> tuple[Optional[str], Optional[str]]:
    """The option ``arg`` names and the value it carries (``--grace=3s``, ``-sTERM``,
    ``-mjson.tool``); (None, None) for anything click alone reads."""
    if arg.startswith("--"):
        text, equals, value = arg.partition("=")
        name = _BY_NAME.get(text)
        if name is None:
            return None, None
        return name, (value if equals else None)
    name = _BY_NAME.get(arg[:2])
    if name is None or (OPTIONS[name][1] == FLAG and len(arg) > 2):
        return None, None  # -h, an unknown letter, or flags clustered (-qs TERM)
    return name, (arg[2:] if len(arg) > 2 else None)


def _with_program(params: dict[str, Any], program: list[str], command: bool) -> tuple[dict[str, Any], bool]:
    params["program"] = tuple(program)
    return params, command


def _acceptable(name: str, value: str) -> bool:
    """Would click's own check (cli._Parsed) accept ``value``?  Only --signal, --target
    and --stop are checked while the line is read; the rest is checked by the run."""
    if name not in ("sig", "target", "stop"):
        return True
    from supervisor.errors import GsupError

    try:
        if name == "stop":
            from supervisor import stops

            stops.parse_stop(value)
        else:
            from supervisor import options

            (options.parse_signal if name == "sig" else options.parse_target)(value)
    except GsupError:
        return False
    return True
