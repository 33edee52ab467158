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

from supervisor.model import Action
from supervisor.readiness import write_all
from supervisor.reaper import ExitStatus
from supervisor.signals import signal_name

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

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

    passes_output = False

    def __init__(self, quiet: bool = False, report_follows: bool = False) -> None:
        self.quiet = quiet
        self.report_follows = report_follows  # a human report is printed at the end (not --json)

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
        self._prepare_report()

    def _prepare_report(self) -> None:
        """Import the human report's renderer (rich: ~15 ms) once a signal is sent: the
        program shuts down meanwhile, rather than waiting for it after it ended.  Nothing
        is lost while gsup imports: the guardian stamps each ending as it happens."""
        if self.report_follows:
            self.report_follows = False
            import supervisor.render  # noqa: F401

    def note(self, text: str) -> None:
        self._say(text)

    def output(self, fd: int, data: bytes) -> None:
        write_all(fd, data)

    def tick(self, session: Session, tree: Tree) -> None:
        pass

    def close(self) -> None:
        pass


class LiveDisplay(PlainDisplay):
    """A table of the tree (pid, role, state, handlers, command), kept at the bottom of the terminal.

    Everything else scrolls above it as lines: the program's own output, which
    gsup reads from a terminal of its own (see launch.output_channel) and passes
    on byte for byte, and gsup's progress lines.  Before each write the table is
    erased, after it the table is drawn again.  rich's ``Live`` cannot do this: it
    redirects Python's ``sys.stdout``, not a child's file descriptors, so the
    child's lines were overwritten by the next frame.

    While the program's last line is unfinished (a prompt, a progress bar) the
    table waits below nothing: it is drawn again once the line ends.
    """

    passes_output = True

    def __init__(self, console: Console, report_follows: bool = False) -> None:
        super().__init__(report_follows=report_follows)
        self.console = console
        self.ended_status: dict[int, str] = {}
        self.next_draw = 0.0
        self.frame = ""  # the table as last rendered
        self.drawn = 0  # how many lines of it are on the screen, below the cursor's line
        self.mid_line = False  # the program's last output did not end its line
        self.watched: Optional[tuple[Session, Tree]] = None

    def _say(self, text: str) -> None:
        self._above(2, f"gsup: {text}\n".encode(), ends_line=True)

    def output(self, fd: int, data: bytes) -> None:
        if not os.isatty(fd):
            write_all(fd, data)
            return
        self._above(fd, data, ends_line=False)
        self.mid_line = not data.endswith(b"\n")

    def _above(self, fd: int, data: bytes, ends_line: bool) -> None:
        if self.quiet:
            return
        self._erase()
        if ends_line and self.mid_line:
            data, self.mid_line = b"\n" + data, False
        write_all(fd, data)
        if data.endswith(b"\n"):
            self._draw()

    def ended(self, status: ExitStatus, role: str) -> None:
        self.ended_status[status.pid] = describe_status(status)
        super().ended(status, role)

    def tick(self, session: Session, tree: Tree) -> None:
        self.watched = (session, tree)
        now = time.monotonic()
        if self.quiet or now < self.next_draw:
            return
        self.next_draw = now + LIVE_REFRESH
        self.frame = self._render(session, tree)
        self._erase()
        self._draw()

    def _erase(self) -> None:
        if self.drawn:
            write_all(2, f"\r\x1b[{self.drawn}A\x1b[J".encode())  # up to the table's first line, clear below
            self.drawn = 0

    def _draw(self) -> None:
        if self.frame and not self.mid_line:
            write_all(2, self.frame.encode())
            self.drawn = self.frame.count("\n")

    def _render(self, session: Session, tree: Tree) -> str:
        """The frame as text; none once the terminal is gone (asking its size fails with EIO)."""
        try:
            with self.console.capture() as capture:
                self.console.print(self._table(session, tree), soft_wrap=False)
        except OSError:
            self.quiet = True  # the terminal hung up: the run goes on without a view
            return ""
        return capture.get()

    def _table(self, session: Session, tree: Tree) -> Table:
        from rich.table import Table

        from supervisor import events

        registered: dict[int, int] = {}
        for image in events.read_all(session.events_dir):
            registered[image.pid] = len(image.of_kind("reg", "inherit"))
        table = Table(title=f"gsup session {session.id}", title_justify="left", expand=False)
        for column in ("pid", "role", "state", "handlers", "command"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        rows = sorted(tree.history.values(), key=lambda s: s.first_seen)
        room = max(3, self.console.height - 8)  # a frame taller than the screen could not be erased
        width = max(20, self.console.width - 60)
        for seen in rows[:room]:
            state = self.ended_status.get(seen.pid) or ("running" if seen.alive else "ended")
            table.add_row(str(seen.pid), tree.role(seen.pid, seen.ppid), state,
                          str(registered.get(seen.pid, "-")), shorten(_command(seen.command), width))
        if len(rows) > room:
            table.add_row("…", "", f"{len(rows) - room} more", "", "")
        return table

    def close(self) -> None:
        """Leave the last frame on the screen, drawn from the final state."""
        if self.watched is not None and not self.quiet:
            self.frame = self._render(*self.watched)
            self._erase()
            if self.mid_line:
                write_all(2, b"\n")
                self.mid_line = False
            self._draw()
        self.drawn = 0
        self.quiet = True


def _command(argv: list[str]) -> str:
    """The command as the table shows it: the program's name without its directory."""
    return " ".join(arg.rsplit("/", 1)[-1] if i == 0 else arg for i, arg in enumerate(argv))


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters at a word boundary, with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    if " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut + "…"


def make_display(quiet: bool, console: Optional[Console] = None, report_follows: bool = False) -> PlainDisplay:
    if quiet or (console is None and not may_be_terminal()):
        return PlainDisplay(quiet, report_follows)
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    return LiveDisplay(console, report_follows) if console.is_terminal else PlainDisplay(quiet, report_follows)


def may_be_terminal() -> bool:
    """Could rich's ``Console(stderr=True).is_terminal`` be true?  False only where it
    cannot be (no tty, none of the variables that force one), so rich decides the rest."""
    if os.environ.get("TTY_COMPATIBLE", "") not in ("", "0") or os.environ.get("FORCE_COLOR") is not None:
        return True
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except ValueError:  # a closed stream
        return False
