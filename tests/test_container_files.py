"""``--dockerfile`` and ``--pod``: the user's own container configuration replayed as PID 1.

The parser is checked in-process against docker's rules (exec form is a JSON
array of strings, anything else shell form wrapped as SHELL); the replay runs
the samples in ``examples/containers/`` for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.containers import read_dockerfile, read_pod
from supervisor.errors import GsupError
from tests.helpers import EXAMPLES, PYTHON, Gsup, role

SAMPLES = EXAMPLES / "containers"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace as root")


def _dockerfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "argv", "exec_form"), [
    ('CMD ["python", "app.py"]', ["python", "app.py"], True),
    ("CMD python app.py", ["/bin/sh", "-c", "python app.py"], False),
    ('CMD ["python", app.py]', ["/bin/sh", "-c", '["python", app.py]'], False),  # not JSON: docker's shell form
    ('ENTRYPOINT ["python", "app.py"]\nCMD ["--port", "80"]', ["python", "app.py", "--port", "80"], True),
    ('ENTRYPOINT ["python"]\nCMD app.py', ["python", "/bin/sh", "-c", "app.py"], False),
    ("ENTRYPOINT python app.py\nCMD ignored", ["/bin/sh", "-c", "python app.py"], False),
    ('SHELL ["/bin/bash", "-c"]\nCMD python \\\n  app.py', ["/bin/bash", "-c", "python app.py"], False),
    ('CMD ["old"]\nFROM python AS final\n# a comment\nCMD ["new"]', ["new"], True),
])
def test_command_as_docker_builds_it(tmp_path: Path, text: str, argv: list[str], exec_form: bool) -> None:
    found = read_dockerfile(_dockerfile(tmp_path, "FROM python:3.12-slim\n" + text + "\n"))
    assert (found.argv, found.exec_form) == (argv, exec_form)


def test_stopsignal_and_workdir(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    found = read_dockerfile(_dockerfile(tmp_path, 'FROM x\nWORKDIR /srv\nSTOPSIGNAL SIGQUIT\nCMD ["run"]\n'))
    assert (found.stop_signal, found.workdir) == ("SIGQUIT", tmp_path / "srv")
    found = read_dockerfile(_dockerfile(tmp_path, 'FROM x\nWORKDIR /app\nCMD ["run"]\n'))
    assert found.workdir == tmp_path  # no app/ here: the build context, where COPY . . takes it from


@pytest.mark.parametrize(("text", "message"), [
    ("FROM x\nRUN true\n", "no ENTRYPOINT or CMD in the final stage"),
    ('FROM x\nCMD ["python", 3]\n', ":2: exec form must be a JSON array of strings"),
    ("FROM x\nCMD python \\\n", ":2: the instruction continues past the end of the file"),
    ("FROM x\n--bad\n", ":2: not a Dockerfile instruction"),
])
def test_malformed_dockerfile_is_one_line_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(GsupError, match=message) as caught:
        read_dockerfile(_dockerfile(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_pod_spec() -> None:
    found = read_pod(SAMPLES / "pod.yaml", "app")
    assert found.argv == ["python", "app.py", "handler"] and found.grace == 5.0
    assert found.pre_stop is not None and found.pre_stop.kind == "exec"
    with pytest.raises(GsupError, match="2 containers \\(app, sidecar\\): choose one with --container-name"):
        read_pod(SAMPLES / "pod.yaml", None)
    with pytest.raises(GsupError, match="no container named 'web'"):
        read_pod(SAMPLES / "pod.yaml", "web")


def test_bad_yaml_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "pod.yaml"
    bad.write_text("kind: Pod\nspec: [1, 2\n")
    with pytest.raises(GsupError, match=f"^{bad}:3: not valid YAML"):
        read_pod(bad, None)


def _replay(gsup: Gsup, *options: str) -> dict:
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, *options)
    assert result.returncode == 0, result.stderr
    return result.report


@ROOT_ONLY
def test_dockerfile_exec_form_without_handler(gsup: Gsup) -> None:
    report = _replay(gsup, "--dockerfile", str(SAMPLES / "Dockerfile.exec"), "--time", "1s")
    app = role(report, "parent")
    assert report["stop"] == "docker" and app["nspid"] == 1 and app["argv"][1:] == ["app.py"]
    assert report["actions"][0]["dropped"] == [app["pid"]] and app["end"]["signal"] == "SIGKILL"


@ROOT_ONLY
def test_dockerfile_shell_form(gsup: Gsup) -> None:
    report = _replay(gsup, "--dockerfile", str(SAMPLES / "Dockerfile.shell"), "--time", "1s")
    shell = role(report, "parent")
    assert shell["argv"][:2] == ["/bin/sh", "-c"]
    assert "shell-form CMD: /bin/sh is PID 1 and never passes SIGTERM on; app.py never got it" in shell["explanation"]


@ROOT_ONLY
def test_dockerfile_with_handler_and_init(gsup: Gsup) -> None:
    report = _replay(gsup, "--dockerfile", str(SAMPLES / "Dockerfile.handler"))
    assert role(report, "parent")["end"]["code"] == 0 and role(report, "parent")["fired"] == ["cleanup"]
    report = _replay(gsup, "--dockerfile", str(SAMPLES / "Dockerfile.exec"), "--init=gsup")
    assert report["stop"] == "docker-init" and report["container"]["init"] == "gsup-init"
    assert role(report, "child")["end"]["signal"] == "SIGTERM"


@ROOT_ONLY
def test_pod_runs_prestop_then_term(gsup: Gsup) -> None:
    report = _replay(gsup, "--pod", str(SAMPLES / "pod.yaml"), "--container-name", "app")
    hook = report["container"]["pre_stop"]
    assert hook["hook"].startswith("exec /bin/sh -c") and hook["outcome"] == "exited 0" and hook["took"] >= 0.2
    assert report["stop"] == "k8s" and report["actions"][0]["at"] >= hook["took"]
    assert role(report, "parent")["end"]["code"] == 0


def test_dockerfile_and_a_program_are_refused(gsup: Gsup) -> None:
    result = gsup.run("run", "--dockerfile", str(SAMPLES / "Dockerfile.exec"), "app.py")
    assert result.returncode == 2 and "drop the program" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--container=bogus", "x.py"], "invalid --container='bogus': use --container, --container=emulate or "
                                    "--container=off"),
    (["--init=dumb", "x.py"], "invalid --init='dumb': use --init, --init=tini or --init=gsup"),
    (["--signal", "TERM", "--time", "1s", "x.py"], "--time goes with --stop docker or docker-init (elsewhere, "
                                                   "use --grace)"),
    (["--dockerfile", "a", "--pod", "b"], "--dockerfile and --pod each describe the container: give one"),
    (["--container-name", "app", "x.py"], "--container-name goes with --pod"),
])
def test_bad_container_options(gsup: Gsup, args: list[str], message: str) -> None:
    (gsup.workdir / "x.py").write_text("pass\n")
    result = gsup.run("run", *args)
    assert (result.returncode, result.stderr) == (2, f"gsup: error: {message}\n")
