"""``--ready-port``'s question, asked of the kernel two ways that must agree: sock_diag
(what gsup uses) and ``/proc/net/tcp{,6}`` (its fallback, and the reference)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from supervisor import readiness


def test_sock_diag_agrees_with_proc_net_tcp() -> None:
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6, socket.socket() as bound, \
            socket.socket() as client:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        v6.bind(("::1", 0))
        v6.listen()
        bound.bind(("127.0.0.1", 0))  # bound, not listening: not ready
        client.connect(v4.getsockname())  # an established connection on no listening port of its own
        accepted, _ = v4.accept()
        with accepted:
            ports = [v4.getsockname()[1], v6.getsockname()[1], bound.getsockname()[1], client.getsockname()[1]]
            answers = [(readiness._listening_inodes_netlink(p), readiness._listening_inodes_proc(p)) for p in ports]
            inodes = [str(os.fstat(s.fileno()).st_ino) for s in (v4, v6)]
    listening4, listening6, not_listening, connected = answers
    assert listening4[0] == listening4[1] == {inodes[0]}
    assert listening6[0] == listening6[1] == {inodes[1]}
    assert not_listening == (set(), set()) and connected == (set(), set())


def test_listening_names_only_the_tree_s_own_socket() -> None:
    """A port some other process listens on is not the program's."""
    with socket.socket() as ours:
        ours.bind(("127.0.0.1", 0))
        ours.listen()
        port = ours.getsockname()[1]
        assert readiness.listening(port, [os.getpid()])
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not readiness.listening(port, [other.pid])
        finally:
            other.kill()
            other.wait()


def test_without_netlink_the_proc_tables_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where netlink sockets are refused (a seccomp profile), /proc/net/tcp still answers."""
    def refused(port: int) -> set[str]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(readiness, "_listening_inodes_netlink", refused)
    with socket.socket() as ours:
        ours.bind(("127.0.0.1", 0))
        ours.listen()
        assert readiness.listening(ours.getsockname()[1], [os.getpid()])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become a normal user")
def test_a_normal_user_s_dump_agrees_too() -> None:
    """sock_diag's dump needs no privilege: a normal user's gsup reads ports the same way."""
    code = ("import socket; from supervisor import readiness as r\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); p = s.getsockname()[1]\n"
            "print(r._listening_inodes_netlink(p) == r._listening_inodes_proc(p) != set())\n")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(readiness.__file__))))
    assert done.stdout == "True\n", done.stderr
