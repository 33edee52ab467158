"""Before 3.11 only: tracebacks printed without the probe's wrapper frames."""

import sys

from . import PACKAGE


def _is_probe(frame):
    """Is ``frame`` running code of the probe (any of its parts)?"""
    name = frame.f_globals.get("__name__")
    return type(name) is str and name.partition(".")[0] == PACKAGE


def patch_traceback(mod):
    """Before 3.11 a re-raise keeps the wrapper's frame (see ``cut``): tracebacks
    the program prints itself (logging, traceback.print_exc) skip probe frames."""
    real_walk = getattr(mod, "walk_tb", None)
    if real_walk is None:
        return

    def walk_tb(tb):
        for frame, lineno in real_walk(tb):
            if not _is_probe(frame):
                yield frame, lineno

    walk_tb.__doc__ = real_walk.__doc__
    walk_tb.__module__ = "traceback"
    mod.walk_tb = walk_tb


def hide_probe_frames():
    """Before 3.11 a re-raised exception keeps the frame of the wrapper it passed
    through (see ``cut``), so a Ctrl-C landing in a probed ``os.waitpid``
    would print one extra line.  Unhandled exceptions reach ``sys.excepthook``
    with the full chain; this hook unlinks probe frames, then calls the real
    one.  It also stands in as ``sys.__excepthook__``, so identity checks such
    as ``sys.excepthook is sys.__excepthook__`` still hold.
    """
    real = sys.excepthook

    def strip_tb(tb):
        while tb is not None and _is_probe(tb.tb_frame):
            tb = tb.tb_next
        head = tb
        while tb is not None:
            nxt = tb.tb_next
            while nxt is not None and _is_probe(nxt.tb_frame):
                nxt = nxt.tb_next
            tb.tb_next = nxt
            tb = nxt
        return head

    def strip(exc, seen):
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            exc.__traceback__ = strip_tb(exc.__traceback__)
            strip(exc.__cause__, seen)
            exc = exc.__context__

    def excepthook(exc_type, value, tb):
        try:
            strip(value, set())
            tb = strip_tb(tb)
        except Exception:
            pass
        return real(exc_type, value, tb)

    excepthook.__name__ = excepthook.__qualname__ = "excepthook"
    sys.excepthook = sys.__excepthook__ = excepthook
    real_unraisable = sys.unraisablehook

    def unraisablehook(args):
        """Errors nobody can catch (a ``weakref.finalize`` callback the garbage
        collector runs, a ``__del__``) may have passed a watch wrapper too."""
        try:
            strip(args.exc_value, set())
            tb = strip_tb(args.exc_traceback)
            if tb is not args.exc_traceback:
                args = type(args)((args.exc_type, args.exc_value, tb, args.err_msg, args.object))
        except Exception:
            pass
        return real_unraisable(args)

    unraisablehook.__name__ = unraisablehook.__qualname__ = "unraisablehook"
    sys.unraisablehook = sys.__unraisablehook__ = unraisablehook
