"""``make atlas``: real servers under each way of stopping them, on each CPython, written to ``docs/atlas.md``.

Each cell is one ``gsup run --json`` of one server (``SERVERS``) under one stop
(``STOPS``) on one CPython: which processes ended how, which exit handlers and
framework hooks ran while it stopped, what was left running, and each process's
one-line explanation.  Behaviour only: pids become what each process is
("uvicorn server"), durations become "… s", identical workers are counted,
never listed twice; so the file changes when a server's shutdown behaviour
changes, and only then.

Each CPython 3.9-3.13 has its own venv of the servers' pins (``make
server-envs``, ``tests/atlas/envs.py``); a server runs on the Pythons its pins
support, and the file says where it does not and why.  gsup runs from the main
venv and launches the server with that venv's interpreter and scripts
(``--python``), as a user's gsup, installed apart, runs their project's venv.
A cell whose outcome is the same on every Python is written once; where they
differ, each outcome names its Pythons.

Writing runs each cell three times per Python and keeps every distinct
outcome: some servers race with themselves (whether gunicorn's sync worker
reaches ``worker_exit`` on a Ctrl-C, whether hypercorn's main process still
finds its worker alive to terminate it), and the atlas says so rather than pick
one.  An outcome seen on some Pythons only is then chased on the others (up to
three more runs each), so that a race is not written down as a difference
between Pythons.  ``--check`` (CI) runs each cell once per Python and compares
it with the outcomes the committed file records for that Python (and, where
that Python races, for the others: see ``accepted``); a cell matching none is
run again, twice at most, so it fails only on an outcome never seen before,
every time: a change of behaviour.  Outcomes are compared
line by line (one line per kind of process), see ``seen_before``.  The exit
status is 1 then, with the cells that differ.

What it runs, and why, to keep CI within a few minutes (about 3 on 2 cores):
TERM, INT and KILL to the parent, TERM and KILL to the children where there are
children, and the ``ctrl-c``, ``docker``, ``k8s`` and ``systemd`` presets, each
with a 3 s grace instead of the preset's own (10 s, 30 s, 90 s): every server
here has stopped, or shown it never will, within 3 s.  Four cells run at once
(``--jobs``): a cell spends most of its time waiting (the 1 s after ready, the
server's own shutdown, the grace), so two cores keep up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
from tests.helpers import REQUIRE_ALL_PYTHONS, SERVER_ENVS, ServerEnv, server_envs  # noqa: E402

APPS = HERE / "apps"
ATLAS = ROOT / "docs" / "atlas.md"
GSUP = Path(sys.executable).parent / "gsup"  # the main venv's: gsup is installed apart from the servers
GRACE = "3s"
PACKAGES = ("flask", "werkzeug", "django", "uvicorn", "gunicorn", "hypercorn", "aiohttp")


@dataclass(frozen=True)
class Server:
    name: str
    command: tuple[str, ...]  # {py}, {bin} and {port} filled in at run time
    children: bool  # has children to signal: TERM→child and KILL→child scenarios
    needs: tuple[str, ...]  # the pins it runs on: a Python where one does not install does not run it


SERVERS = (
    Server("Flask debug (werkzeug reloader)", ("{py}", "flask_app.py", "{port}"), True, ("flask", "werkzeug")),
    Server("Django runserver (autoreloader)", ("{py}", "manage.py", "runserver", "127.0.0.1:{port}"), True,
           ("django",)),
    Server("uvicorn", ("{bin}/uvicorn", "--port", "{port}", "asgi_app:app"), False, ("uvicorn",)),
    Server("uvicorn --reload", ("{bin}/uvicorn", "--reload", "--port", "{port}", "asgi_app:app"), True, ("uvicorn",)),
    Server("uvicorn --workers 2", ("{bin}/uvicorn", "--workers", "2", "--port", "{port}", "asgi_app:app"), True,
           ("uvicorn",)),
    Server("gunicorn, 2 sync workers", ("{bin}/gunicorn", "-w", "2", "--graceful-timeout", "2", "-b",
                                        "127.0.0.1:{port}", "wsgi_app:app"), True, ("gunicorn",)),
    Server("gunicorn + UvicornWorker", ("{bin}/gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                                        "--graceful-timeout", "2", "-b", "127.0.0.1:{port}", "asgi_app:app"), True,
           ("gunicorn", "uvicorn")),
    Server("aiohttp run_app", ("{py}", "aio_app.py", "{port}"), False, ("aiohttp",)),
    Server("hypercorn", ("{bin}/hypercorn", "--bind", "127.0.0.1:{port}", "asgi_app:app"), True, ("hypercorn",)),
)

# stop name -> gsup run options; "child" ones only for servers with children
STOPS = {
    "TERM → parent": ("--signal", "TERM", "--target", "parent"),
    "INT → parent": ("--signal", "INT", "--target", "parent"),
    "KILL → parent": ("--signal", "KILL", "--target", "parent"),
    "TERM → children": ("--signal", "TERM", "--target", "child"),
    "KILL → children": ("--signal", "KILL", "--target", "child"),
    "--stop ctrl-c": ("--stop", "ctrl-c"),
    "--stop docker": ("--stop", "docker"),
    "--stop k8s": ("--stop", "k8s"),
    "--stop systemd": ("--stop", "systemd"),
}

Cell = tuple[str, str]  # (server name, stop)
Outcomes = dict[Cell, dict[str, list[str]]]  # cell -> Python ("3.12") -> its distinct outcomes, first seen first


def minor(env: ServerEnv) -> str:
    return ".".join(env.version.split(".")[:2])


def runs_on(server: Server, env: ServerEnv) -> bool:
    return all(package in env.installed for package in server.needs)


def not_run_because(server: Server, env: ServerEnv) -> list[str]:
    return [env.unsupported.get(p, f"{p} is not in its venv") for p in server.needs if p not in env.installed]


def cells() -> list[tuple[Server, str]]:
    return [(server, stop) for server in SERVERS for stop in STOPS if server.children or "children" not in stop]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cell(server: Server, stop: str, env: ServerEnv) -> str:
    """One run of a cell on one Python, as Markdown (without its heading): behaviour only."""
    port = str(free_port())
    command = [part.format(py=env.python, bin=env.bin, port=port) for part in server.command]
    with tempfile.TemporaryDirectory(prefix="gsup-atlas-") as home:
        environ = {**os.environ, "GSUP_HOME": home, "NO_COLOR": "1"}
        environ.pop("PYTHONUNBUFFERED", None)
        environ.pop("VIRTUAL_ENV", None)
        done = subprocess.run(
            [str(GSUP), "run", "--json", "--python", env.python, "--ready-port", port, "--after", "1s",
             "--grace", GRACE, *STOPS[stop], "--", *command],
            cwd=APPS, env=environ, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"gsup gave no report: {_normalised(error, {}, env)}"
    return describe(report, env).replace(port, "PORT")


def describe(report: dict[str, Any], env: ServerEnv) -> str:
    """A run: one row per kind of process (identical ones counted), leftovers, what gsup sent."""
    labels = {p["pid"]: p.get("kind") or p["role"] for p in report["processes"]}
    rows: Counter[tuple[str, ...]] = Counter()
    for proc in report["processes"]:
        rows[_row(proc, labels, env)] += 1
    lines = ["| process | ended | ran while stopping | not run | explanation |", "|---|---|---|---|---|"]
    for row, count in sorted(rows.items()):
        name = row[0] + (f" ×{count}" if count > 1 else "")
        lines.append("| " + " | ".join((name, *row[1:])) + " |")
    left = sorted(labels[pid] for pid in report["leftovers"] if pid in labels)
    sent = ", ".join(f"{a['signal']} → {a['target']} ({a['by']})" for a in report["actions"])
    lines += ["", f"gsup sent: {sent or 'nothing'}. Left running: {', '.join(left) or 'nothing'}."]
    return "\n".join(lines)


def _row(proc: dict[str, Any], labels: dict[int, str], env: ServerEnv) -> tuple[str, ...]:
    end = proc["end"]
    ended = {"exited": f"exit {end['code']}", "signaled": str(end["signal"]), "left-running": "left running"}.get(
        end["how"], end["how"])
    if end["how"] == "left-running" and end.get("then"):
        then = end["then"]
        ended += f", then {then.get('signal') or 'exit ' + str(then.get('code'))}"
    ran = [_label(h) for h in sorted(proc["handlers"], key=lambda h: h["order"] or 0) if h["order"] is not None]
    ran += [_label(w) for w in proc["watched"] if not w.get("before_stop") and w["status"] != "not-run"]
    not_run = sorted(_label(h).replace(" (not-run)", "") for h in proc["handlers"] if h["status"] == "not-run")
    label = labels[proc["pid"]] if proc.get("kind") else f"{proc['role']} ({' '.join(_program(proc['argv']))})"
    return (label, ended, ", ".join(ran) or "nothing", ", ".join(not_run) or "—",
            _normalised(proc["explanation"], labels, env).replace("|", "\\|"))


def _label(handler: dict[str, Any]) -> str:
    name = handler["name"] if handler["module"] in ("__main__", "") else f"{handler['module']}.{handler['name']}"
    return name + ("" if handler["status"] == "ran" else f" ({handler['status']})")


def _program(argv: list[str]) -> list[str]:
    """The command line without paths: what the atlas may show on any machine."""
    return [a.rsplit("/", 1)[-1] for a in argv[:3]]


def _normalised(text: str, labels: dict[int, str], env: ServerEnv) -> str:
    """Pids as what the process is, durations as "… s", paths as "…": behaviour, not timings."""
    def pid(match: re.Match[str]) -> str:
        number = int(match.group(2))
        return f"[{labels[number]}]" if number in labels else match.group(0)

    text = re.sub(r"(pid )?\b(\d{2,7})\b", pid, text)
    text = re.sub(r"\[([^]]+)\] \(\1\)", r"[\1]", text)  # "1234 (gunicorn master)" said it once already
    text = re.sub(r"\b\d+(\.\d+)? (s|ms)\b", r"… \2", text)
    return text.replace(str(env.bin.parent), "…").replace(str(ROOT), "…")


# -- running: every cell on every Python ------------------------------------------------------


def generate(envs: list[ServerEnv], jobs: int, runs: int) -> Outcomes:
    """Each cell ``runs`` times on each Python that runs its server: its distinct outcomes."""
    todo = [(server, stop, env) for server, stop in cells() for env in envs if runs_on(server, env)
            for _ in range(runs)]
    return _collect(todo, jobs, {})


def _collect(todo: list[tuple[Server, str, ServerEnv]], jobs: int, found: Outcomes) -> Outcomes:
    with ThreadPoolExecutor(jobs) as pool:
        texts = list(pool.map(lambda job: run_cell(*job), todo))
    for (server, stop, env), text in zip(todo, texts):
        seen = found.setdefault((server.name, stop), {}).setdefault(minor(env), [])
        if text not in seen:
            seen.append(text)
    return found


def chase(found: Outcomes, envs: list[ServerEnv], jobs: int, runs: int) -> Outcomes:
    """An outcome seen on some Pythons only is looked for ``runs`` more times on the others, so that
    a race three runs caught on one Python is not written down as a difference between Pythons."""
    by_minor = {minor(env): env for env in envs}
    todo = []
    for (name, stop), per_python in found.items():
        server = next(s for s in SERVERS if s.name == name)
        everything = [text for texts in per_python.values() for text in texts]
        for python, texts in per_python.items():
            if any(not seen_before(text, texts) for text in everything):
                todo += [(server, stop, by_minor[python])] * runs
    return _collect(todo, jobs, found) if todo else found


def seen_before(text: str, variants: list[str]) -> bool:
    """Is every line of ``text`` (one row per kind of process, what gsup sent) in an outcome recorded?

    Line by line, not whole runs: two independent races in one server (hypercorn under
    ``docker stop``: whether its main process still terminates its worker, whether the
    tracker is gone before the container's SIGKILL) make more combinations than three
    runs show, while any process ending in a way never seen is a line never seen."""
    known = {line for variant in variants for line in variant.splitlines()}
    return all(line in known for line in text.splitlines())


# -- the file: one outcome per cell where every Python agrees, the Pythons named where not ----

LABEL = re.compile(r"_(In other runs)?(?: ?[Oo]n Python ([\d., ]+))?:_")


def header(envs: list[ServerEnv], runs: int) -> str:
    pythons = ", ".join(env.version for env in envs)
    versions = ", ".join(f"{name} {'/'.join(sorted({e.installed[name] for e in envs if name in e.installed}))}"
                         for name in PACKAGES)
    return f"""# The shutdown atlas

What real Python servers do when they are stopped, as `gsup run` reports it: per server and
way of stopping it, how each process ended, which exit handlers and framework hooks ran
while it stopped (`--watch-preset` `asgi`, `aiohttp`, `gunicorn`; start-up calls are left
out), what was left running, and gsup's one-line explanation.  Generated by `make atlas`
(`tests/atlas/atlas.py`); CI regenerates it and fails when the behaviour differs, so a
framework upgrade that changes how a server stops is noticed.  Timings are left out; pids
are shown as what each process is.

Measured on CPython {pythons}, each with its own venv (`make server-envs`) holding the pins of
the `frameworks` extra of `pyproject.toml` that support it: {versions}.  gsup runs from its
own venv and launches the server with that venv's interpreter and scripts (`--python`), as
it runs a project's venv when installed apart (pipx).  A server runs on the Pythons its pins
support; each section says which.  Every run: ready when the port listens, plus 1 s; then the
stop; `--grace {GRACE}` (also for the presets, whose own timeouts are 10 s, 30 s and 90 s).
The apps are in `tests/atlas/apps/`; each registers one atexit handler, `app_bye`.

Each cell was run at least {runs} times on each Python.  An outcome shown without a label is
what every Python did; "_On Python 3.13:_" names the Pythons of an outcome that not all of them
showed.  Where a server races with itself, every outcome seen follows "_In other runs:_" (or
"_In other runs on Python …:_"); an outcome seen on some Pythons only was looked for three
more times on the others before being written down as theirs alone, and CI accepts it on a
Python where the same cell races too.

"""


def availability(server: Server, envs: list[ServerEnv]) -> str:
    """Which Pythons run the server, and why the others do not."""
    ran = [minor(env) for env in envs if runs_on(server, env)]
    line = f"Run on Python {', '.join(ran)}."
    skipped = [env for env in envs if not runs_on(server, env)]
    if skipped:
        why = "; ".join(dict.fromkeys(reason for env in skipped for reason in not_run_because(server, env)))
        line += f" Not on {', '.join(minor(env) for env in skipped)}: {why}."
    return line


def variants(per_python: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """The cell's distinct outcomes, each with the Pythons whose outcomes hold each of its lines
    (those ``--check`` accepts it on: a mix of two races seen on one Python is not a difference
    between Pythons when another showed both races), those of every Python first."""
    order = sorted(per_python, key=lambda python: tuple(map(int, python.split("."))))
    texts = list(dict.fromkeys(text for python in order for text in per_python[python]))
    found = [(text, [python for python in order if seen_before(text, per_python[python])]) for text in texts]
    return sorted(found, key=lambda item: len(item[1]) != len(per_python))


def cell_text(per_python: dict[str, list[str]]) -> str:
    parts, shown = [], set()
    everyone = set(per_python)
    for text, pythons in variants(per_python):
        earlier = bool(shown & set(pythons))
        where = "" if set(pythons) == everyone else f"on Python {', '.join(pythons)}"
        if earlier:
            parts.append(f"_In other runs{' ' + where if where else ''}:_")
        elif where:
            parts.append(f"_{where[0].upper()}{where[1:]}:_")
        parts.append(text)
        shown.update(pythons)
    return "\n\n".join(parts)


def document(results: Outcomes, envs: list[ServerEnv], runs: int) -> str:
    parts = [header(envs, runs)]
    for server in SERVERS:
        command = " ".join(part.format(py="python", bin="", port="PORT").lstrip("/") for part in server.command)
        parts.append(f"## {server.name}\n\n`{command}`\n\n{availability(server, envs)}\n\n")
        for stop in STOPS:
            per_python = results.get((server.name, stop))
            if per_python:
                parts.append(f"#### {stop}\n\n{cell_text(per_python)}\n\n")
    return "".join(parts).rstrip("\n") + "\n"


def committed_cells(text: str) -> Outcomes:
    """The committed file's cells: per Python, the outcomes it records for it, keyed as ``generate`` keys them."""
    found: Outcomes = {}
    for section in text.split("\n## ")[1:]:
        name = section.split("\n", 1)[0]
        ran = re.search(r"^Run on Python ([\d., ]+)\.", section, re.MULTILINE)
        everyone = ran.group(1).split(", ") if ran else []
        for cell in section.split("\n#### ")[1:]:
            stop, _, body = cell.partition("\n\n")
            per_python = found.setdefault((name, stop), {python: [] for python in everyone})
            for label, variant in _blocks(body):
                for python in label or everyone:
                    per_python.setdefault(python, []).append(variant)
    return found


def _blocks(body: str) -> list[tuple[list[str], str]]:
    """(the Pythons its label names, [] for all; the outcome) for each outcome of a cell's text."""
    pieces = re.split(r"(?:^|\n\n)(_[^\n]*:_)\n\n", body.strip("\n"))
    blocks, label = [], []
    for piece in pieces:
        match = LABEL.fullmatch(piece)
        if match:
            label = match.group(2).split(", ") if match.group(2) else []
        elif piece.strip():
            blocks.append((label, piece.strip("\n")))
    return blocks


# -- the commands ---------------------------------------------------------------------------


def check(envs: list[ServerEnv], jobs: int) -> int:
    """Regenerate and compare, cell by cell and Python by Python, with every outcome the file records
    for that Python; a cell matching none is run twice more (a race inside a server may have chosen
    the third)."""
    committed = committed_cells(ATLAS.read_text()) if ATLAS.exists() else {}
    results = generate(envs, jobs, 1)
    by_minor = {minor(env): env for env in envs}
    differing, passed = [], 0
    for (name, stop), per_python in results.items():
        server = next(s for s in SERVERS if s.name == name)
        for python, (text,) in per_python.items():
            known = accepted(committed.get((name, stop), {}), python)
            tries = [text]
            while not seen_before(tries[-1], known) and len(tries) < 3:
                tries.append(run_cell(server, stop, by_minor[python]))
            if seen_before(tries[-1], known):
                passed += 1
                if not seen_before(tries[-1], committed[(name, stop)][python]):
                    print(f"atlas: {name}, {stop}, Python {python}: a mix of outcomes docs/atlas.md records for "
                          "other Pythons only (make atlas-more records it)")
            else:
                differing.append((name, stop, python, tries[-1]))
    for name, stop, python, last in differing:
        print(f"atlas: {name}, {stop}, Python {python}: none of 3 runs is an outcome docs/atlas.md records for "
              f"it; the last:\n{last}\n")
    missing = sorted((name, stop, python) for (name, stop), per_python in committed.items() for python in per_python
                     if python in by_minor and python not in results.get((name, stop), {}))
    for name, stop, python in missing:
        print(f"atlas: {name}, {stop} on Python {python} is in docs/atlas.md but was not run")
    print(f"atlas: {passed} passed, {len(differing) + len(missing)} failed (cells × Pythons: "
          f"{', '.join(by_minor)})")
    return 1 if differing or missing else 0


def accepted(per_python: dict[str, list[str]], python: str) -> list[str]:
    """The outcomes ``--check`` accepts on ``python``: those the file records for it and, where it
    races (it records more than one), those it records for the other Pythons: the odds of a race
    shift with the interpreter and the machine's load, so three runs on one Python may never show
    an outcome another showed, while a cell that never raced on this Python must stay as it is."""
    own = per_python.get(python, [])
    if len(own) < 2:
        return own
    return own + [text for other, texts in per_python.items() if other != python for text in texts]


def add(envs: list[ServerEnv], jobs: int, runs: int) -> int:
    """Run each cell ``runs`` more times on each Python and add to docs/atlas.md every outcome with a
    line it does not record yet for that Python, keeping what it holds: a race a server runs seldom
    (the resource tracker gone, or not, before the container's PID 1 ends) is recorded once seen."""
    committed = committed_cells(ATLAS.read_text()) if ATLAS.exists() else {}
    added = 0
    for key, per_python in generate(envs, jobs, runs).items():
        for python, texts in per_python.items():
            known = committed.setdefault(key, {}).setdefault(python, [])
            for text in texts:
                if not seen_before(text, known):
                    known.append(text)
                    added += 1
    ATLAS.write_text(document(committed, envs, runs=3))
    print(f"atlas: {added} outcome(s) added to {ATLAS.relative_to(ROOT)} ({runs} more runs of each cell on each "
          "Python)")
    return 0


def write(envs: list[ServerEnv], jobs: int, runs: int) -> int:
    """Every cell on ``envs``; with ``--python``, the other Pythons' outcomes are kept from the file."""
    results = chase(generate(envs, jobs, runs), envs, jobs, 3)
    everyone = [env for _, env in sorted(server_envs().items())]
    if len(envs) < len(everyone) and ATLAS.exists():
        kept = committed_cells(ATLAS.read_text())
        for key, per_python in results.items():
            kept.setdefault(key, {}).update(per_python)
        results = kept
    ATLAS.write_text(document(results, everyone, runs))
    count = sum(len(per_python) for per_python in results.values())
    print(f"atlas: wrote {ATLAS.relative_to(ROOT)} ({count} cells × Pythons, {runs} runs each)")
    return 0


def pythons(wanted: list[str]) -> list[ServerEnv] | str:
    """The server venvs to run on (all, or those ``--python`` names), or why that cannot be."""
    envs = server_envs()
    missing = [f"3.{m}" for m in sorted(set(range(9, 14)) - set(envs))]
    if missing and os.environ.get(REQUIRE_ALL_PYTHONS) == "1":
        return f"no server venv for Python {', '.join(missing)} in {SERVER_ENVS} (make server-envs)"
    if missing:
        print(f"atlas: no server venv for Python {', '.join(missing)}: left out (make server-envs)")
    chosen = [env for _, env in sorted(envs.items()) if not wanted or minor(env) in wanted]
    unknown = set(wanted) - {minor(env) for env in chosen}
    if unknown or not chosen:
        return f"no server venv for Python {', '.join(sorted(unknown)) or 'any'} (make server-envs)"
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/atlas.md instead of writing it")
    parser.add_argument("--add", action="store_true",
                        help="run more and add the outcomes docs/atlas.md does not record yet, keeping the rest")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="runs per cell when writing: each distinct outcome is kept")
    parser.add_argument("--python", action="append", default=[], metavar="3.X",
                        help="only this CPython (repeatable; default: each with a server venv)")
    options = parser.parse_args()
    envs = pythons(options.python)
    if isinstance(envs, str):
        print(f"atlas: {envs}", file=sys.stderr)
        return 1
    if options.check:
        return check(envs, options.jobs)
    if options.add:
        return add(envs, options.jobs, options.runs)
    return write(envs, options.jobs, options.runs)


if __name__ == "__main__":
    sys.exit(main())
