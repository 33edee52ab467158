"""``make atlas``: real servers under each way of stopping them, written to ``docs/atlas.md``.

Each cell is one ``gsup run --json`` of one server (``SERVERS``) under one stop
(``STOPS``): which processes ended how, which exit handlers and framework hooks
ran while it stopped, what was left running, and each process's one-line
explanation.  Behaviour only: pids become what each process is ("uvicorn
server"), durations become "… s", identical workers are counted, never listed
twice; so the file changes when a server's shutdown behaviour changes, and
only then.

Writing runs each cell three times and keeps every distinct outcome: some
servers race with themselves (whether gunicorn's sync worker reaches
``worker_exit`` on a Ctrl-C, whether hypercorn's main process still finds its
worker alive to terminate it), and the atlas says so rather than pick one.
``--check`` (CI) runs each cell once and compares it with the outcomes the
committed file records; a cell matching none is run again, twice at most, so it
fails only on an outcome never seen before, every time: a change of behaviour.
Outcomes are compared line by line (one line per kind of process), see ``seen_before``.
The exit status is 1 then, with the cells that differ.

What it runs, and why, to keep CI within a few minutes (about 2 on 2 cores):
the venv's Python only (the servers' pins are in ``pyproject.toml``'s
``frameworks`` extra); TERM, INT and KILL to the parent, TERM and KILL to the
children where there are children, and the ``ctrl-c``, ``docker``, ``k8s``
and ``systemd`` presets, each with a 3 s grace instead of the preset's own
(10 s, 30 s, 90 s): every server here has stopped, or shown it never will,
within 3 s.
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
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APPS = HERE / "apps"
ATLAS = ROOT / "docs" / "atlas.md"
BIN = Path(sys.executable).parent
GRACE = "3s"
PACKAGES = ("flask", "werkzeug", "django", "uvicorn", "gunicorn", "hypercorn", "aiohttp")


@dataclass(frozen=True)
class Server:
    name: str
    command: tuple[str, ...]  # {py}, {bin} and {port} filled in at run time
    children: bool  # has children to signal: TERM→child and KILL→child scenarios


SERVERS = (
    Server("Flask debug (werkzeug reloader)", ("{py}", "flask_app.py", "{port}"), True),
    Server("Django runserver (autoreloader)", ("{py}", "manage.py", "runserver", "127.0.0.1:{port}"), True),
    Server("uvicorn", ("{bin}/uvicorn", "--port", "{port}", "asgi_app:app"), False),
    Server("uvicorn --reload", ("{bin}/uvicorn", "--reload", "--port", "{port}", "asgi_app:app"), True),
    Server("uvicorn --workers 2", ("{bin}/uvicorn", "--workers", "2", "--port", "{port}", "asgi_app:app"), True),
    Server("gunicorn, 2 sync workers", ("{bin}/gunicorn", "-w", "2", "--graceful-timeout", "2", "-b",
                                        "127.0.0.1:{port}", "wsgi_app:app"), True),
    Server("gunicorn + UvicornWorker", ("{bin}/gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                                        "--graceful-timeout", "2", "-b", "127.0.0.1:{port}", "asgi_app:app"), True),
    Server("aiohttp run_app", ("{py}", "aio_app.py", "{port}"), False),
    Server("hypercorn", ("{bin}/hypercorn", "--bind", "127.0.0.1:{port}", "asgi_app:app"), True),
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


def cells() -> list[tuple[Server, str]]:
    return [(server, stop) for server in SERVERS for stop in STOPS if server.children or "children" not in stop]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cell(server: Server, stop: str) -> str:
    """One run of a cell, as Markdown (without its heading): the server under this stop, behaviour only."""
    port = str(free_port())
    command = [part.format(py=sys.executable, bin=BIN, port=port) for part in server.command]
    with tempfile.TemporaryDirectory(prefix="gsup-atlas-") as home:
        env = {**os.environ, "GSUP_HOME": home, "NO_COLOR": "1"}
        env.pop("PYTHONUNBUFFERED", None)
        done = subprocess.run(
            [str(BIN / "gsup"), "run", "--json", "--python", sys.executable, "--ready-port", port, "--after", "1s",
             "--grace", GRACE, *STOPS[stop], "--", *command],
            cwd=APPS, env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"gsup gave no report: {_normalised(error, {})}"
    return describe(report).replace(port, "PORT")


def describe(report: dict[str, Any]) -> str:
    """A run: one row per kind of process (identical ones counted), leftovers, what gsup sent."""
    labels = {p["pid"]: p.get("kind") or p["role"] for p in report["processes"]}
    rows: Counter[tuple[str, ...]] = Counter()
    for proc in report["processes"]:
        rows[_row(proc, labels)] += 1
    lines = ["| process | ended | ran while stopping | not run | explanation |", "|---|---|---|---|---|"]
    for row, count in sorted(rows.items()):
        name = row[0] + (f" ×{count}" if count > 1 else "")
        lines.append("| " + " | ".join((name, *row[1:])) + " |")
    left = sorted(labels[pid] for pid in report["leftovers"] if pid in labels)
    sent = ", ".join(f"{a['signal']} → {a['target']} ({a['by']})" for a in report["actions"])
    lines += ["", f"gsup sent: {sent or 'nothing'}. Left running: {', '.join(left) or 'nothing'}."]
    return "\n".join(lines)


def _row(proc: dict[str, Any], labels: dict[int, str]) -> tuple[str, ...]:
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
            _normalised(proc["explanation"], labels).replace("|", "\\|"))


def _label(handler: dict[str, Any]) -> str:
    name = handler["name"] if handler["module"] in ("__main__", "") else f"{handler['module']}.{handler['name']}"
    return name + ("" if handler["status"] == "ran" else f" ({handler['status']})")


def _program(argv: list[str]) -> list[str]:
    """The command line without paths: what the atlas may show on any machine."""
    return [a.rsplit("/", 1)[-1] for a in argv[:3]]


def _normalised(text: str, labels: dict[int, str]) -> str:
    """Pids as what the process is, durations as "… s": behaviour, not timings."""
    def pid(match: re.Match[str]) -> str:
        number = int(match.group(2))
        return f"[{labels[number]}]" if number in labels else match.group(0)

    text = re.sub(r"(pid )?\b(\d{2,7})\b", pid, text)
    text = re.sub(r"\[([^]]+)\] \(\1\)", r"[\1]", text)  # "1234 (gunicorn master)" said it once already
    text = re.sub(r"\b\d+(\.\d+)? (s|ms)\b", r"… \2", text)
    return text.replace(str(ROOT), "…").replace(str(BIN), "…")


def header() -> str:
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    python = ".".join(map(str, sys.version_info[:2]))
    return f"""# The shutdown atlas

What real Python servers do when they are stopped, as `gsup run` reports it: per server and
way of stopping it, how each process ended, which exit handlers and framework hooks ran
while it stopped (`--watch-preset` `asgi`, `aiohttp`, `gunicorn`; start-up calls are left
out), what was left running, and gsup's one-line explanation.  Generated by `make atlas`
(`tests/atlas/atlas.py`); CI regenerates it and fails when the behaviour differs, so a
framework upgrade that changes how a server stops is noticed.  Timings are left out; pids
are shown as what each process is.

Measured on Python {python} with {versions} (the `frameworks` extra of `pyproject.toml`).
Every run: ready when the port listens, plus 1 s; then the stop; `--grace {GRACE}` (also for the
presets, whose own timeouts are 10 s, 30 s and 90 s).  The apps are in `tests/atlas/apps/`;
each registers one atexit handler, `app_bye`.  Each cell was run three times; where a server
races with itself, every outcome seen follows "_In other runs:_".

"""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


OTHER_RUNS = "_In other runs:_"


def generate(jobs: int, runs: int) -> dict[tuple[str, str], list[str]]:
    """Each cell ``runs`` times: its distinct outcomes, in the order first seen."""
    todo = [cell for cell in cells() for _ in range(runs)]
    with ThreadPoolExecutor(jobs) as pool:
        texts = list(pool.map(lambda cell: run_cell(*cell), todo))
    found: dict[tuple[str, str], list[str]] = {}
    for (server, stop), text in zip(todo, texts):
        seen = found.setdefault((server.name, stop), [])
        if text not in seen:
            seen.append(text)
    return found


def document(results: dict[tuple[str, str], list[str]]) -> str:
    parts = [header()]
    for server in SERVERS:
        command = " ".join(part.format(py="python", bin="", port="PORT").lstrip("/") for part in server.command)
        parts.append(f"## {server.name}\n\n`{command}`\n\n")
        for stop in STOPS:
            variants = results.get((server.name, stop))
            if variants:
                parts.append(f"#### {stop}\n\n" + f"\n\n{OTHER_RUNS}\n\n".join(variants) + "\n\n")
    return "".join(parts).rstrip("\n") + "\n"


def committed_cells(text: str) -> dict[tuple[str, str], list[str]]:
    """The committed file's cells, each with the outcomes seen, keyed as ``generate`` keys them."""
    found: dict[tuple[str, str], list[str]] = {}
    for section in text.split("\n## ")[1:]:
        name = section.split("\n", 1)[0]
        for cell in section.split("\n#### ")[1:]:
            stop, _, body = cell.partition("\n\n")
            found[(name, stop)] = [v.strip("\n") for v in body.split(f"\n\n{OTHER_RUNS}\n\n")]
    return found


def seen_before(text: str, variants: list[str]) -> bool:
    """Is every line of ``text`` (one row per kind of process, what gsup sent) in an outcome recorded?

    Line by line, not whole runs: two independent races in one server (hypercorn under
    ``docker stop``: whether its main process still terminates its worker, whether the
    tracker is gone before the container's SIGKILL) make more combinations than three
    runs show, while any process ending in a way never seen is a line never seen."""
    known = {line for variant in variants for line in variant.splitlines()}
    return all(line in known for line in text.splitlines())


def check(jobs: int) -> int:
    """Regenerate and compare, cell by cell, with every outcome the file records for it; a
    cell matching none is run twice more (a race inside a server may have chosen the third)."""
    committed = committed_cells(ATLAS.read_text()) if ATLAS.exists() else {}
    results = generate(jobs, 1)
    differing = []
    for (name, stop), (text,) in results.items():
        server = next(s for s in SERVERS if s.name == name)
        known = committed.get((name, stop), [])
        tries = [text]
        while not seen_before(tries[-1], known) and len(tries) < 3:
            tries.append(run_cell(server, stop))
        if not seen_before(tries[-1], known):
            differing.append((name, stop, tries))
    for name, stop, tries in differing:
        print(f"atlas: {name}, {stop}: none of 3 runs is an outcome docs/atlas.md records; the last:\n{tries[-1]}\n")
    missing = sorted(set(committed) - set(results))
    for name, stop in missing:
        print(f"atlas: {name}, {stop} is in docs/atlas.md but was not run")
    print(f"atlas: {len(results) - len(differing)} passed, {len(differing) + len(missing)} failed")
    return 1 if differing or missing else 0


def add(jobs: int, runs: int) -> int:
    """Run each cell ``runs`` more times and add to docs/atlas.md every outcome with a line it
    does not record yet, keeping what it holds: a race a server runs seldom (the resource
    tracker gone, or not, before the container's PID 1 ends) is recorded once seen."""
    committed = committed_cells(ATLAS.read_text()) if ATLAS.exists() else {}
    added = 0
    for key, variants in generate(jobs, runs).items():
        known = committed.setdefault(key, [])
        for text in variants:
            if not seen_before(text, known):
                known.append(text)
                added += 1
    ATLAS.write_text(document(committed))
    print(f"atlas: {added} outcome(s) added to {ATLAS.relative_to(ROOT)} ({len(cells())} cells, {runs} more runs each)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/atlas.md instead of writing it")
    parser.add_argument("--add", action="store_true",
                        help="run more and add the outcomes docs/atlas.md does not record yet, keeping the rest")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="runs per cell when writing: each distinct outcome is kept")
    options = parser.parse_args()
    if options.check:
        return check(options.jobs)
    if options.add:
        return add(options.jobs, options.runs)
    ATLAS.write_text(document(generate(options.jobs, options.runs)))
    print(f"atlas: wrote {ATLAS.relative_to(ROOT)} ({len(cells())} cells, {options.runs} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
