"""Report → rich renderables.  No data logic: everything shown is in the Report.

Readable at 80 columns; colour only where rich finds a terminal and NO_COLOR is
unset (rich checks both).
"""

from __future__ import annotations

from typing import Optional

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text
from rich.tree import Tree

from supervisor import timeline as timelines
from supervisor import wording
from supervisor.model import (
    INTERRUPTED,
    NOT_RUN,
    RAISED,
    RAN,
    UNREGISTERED,
    End,
    ExpectationResult,
    Handler,
    Process,
    Report,
)


class StdoutConsole(Console):
    """rich's Console for gsup's stdout: a closed pipe raises BrokenPipeError, which the
    command line turns into its documented exit code, instead of rich's own exit 1."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


_MARK = {RAN: ("✓", "green"), RAISED: ("!", "red"), INTERRUPTED: ("✗", "yellow"),
         NOT_RUN: ("·", "dim"), UNREGISTERED: ("-", "dim")}


CHRONOLOGY_LIMIT = 40  # moments: more and the section would drown the tree; --timeline shows it anyway


def render(report: Report, timeline: Optional[bool] = None) -> RenderableType:
    """The whole report; ``timeline`` True/False forces the chronological section on/off,
    None shows it when the run has at most CHRONOLOGY_LIMIT moments."""
    head = Text.assemble(("gsup report", "bold"), ": ", " ".join(report.command))
    head.append(f"\nsession {report.session}, {report.duration:.2f}s", style="dim")
    parts: list[RenderableType] = [head]
    for action in report.actions:
        pids = ", ".join(map(str, action.pids)) or "nobody"
        parts.append(Text(f"  {action.at:6.2f}s  {action.signal} to {action.target} ({pids}) by {action.by}",
                          style="cyan"))
    parts.append(process_tree(report))
    if report.leftovers:
        parts.append(Text(f"left running: {', '.join(map(str, report.leftovers))} (ended by gsup)", style="yellow"))
    else:
        parts.append(Text("nothing left running", style="dim"))
    unseen = report.unseen
    if unseen["processes"] or unseen["handlers"]:
        parts.append(Text(f"not seen by the probe: {unseen['processes']} process(es) not instrumented, "
                          f"{unseen['handlers']} handler(s) registered before it loaded", style="yellow"))
    for missing in report.incomplete:
        parts.append(Text(f"incomplete: {missing}", style="red"))
    if report.expectations:
        parts.append(expectations_text(report.expectations))
    story = timelines.build(report)
    if story.moments and (timeline or (timeline is None and len(story.moments) <= CHRONOLOGY_LIMIT)):
        parts.append(chronology_text(story))
    return Group(*parts)


_MOMENT_STYLE = {"signal": "cyan", "ready": "dim", "grace": "dim", "start": "dim"}


def chronology_text(story: timelines.Timeline) -> Group:
    """``+0.392  SIGTERM → 27564 parent (gsup)``: every moment in time order, the times
    right-aligned in one column and long lines wrapped under their own text, so the
    column reads the same in a pipe as on a terminal."""
    width = max((len(f"{m.at:+.3f}") for m in story.moments), default=6)
    parts: list[RenderableType] = [Text("timeline (seconds since launch)", style="bold")]
    for moment in story.moments:
        style = _MOMENT_STYLE.get(moment.kind, "")
        if moment.kind == "end" and moment.lane is not None:
            style = "green" if story.lanes[moment.lane].ending == "exited 0" else "yellow"
        parts.append(_Hanging(f"  {moment.at:+.3f}".rjust(width + 2) + "  ", Text(moment.text, style=style)))
    return Group(*parts)


def process_tree(report: Report) -> Tree:
    """Processes nested under their parents; orphans of unknown parents at the top."""
    tree = Tree(Text("processes", style="bold"), guide_style="dim")
    nodes: dict[int, Tree] = {}
    for proc in report.processes:
        parent = nodes.get(proc.ppid or -1) if proc.role != "parent" else None
        node = (parent or tree).add(process_text(proc))
        nodes[proc.pid] = node
    return tree


def process_text(proc: Process) -> Text:
    text = Text.assemble((f"{proc.pid} ", "bold"), (proc.role, "magenta"), "  ")
    text.append(_short_argv(proc.argv), style="dim")
    text.append("\n")
    text.append_text(end_text(proc.end))
    if proc.handlers:
        text.append("\n")
        text.append_text(handlers_text(proc.handlers))
    if proc.watched:
        text.append("\nwatched:", style="dim")
        text.append("\n")
        text.append_text(handlers_text(proc.watched))
    for missing in proc.watch_missing:
        text.append(f"\nwatched {missing}: not found", style="dim")
    for sig in proc.signal_handlers:
        if sig.handler == "default_int_handler" and not sig.invoked:
            continue  # Python's own default: worth a line only when it fired
        invoked = {True: "invoked", False: "not invoked", None: "invocation not observable"}[sig.invoked]
        text.append(f"\n{sig.signal} → {sig.handler} ({invoked})", style="dim")
    text.append(f"\n→ {proc.explanation}", style="italic")
    return text


def end_text(end: End) -> Text:
    return Text.assemble("ended: ", (wording.phrase(end), wording.style(end)))


def handlers_text(handlers: list[Handler]) -> Text:
    """One line per handler: those that began in the order they began, then
    the rest in the order atexit would have called them (last registered first)."""
    began = sorted((h for h in handlers if h.order is not None), key=lambda h: h.order or 0)
    rest = [h for h in reversed(handlers) if h.order is None]
    lines = []
    for handler in began + rest:
        mark, style = _MARK.get(handler.status, ("?", "red"))
        number = f"{handler.order}." if handler.order is not None else "  "
        label = f"  {mark} {number} {handler.label}"
        if handler.status == RAISED:
            label += f"  raised {handler.exception}"
        elif handler.status != RAN:
            label += f"  {handler.status}"
        elif handler.duration is not None and handler.duration >= 0.001:
            label += f"  {handler.duration * 1000:.0f} ms"
        if handler.kind not in ("atexit", "watched"):  # watched calls have a heading of their own
            label += f"  ({handler.kind})"
        lines.append(Text(label, style=style))
    return Text("\n").join(lines)


def expectations_text(results: list[ExpectationResult]) -> Group:
    """✓ for each ``--expect`` that held; ✗ and what was expected and observed for the
    others, indented as a block so that long lines wrap under themselves."""
    parts: list[RenderableType] = [Text("expectations", style="bold")]
    for result in results:
        if result.ok:
            parts.append(Text(f"  ✓ {result.text}", style="green"))
            continue
        parts.append(Text(f"  ✗ {result.text}", style="red"))
        parts.append(_Indented(Text(f"expected: {result.expected}\nobserved: {result.observed}"), 6))
    return Group(*parts)


class _Hanging:
    """``head`` then ``text``, wrapped under the text's first column (no trailing padding)."""

    def __init__(self, head: str, text: Text) -> None:
        self.head, self.text = head, text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width - len(self.head))
        lines = console.render_lines(self.text, options.update_width(width), pad=False)
        for number, line in enumerate(lines):
            yield Segment(self.head if number == 0 else " " * len(self.head))
            if line:  # a wrapped line ends with the space it broke at
                line = [*line[:-1], Segment(line[-1].text.rstrip(), line[-1].style)]
            yield from line
            yield Segment.line()


class _Indented:
    """Text wrapped under its own indentation, with no trailing padding (rich's Padding pads
    every line to the full width, which pipes and copies would carry)."""

    def __init__(self, text: Text, indent: int) -> None:
        self.text, self.indent = text, indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width - self.indent)
        for line in console.render_lines(self.text, options.update_width(width), pad=False):
            yield Segment(" " * self.indent)
            yield from line
            yield Segment.line()


def _short_argv(argv: list[str], width: int = 50) -> str:
    line = " ".join(a.rsplit("/", 1)[-1] if i == 0 else a for i, a in enumerate(argv)) or "?"
    return line if len(line) <= width else line[: width - 1] + "…"
