"""Random scenarios for the stress run: what each process does, and how gsup signals it.

A scenario is plain data drawn from one ``random.Random``, so a seed and a
scenario number give back the same program and the same gsup command
(``stress.py --seed S --only N``).  ``programs.py`` turns a plan into source.

Every name a plan gives (handlers, signal handlers) is unique in the whole
scenario, so a marker file or a report entry names exactly one piece of code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

SIGNALS = ("TERM", "INT", "KILL", "HUP", "QUIT", "USR1", "USR2")
HANDLED = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2")  # KILL cannot have a handler
TARGETS = ("parent", "child", "group", "tree")

# (choice, weight): weights keep the common cases common and the rare ones present.
HANDLER_BODIES = (("fast", 4.0), ("slow", 3.0), ("raise", 2.0), ("long", 1.0), ("os_exit", 0.5))
SIGNAL_BODIES = (("note", 3.0), ("slow", 1.5), ("exit", 3.0), ("raise", 1.5), ("os_exit", 1.0),
                 ("redefault", 1.0))
ROOT_ENDINGS = (("return", 3.0), ("exit", 2.0), ("raise", 1.0), ("os_exit", 1.0), ("exec_python", 1.0),
                ("exec_isolated", 0.5), ("exec_sleep", 0.5), ("forever", 1.5))
CHILD_ENDINGS = (("return", 3.0), ("exit", 1.5), ("raise", 1.0), ("os_exit", 1.0), ("exec_python", 0.5),
                 ("exec_sleep", 0.3), ("forever", 1.0))
EXEC_ENDINGS = (("return", 3.0), ("exit", 1.0), ("raise", 1.0), ("os_exit", 1.0), ("forever", 1.0))
CHILD_KINDS = (("fork", 2.0), ("mp_fork", 1.5), ("mp_spawn", 1.5), ("daemon", 1.5), ("subprocess", 1.0),
               ("subprocess_isolated", 0.5))


@dataclass
class HandlerPlan:
    """One exit handler: ``atexit.register`` or ``threading._register_atexit``."""

    name: str
    kind: str  # atexit, threading
    body: str  # see HANDLER_BODIES
    seconds: float  # how long a slow/long body sleeps
    unregister: bool = False


@dataclass
class SignalPlan:
    """One Python signal handler."""

    name: str
    signal: str  # "TERM"
    body: str  # see SIGNAL_BODIES
    seconds: float


@dataclass
class ChildPlan:
    """How a process starts a child, and whether it waits for it."""

    kind: str  # see CHILD_KINDS
    proc: ProcPlan
    wait: bool
    mp_daemon: bool = False  # multiprocessing: SIGTERMed by the parent's exit function
    middle: str = "os_exit"  # daemon: how the first fork ends (os_exit, or exit: runs inherited handlers)
    close_fds: bool = False  # daemon: closes every fd but 0-2, as daemons do (the probe's own included)


@dataclass
class ProcPlan:
    """What one program image does: register, start, sleep, wait, end."""

    role: str
    handlers: list[HandlerPlan] = field(default_factory=list)
    signals: list[SignalPlan] = field(default_factory=list)
    threads: list[tuple[bool, float]] = field(default_factory=list)  # (daemon, seconds)
    children: list[ChildPlan] = field(default_factory=list)
    life: float = 0.5
    ending: str = "return"
    code: int = 0  # for exit/os_exit endings
    exec_into: Optional[ProcPlan] = None  # exec_python / exec_isolated endings

    def walk(self) -> list[ProcPlan]:
        """This plan and every plan below it (children, exec'd images)."""
        found = [self]
        for child in self.children:
            found.extend(child.proc.walk())
        if self.exec_into is not None:
            found.extend(self.exec_into.walk())
        return found


@dataclass
class Scenario:
    """One stress case: a program and the gsup command that signals it."""

    number: int
    seed: int
    root: ProcPlan
    module_handlers: list[HandlerPlan]  # registered at import: in every image that runs the file
    signal: str
    target: str
    timing: list[str]  # gsup options: --after X or --settle X (or none: the default settle)
    python: str

    def plans(self) -> list[ProcPlan]:
        return self.root.walk()

    def signal_of(self) -> dict[str, str]:
        """Signal handler name → the signal it handles."""
        return {s.name: s.signal for plan in self.plans() for s in plan.signals}

    def handler_names(self) -> set[str]:
        return {h.name for plan in self.plans() for h in plan.handlers} | {h.name for h in self.module_handlers}


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in table], weights=[w for _, w in table])[0]


def _handler(rng: random.Random, name: str) -> HandlerPlan:
    body = _pick(rng, HANDLER_BODIES)
    seconds = {"slow": rng.uniform(0.05, 0.8), "long": rng.uniform(2.5, 4.0)}.get(body, 0.0)
    kind = "threading" if rng.random() < 0.2 else "atexit"
    return HandlerPlan(name, kind, body, round(seconds, 3), unregister=rng.random() < 0.1)


def _signals(rng: random.Random, role: str) -> list[SignalPlan]:
    chosen = rng.sample(HANDLED, rng.choice((0, 0, 1, 1, 2, 3)))
    return [SignalPlan(f"{role}_s{i}", sig, _pick(rng, SIGNAL_BODIES), round(rng.uniform(0.05, 0.6), 3))
            for i, sig in enumerate(chosen, 1)]


def _proc(rng: random.Random, role: str, depth: int, endings: tuple[tuple[str, float], ...]) -> ProcPlan:
    plan = ProcPlan(role)
    plan.handlers = [_handler(rng, f"{role}_h{i}") for i in range(1, rng.choice((0, 1, 2, 2, 3, 4)) + 1)]
    plan.signals = _signals(rng, role)
    plan.threads = [(rng.random() < 0.5, round(rng.uniform(0.05, 1.5), 3)) for _ in range(rng.choice((0, 0, 1, 2)))]
    most = (3, 1, 0)[depth] if depth < 3 else 0
    plan.children = [_child(rng, f"{role}c{i}", depth + 1) for i in range(1, rng.randint(0, most) + 1)]
    plan.life = round(rng.uniform(0.05, 2.0), 3)
    plan.ending = _pick(rng, endings)
    plan.code = rng.choice((0, 0, 1, 3, 42))
    if plan.ending in ("exec_python", "exec_isolated"):
        plan.exec_into = _proc(rng, f"{role}x", 3, EXEC_ENDINGS)
    return plan


def _child(rng: random.Random, role: str, depth: int) -> ChildPlan:
    kind = _pick(rng, CHILD_KINDS)
    endings = CHILD_ENDINGS
    proc = _proc(rng, role, depth if kind != "subprocess_isolated" else 3, endings)
    return ChildPlan(kind, proc, wait=rng.random() < 0.5, mp_daemon=rng.random() < 0.3,
                     middle=rng.choice(("os_exit", "exit")), close_fds=rng.random() < 0.5)


def _timing(rng: random.Random, root: ProcPlan) -> list[str]:
    """--after somewhere in start-up, the run, or the exit handlers; or a --settle."""
    shutdown = sum(h.seconds for h in root.handlers) + 0.3
    mode = rng.choices(("settle", "startup", "running", "shutdown"), weights=(25, 15, 35, 25))[0]
    if mode == "settle":
        settle = rng.choice((None, "100ms", "300ms", "1s"))
        return ["--settle", settle] if settle else []
    low, high = {"startup": (0.0, 0.08), "running": (0.08, root.life),
                 "shutdown": (root.life, root.life + shutdown)}[mode]
    return ["--after", f"{rng.uniform(low, max(low, high)) * 1000:.0f}ms"]


def make(seed: int, number: int, pythons: list[str]) -> Scenario:
    """Scenario ``number`` of the run with ``seed``: the same arguments give the same scenario."""
    rng = random.Random(f"{seed}:{number}")
    root = _proc(rng, "p", 0, ROOT_ENDINGS)
    module_handlers = [_handler(rng, f"m_h{i}") for i in range(1, rng.choice((0, 0, 1)) + 1)]
    for handler in module_handlers:
        handler.unregister = False  # registered at import, before any role runs
        if handler.body == "long":
            handler.body = "slow"  # it runs in every image: keep the whole tree's shutdown short
    return Scenario(number, seed, root, module_handlers, rng.choice(SIGNALS), rng.choice(TARGETS),
                    _timing(rng, root), rng.choice(pythons))
