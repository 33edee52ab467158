"""Read what a Dockerfile or a pod spec says about starting and stopping the container.

``--dockerfile`` replays the final stage's ENTRYPOINT/CMD exactly as docker
builds the command (exec form as written; shell form wrapped as ``SHELL``,
``/bin/sh -c`` by default), its STOPSIGNAL and WORKDIR.  A small parser of
that subset, rather than a library: docker's own rules decide exec form (a
valid JSON array of strings) against shell form, line continuations,
comments, the ``escape`` directive and which stage is last, and an error
must name ``file:line``; that is all this needs, exactly, with no dependency.

``--pod`` reads a Pod or a Deployment (PyYAML, the ``gsup[containers]`` extra):
the container's command and args, ``terminationGracePeriodSeconds``,
``workingDir`` and ``lifecycle.preStop`` (exec, sleep, or httpGet).

What neither file holds is not guessed: the base image's ENTRYPOINT/CMD (a
Dockerfile without them), an image's entrypoint (a pod container without
``command``).  That is one error line, exit 2, like any malformed file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from supervisor.errors import GsupError
from supervisor.records import dataclass, field


@dataclass(frozen=True)
class PreStop:
    """A pod's ``lifecycle.preStop`` hook: one of its three kinds."""

    kind: str  # exec, sleep or httpGet
    command: tuple[str, ...] = ()  # exec
    seconds: float = 0.0  # sleep
    port: int = 0  # httpGet, on localhost
    path: str = "/"

    def __str__(self) -> str:
        if self.kind == "exec":
            return "exec " + " ".join(self.command)
        if self.kind == "sleep":
            return f"sleep {self.seconds:g}s"
        return f"httpGet localhost:{self.port}{self.path}"


@dataclass(frozen=True)
class Container:
    """The command to run as PID 1 and how the container is stopped."""

    argv: list[str]
    exec_form: bool  # False: a shell runs the command (shell-form CMD/ENTRYPOINT)
    stop_signal: Optional[str] = None  # STOPSIGNAL, as written
    workdir: Optional[Path] = None  # where to run it on this host
    grace: Optional[float] = None  # terminationGracePeriodSeconds
    pre_stop: Optional[PreStop] = None
    notes: list[str] = field(default_factory=list)


# -- Dockerfile -------------------------------------------------------------------------------------


def read_dockerfile(path: Path) -> Container:
    """The final stage's command, STOPSIGNAL and WORKDIR; GsupError naming ``file:line``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GsupError(f"--dockerfile {path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    stage: dict[str, tuple[int, str]] = {}
    shell = ["/bin/sh", "-c"]
    for line, keyword, rest in instructions(text, path):
        if keyword == "FROM":
            stage, shell = {}, ["/bin/sh", "-c"]
        elif keyword == "SHELL":
            shell = _json_array(rest, path, line) or _bad(path, line, 'SHELL needs a JSON array: ["/bin/bash", "-c"]')
        elif keyword in ("ENTRYPOINT", "CMD", "STOPSIGNAL", "WORKDIR"):
            if keyword == "WORKDIR" and "WORKDIR" in stage and not rest.startswith("/"):
                rest = stage["WORKDIR"][1].rstrip("/") + "/" + rest  # relative WORKDIRs chain
            stage[keyword] = (line, rest)
            stage[keyword + ":shell"] = (line, json.dumps(shell))
    return _container(stage, path)


def instructions(text: str, path: Path) -> list[tuple[int, str, str]]:
    """(line, KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    escape = "\\"
    found: list[tuple[int, str, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        directive = re.match(r"#\s*escape\s*=\s*(\S)\s*$", raw)
        if directive and not found and not pending:
            escape = directive.group(1)
            continue
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continuation is skipped, as docker does
        if not pending:
            start = number
        if stripped.endswith(escape):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        found.append(_instruction("".join(pending), start, path))  # joined as docker joins them, no separator
        pending = []
    if pending:
        raise GsupError(f"{path}:{start}: the instruction continues past the end of the file")
    return found


def _instruction(joined: str, line: int, path: Path) -> tuple[int, str, str]:
    keyword, _, rest = joined.partition(" ")
    if not re.fullmatch(r"[A-Za-z]+", keyword):
        raise GsupError(f"{path}:{line}: not a Dockerfile instruction: {joined[:40]!r}")
    return line, keyword.upper(), rest.strip()


def _container(stage: dict[str, tuple[int, str]], path: Path) -> Container:
    entry, cmd = stage.get("ENTRYPOINT"), stage.get("CMD")
    if entry is None and cmd is None:
        raise GsupError(f"{path}: no ENTRYPOINT or CMD in the final stage: gsup cannot know the base image's; "
                        "add one, or run the command with `gsup run --stop docker -- COMMAND`")
    argv: list[str] = []
    exec_form = True
    if entry is not None:
        argv, exec_form = _form(entry, stage["ENTRYPOINT:shell"][1], path)
    if cmd is not None and (entry is None or exec_form):  # a shell-form ENTRYPOINT ignores CMD
        more, cmd_exec = _form(cmd, stage["CMD:shell"][1], path)
        argv += more
        exec_form = exec_form and cmd_exec
    if not argv:
        raise GsupError(f"{path}:{(entry or cmd or (0, ''))[0]}: the command is empty")
    signal_line = stage.get("STOPSIGNAL")
    workdir = stage.get("WORKDIR")
    return Container(argv, exec_form, stop_signal=signal_line[1] if signal_line else None,
                     workdir=_host_workdir(path, workdir[1] if workdir else ""))


def _form(written: tuple[int, str], shell: str, path: Path) -> tuple[list[str], bool]:
    """Exec form (a JSON array of strings) as written; anything else is shell form."""
    line, rest = written
    array = _json_array(rest, path, line)
    if array is not None:
        return array, True
    return [*json.loads(shell), rest], False


def _json_array(rest: str, path: Path, line: int) -> Optional[list[str]]:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # docker runs it as shell form then: so does gsup
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GsupError(f"{path}:{line}: exec form must be a JSON array of strings")
    return value


def _host_workdir(dockerfile: Path, workdir: str) -> Path:
    """WORKDIR (or a pod's workingDir) on this host: that folder under the file's own
    if it exists there, else the file's folder itself, the build context (``COPY . .``
    puts the app there); no WORKDIR at all is the file's folder too."""
    here = dockerfile.resolve().parent
    under = here / workdir.lstrip("/")
    return under if workdir.strip("/") and under.is_dir() else here


def _bad(path: Path, line: int, why: str) -> list[str]:
    raise GsupError(f"{path}:{line}: {why}")


# -- pod spec -------------------------------------------------------------------------------------


def read_pod(path: Path, name: Optional[str]) -> Container:
    """The container ``name`` (or the only one) of a Pod or Deployment; GsupError naming the file."""
    spec = _pod_spec(_load_yaml(path), path)
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise GsupError(f"{path}: no containers in the pod spec")
    container = _choose(containers, name, path)
    command = container.get("command")
    args = container.get("args") or []
    if not command:
        raise GsupError(f"{path}: container {container.get('name')!r} has no command: gsup cannot know the image's "
                        "ENTRYPOINT; add command")
    if not _strings(command) or not (args == [] or _strings(args)):
        raise GsupError(f"{path}: container {container.get('name')!r}: command and args must be lists of strings")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if not isinstance(grace, (int, float)) or isinstance(grace, bool) or grace < 0:
        raise GsupError(f"{path}: terminationGracePeriodSeconds must be a number of seconds, not {grace!r}")
    workdir = container.get("workingDir")
    return Container([*command, *args], True, grace=float(grace),
                     workdir=_host_workdir(path, str(workdir or "")),
                     pre_stop=_pre_stop(container, path))


def _load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise GsupError("--pod needs PyYAML: pip install 'gsup[containers]'") from None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise GsupError(f"--pod {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise GsupError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None


def _pod_spec(document: Any, path: Path) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise GsupError(f"{path}: not a Pod or Deployment")
    kind = document.get("kind")
    spec = document.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        spec = ((spec.get("template") or {}).get("spec")) or {}
    elif kind != "Pod":
        raise GsupError(f"{path}: kind {kind!r} is not a Pod or Deployment")
    if not isinstance(spec, dict):
        raise GsupError(f"{path}: the pod spec is not a mapping")
    return spec


def _choose(containers: list[Any], name: Optional[str], path: Path) -> dict[str, Any]:
    names = [str(c.get("name")) for c in containers if isinstance(c, dict)]
    if name is None and len(containers) == 1 and isinstance(containers[0], dict):
        return containers[0]
    if name is None:
        raise GsupError(f"{path}: {len(containers)} containers ({', '.join(names)}): choose one with "
                        "--container-name")
    for container in containers:
        if isinstance(container, dict) and container.get("name") == name:
            return container
    raise GsupError(f"{path}: no container named {name!r} (there are: {', '.join(names)})")


def _pre_stop(container: dict[str, Any], path: Path) -> Optional[PreStop]:
    hook = ((container.get("lifecycle") or {}).get("preStop")) or None
    if hook is None:
        return None
    if "exec" in hook and _strings((hook["exec"] or {}).get("command")):
        return PreStop("exec", command=tuple(hook["exec"]["command"]))
    if "sleep" in hook and isinstance((hook["sleep"] or {}).get("seconds"), (int, float)):
        return PreStop("sleep", seconds=float(hook["sleep"]["seconds"]))
    if "httpGet" in hook and isinstance((hook["httpGet"] or {}).get("port"), int):
        return PreStop("httpGet", port=int(hook["httpGet"]["port"]), path=str(hook["httpGet"].get("path", "/")))
    raise GsupError(f"{path}: lifecycle.preStop must be exec.command, sleep.seconds or httpGet.port")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
