"""``--ready-port``, ``--ready-output``, ``--ready-file``: when is the program ready?

A fixed ``--after`` either waits too long or fires during start-up on a slow
machine; "the tree has settled" cannot tell a server that is listening from one
still importing.  These conditions say what ready means for this program.

Ports are read from the kernel's socket table (a listening socket's inode:
sock_diag, or ``/proc/net/tcp{,6}`` where netlink is refused) and matched
against the tree's open file descriptors, so a port that some other program
on the machine listens on does not count.  Output is matched line by line
while it passes through unchanged (see :class:`OutputPipe`).
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from supervisor.records import dataclass, field

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

_LISTEN = "0A"  # TCP state in /proc/net/tcp
MAX_LINE = 65536  # a longer line is matched in pieces of this size


@dataclass
class Readiness:
    """The conditions asked for; ready once every one of them holds."""

    port: Optional[int] = None
    pattern: Optional[str] = None
    file: Optional[Path] = None
    # time.monotonic() when OutputPipe last read a line matching ``pattern``: the pipe is
    # shared, so a line read before the target started is not the target's (phases/ready.py)
    matched_at: Optional[float] = None
    ready: bool = False  # the wait is over: OutputPipe stops matching

    @property
    def wanted(self) -> bool:
        return self.port is not None or self.pattern is not None or self.file is not None

    def describe(self) -> str:
        parts = []
        if self.port is not None:
            parts.append(f"port {self.port} listening")
        if self.pattern is not None:
            parts.append(f"output matching {self.pattern!r}")
        if self.file is not None:
            parts.append(f"file {self.file}")
        return " and ".join(parts)

    def holds(self, pids: list[int], since: float = 0.0) -> bool:
        """Every condition holds for ``pids``; ``since``: when the first of them started (a
        matching line read before that was another process's)."""
        if self.pattern is not None and (self.matched_at is None or self.matched_at < since):
            return False
        if self.file is not None and not self.file.exists():
            return False
        return self.port is None or listening(self.port, pids)


def listening(port: int, pids: list[int]) -> bool:
    """Does one of ``pids`` hold a TCP socket listening on ``port`` (IPv4 or IPv6)?"""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` in this network namespace."""
    try:
        return _listening_inodes_netlink(port)
    except OSError:
        return _listening_inodes_proc(port)


# sock_diag(7): one dump of the listening sockets only.  /proc/net/tcp walks the whole
# established-connections hash table on every read (about 4 ms of kernel time, twice
# per look, however few sockets there are); the dump of TCP_LISTEN alone skips it.
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLMSG_ERROR, _NLMSG_DONE = 4, 20, 2, 3
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_TCPF_LISTEN = 1 << 10
_NLMSG_HEADER = "=IHHII"  # nlmsghdr: length, type, flags, sequence, port id
_DIAG_REQUEST = "=BBBBI48x"  # inet_diag_req_v2: family, protocol, ext, pad, states, an empty sockid
_DIAG_MSG = "=BBBB2s46xIIIII"  # inet_diag_msg: family, state, timer, retrans, sport; expires, queues, uid, inode


def _listening_inodes_netlink(port: int) -> set[str]:
    import socket
    import struct

    found = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as sock:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            body = struct.pack(_DIAG_REQUEST, family, socket.IPPROTO_TCP, 0, 0, _TCPF_LISTEN)
            sock.send(struct.pack(_NLMSG_HEADER, 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, seq, 0)
                      + body)
            done = False
            while not done:
                data = sock.recv(65536)
                if not data:
                    raise OSError("sock_diag: the dump ended early")
                offset = 0
                while offset + 16 <= len(data):
                    length, kind, _, _, _ = struct.unpack_from(_NLMSG_HEADER, data, offset)
                    if length < 16:
                        raise OSError("sock_diag: a malformed message")
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR:
                        raise OSError("sock_diag: the kernel refused the dump")
                    if kind == _SOCK_DIAG_BY_FAMILY and length >= 16 + struct.calcsize(_DIAG_MSG):
                        fields = struct.unpack_from(_DIAG_MSG, data, offset + 16)
                        if int.from_bytes(fields[4], "big") == port:
                            found.add(str(fields[-1]))
                    offset += (length + 3) & ~3
    return found


def _listening_inodes_proc(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


@dataclass
class OutputPipe:
    """One of the program's output streams, passed through byte for byte.

    ``write`` puts the bytes on ``destination``: the live view's, which keeps its
    table below them (see display.py), or a plain write.

    Everything read is written on at once, before any matching, so the output
    keeps its order and nothing waits on a line end; the program never blocks
    on a full pipe because gsup reads whenever it is readable.
    """

    fd: int
    destination: int
    readiness: Readiness
    write: Callable[[int, bytes], None] = field(default=lambda fd, data: write_all(fd, data))
    pending: bytes = b""
    ended: bool = False
    pattern: Optional[re.Pattern[bytes]] = field(default=None, init=False)

    def __post_init__(self) -> None:
        os.set_blocking(self.fd, False)
        if self.readiness.pattern is not None:
            self.pattern = re.compile(self.readiness.pattern.encode())

    def pump(self, until_end: bool = False) -> None:
        """Pass on what is there; ``until_end``: every writer is gone, take all."""
        while not self.ended:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                if not until_end:
                    return
                chunk = b""  # nothing more can come: every writer is gone
            except OSError as err:
                if err.errno != errno.EIO:
                    raise
                chunk = b""  # a terminal's reader (see launch.output_channel) reads EIO where a pipe reads EOF
            if not chunk:
                self.ended = True
                self._match(self.pending, final=True)
                os.close(self.fd)
                return
            self.write(self.destination, chunk)
            self._match(chunk)

    def _match(self, chunk: bytes, final: bool = False) -> None:
        if self.pattern is None or self.readiness.ready:
            return
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        if final or len(self.pending) > MAX_LINE:
            lines.append(self.pending)
            self.pending = b""
        # Only whole lines: a program that writes a line in pieces (unbuffered,
        # ``python -u``) would otherwise match ``^listening on \d+$`` on
        # "listening on 4" and be signalled before the rest of its line.
        if any(self.pattern.search(line) for line in lines):
            self.readiness.matched_at = time.monotonic()

    def close(self) -> None:
        if not self.ended:
            self.ended = True
            os.close(self.fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting while ``fd`` is full; drop it if ``fd`` is gone."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        except OSError:
            return  # gsup's own output is gone (a closed pipe): the program must not stall for it
        view = view[written:]
