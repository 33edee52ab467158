"""Read the probe's per-process event files back into per-image records.

The files are written by ``_probe/sitecustomize.py`` (one file per process
image, named ``<pid>-<starttime>-<opened>.jsonl``, one JSON object per line).
This reader never trusts them: a line cut by SIGKILL, garbage, a duplicate or a
line of the wrong shape is counted in ``unreadable`` and skipped, never raised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from supervisor.records import dataclass, field

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any
    Event = dict[str, Any]


@dataclass
class Image:
    """One Python program image as its probe saw it (a fork or exec starts another)."""

    pid: int
    starttime: int  # clock ticks since boot, as in /proc/<pid>/stat: the process identity
    opened: int  # CLOCK_MONOTONIC ns when the probe opened the file: orders the images
    path: Path
    start: Event | None = None
    events: list[Event] = field(default_factory=list)
    unreadable: int = 0

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.get("k") in kinds]

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.get("k") == kind), None)


def parse_name(name: str) -> tuple[int, int, int] | None:
    """``<pid>-<starttime>-<opened>.jsonl`` → the three numbers, or None."""
    if not name.endswith(".jsonl"):
        return None
    parts = name[: -len(".jsonl")].split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    pid, start, opened = (int(p) for p in parts)
    return pid, start, opened


def parse_lines(data: bytes) -> tuple[list[Event], int]:
    """Events from a file's bytes, and how many lines could not be used.

    Only complete lines (ending in a newline) holding a JSON object with a
    string ``k`` and an int ``n`` count; a repeated sequence number is a
    duplicate and is dropped.  Events come back in sequence order.
    """
    events: dict[int, Event] = {}
    bad = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # an unterminated tail: the write was cut off
        bad += 1
    for raw in lines:
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            bad += 1
            continue
        if not (isinstance(event, dict) and isinstance(event.get("k"), str)
                and isinstance(event.get("n"), int) and isinstance(event.get("t"), (int, float))):
            bad += 1
            continue
        if event["n"] in events:
            bad += 1
            continue
        events[event["n"]] = event
    return [events[n] for n in sorted(events)], bad


def read_image(path: Path) -> Image | None:
    key = parse_name(path.name)
    if key is None:
        return None
    image = Image(pid=key[0], starttime=key[1], opened=key[2], path=path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        image.unreadable = 1
        return image
    image.events, image.unreadable = parse_lines(data)
    starts = image.of_kind("start")
    if starts and isinstance(starts[0].get("argv"), list):
        image.start = starts[0]
    return image


def read_all(events_dir: Path) -> list[Image]:
    """Every image in ``events_dir``, ordered by pid, then start, then opening."""
    try:
        names = os.listdir(events_dir)
    except OSError:
        return []
    images = [read_image(events_dir / name) for name in names]
    return sorted((i for i in images if i is not None), key=lambda i: (i.starttime, i.pid, i.opened))
