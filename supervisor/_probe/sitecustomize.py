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


def _hidden_sitecustomize():
    """Leave ``sys.path`` as the program would see it without gsup, and say
    whether another ``sitecustomize`` is there to import (``_chain_sitecustomize``).

    Our directory leaves ``sys.path`` first, so the program sees the path it
    would see without gsup and the next ``sitecustomize`` is found.  The
    search goes through every finder, as an import does, but it is only a
    search: it runs in the probe's start-up (``_start_unbroken``), where no
    signal cuts it short.  Without ``_find_spec`` (a later interpreter may
    move it), the import itself is the search.
    """
    sys.path[:] = [p for p in sys.path if p.rstrip("/") != _HERE]
    find = getattr(sys.modules.get("_frozen_importlib"), "_find_spec", None)
    if find is None:
        return True
    this = sys.modules.pop("sitecustomize", None)
    try:
        return find("sitecustomize", None) is not None
    finally:
        if this is not None:
            sys.modules["sitecustomize"] = this


def _chain_sitecustomize():
    """Import the ``sitecustomize`` this file hides, as ``site`` would have.

    Errors in it propagate, so ``site`` reports them exactly as it would have.
    """
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
    """Start the probe with every signal held back, so that it starts whole;
    True if another ``sitecustomize`` waits to be imported.

    A SIGINT landing at start-up (a Ctrl-C, a stress run's signal storm) used to
    raise KeyboardInterrupt half-way through, in the probe's own frames: the
    process died unrecorded, with the probe in its traceback.  Held back, it is
    delivered once the probe stands; a SIGINT that Python turns into an
    exception is raised once the probe's frames are gone (``_interrupt_later``).
    """
    import _signal

    sigint = _signal.SIGINT
    held = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    try:
        if events_dir and _PACKAGE not in sys.modules and _main_interpreter():
            import _gsup_probe  # enters sys.modules: the guard

            _gsup_probe.start(os, events_dir, __spec__)
        return _hidden_sitecustomize()
    finally:
        if sigint not in held and callable(_signal.getsignal(sigint)) and sigint in _signal.sigpending():
            _signal.sigtimedwait((sigint,), 0)  # taken here, raised when our frames are gone
            _interrupt_later()
        _signal.pthread_sigmask(_signal.SIG_SETMASK, held)


def _interrupt_later():
    """Raise KeyboardInterrupt again once this module's frames are gone.

    Raised in the probe's own frames, the interpreter's "Failed to import the
    site module" would print them.  The import system frees this module's
    code object right after the module has run: a weak reference's callback
    (C code: ``methodcaller`` calling ``_thread.interrupt_main``, no Python
    frame of ours) marks SIGINT as arrived at that moment, and the next check
    of pending signals happens in ``importlib``'s or ``site``'s frames,
    exactly where a plain interpreter interrupted at that moment shows it.
    """
    import _operator
    import _thread
    import _weakref

    class Later(_weakref.ref):
        __slots__ = ()
        interrupt = staticmethod(_thread.interrupt_main)

    frame = sys._getframe()
    while frame.f_globals is not globals() or frame.f_code.co_name != "<module>":
        frame = frame.f_back
    global _later
    _later = Later(frame.f_code, _operator.methodcaller("interrupt"))


def _ours(exc):
    """Did ``exc`` arise in the probe's frames or in the import system's (not in
    the program's own ``sitecustomize``)?"""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is None or tb.tb_frame.f_code.co_filename.startswith((_HERE + "/", "<frozen importlib."))


def _main():
    """Start the probe, then import the ``sitecustomize`` it hides, if any."""
    chain = True
    try:
        import os

        chain = _start_unbroken(os, os.environ.get("GSUP_EVENTS"))
    except Exception:
        pass
    finally:
        # Off (or failed): still once.  A second run of this file (site run again,
        # the path listed twice) finds the package there and only chains.
        sys.modules.setdefault(_PACKAGE, sys.modules.get(__name__))
    if chain:
        try:
            _chain_sitecustomize()
        except KeyboardInterrupt as exc:
            if not _ours(exc):
                raise
            _interrupt_later()


_main()
