"""Stop sequences that real environments use, as plain data.

Each preset is what the named tool does when it stops a service, so that
``gsup run --stop docker`` replays ``docker stop`` on the program's tree:

* ``docker``: ``docker stop`` sends the image's STOPSIGNAL (default SIGTERM) to
  the container's main process, waits ``--time`` (default 10 s), then SIGKILLs
  the container, which ends every process in it.
  https://docs.docker.com/reference/cli/docker/container/stop/
* ``k8s``: the kubelet sends SIGTERM to each container's main process, waits
  ``terminationGracePeriodSeconds`` (default 30 s), then SIGKILLs what is left.
  https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
* ``docker-init``: ``docker stop`` of a container started with ``docker run --init``:
  an init (tini, installed as ``docker-init``) is PID 1, forwards the SIGTERM to
  the program and exits as it did (143 when SIGTERM killed it).
  https://docs.docker.com/reference/cli/docker/container/run/#init
* ``systemd``: ``KillMode=control-group`` (the default) sends ``KillSignal=``
  (SIGTERM) followed by SIGCONT to every process of the unit's cgroup, waits
  ``TimeoutStopSec=`` (default 90 s), then SIGKILLs every remaining process.
  https://www.freedesktop.org/software/systemd/man/latest/systemd.kill.html
* ``systemd-mixed``: ``KillMode=mixed`` sends SIGTERM to the main process only,
  and at the timeout SIGKILL to every process of the cgroup.
* ``ctrl-c``: a terminal's Ctrl-C is SIGINT to the foreground process group.
  Nothing escalates; gsup's own grace ends what is left (reported ``by: grace``).
* ``timeout``: coreutils ``timeout DURATION -k KILL_AFTER`` sends SIGTERM to the
  command and then to its whole process group (``send_sig(0, sig)`` in
  ``timeout.c``), and after ``--kill-after`` SIGKILL the same way.  A process
  that left the group survives it: gsup reports it among the leftovers.
  https://www.gnu.org/software/coreutils/manual/html_node/timeout-invocation.html

In a container (docker, k8s, docker-init) the main process is PID 1 of a PID
namespace, and these presets run it as one (container mode, see namespaces.py):
the kernel drops a signal PID 1 has no handler for, and when PID 1 ends it
SIGKILLs every other process of the namespace at once.  systemd keeps the
timeout running for what outlives the main process; coreutils' ``timeout``
waits only for its command, so what outlives it is left running.

"the root"/"the main process" is the process gsup launched; "every process"
is the whole tree gsup tracks, the nearest thing to a container or cgroup.
"""

from __future__ import annotations

from signal import SIGCONT, SIGINT, SIGTERM, Signals

from supervisor.errors import GsupError
from supervisor.options import Target
from supervisor.records import dataclass

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional


@dataclass(frozen=True)
class Stop:
    """One stop sequence: ``signal`` to ``target`` (then ``also``), ``grace``, then SIGKILL to ``kill``."""

    name: str
    signal: Signals
    target: Target
    grace: float
    kill: Optional[Target]  # None: the environment never escalates; gsup's grace kill is its own
    also: Optional[Signals] = None  # sent right after ``signal`` to the same processes
    ends_with_root: bool = False  # a container: when its main process ends, the kernel kills the rest
    waits_for_tree: bool = False  # a cgroup: the timeout still applies to what outlives the main process
    init: bool = False  # an init runs as PID 1, the program as its child (docker run --init)


PRESETS = {
    "docker": Stop("docker", SIGTERM, Target("parent"), 10.0, Target("tree"), ends_with_root=True),
    "k8s": Stop("k8s", SIGTERM, Target("parent"), 30.0, Target("tree"), ends_with_root=True),
    "docker-init": Stop("docker-init", SIGTERM, Target("parent"), 10.0, Target("tree"), ends_with_root=True,
                        init=True),
    "systemd": Stop("systemd", SIGTERM, Target("tree"), 90.0, Target("tree"), also=SIGCONT, waits_for_tree=True),
    "systemd-mixed": Stop("systemd-mixed", SIGTERM, Target("parent"), 90.0, Target("tree"),
                          also=SIGCONT, waits_for_tree=True),
    "ctrl-c": Stop("ctrl-c", SIGINT, Target("group"), 10.0, None),
    "timeout": Stop("timeout", SIGTERM, Target("group"), 10.0, Target("group")),
}
ALIASES = {"kubernetes": "k8s", "ctrlc": "ctrl-c", "sigint": "ctrl-c", "docker-tini": "docker-init"}


def parse_stop(text: str) -> str:
    """A preset name (case-insensitive, a few aliases) → its key in :data:`PRESETS`."""
    raw = text.strip().lower()
    raw = ALIASES.get(raw, raw)
    if raw not in PRESETS:
        raise GsupError(f"invalid --stop {text!r}: use {', '.join(PRESETS)}")
    return raw
