"""``--stop docker-init`` / ``--init``: an init is PID 1, passes SIGTERM on, and exits as its child did.

Observed first without gsup: ``unshare --pid --fork tini -- python3 app.py`` and
the same with gsup's init.py, SIGTERM to PID 1: the app without a handler dies
by SIGTERM and the init exits 143; with a handler the app exits 0, and so does
the init.  The app's end is known only from the init's exit status (the
guardian is not its parent), and the report says so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MARKED_SERVICE, PYTHON, Gsup, Program, role

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace as root (see test_container_guard.py)")

INITS = [pytest.param("tini", marks=pytest.mark.skipif(shutil.which("tini") is None,
                                                        reason="no tini on PATH (apt-get install -y tini)")),
         "gsup"]


def _run(gsup: Gsup, program: Program, tmp_path: Path, init: str, mode: str) -> tuple[dict[str, Any], str]:
    marks = tmp_path / "marks"
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--stop", "docker-init", f"--init={init}",
                      str(program(MARKED_SERVICE)), str(marks), mode)
    assert result.returncode == 0, result.stderr
    return result.report, marks.read_text() if marks.exists() else ""


@pytest.mark.parametrize("init", INITS)
def test_init_passes_term_on_and_exits_128_plus_n(gsup: Gsup, program: Program, tmp_path: Path, init: str) -> None:
    report, marks = _run(gsup, program, tmp_path, init, "plain")
    pid1, app = role(report, "parent"), role(report, "child")
    assert report["container"]["init"] == ("tini" if init == "tini" else "gsup-init")
    assert pid1["nspid"] == 1 and pid1["end"]["code"] == 143 and "dropped" not in report["actions"][0]
    assert app["end"] == {"how": "signaled", "code": None, "signal": "SIGTERM", "reaped_by": f"parent {pid1['pid']}",
                          "source": "the init's exit status"}
    assert "read from its exit status 143" in app["explanation"] and marks == ""
    assert [a["signal"] for a in report["actions"]] == ["SIGTERM"]  # no SIGKILL: it ended within the grace


@pytest.mark.parametrize("init", INITS)
def test_init_with_a_handler_in_the_app(gsup: Gsup, program: Program, tmp_path: Path, init: str) -> None:
    report, marks = _run(gsup, program, tmp_path, init, "handler")
    pid1, app = role(report, "parent"), role(report, "child")
    assert pid1["end"]["code"] == 0 and app["end"]["how"] == "exited" and app["end"]["code"] == 0
    assert marks.split() == ["handler", "atexit"]
