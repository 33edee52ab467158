"""The ``gsup`` console script.

``gsup --version`` answers here, before click is imported: scripts call it to
check for gsup, and importing click alone costs more than Python's start-up.
Everything else goes to :mod:`supervisor.cli`.
"""

import sys

from supervisor import __version__


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(f"gsup, version {__version__}")
        return
    from supervisor.cli import entry

    entry()
