"""``make package``: gsup as PyPI would get it, and as a newcomer would install it.

1. ``python -m build``: the sdist and the wheel, in a fresh ``dist/`` under a temporary directory;
2. ``twine check --strict``: the metadata PyPI renders (README, license, classifiers);
3. what each ships: the wheel has ``py.typed`` and the license and no tests; the sdist has
   what its tests need (``tests/conftest.py``, ``examples/``, ``docs/``);
4. the wheel with its test extra in a fresh venv, used from another directory:
   ``gsup --version``, a run whose JSON report validates with ``check-jsonschema``
   against the installed schema files;
5. the tests of the unpacked sdist with that venv (a fast subset; ``FULL=1``: all of them).

One line per step; exit 1 at the first that fails, with its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_TESTS = ["tests/test_packaging.py", "tests/test_readme.py", "tests/test_bad_input.py", "tests/test_schema.py",
               "tests/test_scripts.py", "tests/test_architecture.py"]
IN_SDIST = ["LICENSE", "tests/conftest.py", "tests/helpers.py", "examples/flask_app.py", "docs/architecture.md",
            "supervisor/py.typed", "supervisor/schemas/matrix-1.json"]
APP = """
    import atexit, signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    atexit.register(print, "bye")
    time.sleep(30)
"""


def step(what: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        print(f"FAIL {what}: {' '.join(argv)}\n{done.stdout}{done.stderr}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)
    return done.stdout


def check(what: str, problems: list[str]) -> None:
    if problems:
        print(f"FAIL {what}: " + "; ".join(problems), flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gsup-package-") as scratch:
        work = Path(scratch)
        dist = work / "dist"
        step("build sdist and wheel", [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], work)
        [sdist], [wheel] = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
        step("twine check --strict", [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], work)
        check("wheel contents", wheel_problems(wheel))
        unpacked = unpack(sdist, work)
        check("sdist contents", [f"missing {name}" for name in IN_SDIST if not (unpacked / name).exists()])
        venv = work / "venv"
        step("fresh venv", [sys.executable, "-m", "venv", str(venv)], work)
        python = str(venv / "bin" / "python")
        step("install the wheel with its test extra", [python, "-m", "pip", "install", "--quiet", f"{wheel}[test]"],
             work)
        use_installed(venv, work)
        tests = [] if os.environ.get("FULL") else QUICK_TESTS
        step("the sdist's tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], unpacked,
             env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=3600)


def wheel_problems(wheel: Path) -> list[str]:
    names = zipfile.ZipFile(wheel).namelist()
    problems = [f"missing {name}" for name in ("supervisor/py.typed", "supervisor/_probe/sitecustomize.py")
                if name not in names]
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        problems.append("no LICENSE in the dist-info")
    return problems + [f"ships {name}" for name in names if name.startswith(("tests/", "examples/"))]


def unpack(sdist: Path, work: Path) -> Path:
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # 3.12+, and 3.9-3.11 since their 2023 security releases
            archive.extractall(work / "sdist", filter="data")
        else:
            archive.extractall(work / "sdist")  # our own archive, just built
    [top] = (work / "sdist").iterdir()
    return top


def use_installed(venv: Path, work: Path) -> None:
    """From a directory that is not the checkout: the command, a run, its report against the installed schema."""
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text(textwrap.dedent(APP))
    gsup = str(venv / "bin" / "gsup")
    step("gsup --version", [gsup, "--version"], elsewhere)
    report = step("gsup run --json", [gsup, "run", "--json", "--python", str(venv / "bin" / "python"),
                                      "--signal", "TERM", "app.py"], elsewhere)
    (elsewhere / "report.json").write_text(report)
    schemas = step("installed schemas", [str(venv / "bin" / "python"), "-c",
                                         "import supervisor, pathlib; print(pathlib.Path(supervisor.__file__).parent)"],
                   elsewhere).strip()
    step("check-jsonschema on the report", [str(venv / "bin" / "check-jsonschema"), "--schemafile",
                                            f"{schemas}/schemas/report-1.json", "report.json"], elsewhere)


if __name__ == "__main__":
    main()
