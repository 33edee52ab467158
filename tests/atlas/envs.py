"""``make server-envs``: one venv per supported CPython with the real servers' pins, for the atlas and the tests.

For each CPython 3.9-3.13 under pyenv (the interpreters the tests find), a venv
in ``.venv-servers/3.X`` with the pins of ``pyproject.toml``'s ``frameworks``
and ``celery`` extras, each pin where its own ``Requires-Python`` admits that
interpreter (on 3.9: Flask and werkzeug; uvicorn, gunicorn, Django, aiohttp,
hypercorn, Starlette and Celery need 3.10).  gsup itself is not installed
there: it runs from the main ``.venv`` and launches the server with the venv's
interpreter and scripts, as a user's gsup (installed with pipx, or in another
venv) runs their project's ``.venv/bin/uvicorn``.

``pins.json`` in each venv, written last, says what it holds and what could not
be installed and why; ``tests/helpers.py`` (``server_envs``) reads it.  A venv
whose interpreter and pins are those of today is left alone, so a second run
takes well under a second; ``--force`` rebuilds.  One line per version; exit 1
if one failed, or if one is missing under ``GSUP_REQUIRE_ALL_PYTHONS=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.helpers import (  # noqa: E402
    PYENV_MINORS,
    REQUIRE_ALL_PYTHONS,
    SERVER_ENVS,
    SERVER_MANIFEST,
    pyenv_pythons,
    pyenv_versions_dir,
)

EXTRAS = ("frameworks", "celery")
JOBS = 2  # the machine has two cores; pip is busy for most of an install
INSTALL_TIMEOUT = 900


class Failed(Exception):
    """One version's venv could not be built; the message says how."""


def pins() -> list[str]:
    """The extras' requirements as ``make install`` installed gsup with them (its metadata is
    rebuilt whenever pyproject.toml changes), markers dropped: whether a pin fits an interpreter
    is its own ``Requires-Python``'s to say (the extras' markers are written for the main venv)."""
    found = []
    for extra in EXTRAS:
        for line in metadata.requires("gsup") or []:
            req = Requirement(line)
            if f'extra == "{extra}"' in str(req.marker):
                req.marker = None
                found.append(str(req))
    return found


def requires_python(pin: str) -> str:
    """The pinned release's ``Requires-Python``, read from the main venv (``make install`` installed
    the same pins there); empty when it is not there, or another version: then pip decides."""
    req = Requirement(pin)
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        return ""
    if not req.specifier.contains(dist.version, prereleases=True):
        return ""
    return str(dist.metadata.get("Requires-Python") or "")


def plan(version: tuple[int, ...], wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    """(pins to install, {package: why not}) for CPython ``version``."""
    here = ".".join(map(str, version))
    install, unsupported = [], {}
    for pin in wanted:
        needs = requires_python(pin)
        if needs and not SpecifierSet(needs).contains(here):
            req = Requirement(pin)
            unsupported[canonicalize_name(req.name)] = f"{pin} requires Python {needs}"
        else:
            install.append(pin)
    return install, unsupported


def clean_env() -> dict[str, str]:
    """No PYTHON*, GSUP_* or VIRTUAL_ENV from the caller: pip sees the new venv alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GSUP_", "VIRTUAL_ENV"))}


def run(argv: list[str]) -> str:
    """stdout of ``argv``; a failure carries the end of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=INSTALL_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{' '.join(argv[:4])}: no end after {INSTALL_TIMEOUT}s") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if "is ignored" not in line]
        raise Failed(f"{' '.join(argv[:4])} exited {done.returncode}:\n" + "\n".join(lines[-12:]))
    return done.stdout


def manifest(venv: Path) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads((venv / SERVER_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return found


def build(python: Path, version: tuple[int, ...], venv: Path, wanted: list[str]) -> dict[str, Any]:
    """A fresh venv with the pins that fit, then its manifest: what is installed, what is not and why."""
    shutil.rmtree(venv, ignore_errors=True)
    install, unsupported = plan(version, wanted)
    run([str(python), "-m", "venv", str(venv)])
    if install:
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *install])
    listed = json.loads(run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"]))
    installed = {canonicalize_name(p["name"]): p["version"] for p in listed}
    record = {"python": ".".join(map(str, version)), "interpreter": str(python), "pins": wanted,
              "installed": {canonicalize_name(Requirement(p).name): installed[canonicalize_name(Requirement(p).name)]
                            for p in install},
              "unsupported": unsupported}
    (venv / SERVER_MANIFEST).write_text(json.dumps(record, indent=1) + "\n")  # last: the venv is complete
    return record


def one(minor: int, found: dict[int, tuple[tuple[int, ...], Path]], wanted: list[str], force: bool) -> tuple[bool, str]:
    """(passed, its line) for CPython 3.<minor>."""
    if minor not in found:
        required = os.environ.get(REQUIRE_ALL_PYTHONS) == "1"
        status = "FAILED" if required else "skipped"
        return not required, f"3.{minor:<6} {status}  not installed under {pyenv_versions_dir()}"
    version, python = found[minor]
    venv = SERVER_ENVS / f"3.{minor}"
    record = manifest(venv)
    fresh = record is not None and (record["interpreter"], record["python"], record["pins"]) == (
        str(python), ".".join(map(str, version)), wanted)
    started = time.monotonic()
    if force or not fresh:
        try:
            record = build(python, version, venv, wanted)
        except Failed as exc:
            return False, f"3.{minor:<6} FAILED  {exc}"
    assert record is not None
    took = f"built in {time.monotonic() - started:.0f}s" if force or not fresh else "up to date"
    left_out = "; not installed: " + ", ".join(sorted(record["unsupported"].values())) if record["unsupported"] else ""
    return True, f"{record['python']:<8} ok      {took}: {len(record['installed'])} pins{left_out}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--force", action="store_true", help="rebuild every venv, even an up-to-date one")
    options = parser.parse_args()
    found, wanted = pyenv_pythons(), pins()
    SERVER_ENVS.mkdir(exist_ok=True)
    passed = True
    with ThreadPoolExecutor(JOBS) as pool:
        for ok, line in pool.map(lambda minor: one(minor, found, wanted, options.force), PYENV_MINORS):
            print(f"server-envs: {line}", flush=True)
            passed = passed and ok
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
