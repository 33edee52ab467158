"""gsup's exit codes and the one error type that carries them.

The program's own outcome is in the report (``processes[role=parent].end``);
gsup's exit code only says whether gsup did its job, so CI can tell "the
service misbehaved" from "the instrument failed".
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented in README.md, section "Exit codes"; tested in tests/test_exit_codes.py."""

    OK = 0  # the report is complete, whatever the program did
    EXPECTATION_FAILED = 1  # an --expect did not hold (the report says which)
    USAGE = 2  # bad input: nothing was run, or nothing was signalled
    INCOMPLETE = 3  # gsup failed part-way; a partial report says what is missing
    NOT_READY = 4  # a --ready-* condition never came within --ready-timeout; the tree is still reported
    INTERRUPTED = 130  # 128 + SIGINT: gsup was interrupted before it could report
    OUTPUT_CLOSED = 141  # 128 + SIGPIPE: gsup's reader went away (``| head``); the run still completed


class GsupError(Exception):
    """An error meant for the user: one line on stderr, then ``exit_code``."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
