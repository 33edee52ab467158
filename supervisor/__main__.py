"""``python -m supervisor``: the same as the ``gsup`` command."""

from supervisor.console import main

main()
