"""``gsup matrix --targets docker,k8s,docker-init``: container scenarios side by side, each in its own namespace."""

from __future__ import annotations

import os

import pytest

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
    init = runs["docker-init"]
    assert init["container"]["init"] is not None and init["processes"][1]["end"]["signal"] == "SIGTERM"
