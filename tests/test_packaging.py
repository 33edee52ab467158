"""gsup as installed: what a newcomer meets outside the repository.

Supervisord's pip package is also named ``supervisor``; installed in the same
environment it writes into gsup's package folder, and uninstalling it deletes
files both own.  Here a copy of the folder gets Supervisord's files (or loses
gsup's ``__init__.py``), as pip would leave it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def installed_copy(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(ROOT / "supervisor", site / "supervisor", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def gsup_from(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gsup ARGS`` importing the package from ``site`` only (``-S``: no site-packages, no editable path)."""
    code = f"import sys; sys.path.insert(0, {str(site)!r}); sys.argv[0] = 'gsup'; " \
           "from supervisor.console import main; main()"
    return subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, timeout=60,
                          cwd=site, check=False)


def test_the_copy_works_as_is(tmp_path: Path) -> None:
    done = gsup_from(installed_copy(tmp_path), "--version")
    assert (done.returncode, done.stdout) == (0, "gsup, version 0.1.0\n"), done.stderr


@pytest.mark.parametrize("supervisord_init", ["", "# this is a package\n"])
def test_supervisord_installed_over_gsup_is_one_line_exit_2(tmp_path: Path, supervisord_init: str) -> None:
    site = installed_copy(tmp_path)
    (site / "supervisor" / "supervisord.py").write_text("# Supervisord's main module\n")
    (site / "supervisor" / "__init__.py").write_text(supervisord_init)
    done = gsup_from(site, "--version")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("gsup: error: Supervisord (the pip package `supervisor`) is installed in the same "
                           "environment and shares gsup's package folder ")
    assert "`pipx install gsup`" in line and "`pip uninstall supervisor` then `pip install --force-reinstall gsup`" \
        in line


def test_gsup_installed_over_supervisord_says_so_too(tmp_path: Path) -> None:
    """gsup's files won, Supervisord's other files remain: Supervisord is broken, so gsup says it."""
    site = installed_copy(tmp_path)
    (site / "supervisor" / "supervisord.py").write_text("# Supervisord's main module\n")
    assert gsup_from(site, "ps").returncode == 2


def test_supervisord_uninstalled_after_took_gsups_files_with_it(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    for shared in ("__init__.py", "options.py", "events.py"):
        (site / "supervisor" / shared).unlink()
    done = gsup_from(site, "run", "app.py")
    assert done.returncode == 2
    assert done.stderr.endswith("is incomplete (did `pip uninstall supervisor` remove Supervisord's files, which "
                                "were gsup's too?): `pip install --force-reinstall gsup`\n")
    assert "Traceback" not in done.stderr


def test_the_metadata_is_ready_to_publish() -> None:
    """What PyPI and type checkers read; ``make package`` builds it and runs ``twine check --strict``."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["build-system"]["requires"] == ["setuptools>=77"]  # the SPDX license string needs 77
    meta = project["project"]
    assert meta["license"] == "MIT" and meta["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").is_file()
    assert meta["authors"]
    classifiers = set(meta["classifiers"])
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(9, 14)} <= classifiers
    assert {"Operating System :: POSIX :: Linux", "Environment :: Console", "Typing :: Typed"} <= classifiers
    assert (ROOT / "supervisor" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["supervisor"]
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "graft tests" in manifest and "graft examples" in manifest
