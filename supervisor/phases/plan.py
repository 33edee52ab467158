"""What one run will do, fixed before it starts: the options as given, the plan as resolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from signal import Signals
from typing import Optional

from supervisor import stops
from supervisor.options import Target
from supervisor.readiness import Readiness
from supervisor.stops import Stop

DEFAULT_GRACE = 10.0


@dataclass
class RunOptions:
    """``gsup run``'s options as the command line gave them (see cli.py)."""

    argv: list[str]
    json_stdout: bool = False
    signal: Optional[Signals] = None
    target: Optional[Target] = None
    after: Optional[float] = None
    grace: Optional[float] = None  # None: the --stop preset's, else DEFAULT_GRACE
    settle: float = 0.5
    stop: Optional[str] = None  # a preset from stops.PRESETS; then signal/target come from it
    ready_port: Optional[int] = None
    ready_output: Optional[str] = None  # a regular expression
    ready_file: Optional[Path] = None
    ready_timeout: float = 30.0
    expect: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)  # MODULE:QUALNAME
    watch_presets: list[str] = field(default_factory=list)
    closed_streams: frozenset[int] = frozenset()  # gsup's own 0, 1, 2 that were closed: closed for the program too
    deep: Optional[str] = None  # --deep: the interpreter whose site-packages reaches -I/-E children
    interpreter: Optional[str] = None  # how the program's Python was found (launch.Interpreter.found)
    stdin: Optional[str] = None  # --stdin: None (gsup's own), "tty" (the terminal, in the foreground), or a file


@dataclass(frozen=True)
class RunPlan:
    """The options with the ``--stop`` preset applied: read by every phase, changed by none."""

    argv: tuple[str, ...]
    json_stdout: bool
    signal: Optional[Signals]  # the plan's one signal (the preset's, with --stop)
    target: Optional[Target]
    after: Optional[float]
    grace: float
    settle: float
    stop: Optional[Stop]
    shooter: str  # the ``by`` of the plan's own sends: "gsup" or "stop docker"
    ready_port: Optional[int]
    ready_output: Optional[str]
    ready_file: Optional[Path]
    ready_timeout: float
    watch: tuple[str, ...]
    watch_presets: tuple[str, ...]
    closed_streams: frozenset[int]
    interpreter: Optional[str]
    stdin: Optional[str]
    deep: Optional[str]

    @classmethod
    def from_options(cls, options: RunOptions) -> RunPlan:
        stop = stops.PRESETS[options.stop] if options.stop else None
        grace = options.grace if options.grace is not None else (stop.grace if stop is not None else DEFAULT_GRACE)
        return cls(
            argv=tuple(options.argv), json_stdout=options.json_stdout,
            signal=stop.signal if stop is not None else options.signal,
            target=stop.target if stop is not None else options.target,
            after=options.after, grace=grace, settle=options.settle, stop=stop,
            shooter=f"stop {stop.name}" if stop is not None else "gsup",
            ready_port=options.ready_port, ready_output=options.ready_output, ready_file=options.ready_file,
            ready_timeout=options.ready_timeout, watch=tuple(options.watch),
            watch_presets=tuple(options.watch_presets), closed_streams=options.closed_streams,
            deep=options.deep, interpreter=options.interpreter, stdin=options.stdin)

    @property
    def stop_name(self) -> Optional[str]:
        return self.stop.name if self.stop is not None else None

    def readiness(self) -> Readiness:
        """The ``--ready-*`` conditions, fresh: the output pipes mark them as output passes."""
        return Readiness(self.ready_port, self.ready_output, self.ready_file)
