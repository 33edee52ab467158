"""Read back the marker files a generated program left (format: ``programs.py``).

The markers are the stress run's independent record of what each program
image did; ``checks.py`` holds the report against them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class ImageMarks:
    """The markers one program image left."""

    pid: int
    image: str  # hex monotonic ns at import: orders a pid's images
    isolated: bool = False  # ran under python -I: no probe
    registered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # name -> reg/unreg
    runs: dict[str, dict[int, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))

    @property
    def order(self) -> int:
        return int(self.image, 16)

    def began(self, name: str) -> int:
        """How many calls of handler ``name`` began in this image."""
        return sum(1 for whats in self.runs.get(name, {}).values() if "begin" in whats)

    def describe(self) -> str:
        names = sorted(set(self.registered) | set(self.runs))
        return ", ".join(f"{n}:{self.describe_one(n)}" for n in names) or "no handler markers"

    def describe_one(self, name: str) -> str:
        """``reg, #1 begin/end``: what handler ``name`` left."""
        parts = ["/".join(sorted(self.registered[name]))] if name in self.registered else []
        parts += [f"#{k} {'/'.join(sorted(w))}" for k, w in sorted(self.runs.get(name, {}).items())]
        return ", ".join(parts)


def read(directory: Path) -> dict[tuple[int, str], ImageMarks]:
    """Every image's markers, keyed by (pid, image)."""
    images: dict[tuple[int, str], ImageMarks] = {}
    for path in directory.iterdir():
        pid, image, name, what, run = path.name.split("-")
        marks = images.setdefault((int(pid), image), ImageMarks(int(pid), image))
        marks.isolated = marks.isolated or path.read_bytes() == b"isolated"
        if name == "image":
            continue
        if int(run) == 0:
            marks.registered[name].add(what)
        else:
            marks.runs[name][int(run)].add(what)
    return images


def match(report: dict[str, Any], images: dict[tuple[int, str], ImageMarks]
          ) -> dict[tuple[int, str], Optional[dict[str, Any]]]:
    """Each marker image's report entry (None: the report has none for it).

    A pid's probed images, in start order, match its instrumented entries in
    order; its ``python -I`` images match its uninstrumented entries in order
    (a ``/bin/sleep`` image comes last, after every Python image).
    """
    entries: dict[tuple[int, bool], list[dict[str, Any]]] = defaultdict(list)
    for process in report["processes"]:
        entries[(int(process["pid"]), bool(process["instrumented"]))].append(process)
    found: dict[tuple[int, str], Optional[dict[str, Any]]] = {}
    taken: dict[tuple[int, bool], int] = defaultdict(int)
    for key, marks in sorted(images.items(), key=lambda item: (item[0][0], item[1].order)):
        kind = (marks.pid, not marks.isolated)
        index = taken[kind]
        taken[kind] += 1
        found[key] = entries[kind][index] if index < len(entries[kind]) else None
    return found
