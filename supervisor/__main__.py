"""``python -m supervisor``: the same as the ``gsup`` command."""

from supervisor.cli import entry

entry()
