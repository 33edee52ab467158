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


def refusal(why: str) -> str:
    """The stderr line for a session ``gsup ps`` refused to list."""
    return f"gsup: {why}"


def role(pid: int, ppid: int, root_pid: int) -> str:
    """:func:`supervisor.tree.role_of` for a process seen with a parent."""
    if pid == root_pid:
        return "parent"
    return "child" if ppid == root_pid else "grandchild"
