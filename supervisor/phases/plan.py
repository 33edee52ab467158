"""What one run will do, fixed before it starts: the options as given, the plan as resolved."""

from __future__ import annotations

from pathlib import Path
from signal import Signals

from supervisor import stops
from supervisor.options import Target
from supervisor.readiness import Readiness
from supervisor.records import dataclass, field
from supervisor.stops import Stop

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional

if TYPE_CHECKING:  # a --pod run only: a plain run never loads the Dockerfile and pod readers
    from supervisor.containers import PreStop

DEFAULT_GRACE = 10.0
NAMESPACE, EMULATE, NO_CONTAINER = "namespace", "emulate", "off"  # --container's modes


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
    container: Optional[str] = None  # --container: NAMESPACE or EMULATE; None: as the --stop preset implies
    init: Optional[str] = None  # --init: auto, tini or gsup: an init as PID 1 above the program (docker-init: auto)
    stop_signal: Optional[Signals] = None  # a Dockerfile's STOPSIGNAL, in place of the preset's signal
    pre_stop: Optional[PreStop] = None  # a pod's lifecycle.preStop, run before the preset's signal
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
    container: Optional[str]  # NAMESPACE: PID 1 of a real PID namespace; EMULATE: its rules modelled; None
    init: Optional[str]  # auto (tini, else gsup's init.py), tini or gsup: PID 1 above the program; None: no init
    pre_stop: Optional[PreStop]  # a pod's preStop hook: run, within the grace, before the signal
    stopping_fd: Optional[int] = None  # gsup matrix's pipe: told once the signal is sent (see take_stopping_fd)

    @classmethod
    def from_options(cls, options: RunOptions) -> RunPlan:
        stop = stops.PRESETS[options.stop] if options.stop else None
        grace = options.grace if options.grace is not None else (stop.grace if stop is not None else DEFAULT_GRACE)
        return cls(
            argv=tuple(options.argv), json_stdout=options.json_stdout,
            signal=(options.stop_signal or stop.signal) if stop is not None else options.signal,
            target=stop.target if stop is not None else options.target,
            after=options.after, grace=grace, settle=options.settle, stop=stop,
            shooter=f"stop {stop.name}" if stop is not None else "gsup",
            ready_port=options.ready_port, ready_output=options.ready_output, ready_file=options.ready_file,
            ready_timeout=options.ready_timeout, watch=tuple(options.watch),
            watch_presets=tuple(options.watch_presets), closed_streams=options.closed_streams,
            deep=options.deep, container=_container(options.container, stop, options.init),
            init=options.init or ("auto" if stop is not None and stop.init else None), pre_stop=options.pre_stop,
            interpreter=options.interpreter, stdin=options.stdin)

    @property
    def stop_name(self) -> Optional[str]:
        return self.stop.name if self.stop is not None else None

    @property
    def namespace(self) -> bool:
        """Is the program PID 1 of a real PID namespace?"""
        return self.container == NAMESPACE

    def readiness(self) -> Readiness:
        """The ``--ready-*`` conditions, fresh: the output pipes mark them as output passes."""
        return Readiness(self.ready_port, self.ready_output, self.ready_file)


def _container(asked: Optional[str], stop: Optional[Stop], init: Optional[str]) -> Optional[str]:
    """``--container`` as given, else a real namespace where the preset stops a
    container (docker, k8s, docker-init) or an init was asked for: that is where
    its main process is PID 1."""
    if asked is not None:
        return None if asked == NO_CONTAINER else asked
    return NAMESPACE if init is not None or (stop is not None and stop.ends_with_root) else None


STOPPING_FD = "GSUP_MATRIX_STOPPING_FD"


def take_stopping_fd() -> Optional[int]:
    """The pipe ``gsup matrix`` gave this run (``scenarios.run_all``), taken out of the
    environment so that the program never sees it, and kept from the program's fds.

    The run writes one byte to it once its signal has been sent: from then on the
    scenario mostly waits (handlers, the grace), and the matrix starts the next one."""
    import os
    import stat

    text = os.environ.pop(STOPPING_FD, None)
    if text is None:
        return None
    try:
        fd = int(text)
        if fd <= 2 or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None  # not a pipe of ours (a stray variable): nothing to tell, nothing to close
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd
