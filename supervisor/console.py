"""The ``gsup`` console script.

``gsup --version`` and ``gsup ps`` answer here, before click is imported:
scripts call the first to check for gsup and poll the second, and importing
click alone costs more than Python's start-up.  ``gsup ps`` goes through
:mod:`supervisor.ps`, which hands back to click whenever it cannot be sure to
print what click would.  Everything else goes to :mod:`supervisor.cli`.
"""

import os
import sys

from supervisor import __version__


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(f"gsup, version {__version__}")
        return
    if sys.argv[1:] == ["ps"] and not _completing():
        from supervisor import ps

        if ps.main():
            return
    from supervisor.cli import entry

    entry()


def _completing() -> bool:
    """Is click's shell completion asking (``_GSUP_COMPLETE=...``)? Then click must answer."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)
