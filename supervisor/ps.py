"""``gsup ps``'s text, and its fast path: the same lines without click, in a third of the time.

People type ``gsup ps`` to glance at what runs, and scripts poll it; through
click and psutil it cost about 7x Python's start-up.  Both paths list what
:func:`supervisor.discovery.live_sessions` finds and print :func:`lines`: the
click command (``cli._ps``) through ``click.echo``, :func:`main` straight to
the streams, importing nothing but :mod:`supervisor.discovery`.

Whenever :func:`main` cannot be sure to print what ``click.echo`` would (an
unexpected error, a stream click would re-wrap, an escape code click would
strip), it prints nothing and returns False, and the click command answers,
errors included.  tests/test_ps_fast.py compares the two.
"""

from __future__ import annotations

import sys

from supervisor import discovery

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import TextIO


def lines(found: list[tuple[discovery.State, list[discovery.Listed]]]) -> list[str]:
    """Everything ``gsup ps`` prints on stdout for these live sessions and their trees."""
    if not found:
        return ["no live gsup session"]
    out = []
    for state, tree in found:
        assert state.root is not None
        out.append(f"session {state.id}  gsup pid {state.gsup.pid}  {' '.join(state.command)}")
        out += [f"  {pid:>7}  {role(pid, ppid, state.root.pid):<10}  {' '.join(argv)[:60]}"
                for pid, ppid, argv in tree]
    return out


def refusal(why: str) -> str:
    """The stderr line for a session ``gsup ps`` refused to list."""
    return f"gsup: {why}"


def role(pid: int, ppid: int, root_pid: int) -> str:
    """:func:`supervisor.tree.role_of` for a process seen with a parent."""
    if pid == root_pid:
        return "parent"
    return "child" if ppid == root_pid else "grandchild"


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


def main() -> bool:
    """Print ``gsup ps``'s output; False, with nothing printed, if the click command must answer."""
    if not plain(sys.stdout):
        return False
    try:
        try:
            found, refused = discovery.live_sessions()
            out, err = lines(found), [refusal(why) for why in refused]
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
    """Report ``err`` exactly as the click command would (one line, its exit code)."""
    from supervisor.cli import _guard

    def reraise() -> None:
        raise err

    _guard(reraise)
