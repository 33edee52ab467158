"""A private network namespace (loopback up) for one ``gsup matrix`` scenario, then exec.

Scenarios run side by side, and a server that binds a fixed port (a Flask debug
app on 5000) would clash with itself: the second scenario's server fails to bind,
and its report describes a crash that has nothing to do with the stop being
tried.  Each scenario therefore runs its whole ``gsup run`` in a network namespace
of its own, where every port is free and ``127.0.0.1`` is private; ``--ready-port``
works unchanged, since gsup reads ``/proc/net/tcp`` from inside it.  The kernel
removes the namespace with its last process, however gsup ends: nothing to undo.

How: root unshares ``CLONE_NEWNET`` directly; another user first creates a user
namespace that maps it to itself (same uid and gid, so its files and gsup's
session directory stay its own) and owns the network namespace (both in
:func:`namespaces.enter`).  The loopback
interface starts down in a new namespace and is brought up with one ioctl, so
no ``ip`` command is needed.  Where neither is allowed (a container without
CAP_SYS_ADMIN, ``user.max_user_namespaces=0``), :func:`unavailable` gives the
reason in one line and the matrix decides (see scenarios.py).

The unsharing itself is :mod:`namespaces`' (``enter(CLONE_NEWNET)``), shared with
container mode; this module adds the loopback and the exec.

Command line: ``python -I -S netns.py -- COMMAND...`` (exec'd in the namespace, same
pid), or ``python -I -S netns.py --check`` (exit 0, or 1 with the reason on stderr).
Standard library only, like the guardian: it runs before anything of gsup.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys
from types import ModuleType

SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1


class NamespaceError(Exception):
    """Why a private network namespace could not be had, in one line."""


def enter() -> None:
    """Move this process into a new network namespace with its loopback up."""
    namespaces = _namespaces()
    try:
        namespaces.enter(namespaces.CLONE_NEWNET)
    except namespaces.Unavailable as err:
        raise NamespaceError(f"no private network namespace for each scenario: {err}") from None
    _loopback_up()


def _namespaces() -> ModuleType:
    """gsup's ``namespaces`` module: imported as part of gsup, or, run as ``python -I -S
    netns.py`` (no package on the path), loaded from beside this file, as the guardian does."""
    try:
        from supervisor import namespaces

        return namespaces
    except ImportError:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "namespaces.py")
        spec = importlib.util.spec_from_file_location("_gsup_namespaces", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def unavailable() -> str | None:
    """None if scenarios can have their own network namespace here, else why not (one line).

    Asked of a forked child, which enters one and exits: the caller's own
    namespace never changes."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        try:
            enter()
            os._exit(0)
        except NamespaceError as err:
            os.write(write, str(err).encode())
            os._exit(1)
        except BaseException:
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        why = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return why or "creating a network namespace failed"


def _loopback_up() -> None:
    """``ip link set lo up``, as one SIOCSIFFLAGS ioctl on any socket of the namespace."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    except OSError as err:
        raise NamespaceError(f"no loopback in the private network namespace ({err.strerror})") from None


def main(args: list[str]) -> int:
    if args == ["--check"]:
        why = unavailable()
        if why is not None:
            sys.stderr.write(why + "\n")
        return 0 if why is None else 1
    if args[:1] != ["--"] or len(args) < 2:
        sys.stderr.write("usage: netns.py -- COMMAND... | netns.py --check\n")
        return 2
    try:
        enter()
    except NamespaceError as err:
        sys.stderr.write(f"gsup: error: {err}\n")
        return 2
    try:
        os.execvp(args[1], args[1:])
    except OSError as err:
        sys.stderr.write(f"gsup: error: {args[1]}: {err.strerror}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
