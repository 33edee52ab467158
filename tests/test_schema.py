"""The JSON Schemas gsup ships (``supervisor/schemas/``) and prints (``gsup schema``).

They must be valid schemas, be followed by real reports of every kind of
ending, and be able to fail.  Real reports are also checked against a
*closed* copy of the schema (no property it does not name): a field the code
emits without the schema describing it fails here, so the schema cannot fall
behind ``model.py``.  (The shipped schema stays open, see its description; and
the harness in conftest.py checks every report of the suite against it.)
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from supervisor import model, schema, stops
from supervisor.errors import ExitCode
from tests.helpers import (
    PYTHON,
    ROOT,
    Gsup,
    Program,
    lose_session_mid_run,
    role,
    schema_errors,
    schema_validator,
    statuses,
)

SCHEMA_DIR = ROOT / "supervisor" / "schemas"


def closed(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that names its properties."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed(value) for key, value in node.items()}
    if node.get("type") == "object" and "properties" in node:
        out["additionalProperties"] = False
    return out


def closed_errors(document: dict[str, Any], name: str = "report") -> list[str]:
    """Like ``schema_errors``, against the closed schemas."""
    registry: Registry[Any] = Registry().with_resources(
        (file, Resource.from_contents(closed(schema.load(each)))) for each, file in schema.FILES.items())
    validator = Draft202012Validator(closed(schema.load(name)), registry=registry)
    return [f"{e.json_path}: {e.message[:300]}" for e in validator.iter_errors(document)]


def valid(report: dict[str, Any]) -> dict[str, Any]:
    """``report``, once it follows the schema, open and closed."""
    assert schema_errors(report) == []
    assert closed_errors(report) == [], "a field the schema does not describe"
    return report


# -- the schemas themselves ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(schema.FILES))
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    document = schema.load(name)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == schema.FILES[name]
    assert "allows properties" in document["description"]  # the open-schema choice is stated where consumers read


@pytest.mark.parametrize(("args", "file"), [((), "report-1.json"), (("report",), "report-1.json"),
                                            (("matrix",), "matrix-1.json")])
def test_gsup_schema_prints_the_shipped_file(gsup: Gsup, args: tuple[str, ...], file: str) -> None:
    result = gsup.run("schema", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (SCHEMA_DIR / file).read_text()
    assert result.stderr == ""


def test_gsup_schema_refuses_an_unknown_name(gsup: Gsup) -> None:
    result = gsup.run("schema", "reports")
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr == "gsup: error: unknown schema 'reports': use report or matrix\n"


def test_enums_are_the_codes_own_values() -> None:
    """The schema's closed lists are the code's constants, so neither can change alone."""
    defs = schema.load("report")["$defs"]
    assert schema.load("report")["properties"]["schema"]["const"] == model.SCHEMA
    assert set(defs["end"]["properties"]["how"]["enum"]) == {
        model.EXITED, model.SIGNALED, model.OS_EXIT, model.EXEC, model.LEFT_RUNNING, model.UNKNOWN}
    assert set(defs["handlerCall"]["properties"]["status"]["enum"]) == {
        model.RAN, model.RAISED, model.INTERRUPTED, model.NOT_RUN, model.UNREGISTERED}
    assert defs["stopPreset"]["enum"] == list(stops.PRESETS)


# -- real reports, one per kind of ending ----------------------------------------------


def test_exit_with_every_handler_status(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, signal, sys

        def ran(): pass
        def raised(): raise ValueError("no")
        def dropped(): pass

        atexit.register(ran)
        atexit.register(raised)
        atexit.register(dropped)
        atexit.unregister(dropped)
        signal.signal(signal.SIGUSR1, lambda s, f: None)
        signal.raise_signal(signal.SIGUSR1)
        sys.exit(3)
    """)
    parent = role(valid(gsup.report(str(script))), "parent")
    assert parent["end"]["how"] == "exited" and parent["end"]["code"] == 3
    assert statuses(parent) == {"ran": "ran", "raised": "raised", "dropped": "unregistered"}
    assert ("SIGUSR1", True) in [(s["signal"], s["invoked"]) for s in parent["signal_handlers"]]


def test_signal_death_sent_to_the_group(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, time
        atexit.register(lambda: None)
        time.sleep(60)
    """)
    report = valid(gsup.report("--signal", "KILL", "--target", "group", str(script)))
    assert role(report, "parent")["end"]["signal"] == "SIGKILL"
    assert report["actions"][0]["group"] == role(report, "parent")["pid"]


def test_os_exit(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, os
        atexit.register(lambda: None)
        os._exit(4)
    """)
    end = role(valid(gsup.report(str(script))), "parent")["end"]
    assert (end["how"], end["code"]) == ("os._exit", 4)


def test_exec_into_python_then_into_sh(gsup: Gsup, program: Program) -> None:
    script = program("""
        import os, sys
        inner = "import os; os.execv('/bin/sh', ['sh', '-c', 'exit 5'])"
        os.execv(sys.executable, [sys.executable, "-c", inner])
    """)
    images = valid(gsup.report(str(script)))["processes"]
    assert [p["end"]["how"] for p in images] == ["exec", "exec", "exited"]
    assert [p["instrumented"] for p in images] == [True, True, False]
    assert images[1]["end"]["exec"] == ["sh", "-c", "exit 5"]


def test_left_running(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "child-ready"
    script = program(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; open({str(ready)!r}, 'w').close(); time.sleep(60)"])
        deadline = time.monotonic() + 30
        while not os.path.exists({str(ready)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
    """)
    report = valid(gsup.report("--grace", "300ms", str(script)))
    child = role(report, "child")
    assert child["end"]["how"] == "left-running"
    assert child["end"]["then"]["signal"] == "SIGKILL"
    assert report["leftovers"] == [child["pid"]]


def test_uninstrumented_sh_with_a_python_child_it_reaps(gsup: Gsup) -> None:
    """sh is not Python; the Python it starts is reaped by sh, so its ending is unknown."""
    result = gsup.run("run", "--json", "--", "sh", "-c", f"{PYTHON} -c pass & wait; exit 3")
    assert result.returncode == 0, result.stderr
    report = valid(result.report)
    parent, child = role(report, "parent"), role(report, "child")
    assert parent["instrumented"] is False and parent["uninstrumented_reason"] == "not a Python program"
    assert parent["end"]["code"] == 3
    assert child["instrumented"] is True and child["end"]["how"] == "unknown"


def test_stop_preset_readiness_and_watched_calls(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    program("def drain():\n    pass\n", name="mymod.py")
    script = program(f"""
        import time, mymod
        mymod.drain()
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    report = valid(gsup.report("--stop", "k8s", "--ready-file", str(ready), "--watch-preset", "none",
                               "--watch", "mymod:drain", "--watch", "mymod:missing", str(script)))
    parent = role(report, "parent")
    assert report["stop"] == "k8s" and report["actions"][0]["by"] == "stop k8s"
    assert report["ready"]["ok"] is True and report["ready"]["after"] is not None
    assert [(w["name"], w["status"]) for w in parent["watched"]] == [("drain", "ran")]
    assert parent["watch_missing"] == ["mymod:missing"]


def test_incomplete_report(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """The session directory vanishes mid-run: a real fault, and a partial report."""
    result = gsup.finish(lose_session_mid_run(gsup, program, tmp_path))
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    report = valid(result.report)
    assert report["complete"] is False and report["incomplete"]


# -- the schema can fail --------------------------------------------------------------


def _broken(report: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(report)
    change(copied)
    return copied


BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "end.how of the wrong type": (lambda r: r["processes"][0]["end"].update(how=1), "$.processes[0].end.how"),
    "end.how not a known ending": (lambda r: r["processes"][0]["end"].update(how="vanished"),
                                   "$.processes[0].end.how"),
    "no processes": (lambda r: r.pop("processes"), "$"),
    "a handler status nobody defined": (lambda r: r["processes"][0]["handlers"][0].update(status="skipped"),
                                        "$.processes[0].handlers[0].status"),
    "complete, yet something missing": (lambda r: r.update(incomplete=["lost"]), "$.incomplete"),
    "an exit code on a signal death": (lambda r: r["processes"][0]["end"].update(how="signaled", signal="SIGTERM"),
                                       "$.processes[0].end.code"),
    "a role nobody defined": (lambda r: r["processes"][0].update(role="sibling"), "$.processes[0].role"),
}


def test_broken_reports_do_not_validate(gsup: Gsup, program: Program) -> None:
    report = valid(gsup.report(str(program("import atexit\natexit.register(print)\n"))))
    validator = schema_validator("report")
    for what, (change, path) in BREAKAGES.items():
        errors = list(validator.iter_errors(_broken(report, change)))
        assert path in [e.json_path for e in errors], f"{what}: {[(e.json_path, e.message) for e in errors]}"
    assert schema_errors(_broken(report, lambda r: r.pop("processes"))) == ["/: 'processes' is a required property"]


def test_a_real_matrix(gsup: Gsup, program: Program) -> None:
    script = program("import time\ntime.sleep(60)\n")
    result = gsup.run("matrix", "--json", "-q", "--python", PYTHON, "--signals", "TERM", "--targets", "parent,docker",
                      str(script))
    assert result.returncode == 0, result.stderr
    matrix = result.report
    assert schema_errors(matrix) == []
    assert closed_errors(matrix, "matrix") == [], "a field the schema does not describe"
    assert [s["stop"] for s in matrix["scenarios"]] == [None, "docker"]
    assert len(matrix["runs"]) == len(matrix["scenarios"])


def test_matrix_runs_are_reports(gsup: Gsup, program: Program) -> None:
    """A matrix wraps real reports; its $ref reaches report-1.json, so a broken run breaks the matrix."""
    report = gsup.report(str(program("pass\n")))
    matrix = {"schema": "gsup.matrix/1", "gsup": report["gsup"], "command": report["command"], "started": 1.0,
              "duration": 2.0, "ok": True, "complete": True,
              "scenarios": [{"name": "TERM to parent", "signal": "SIGTERM", "target": "parent", "stop": None,
                             "exit_code": 0, "ok": True}],
              "runs": [report]}
    assert schema_errors(matrix) == []
    assert closed_errors(matrix, "matrix") == []
    broken = _broken(matrix, lambda m: m["runs"][0]["processes"][0]["end"].update(how=None))
    assert [e.split(":")[0] for e in schema_errors(broken)] == ["/runs/0/processes/0/end/how"]


# -- README -------------------------------------------------------------------------


def readme_documents() -> list[dict[str, Any]]:
    """Every ```json block of README.md that is a gsup document."""
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    documents = [json.loads(block) for block in blocks]
    return [d for d in documents if isinstance(d, dict) and str(d.get("schema", "")).startswith("gsup.")]


def test_readme_examples_follow_the_schema() -> None:
    documents = readme_documents()
    for document in documents:
        assert schema_errors(document) == []
        assert closed_errors(document, document["schema"].split(".")[1].split("/")[0]) == []
    assert documents, "README.md shows an example report"


# -- strict JSON: non-UTF-8 arguments ---------------------------------------------------


ODD = ["\udcff", "caf\u00e9", "a\udcc3", "\\xff"]  # 0xff; UTF-8 é; a cut-off é; a literal backslash-x-f-f


def strict(data: bytes) -> Any:
    """``data`` parsed the way a strict JSON parser would: UTF-8 only, no lone surrogate; and jq agrees."""
    import shutil
    import subprocess

    from tests.helpers import lone_surrogates

    document = json.loads(data.decode("utf-8", "strict"))
    assert lone_surrogates(document) == []
    if shutil.which("jq"):
        subprocess.run(["jq", "-e", "."], input=data, capture_output=True, check=True, timeout=30)
    return document


def exact(encoded: list[str]) -> list[bytes]:
    import base64

    return [base64.b64decode(item) for item in encoded]


def test_non_utf8_arguments_are_strict_json_with_their_bytes(gsup: Gsup, program: Program) -> None:
    """Every document gsup writes parses strictly; ``<field>_b64`` holds the exact bytes (README)."""
    import os

    script = str(program("import sys\n"))
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, script, *ODD)
    assert result.returncode == 0, result.stderr
    report = strict(result.stdout.encode())
    wanted = [os.fsencode(arg) for arg in [PYTHON, script, *ODD]]
    assert report["command"][2:] == ["\\xff", "caf\u00e9", "a\\xc3", "\\xff"]
    assert exact(report["command_b64"]) == wanted
    parent = role(report, "parent")
    assert exact(parent["argv_b64"])[-4:] == wanted[-4:]
    [directory] = [d for d in gsup.home.iterdir() if d.is_dir()]
    for name in ("report.json", "session.json", "exits.jsonl", "actions.jsonl"):
        path = directory / name
        for line in path.read_bytes().splitlines() if name.endswith(".jsonl") and path.exists() else \
                [path.read_bytes()] if path.exists() else []:
            strict(line)
    again = gsup.run("report", "--json", directory.name)
    assert again.returncode == 0, again.stderr
    assert strict(again.stdout.encode()) == report  # read back exactly, written the same way
    matrix = gsup.run("matrix", "--json", "-q", "--signals", "KILL", "--targets", "parent", "--python", PYTHON,
                      script, *ODD)
    assert exact(strict(matrix.stdout.encode())["runs"][0]["command_b64"]) == wanted


def test_the_python_api_gets_the_very_arguments_back(gsup: Gsup, program: Program) -> None:
    from supervisor.api import Gsup as Api

    report = Api(env={"GSUP_HOME": str(gsup.home)}).run(program("import sys\n"), *ODD)
    assert report.command[-4:] == ODD
    assert report.role("parent").argv[-4:] == ODD


def test_strictjson_round_trips_any_text() -> None:
    from supervisor import strictjson

    document = {"command": ["ok", *ODD], "reason": "\udcff: cannot start", "nested": [{"argv": ODD}],
                "lone": "\ud800", "plain": "caf\u00e9"}
    text = strictjson.dumps(document)
    assert lone_surrogates_in(text) == []
    back = strictjson.loads(text)
    assert back == {**document, "lone": "\\xed\\xa0\\x80"}  # a surrogate from no bytes: shown, nothing to restore
    assert "lone_b64" not in json.loads(text)


def lone_surrogates_in(text: str) -> list[str]:
    from tests.helpers import lone_surrogates

    return lone_surrogates(json.loads(text))


def test_the_matrix_schema_embeds_the_report_schema_as_shipped() -> None:
    """One file validates a matrix alone; its copy of report-1.json cannot drift from the real one."""
    assert schema.load("matrix")["$defs"]["report"] == schema.load("report"), \
        "refresh $defs.report of supervisor/schemas/matrix-1.json from report-1.json"


@pytest.mark.parametrize("printed", [True, False])
def test_check_jsonschema_validates_a_matrix_from_another_directory(gsup: Gsup, program: Program, tmp_path: Path,
                                                                    printed: bool) -> None:
    """``gsup schema matrix > m.json`` (or the shipped file), then check-jsonschema anywhere: the
    report schema's ``$ref`` resolved against the current directory and failed."""
    result = gsup.run("matrix", "-q", "--json", "--python", PYTHON, "--signals", "TERM", "--targets", "parent",
                      str(program("import time; time.sleep(30)")))
    assert result.returncode == 0, result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "out.json").write_text(result.stdout)
    if printed:
        (elsewhere / "m.json").write_text(gsup.run("schema", "matrix").stdout)
        schemafile = "m.json"
    else:
        schemafile = str(SCHEMA_DIR / "matrix-1.json")
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(checker), "--schemafile", schemafile, "out.json"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
