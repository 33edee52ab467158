"""Parse the values users type: durations, signals and targets.

Pure functions, each raising :class:`GsupError` with a message that names the
bad value, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence

from supervisor.errors import GsupError
from supervisor.records import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
TARGET_KINDS = ("parent", "child", "group", "tree")


def parse_duration(text: str) -> float:
    """``3``, ``3s``, ``500ms``, ``1m``, ``1.5h`` → seconds."""
    raw = text.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = raw, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise GsupError(f"invalid duration {text!r}: use a number with ms, s, m or h (3, 3s, 500ms, 1m)")
    return value


def parse_signal(text: str) -> signal.Signals:
    """``9``, ``KILL``, ``SIGKILL``, ``kill`` → ``signal.SIGKILL``."""
    raw = text.strip()
    try:
        if raw.isdigit():
            return signal.Signals(int(raw))
        name = raw.upper()
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise GsupError(f"invalid signal {text!r}: use a number or a name such as TERM, INT, KILL, HUP") from None


@dataclass(frozen=True)
class Target:
    """Who a signal goes to: one of :data:`TARGET_KINDS`, or ``pid`` with a pid."""

    kind: str
    pid: int | None = None

    def __str__(self) -> str:
        return f"pid:{self.pid}" if self.kind == "pid" else self.kind


def parse_target(text: str) -> Target:
    """``parent``, ``child``, ``group``, ``tree`` or ``pid:N``."""
    raw = text.strip().lower()
    if raw in TARGET_KINDS:
        return Target(raw)
    if raw.startswith("pid:") and raw[4:].isdigit() and int(raw[4:]) > 0:
        return Target("pid", int(raw[4:]))
    raise GsupError(f"invalid target {text!r}: use parent, child, group, tree or pid:N")


def parse_port(text: int | str) -> int:
    """A TCP port, 1-65535.  ``{port}`` is gsup matrix's placeholder, replaced before a run."""
    try:
        port = int(text)
    except ValueError:
        hint = " (a placeholder of gsup matrix only)" if text == "{port}" else ""
        raise GsupError(f"invalid port {text!r}: use 1-65535{hint}") from None
    if not 0 < port < 65536:
        raise GsupError(f"invalid port {port}: use 1-65535")
    return port


def parse_regex(text: str) -> str:
    """A regular expression, checked now so a typo fails before anything runs."""
    try:
        re.compile(text)
    except re.error as err:
        raise GsupError(f"invalid regular expression {text!r}: {err}") from None
    return text


def parse_watch(text: str) -> str:
    """``module.path:Qual.name``; nothing is imported here (the program's path may differ)."""
    module, _, qualname = text.strip().partition(":")
    names = [*module.split("."), *qualname.split(".")]
    if not module or not qualname or not all(name.isidentifier() for name in names):
        raise GsupError(f"invalid --watch {text!r}: use MODULE:QUALNAME, e.g. myapp.server:Server.shutdown")
    return f"{module}:{qualname}"


# The probe's built-in watch sets (``WATCH_PRESETS`` in _probe/_gsup_probe/__init__.py,
# which cannot be imported from here: tests/test_watch.py keeps the two equal).
WATCH_PRESETS = ("gunicorn", "asgi", "aiohttp", "weakref", "logging", "futures", "celery")


# The names each preset's calls are reported under (the probe's WATCH_PRESETS again):
# what ``--expect 'parent: on_exit not run'`` may name although it never ran.
PRESET_CALLS = {
    "gunicorn": ("on_exit", "worker_exit", "worker_int", "worker_abort", "child_exit"),
    "asgi": ("LifespanOn.startup", "LifespanOn.shutdown", "Server.shutdown", "Router.startup", "Router.shutdown",
             "Lifespan.wait_for_startup", "Lifespan.wait_for_shutdown"),
    "aiohttp": ("Application.startup", "Application.shutdown", "Application.cleanup"),
    "weakref": (),  # reported under each callback's own name
    "logging": ("shutdown",),
    "futures": ("ThreadPoolExecutor.shutdown", "ProcessPoolExecutor.shutdown"),
    "celery": ("worker_shutting_down", "worker_process_shutdown", "worker_shutdown"),  # and "task NAME[ID]"
}


def watching(watch: Sequence[str], presets: Sequence[str]) -> list[str]:
    """Every name a watched call of this run could be reported under."""
    chosen = WATCH_PRESETS if not presets or "auto" in presets else [p for p in presets if p != "none"]
    names = [spec.partition(":")[2] for spec in watch]
    return [*names, *(name for preset in chosen for name in PRESET_CALLS[preset])]


def parse_watch_presets(values: Sequence[str]) -> list[str]:
    """``--watch-preset`` values (repeatable or comma-separated): preset names,
    ``auto`` (every preset, the default) or ``none`` alone (no preset)."""
    names = [n.strip().lower() for value in values for n in value.split(",") if n.strip()]
    for name in names:
        if name not in (*WATCH_PRESETS, "auto", "none"):
            raise GsupError(f"invalid --watch-preset {name!r}: use {', '.join(WATCH_PRESETS)}, auto or none")
    if "none" in names and set(names) != {"none"}:
        raise GsupError("--watch-preset none turns every preset off: drop the others")
    return names


CONTAINER_MODES = {"namespace": "namespace", "real": "namespace", "emulate": "emulate", "off": "off", "none": "off"}


def parse_container(text: str) -> str:
    """``--container`` (a real PID namespace), ``--container=emulate`` or ``--container=off``."""
    mode = CONTAINER_MODES.get(text.strip().lower())
    if mode is None:
        raise GsupError(f"invalid --container={text!r}: use --container, --container=emulate or --container=off")
    return mode


def parse_init(text: str) -> str:
    """``--init`` (tini if installed, else gsup's own), ``--init=tini`` or ``--init=gsup``."""
    raw = text.strip().lower()
    if raw not in ("auto", "tini", "gsup"):
        raise GsupError(f"invalid --init={text!r}: use --init, --init=tini or --init=gsup")
    return raw
