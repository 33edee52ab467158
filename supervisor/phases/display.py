"""What the phases tell the user while the program runs: the protocol ``supervisor/display.py`` implements."""

from __future__ import annotations

from supervisor.model import Action
from supervisor.reaper import ExitStatus
from supervisor.session import Session

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a structural type for mypy; a plain base class at run time

if TYPE_CHECKING:  # types only: the tree (and psutil) is loaded once the program is launched (runner.py)
    from supervisor.tree import Seen, Tree


class Display(Protocol):
    """Told of every start, sighting, death, send and note; ``tick`` once per turn of the loop.

    ``passes_output``: the program's stdout and stderr must come through ``output``
    (a live view keeps its table below them); otherwise they go straight to gsup's.
    """

    passes_output: bool

    def started(self, session_id: str, pid: int, argv: list[str]) -> None: ...
    def seen(self, proc: Seen, role: str) -> None: ...
    def ended(self, status: ExitStatus, role: str) -> None: ...
    def action(self, action: Action) -> None: ...
    def note(self, text: str) -> None: ...
    def output(self, fd: int, data: bytes) -> None: ...
    def tick(self, session: Session, tree: Tree) -> None: ...
    def close(self) -> None: ...
