"""The ``gsup`` console script: the two fast answers, then click for the rest.

``gsup --version`` and ``gsup ps`` answer here, before click is imported:
scripts call the first to check for gsup and poll the second, and importing
click alone costs more than Python's start-up (through click and psutil,
``gsup ps`` cost about 7x Python's start-up).  :func:`fast_ps` prints the
lines of :mod:`supervisor.ps` straight to the streams, importing nothing but
:mod:`supervisor.discovery`.  Whenever it cannot be sure to print what
``click.echo`` would (an unexpected error, a stream click would re-wrap, an
escape code click would strip), it prints nothing and returns False, and the
click command answers, errors included; tests/test_ps_fast.py compares the
two.  Everything else goes to :mod:`supervisor.cli`.
"""

from __future__ import annotations

import os
import sys

# Supervisord's pip package is also called ``supervisor``: installed in the same
# environment, it writes its files into this folder (its __init__.py, options.py,
# events.py replace gsup's), and uninstalling it deletes them.  Neither may fail
# silently: one line, exit 2, before anything of the folder is imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
_SUPERVISORD = os.path.join(_HERE, "supervisord.py")  # Supervisord ships it, gsup never does


def _clash(why: str) -> None:
    sys.stderr.write(f"gsup: error: {why}\n")
    sys.exit(2)


if os.path.exists(_SUPERVISORD):
    _clash(f"Supervisord (the pip package `supervisor`) is installed in the same environment and shares gsup's "
           f"package folder {_HERE}, so both are broken; run gsup from its own environment (`pipx install gsup`, "
           f"or a separate venv), or `pip uninstall supervisor` then `pip install --force-reinstall gsup`")
try:
    from supervisor import __version__
except ImportError:
    _clash(f"gsup's package folder {_HERE} is incomplete (did `pip uninstall supervisor` remove Supervisord's "
           f"files, which were gsup's too?): `pip install --force-reinstall gsup`")

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import TextIO


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(f"gsup, version {__version__}")
        return
    if sys.argv[1:] == ["ps"] and not _completing() and fast_ps():
        return
    if sys.argv[1:2] == ["run"]:
        from supervisor import early_signals

        early_signals.collect()  # a TERM during the imports below is forwarded, not fatal
        if not _completing():
            fast_run()
    from supervisor.cli import entry

    if sys.argv[1:2] != ["run"]:
        entry()
        return
    try:
        entry()
    except SystemExit as done:
        leave(done)
    leave(SystemExit(0))


def fast_run() -> None:
    """``gsup run`` read without click (:mod:`supervisor.run_args`), run, and left; back to
    the caller, with nothing done, when click must read the command line."""
    from supervisor import run_args

    read = run_args.read(sys.argv[2:])
    if read is None:
        return
    from supervisor import run_command

    params, is_command = read
    try:
        closed = run_command.plug_std_streams()  # first: nothing of gsup's may land on a closed 0, 1 or 2
        run_command.guard(lambda: run_command.run(params, is_command, closed))
    except SystemExit as done:
        leave(done)
    leave(SystemExit(0))


def leave(done: SystemExit) -> None:
    """End ``gsup run`` with ``done``'s exit code without the interpreter's finalization.

    Once the run is reported, gsup has nothing left to do but exit: its files are
    closed, its report printed, no thread or exit handler of its own runs.  Tearing
    down the ~250 modules a run imports costs about 0.75x Python's start-up on every
    run (issue 17), so the streams are flushed here and the process ends at once.  A
    flush that fails, or an exit that is not a plain code, takes the normal way out,
    whose error handling is the command's.
    """
    code = done.code if done.code is not None else 0
    if not isinstance(code, int):
        raise done
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise done from None
    os._exit(code)


def _completing() -> bool:
    """Is click's shell completion asking (``_GSUP_COMPLETE=...``)? Then click must answer."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


def plain(stream: TextIO | None) -> bool:
    """Is ``stream`` one click would write to as it is (no ASCII re-wrap)?"""
    import codecs

    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name != "ascii"
    except LookupError:
        return False


def fast_ps() -> bool:
    """Print ``gsup ps``'s output; False, with nothing printed, if the click command must answer."""
    if not plain(sys.stdout):
        return False
    try:
        try:
            from supervisor import discovery, ps

            found, refused = discovery.live_sessions()
            out, err = ps.lines(found), [ps.refusal(why) for why in refused]
        except Exception:
            return False  # the click command redoes it and reports the error as it always has
        if any("\x1b" in line for line in out + err) or (err and not plain(sys.stderr)):
            return False  # click strips escape codes when a stream is not a terminal
        for stream, text in ((sys.stderr, err), (sys.stdout, out)):
            for line in text:
                stream.write(line + "\n")
                stream.flush()  # as click.echo does: a reader sees each line at once
    except (Exception, KeyboardInterrupt) as error:
        fail_as_cli(error)
    return True


def fail_as_cli(err: BaseException) -> None:
    """Report ``err`` exactly as the click command would (one line, its exit code):
    through the same guard, without importing click."""
    from supervisor.run_command import guard

    def reraise() -> None:
        raise err

    guard(reraise)
