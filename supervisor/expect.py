"""``--expect``: claims about a run, checked against its report.

A claim is a short sentence, so that a CI log reads like what was meant::

    child: shutdown not run            parent: all handlers ran
    parent: exit 0                     child: killed by KILL
    any child: worker_exit ran         child: save raised OSError
    no leftovers                       nothing interrupted
    complete

Grammar (keywords are case-insensitive, handler names are not)::

    EXPECT   := [any|every] ROLE ":" CLAIM  |  no leftovers  |  nothing interrupted  |  complete
    ROLE     := parent | child | grandchild | unknown          (the report's roles)
    CLAIM    := [handler] NAME ran                    began and finished without raising
              | [handler] NAME not run                never began (also: did not run, never ran)
              | [handler] NAME raised [EXCEPTION]     began and raised (that exception)
              | all handlers ran                      every registered handler ran
              | nothing interrupted                   no handler began without finishing
              | exit N                                exit status N (also: exited N, exit code N)
              | killed by SIG | signal SIG            died by SIG: 9, KILL or SIGKILL

``ROLE:`` means every process of that role, and there must be at least one;
``any ROLE:`` means at least one of them.  NAME is a handler's ``__qualname__``
(``shutdown``) or its module-qualified label (``logging.shutdown``), or a
watched function's; the label wins (``shutdown`` is the program's own, not
logging's) unless no label in the report is NAME.  Each claim only reads the report: ``parse`` and
``evaluate`` are pure, so they are tested without running anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from supervisor import wording
from supervisor.errors import GsupError
from supervisor.model import (
    EXEC,
    EXITED,
    INTERRUPTED,
    OS_EXIT,
    RAISED,
    RAN,
    SIGNALED,
    UNREGISTERED,
    ExpectationResult,
    Handler,
    Process,
    Report,
)
from supervisor.options import parse_signal
from supervisor.records import dataclass

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Callable, NoReturn, Optional

ROLES = ("parent", "child", "grandchild", "unknown")
GRAMMAR = ("use '[any] ROLE: CLAIM' with ROLE parent, child, grandchild or unknown and CLAIM one of "
           "'NAME ran', 'NAME not run', 'NAME raised [EXCEPTION]', 'all handlers ran', 'nothing interrupted', "
           "'exit N', 'killed by SIG'; or 'no leftovers', 'nothing interrupted', 'complete'")

# The grammar's patterns, compiled on the first --expect read: a run without --expect
# (most runs) does not pay for compiling them before its program starts.
_SCOPED = r"^(?:(?P<quantifier>any|every)\s+)?(?P<role>[^:]+?)\s*:\s*(?P<claim>.*)$"
_CLAIMS = [
    ("all-ran", r"all handlers ran"),
    ("nothing-interrupted", r"nothing interrupted"),
    ("exit", r"exit(?:ed)?(?:\s+code)?\s+(?P<code>\S+)"),
    ("signal", r"(?:killed\s+by|signal(?:ed)?(?:\s+by)?)\s+(?P<signal>\S+)"),
    ("not-run", r"(?:handler\s+)?(?P<name>\S+)\s+(?:not\s+run|did\s+not\s+run|never\s+ran)"),
    ("raised", r"(?:handler\s+)?(?P<name>\S+)\s+raised(?:\s+(?P<exception>\S+))?"),
    ("ran", r"(?:handler\s+)?(?P<name>\S+)\s+ran"),
]
_GLOBAL = {"no leftovers": "no-leftovers", "nothing interrupted": "nothing-interrupted", "complete": "complete"}


@dataclass(frozen=True)
class Expectation:
    """One parsed ``--expect``: ``kind`` says what is claimed, the rest its arguments."""

    text: str
    kind: str  # ran, not-run, raised, all-ran, nothing-interrupted, exit, signal, no-leftovers, complete
    role: Optional[str] = None  # None: about the whole report
    any: bool = False  # at least one process of the role, instead of every one
    name: Optional[str] = None  # handler name
    exception: Optional[str] = None
    code: Optional[int] = None
    signal: Optional[str] = None  # "SIGKILL"


def parse(text: str) -> Expectation:
    """One ``--expect`` value → :class:`Expectation`; GsupError (exit 2) naming the grammar."""
    words = " ".join(text.split())
    kind = _GLOBAL.get(words.lower())
    if kind is not None:
        return Expectation(text=words, kind=kind)
    scoped = re.match(_SCOPED, words, re.IGNORECASE)  # re caches it: compiled once
    if scoped is None:
        _bad(text, "no 'ROLE:' and not a whole-run claim")
    role = scoped["role"].lower()
    if role not in ROLES:
        _bad(text, f"unknown role {scoped['role']!r}")
    claim = scoped["claim"]
    for kind, pattern in _CLAIMS:  # re's cache holds each once compiled
        found = re.fullmatch(pattern, claim, re.IGNORECASE)
        if found is not None:
            return _build(words, kind, role, (scoped["quantifier"] or "").lower() == "any", found)
    _bad(text, f"unknown claim {claim!r}" if claim else "nothing after 'ROLE:'")


def parse_all(texts: Iterable[str]) -> list[Expectation]:
    return [parse(text) for text in texts]


def _build(text: str, kind: str, role: str, any_: bool, found: re.Match[str]) -> Expectation:
    fields = found.groupdict()
    code, signal = None, None
    if kind == "exit":
        if not fields["code"].isdigit() or int(fields["code"]) > 255:
            _bad(text, f"exit status {fields['code']!r} is not 0-255")
        code = int(fields["code"])
    if kind == "signal":
        try:
            signal = parse_signal(fields["signal"]).name
        except GsupError:
            _bad(text, f"unknown signal {fields['signal']!r} (use 9, KILL or SIGKILL)")
    return Expectation(text=text, kind=kind, role=role, any=any_, name=fields.get("name"),
                       exception=fields.get("exception"), code=code, signal=signal)


def _bad(text: str, why: str) -> NoReturn:
    raise GsupError(f"invalid --expect {text!r}: {why}; {GRAMMAR}")


def failure_lines(results: Iterable[ExpectationResult]) -> list[str]:
    """What gsup prints on stderr for each expectation that did not hold."""
    lines = []
    for result in results:
        if not result.ok:
            lines += [f"gsup: expectation failed: {result.text}", f"  expected: {result.expected}",
                      f"  observed: {result.observed}"]
    return lines


# -- evaluation ----------------------------------------------------------------------------


@dataclass
class _Verdict:
    """What one process (all images of one pid) showed for one claim."""

    ok: bool
    observed: str


def evaluate(expectations: Iterable[Expectation], report: Report) -> list[ExpectationResult]:
    """Each expectation checked against ``report``, in the order given."""
    return [_evaluate(expectation, report) for expectation in expectations]


def _evaluate(expectation: Expectation, report: Report) -> ExpectationResult:
    if expectation.role is None:
        ok, observed = _WHOLE_RUN[expectation.kind](report)
        return ExpectationResult(expectation.text, ok, _expected(expectation), observed)
    groups = _by_pid([p for p in report.processes if p.role == expectation.role])
    if not groups:
        present = ", ".join(f"{p.pid} {p.role}" for p in report.processes) or "none"
        observed = f"no {expectation.role} process in the report (processes: {present})"
        return ExpectationResult(expectation.text, False, _expected(expectation), observed)
    verdicts = [_check(expectation, images, report) for images in groups]
    ok = any(v.ok for v in verdicts) if expectation.any else all(v.ok for v in verdicts)
    shown = verdicts if ok or expectation.any else [v for v in verdicts if not v.ok]
    return ExpectationResult(expectation.text, ok, _expected(expectation), " | ".join(v.observed for v in shown))


def _by_pid(processes: list[Process]) -> list[list[Process]]:
    """Report entries grouped into processes: an ``exec`` adds an image to the same pid."""
    groups: list[list[Process]] = []
    open_: dict[int, list[Process]] = {}
    for proc in processes:
        group = open_.get(proc.pid)
        if group is None or group[-1].end.how != EXEC:
            group = []
            groups.append(group)
            open_[proc.pid] = group
        group.append(proc)
    return groups


def _expected(expectation: Expectation) -> str:
    role = expectation.role or ""
    who = role if role == "parent" else f"at least one {role}" if expectation.any else f"every {role}"
    templates = {
        "ran": f"{who} ran {expectation.name}",
        "not-run": f"{who} did not run {expectation.name}",
        "raised": f"{expectation.name} raised {expectation.exception or 'an exception'} in {who}",
        "all-ran": f"{who} ran every handler it registered",
        "nothing-interrupted": f"no handler was cut off in {who}" if role else "no handler was cut off anywhere",
        "exit": f"{who} exited with status {expectation.code}",
        "signal": f"{who} was killed by {expectation.signal}",
        "no-leftovers": "nothing left running once the launched process had ended",
        "complete": "a complete report (gsup saw every process end)",
    }
    return templates[expectation.kind]


# -- per-process checks ----------------------------------------------------------------------


def _who(images: list[Process]) -> str:
    return f"{images[0].role} (pid {images[0].pid})"


def _entries(images: list[Process]) -> list[Handler]:
    """Handlers and watched calls of every image of one process."""
    return [h for proc in images for h in [*proc.handlers, *proc.watched]]


def _began(handlers: list[Handler]) -> list[Handler]:
    """Those that began: exit handlers in the order they began, then watched calls in theirs."""
    began = (h for h in handlers if h.status in (RAN, RAISED, INTERRUPTED))
    return sorted(began, key=lambda h: (h.kind == "watched", h.order or 0))


def _summary(images: list[Process], note: str = "") -> str:
    """``child (pid 12) was killed by SIGKILL before any handler; shutdown not run; ran: none``."""
    entries = _entries(images)
    began = _began(entries)
    before = " before any handler" if entries and not began else ""
    ran = [h.label for h in began if h.status == RAN]
    return f"{_who(images)} {wording.sentence(images[-1].end)}{before}{note}; ran: {', '.join(ran) or 'none'}"


def _blind(images: list[Process]) -> Optional[_Verdict]:
    """A process the probe did not see into: no handler claim about it can hold."""
    for proc in images:
        if not proc.instrumented:
            why = proc.uninstrumented_reason or "no probe"
            return _Verdict(False, f"{_who(images)} was not instrumented ({why}): its handlers are unknown")
    return None


def _named(expectation: Expectation, images: list[Process], report: Report) -> list[Handler]:
    """Entries called NAME: by label if any entry of the report has that label (so ``shutdown``
    is the program's own, not ``logging.shutdown``), else by bare ``__qualname__``."""
    everywhere = _entries(report.processes)
    by_label = any(h.label == expectation.name for h in everywhere)
    return [h for h in _entries(images) if (h.label if by_label else h.name) == expectation.name]


def _known_anywhere(name: Optional[str], report: Report) -> bool:
    """Registered somewhere, or a function the run watched: a claim that it did
    not run is then meaningful, where an unknown name is more likely a typo."""
    watched = {n for full in report.watching for n in (full, full.rpartition(".")[2])}
    return name in watched or any(name in (h.name, h.label) for h in _entries(report.processes))


def _check(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    """One process against one claim; a claim about handlers cannot hold where the probe was not."""
    blind = _blind(images) if expectation.kind not in ("exit", "signal") else None
    return blind or _CHECKS[expectation.kind](expectation, images, report)


def _check_ran(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    named = _named(expectation, images, report)
    ok = any(h.status == RAN for h in named)
    return _Verdict(ok, _summary(images, _status_note(expectation.name, named)))


def _check_not_run(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    if not _known_anywhere(expectation.name, report):
        return _Verdict(False, f"no handler named {expectation.name} in any process of the report "
                               f"(a typo?); {_summary(images)}")
    named = _named(expectation, images, report)
    began = _began(named)
    return _Verdict(not began, _summary(images, _status_note(expectation.name, named)))


def _check_raised(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    named = _named(expectation, images, report)
    wanted = expectation.exception
    ok = any(h.status == RAISED and (wanted is None or _same_exception(h.exception, wanted)) for h in named)
    return _Verdict(ok, _summary(images, _status_note(expectation.name, named)))


def _same_exception(seen: Optional[str], wanted: str) -> bool:
    return seen is not None and (seen == wanted or seen.rsplit(".", 1)[-1] == wanted)


def _status_note(name: Optional[str], named: list[Handler]) -> str:
    if not named:
        return f"; {name} was never registered there"
    return "; " + ", ".join(f"{h.label} {_status(h)}" for h in named)


def _status(handler: Handler) -> str:
    """``not run``, ``raised OSError``: a status as a phrase."""
    if handler.status == RAISED and handler.exception:
        return f"raised {handler.exception}"
    return handler.status.replace("-", " ")


def _check_all_ran(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    registered = [h for proc in images for h in proc.handlers if h.status != UNREGISTERED]
    opaque = sum(proc.opaque_handlers for proc in images)
    note = f"; {opaque} registered before the probe loaded, not observable" if opaque else ""
    if not registered:
        return _Verdict(True, f"{_who(images)} {wording.sentence(images[-1].end)}; no handler registered{note}")
    missed: dict[str, list[str]] = {}
    for h in reversed(registered):  # the order atexit calls them in
        if h.status != RAN:
            missed.setdefault(h.status.replace("-", " "), []).append(
                h.label + (f" ({h.exception})" if h.status == RAISED and h.exception else ""))
    missing = "".join(f"; {status}: {', '.join(labels)}" for status, labels in missed.items())
    return _Verdict(not missed, f"{_summary(images)}{missing}{note}")


def _check_nothing_interrupted(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    cut = [h.label for h in _entries(images) if h.status == INTERRUPTED]
    return _Verdict(not cut, f"{_summary(images)}; interrupted: {', '.join(cut) or 'none'}")


def _check_exit(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    end = images[-1].end
    ok = end.how in (EXITED, OS_EXIT) and end.code == expectation.code
    return _Verdict(ok, _summary(images))


def _check_signal(expectation: Expectation, images: list[Process], report: Report) -> _Verdict:
    end = images[-1].end
    return _Verdict(end.how == SIGNALED and end.signal == expectation.signal, _summary(images))


if TYPE_CHECKING:
    Check = Callable[[Expectation, list[Process], Report], _Verdict]


_CHECKS: dict[str, Check] = {
    "ran": _check_ran, "not-run": _check_not_run, "raised": _check_raised, "all-ran": _check_all_ran,
    "nothing-interrupted": _check_nothing_interrupted, "exit": _check_exit, "signal": _check_signal,
}


# -- whole-run checks --------------------------------------------------------------------------


def _no_leftovers(report: Report) -> tuple[bool, str]:
    if not report.leftovers:
        return True, "nothing was left running"
    return False, f"left running after the grace, then ended by gsup: {', '.join(map(str, report.leftovers))}"


def _nothing_interrupted(report: Report) -> tuple[bool, str]:
    cut = [f"{h.label} in {p.role} (pid {p.pid})" for p in report.processes for h in _entries([p])
           if h.status == INTERRUPTED]
    blind = [str(p.pid) for p in report.processes if not p.instrumented]
    unseen = f" (not instrumented, so unknown: {', '.join(blind)})" if blind else ""
    if cut:
        return False, f"interrupted: {'; '.join(cut)}{unseen}"
    return True, f"no handler was interrupted{unseen}"


def _complete(report: Report) -> tuple[bool, str]:
    if not report.incomplete:
        return True, "the report is complete"
    return False, "incomplete: " + "; ".join(report.incomplete)


_WHOLE_RUN: dict[str, Callable[[Report], tuple[bool, str]]] = {
    "no-leftovers": _no_leftovers, "nothing-interrupted": _nothing_interrupted, "complete": _complete,
}

