"""Probe records made inside a PID namespace, renamed to the host's pids.

In container mode the program is PID 1 of its own PID namespace, so every pid
its probes write (their own, their parent's, a child spawned, killed or
reaped) is a pid *inside* that namespace, while gsup, its tree and its report
speak the host's pids.  The probe is left as it is (no cost at start-up):
gsup's tree reads each process's ``NSpid`` when it first sees it, which pairs
an inside pid with a host pid, and the records are renamed here before the
report is built.  PID 1 is always the launched process, and 0 (the parent of
PID 1, outside) its guardian.  A process that came and went between two looks
keeps its inside pid: no sighting pairs it.
"""

from __future__ import annotations

from supervisor.events import Image
from supervisor.records import replace
from supervisor.tree import Seen

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

    from supervisor.events import Event

KERNEL = "kernel"  # End.reaped_by of a process the kernel killed when PID 1 ended: reaped inside the namespace
_PID_FIELDS = {"spawn": "pid", "kill": "pid", "reaped": "pid"}


def to_host(images: list[Image], seen: list[Seen], root_pid: int,
            guardian_pid: Optional[int]) -> tuple[list[Image], dict[int, int]]:
    """The images with host pids, and host pid -> pid inside for every process paired."""
    inside = {s.nspid: s.pid for s in seen if s.nspid is not None}
    inside[1] = root_pid
    renamed = [_renamed(image, inside, guardian_pid) for image in images]
    return renamed, {pid: nspid for nspid, pid in inside.items()}


def _renamed(image: Image, host: dict[int, int], guardian_pid: Optional[int]) -> Image:
    events = [_event(event, host, guardian_pid) for event in image.events]
    start = next((e for e in events if e.get("k") == "start"), None) if image.start is not None else None
    return replace(image, pid=host.get(image.pid, image.pid), events=events, start=start)


def _event(event: Event, host: dict[int, int], guardian_pid: Optional[int]) -> Event:
    kind = event.get("k")
    if kind == "start":
        outside = {0: guardian_pid} if guardian_pid is not None else {}  # PID 1's parent, seen from inside
        return dict(event, pid=_host(event.get("pid"), host), ppid=_host(event.get("ppid"), {**host, **outside}),
                    pg=_host(event.get("pg"), host))
    if kind in _PID_FIELDS and isinstance(event.get("pid"), int):
        return dict(event, pid=_host(event["pid"], host))
    if kind == "kill" and isinstance(event.get("pgid"), int):
        return dict(event, pgid=_host(event["pgid"], host))
    return event


def _host(pid: object, host: dict[int, int]) -> object:
    """The host's pid for an inside one; 0 and negative pids (groups, "every process") stay."""
    return host.get(pid, pid) if isinstance(pid, int) and pid > 0 else pid
