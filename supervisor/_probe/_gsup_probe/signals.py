"""Signal handlers: each Python handler recorded when installed and each time it runs."""

from . import PY311, cut, js


def handler_name(handler):
    if handler == 0:
        return "SIG_DFL"
    if handler == 1:
        return "SIG_IGN"
    if handler is None:
        return "None"
    return getattr(handler, "__qualname__", None) or type(handler).__qualname__


def patch_signals(rec):
    """Patch ``_signal`` (what ``signal.signal`` calls) so each Python handler is
    recorded when installed and each time it runs; returns the patched getsignal."""
    import _signal

    originals = {}  # signal number -> (wrapper installed, original handler)
    real_signal, real_getsignal = _signal.signal, _signal.getsignal
    default_int = _signal.default_int_handler

    def unwrap(signum, handler):
        pair = originals.get(signum)
        return pair[1] if pair is not None and pair[0] is handler else handler

    def wrap_handler(signum, handler):
        # Before 3.11 a wrapper frame would show in the traceback of an exception
        # the handler raises; the default SIGINT handler raises KeyboardInterrupt
        # every time, so there it is left bare and its run is inferred instead.
        if not callable(handler) or (handler is default_int and not PY311):
            return handler

        def wrapper(signum, frame):
            rec.emit("sigrun", ',"sig":%d' % signum)
            try:
                return handler(signum, frame)
            except BaseException as exc:
                cut(exc)
                raise

        originals[signum] = (wrapper, handler)
        return wrapper

    def signal(signalnum, handler):
        previous = originals.get(signalnum)  # wrap_handler replaces it: unwrap ``old`` with this one
        try:
            old = real_signal(signalnum, wrap_handler(signalnum, handler))
        except BaseException as exc:
            originals.pop(signalnum, None)
            if previous is not None:
                originals[signalnum] = previous
            cut(exc)
            raise
        rec.emit("sig", ',"sig":%d,"handler":%s' % (signalnum, js(handler_name(handler))))
        return previous[1] if previous is not None and previous[0] is old else old

    def getsignal(signalnum):
        try:
            return unwrap(signalnum, real_getsignal(signalnum))
        except BaseException as exc:
            cut(exc)
            raise

    signal.__doc__ = real_signal.__doc__
    getsignal.__doc__ = real_getsignal.__doc__
    _signal.signal = signal
    _signal.getsignal = getsignal
    if PY311 and real_getsignal(2) is default_int:
        real_signal(2, wrap_handler(2, default_int))  # so a Ctrl-C is seen arriving
    return getsignal, originals


def handlers_noter(rec, getsignal, wrapped):
    """A function writing the Python handlers in place: at start, and again in a
    forked child, which inherits its parent's (their runs there are the child's own)."""

    def note_signal_handlers():
        for signum in sorted({2, 15, *wrapped}):
            rec.emit("sig0", ',"sig":%d,"handler":%s' % (signum, js(handler_name(getsignal(signum)))))

    return note_signal_handlers
