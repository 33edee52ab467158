"""How a process's ending is worded: one table for every place that shows one.

An ending (``End.how`` with its code, signal or reason) is shown in three places,
each in its own grammar.  Users and CI logs read these words and the tests compare
them exactly, so they stand side by side here (``explain.py`` writes whole
explanations, prose of its own):

* ``phrase``: the rich view, after ``ended:`` (``killed by SIGKILL``);
* ``sentence``: an expectation's observation, after the process's name
  (``child (pid 12) was killed by SIGKILL``);
* ``cell``: a ``gsup matrix`` cell, as short as it can be (``SIGKILL``).

The rich view and the matrix also colour an ending the same way (``style``).
"""

from __future__ import annotations

from supervisor.model import EXEC, EXITED, LEFT_RUNNING, OS_EXIT, SIGNALED, UNKNOWN, End

# how -> (phrase, sentence, cell), filled with the End's {code}, {signal} and {reason}
WORDS: dict[str, tuple[str, str, str]] = {
    EXITED: ("exited {code}", "exited {code}", "exit {code}"),
    SIGNALED: ("killed by {signal}", "was killed by {signal}", "{signal}"),
    OS_EXIT: ("os._exit({code})", "called os._exit({code})", "os._exit({code})"),
    LEFT_RUNNING: ("left running", "was left running", "left running"),
    EXEC: ("exec", "replaced itself by exec", "exec"),
    UNKNOWN: ("unknown", "ended in an unknown way ({reason})", "unknown"),
}
_PHRASE, _SENTENCE, _CELL = range(3)


def phrase(end: End) -> str:
    """``exited 0``, ``killed by SIGKILL``, ``left running, then SIGKILL``: how gsup
    ended a left-running process reads as the signal's bare name, or how it exited."""
    words = _filled(end, _PHRASE)
    if end.how == LEFT_RUNNING and end.then is not None:
        words += f", then {end.then.signal or phrase(end.then)}"
    return words


def sentence(end: End) -> str:
    """``was killed by SIGKILL``, ``was left running, then ended by gsup (was killed by SIGKILL)``;
    an ending this gsup does not know reads as an unknown one."""
    words = _filled(end if end.how in WORDS else End(UNKNOWN, reason=end.reason), _SENTENCE)
    if end.how == LEFT_RUNNING and end.then is not None:
        words += f", then ended by gsup ({sentence(end.then)})"
    return words


def cell(end: End) -> str:
    """``exit 0``, ``SIGKILL``, ``os._exit(3)``, ``left running``, ``exec``, ``unknown``."""
    return _filled(end, _CELL)


def style(end: End) -> str:
    """Green for the one ending that went as planned, exit 0; yellow for every other."""
    return "green" if end.how == EXITED and end.code == 0 else "yellow"


def _filled(end: End, form: int) -> str:
    """``end`` in ``form``; an ending missing from the table is shown as its own name."""
    if end.how not in WORDS:
        return end.how
    return WORDS[end.how][form].format(code=end.code, signal=end.signal, reason=end.reason or "no status")
