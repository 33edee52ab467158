"""What gsup says while a program runs: a live rich tree on a terminal, plain
lines otherwise (CI logs, pipes).  Both write to stderr only, so stdout stays
the program's (or, with --json, the report's).

rich is imported only when stderr may be a terminal: importing it costs more
than Python's own start-up, and a run in CI or a script never draws.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Optional

from supervisor.model import Action
from supervisor.reaper import ExitStatus
from supervisor.signals import signal_name

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from supervisor.session import Session
    from supervisor.tree import Seen, Tree

LIVE_REFRESH = 0.5  # seconds: the live view re-reads handler counts this often


def describe_status(status: ExitStatus) -> str:
    if status.signal is not None:
        return f"killed by {signal_name(status.signal)}"
    return f"exited with code {status.code}"


class PlainDisplay:
    """One line per thing that happened, prefixed ``gsup:``.

    A display that cannot write (its terminal hung up, its reader gone) falls
    silent: progress lines are not worth the run, whose report is still saved.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def _say(self, text: str) -> None:
        if not self.quiet:
            try:
                print(f"gsup: {text}", file=sys.stderr, flush=True)
            except OSError:
                self.quiet = True  # stderr's reader went away: the run goes on without progress lines

    def started(self, session_id: str, pid: int, argv: list[str]) -> None:
        self._say(f"session {session_id}: started pid {pid} (parent): {' '.join(argv)}")

    def seen(self, proc: Seen, role: str) -> None:
        self._say(f"pid {proc.pid} ({role}) running: {' '.join(proc.command)}")

    def ended(self, status: ExitStatus, role: str) -> None:
        self._say(f"pid {status.pid} ({role}) {describe_status(status)}")

    def action(self, action: Action) -> None:
        pids = ", ".join(map(str, action.pids)) or "no process"
        self._say(f"sent {action.signal} to {action.target}: {pids}")

    def note(self, text: str) -> None:
        self._say(text)

    def tick(self, session: Session, tree: Tree) -> None:
        pass

    def close(self) -> None:
        pass


class LiveDisplay(PlainDisplay):
    """A table of the tree that redraws in place: pid, role, state, handlers, command."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        super().__init__()
        self.console = console
        self.live = Live(console=console, auto_refresh=False, transient=False)
        self.ended_status: dict[int, str] = {}
        self.lines: list[str] = []
        self.next_draw = 0.0
        self.started_live = False

    def _say(self, text: str) -> None:
        self.lines = [*self.lines, text][-4:]
        self.next_draw = 0.0

    def ended(self, status: ExitStatus, role: str) -> None:
        self.ended_status[status.pid] = describe_status(status)
        super().ended(status, role)

    def tick(self, session: Session, tree: Tree) -> None:
        now = time.monotonic()
        if self.quiet or now < self.next_draw:
            return
        self.next_draw = now + LIVE_REFRESH
        try:
            if not self.started_live:
                self.started_live = True
                self.live.start()
            self.live.update(self._table(session, tree), refresh=True)
        except OSError:  # the terminal hung up: stop drawing, and give gsup back its own stdout and stderr
            self.quiet = True
            self.close()

    def _table(self, session: Session, tree: Tree) -> Table:
        from rich.table import Table

        from supervisor import events

        registered: dict[int, int] = {}
        for image in events.read_all(session.events_dir):
            registered[image.pid] = len(image.of_kind("reg", "inherit"))
        table = Table(title=f"gsup session {session.id}", title_justify="left", expand=False)
        for column in ("pid", "role", "state", "handlers", "command"):
            table.add_column(column, overflow="fold" if column == "command" else "ellipsis")
        for seen in sorted(tree.history.values(), key=lambda s: s.first_seen):
            state = self.ended_status.get(seen.pid) or ("running" if seen.alive else "ended")
            table.add_row(str(seen.pid), tree.role(seen.pid, seen.ppid), state,
                          str(registered.get(seen.pid, "-")), " ".join(seen.command)[:60])
        table.caption = "\n".join(self.lines)
        return table

    def close(self) -> None:
        if self.started_live:
            self.started_live = False
            try:
                self.live.stop()  # restores sys.stdout and sys.stderr before its last write
            except OSError:
                pass


def make_display(quiet: bool, console: Optional[Console] = None) -> PlainDisplay:
    if quiet or (console is None and not may_be_terminal()):
        return PlainDisplay(quiet)
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    return LiveDisplay(console) if console.is_terminal else PlainDisplay(quiet)


def may_be_terminal() -> bool:
    """Could rich's ``Console(stderr=True).is_terminal`` be true?  False only where it
    cannot be (no tty, none of the variables that force one), so rich decides the rest."""
    if os.environ.get("TTY_COMPATIBLE", "") not in ("", "0") or os.environ.get("FORCE_COLOR") is not None:
        return True
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except ValueError:  # a closed stream
        return False
