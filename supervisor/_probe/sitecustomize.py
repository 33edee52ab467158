"""gsup's probe, entry point: ``site`` imports this file as ``sitecustomize`` in every Python process of the tree.

gsup prepends this directory to ``PYTHONPATH`` and names an events directory in
``GSUP_EVENTS``; this file hands over to the ``_gsup_probe`` package next to it
(its ``apply_patches`` says what is patched, in order), then imports
the ``sitecustomize`` it hides.  It stays small and compiles on any interpreter:
nothing here may fail the host, and an old one simply runs without the probe.
"""

import sys

_HERE = __file__.rpartition("/")[0]
_PACKAGE = "_gsup_probe"  # in sys.modules: the once-only guard


def _chain_sitecustomize():
    """Import the ``sitecustomize`` this file hides, as ``site`` would have.

    Our directory leaves ``sys.path`` first, so the program sees the path it
    would see without gsup and the next ``sitecustomize`` is found.  Errors in
    it propagate, so ``site`` reports them exactly as it would have.
    """
    sys.path[:] = [p for p in sys.path if p.rstrip("/") != _HERE]
    this = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the next one on sys.path)
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        if this is not None:
            sys.modules["sitecustomize"] = this


def _main_interpreter():
    """Subinterpreters run ``site`` too; they are not processes, and the probe stays out of them.

    Only the main thread of the main interpreter may set ``signal``'s wakeup fd:
    setting it to what it is at start-up (-1) tells them apart at no cost."""
    import _signal

    try:
        old = _signal.set_wakeup_fd(-1)
    except ValueError:
        return False
    if old != -1:
        _signal.set_wakeup_fd(old)
    return True


def _start_unbroken(os, events_dir):
    """Start the probe with every signal held back, so that it starts whole.

    A SIGINT landing at start-up (a Ctrl-C, a stress run's signal storm) used to
    raise KeyboardInterrupt half-way through, in the probe's own frames: the
    process died unrecorded, with the probe in its traceback.  Held back, it is
    delivered once the probe stands, and the process is recorded as it ends.
    """
    import _signal

    held = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    try:
        import _gsup_probe  # enters sys.modules: the guard

        _gsup_probe.start(os, events_dir, __spec__)
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, held)


def _main():
    if _PACKAGE in sys.modules:
        return  # a second run of site in this process (subinterpreter, path listed twice)
    try:
        import os

        events_dir = os.environ.get("GSUP_EVENTS")
        if events_dir and _main_interpreter():
            _start_unbroken(os, events_dir)
    except Exception:
        pass
    sys.modules.setdefault(_PACKAGE, sys.modules.get(__name__))  # off (or failed): still once


_main()
_chain_sitecustomize()
