"""How an ending is worded (``supervisor/wording.py``), in each of its three forms.

The words are spelled out here, not read from the table: users and CI logs read
them, so changing one must fail a test."""

from __future__ import annotations

import pytest

from supervisor import wording
from supervisor.model import EXEC, EXITED, LEFT_RUNNING, OS_EXIT, SIGNALED, UNKNOWN, End


@pytest.mark.parametrize(("end", "phrase", "sentence", "cell"), [
    (End(EXITED, code=0), "exited 0", "exited 0", "exit 0"),
    (End(SIGNALED, signal="SIGKILL"), "killed by SIGKILL", "was killed by SIGKILL", "SIGKILL"),
    (End(OS_EXIT, code=3), "os._exit(3)", "called os._exit(3)", "os._exit(3)"),
    (End(LEFT_RUNNING), "left running", "was left running", "left running"),
    (End(LEFT_RUNNING, then=End(EXITED, code=0)), "left running, then exited 0",
     "was left running, then ended by gsup (exited 0)", "left running"),
    (End(LEFT_RUNNING, then=End(SIGNALED, signal="SIGKILL")), "left running, then SIGKILL",
     "was left running, then ended by gsup (was killed by SIGKILL)", "left running"),
    (End(EXEC), "exec", "replaced itself by exec", "exec"),
    (End(UNKNOWN, reason="reaped by sh"), "unknown", "ended in an unknown way (reaped by sh)", "unknown"),
    (End(UNKNOWN), "unknown", "ended in an unknown way (no status)", "unknown"),
    (End("vanished"), "vanished", "ended in an unknown way (no status)", "vanished"),  # from a later gsup
])
def test_each_form(end: End, phrase: str, sentence: str, cell: str) -> None:
    assert (wording.phrase(end), wording.sentence(end), wording.cell(end)) == (phrase, sentence, cell)


def test_every_ending_of_the_model_is_worded() -> None:
    assert set(wording.WORDS) == {EXITED, SIGNALED, OS_EXIT, EXEC, LEFT_RUNNING, UNKNOWN}


def test_only_exit_0_is_green() -> None:
    ends = [End(EXITED, code=0), End(EXITED, code=3), End(OS_EXIT, code=0), End(SIGNALED, signal="SIGTERM"),
            End(LEFT_RUNNING, then=End(EXITED, code=0))]
    assert [wording.style(end) for end in ends] == ["green", "yellow", "yellow", "yellow", "yellow"]
