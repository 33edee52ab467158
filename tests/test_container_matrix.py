"""Container mode beyond ``gsup run``: ``gsup matrix --targets docker,k8s,docker-init`` and the Python API."""

from __future__ import annotations

import os

import pytest

from supervisor import api
from tests.helpers import EXAMPLES, PYTHON, Gsup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace as root")


def test_container_targets(gsup: Gsup) -> None:
    result = gsup.run("matrix", "--json", "-q", "--python", PYTHON, "--signals", "TERM",
                      "--targets", "docker,k8s,docker-init", "--grace", "1s", str(EXAMPLES / "containers" / "app.py"))
    assert result.returncode == 0, result.stderr
    runs = {run["stop"]: run for run in result.report["runs"]}
    assert sorted(runs) == ["docker", "docker-init", "k8s"]
    for name in ("docker", "k8s"):
        (app,) = runs[name]["processes"]
        assert app["nspid"] == 1 and app["end"]["signal"] == "SIGKILL" and runs[name]["actions"][0]["dropped"]
    table = gsup.run("matrix", "-q", "--python", PYTHON, "--signals", "TERM", "--targets", "docker", "--grace", "1s",
                     str(EXAMPLES / "containers" / "app.py"))
    assert "SIGKILL (TERM dropped)" in table.stdout
    init = runs["docker-init"]
    assert init["container"]["init"] is not None and init["processes"][1]["end"]["signal"] == "SIGTERM"


def test_matrix_passes_container_on(gsup: Gsup) -> None:
    result = gsup.run("matrix", "--json", "-q", "--python", PYTHON, "--signals", "INT", "--targets", "parent",
                      "--container", str(EXAMPLES / "containers" / "app.py"))
    assert result.returncode == 0, result.stderr
    (run,) = result.report["runs"]
    assert run["container"]["mode"] == "namespace" and run["processes"][0]["nspid"] == 1


def test_python_api(gsup: Gsup) -> None:
    report = api.Gsup(env=gsup.env, cwd=gsup.workdir).run(EXAMPLES / "containers" / "app.py", "handler",
                                                          stop="docker", container="emulate", python=PYTHON)
    assert report.container is not None and report.container.mode == "emulate"
    assert report.role("parent").end.code == 0 and report.role("parent").fired == ["cleanup"]
