"""Enter new Linux namespaces for the children to come: as root directly, else through a user namespace.

``enter(CLONE_NEWPID)`` is what a container runtime's shim does before it
starts a container's main process: the next child this process starts is
PID 1 of a new PID namespace, while this process stays outside as its parent.
``enter`` takes any set of ``CLONE_NEW*`` flags (a network namespace per
scenario is ``enter(CLONE_NEWNET)``), because what differs between them is
only the flag; what is hard is the privilege, and that is the same for all:

* as root (CAP_SYS_ADMIN), ``unshare(flags)`` is enough;
* as a normal user, the kernel allows it inside a new *user* namespace
  (``CLONE_NEWUSER | flags``) in which the caller's uid and gid map to
  themselves, so files and ``kill`` permissions stay what they were;
* where neither is allowed, :func:`why_unavailable` says in one line what
  stops it (a sysctl, an AppArmor or seccomp rule, a container) and the fix.

Standard library only, and nothing of gsup imported: the guardian, which
runs as ``python -I -S``, loads this file by its path (see guardian.py).
The calling process must be single-threaded (a user namespace requires it).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Optional

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMES = {CLONE_NEWPID: "PID", CLONE_NEWNET: "network", CLONE_NEWNS: "mount", CLONE_NEWUTS: "UTS",
         CLONE_NEWIPC: "IPC", CLONE_NEWUSER: "user"}
ROOT, USER_NAMESPACE = "root", "user-namespace"  # how enter() got there, for the report


class Unavailable(Exception):
    """The kernel refused: the message is one line, naming the cause and the fix."""


def enter(flags: int) -> str:
    """Unshare ``flags`` for this process's future children; :data:`ROOT` or
    :data:`USER_NAMESPACE` (how), or :class:`Unavailable` saying why not."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        _unshare(flags, flags)
        return ROOT
    _unshare(flags | CLONE_NEWUSER, flags)
    _map_identity(uid, gid)
    return USER_NAMESPACE


def _unshare(flags: int, wanted: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        raise Unavailable(why_unavailable(ctypes.get_errno(), wanted, os.geteuid() == 0))


def _map_identity(uid: int, gid: int) -> None:
    """Map the caller's uid and gid to themselves in the new user namespace.

    ``setgroups`` must be denied before an unprivileged process may write its
    gid map (user_namespaces(7)); without a map the process would be
    ``nobody`` inside and could no longer signal or read its own children.
    """
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as file:
                file.write(text)
    except OSError as err:
        raise Unavailable(f"a user namespace was made but its uid/gid map could not be written ({err.strerror}): "
                          "run as root, or allow unprivileged user namespaces") from err


def why_unavailable(code: int, flags: int, as_root: bool) -> str:
    """One line: why ``unshare`` failed with ``code``, and what to do about it."""
    kinds = "+".join(name for flag, name in NAMES.items() if flags & flag) or "new"
    head = f"cannot make a {kinds} namespace"
    if as_root:
        return (f"{head} although gsup runs as root ({os.strerror(code)}): gsup itself runs in a container or "
                "under seccomp that forbids unshare; run it with CAP_SYS_ADMIN (docker run --privileged, or "
                f"--security-opt seccomp=unconfined), or {_instead(flags)}")
    cause = _user_namespace_block()
    if cause is not None:
        return f"{head}: {cause}; or run gsup as root, or {_instead(flags)}"
    if code == errno.ENOSPC:
        return f"{head}: the user namespace limit is reached (user.max_user_namespaces); raise it, or run as root"
    return (f"{head} as a normal user ({os.strerror(code)}): unprivileged user namespaces are refused here "
            f"(gsup may itself run in a container or under seccomp); run gsup as root, or {_instead(flags)}")


def _instead(flags: int) -> str:
    """What gsup offers without the namespace: container mode's model of the kernel's rules,
    or, for a matrix's network namespaces, one scenario at a time or the host's network."""
    if flags & CLONE_NEWPID:
        return "use --container=emulate"
    return "use --jobs 1, or --network shared with {port}"


def _user_namespace_block() -> Optional[str]:
    """The setting that forbids unprivileged user namespaces, with the command that lifts it."""
    if _sysctl("user/max_user_namespaces") == "0":
        return "user.max_user_namespaces is 0 (fix: sysctl -w user.max_user_namespaces=15000)"
    if _sysctl("kernel/unprivileged_userns_clone") == "0":
        return "kernel.unprivileged_userns_clone is 0 (fix: sysctl -w kernel.unprivileged_userns_clone=1)"
    if _sysctl("kernel/apparmor_restrict_unprivileged_userns") == "1":
        return ("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1; "
                "fix: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for gsup)")
    return None


def _sysctl(name: str) -> Optional[str]:
    try:
        with open(f"/proc/sys/{name}") as file:
            return file.read().strip()
    except OSError:
        return None
