"""``gsup ps``'s text: the lines both of its paths print.

Both paths list what :func:`supervisor.discovery.live_sessions` finds and print
:func:`lines`: the click command (``cli._ps``) through ``click.echo``, the fast
path (:func:`supervisor.console.fast_ps`) straight to the streams.  This module
imports nothing but :mod:`supervisor.discovery`, so the fast path stays fast.
"""

from __future__ import annotations

from supervisor import discovery


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


def ended_lines(every: list[discovery.State], found: list[tuple[discovery.State, list[discovery.Listed]]]) -> list[str]:
    """``gsup ps --all``: the live sessions as :func:`lines` shows them, then one line
    per other session, newest first, saying how it ended."""
    ended = [state for state in every if not state.is_live() or state.root is None]
    if not found and not ended:
        return ["no gsup session"]
    out = lines(found) if found else []
    return out + [f"session {state.id}  {ending(state)}  {' '.join(state.command)}" for state in ended]


def ending(state: discovery.State) -> str:
    """How a session that is not listed live ended, in words."""
    how = state.ending()
    if how == discovery.NOT_STARTED:
        return f"could not start: {state.reason}"
    if how == discovery.GSUP_DIED:
        return f"gsup died ({state.reason})" if state.reason else "gsup died"
    return "starting" if how == discovery.RUNNING else how


def refusal(why: str) -> str:
    """The stderr line for a session ``gsup ps`` refused to list."""
    return f"gsup: {why}"


def role(pid: int, ppid: int, root_pid: int) -> str:
    """:func:`supervisor.tree.role_of` for a process seen with a parent."""
    if pid == root_pid:
        return "parent"
    return "child" if ppid == root_pid else "grandchild"
