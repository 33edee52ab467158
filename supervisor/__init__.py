"""gsup: run a Python program, signal its process tree, and report exactly which
exit handlers ran in which process and how each process ended.

Kept import-light on purpose: ``gsup --version`` must start fast, so the
command-line modules import rich and psutil only where they are needed.
"""

__version__ = "0.1.0"

# The Python API (``from supervisor import run, matrix``), loaded on first use:
# importing the package must stay as cheap as ``gsup --version`` needs.
_API = {"run": "supervisor.api", "matrix": "supervisor.api", "Gsup": "supervisor.api",
        "RunError": "supervisor.api", "RunTimeout": "supervisor.api", "Report": "supervisor.model",
        "MatrixReport": "supervisor.matrix_report"}
__all__ = ["Gsup", "MatrixReport", "Report", "RunError", "RunTimeout", "__version__", "matrix", "run"]


def __getattr__(name: str) -> object:
    if name not in _API:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
