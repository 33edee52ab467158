"""Unit tests of ``RunPlan.from_options``: the --stop preset and the grace resolved once, the options left as given."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from supervisor.options import Target
from supervisor.phases.plan import DEFAULT_GRACE, RunOptions, RunPlan
from supervisor.records import FrozenInstanceError


def test_a_stop_preset_sets_signal_target_grace_and_shooter() -> None:
    options = RunOptions(argv=["prog"], stop="docker")
    plan = RunPlan.from_options(options)
    assert (plan.signal, plan.target, plan.grace, plan.shooter) == (signal.SIGTERM, Target("parent"), 10.0,
                                                                    "stop docker")
    assert plan.stop_name == "docker"
    assert (options.signal, options.target) == (None, None)  # the options stay as the user gave them


def test_grace_given_wins_over_the_preset() -> None:
    plan = RunPlan.from_options(RunOptions(argv=["prog"], stop="k8s", grace=2.0))
    assert plan.grace == 2.0


def test_without_a_preset_the_signal_is_gsup_s_own() -> None:
    plan = RunPlan.from_options(RunOptions(argv=["prog"], signal=signal.SIGINT, target=Target("child")))
    assert (plan.signal, plan.target, plan.grace, plan.shooter, plan.stop_name) == (
        signal.SIGINT, Target("child"), DEFAULT_GRACE, "gsup", None)


def test_the_plan_cannot_change() -> None:
    plan = RunPlan.from_options(RunOptions(argv=["prog"]))
    with pytest.raises(FrozenInstanceError):
        plan.grace = 1.0  # type: ignore[misc]


def test_the_matrix_pipe_is_taken_only_if_it_is_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """GSUP_MATRIX_STOPPING_FD leaves the environment (the program never sees it), and only
    a pipe above the standard streams is written to and closed once the signal is sent."""
    from supervisor.phases.plan import STOPPING_FD, take_stopping_fd

    read, write = os.pipe()
    regular = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT)
    try:
        os.set_inheritable(write, True)
        for value, expected in ((str(write), write), ("1", None), (str(regular), None), ("x", None)):
            monkeypatch.setenv(STOPPING_FD, value)
            assert take_stopping_fd() == expected
            assert STOPPING_FD not in os.environ
        assert not os.get_inheritable(write)  # the program does not get it
    finally:
        for fd in (read, write, regular):
            os.close(fd)
