"""Unit tests of the value parsers in ``supervisor.options``.

Every invalid value must raise :class:`GsupError` (exit code USAGE) with a
message that names the value the user typed, so the CLI's one line is useful.
"""

from __future__ import annotations

import signal

import pytest

from supervisor.errors import ExitCode, GsupError
from supervisor.options import Target, parse_duration, parse_signal, parse_target

# -- parse_duration -------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("3", 3.0),
    ("3s", 3.0),
    ("0", 0.0),
    ("0.25", 0.25),
    ("500ms", 0.5),
    ("1m", 60.0),
    ("1.5h", 5400.0),
    (" 3s ", 3.0),
    ("\t500ms\n", 0.5),
    ("3S", 3.0),
    ("500MS", 0.5),
    ("2M", 120.0),
    ("1H", 3600.0),
])
def test_parse_duration_valid(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1", "-1s", "abc", "3x", "inf", "infs", "nan", "nanms", "", "   ", "s", "ms",
                                  "1e400", "3 s s"])
def test_parse_duration_invalid_names_the_value(text: str) -> None:
    with pytest.raises(GsupError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)
    assert "invalid duration" in str(caught.value)
    assert caught.value.exit_code == ExitCode.USAGE


# -- parse_signal ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("9", signal.SIGKILL),
    ("15", signal.SIGTERM),
    ("KILL", signal.SIGKILL),
    ("SIGKILL", signal.SIGKILL),
    ("kill", signal.SIGKILL),
    ("sigkill", signal.SIGKILL),
    ("term", signal.SIGTERM),
    ("HUP", signal.SIGHUP),
    ("SIGUSR1", signal.SIGUSR1),
    (" INT ", signal.SIGINT),
])
def test_parse_signal_valid(text: str, expected: signal.Signals) -> None:
    parsed = parse_signal(text)
    assert parsed is expected
    assert isinstance(parsed, signal.Signals)


def test_signal_zero_is_not_a_signal_member() -> None:
    # signal.Signals(0) raises ValueError: 0 is the "does it exist" probe of
    # kill(2), not a signal, and gsup must refuse it rather than send nothing.
    with pytest.raises(ValueError):
        signal.Signals(0)


@pytest.mark.parametrize("text", ["0", "99", "FOO", "SIG", "SIGFOO", "", "  ", "-9", "+9", "9.0", "KILL9",
                                  "9" * 5000])
def test_parse_signal_invalid_names_the_value(text: str) -> None:
    with pytest.raises(GsupError) as caught:
        parse_signal(text)
    message = str(caught.value)
    assert "invalid signal" in message
    if len(text) < 100:
        assert repr(text) in message
    assert caught.value.exit_code == ExitCode.USAGE


# -- parse_target ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("parent", Target("parent")),
    ("child", Target("child")),
    ("group", Target("group")),
    ("tree", Target("tree")),
    ("pid:42", Target("pid", 42)),
    ("PARENT", Target("parent")),
    (" tree ", Target("tree")),
    ("PID:7", Target("pid", 7)),
])
def test_parse_target_valid(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


def test_target_str_round_trips() -> None:
    for text in ("parent", "child", "group", "tree", "pid:42"):
        assert str(parse_target(text)) == text


@pytest.mark.parametrize("text", ["pid:", "pid:0", "pid:x", "pid:-1", "pid: 4", "pid:4.5", "kid", "", "pid",
                                  "42", "parents"])
def test_parse_target_invalid_names_the_value(text: str) -> None:
    with pytest.raises(GsupError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert "invalid target" in message
    assert repr(text) in message
    assert caught.value.exit_code == ExitCode.USAGE
