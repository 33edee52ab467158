"""gsup: run a Python program, signal its process tree, and report exactly which
exit handlers ran in which process and how each process ended.

Kept import-light on purpose: ``gsup --version`` must start fast, so the
command-line modules import rich and psutil only where they are needed.
"""

__version__ = "0.1.0"
