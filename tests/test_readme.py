"""The README's Python examples, run as written: a newcomer copies them first.

Each ```python block of the "Python API" and "pytest plugin" sections runs
against a small ``app.py`` (a parent and a forked child with ``close_db``, which
imports logging so that its ``fired`` differs from its ``own_fired``).  A line
``expression  # literal : words`` is a claim: the expression must equal the literal.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, ROOT, Gsup

APP = """
import atexit, logging, os, signal, sys

reader, writer = os.pipe()
if os.fork() == 0:
    os.close(writer)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    @atexit.register
    def close_db():
        logging.getLogger("app").info("closed")

    os.read(reader, 1)  # EOF once the parent is gone
    sys.exit(0)
os.close(reader)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
os.wait()
"""


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``## section`` of README.md."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def claims(block: str) -> list[tuple[str, Any]]:
    """``(expression, literal)`` for every line whose comment starts with a Python literal."""
    found = []
    for line in block.splitlines():
        code, _, comment = line.partition("  # ")
        if not comment or not code.strip():
            continue
        try:
            found.append((code.strip(), ast.literal_eval(comment.split(" : ")[0].strip())))
        except (ValueError, SyntaxError):
            continue  # words, not a value
    return found


@pytest.fixture
def workdir(gsup: Gsup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "examples").symlink_to(EXAMPLES)
    monkeypatch.chdir(tmp_path)
    for key, value in gsup.env.items():
        monkeypatch.setenv(key, value)  # the session home the harness checks for leftovers
    return tmp_path


@pytest.mark.slow
def test_the_python_api_example_runs_and_its_comments_hold(workdir: Path) -> None:
    [block] = python_blocks("Python API")
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    checked = claims(block)
    assert len(checked) >= 4
    for expression, expected in checked:
        assert eval(expression, namespace) == expected, expression


def test_the_pytest_plugin_example_passes(workdir: Path) -> None:
    [block] = python_blocks("pytest plugin")
    (workdir / "test_example.py").write_text(block)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
                          capture_output=True, text=True, timeout=300, cwd=workdir, env=dict(os.environ),
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
