"""atexit and threading's exit callbacks: each handler's registration, and a *begin* and an *end* around its run."""

import sys

from . import PY310, cut, describe, js, partial


class HookProxy:
    """``sys.unraisablehook`` while a handler runs: notes its exception, then
    hands it to the hook that was in place, so the printed text is unchanged."""

    def __init__(self, hook, exits):
        self.hook = hook
        self.exits = exits

    def __call__(self, args):
        msg = args.err_msg or ""
        current = self.exits.current
        if current is not None and (
            msg.startswith("Exception ignored in atexit callback")
            or (args.err_msg is None and args.object is sys.modules.get("threading"))
            or msg.startswith("Exception ignored on threading shutdown")  # 3.13
        ):
            self.exits.rec.emit("raise", ',"h":%d,"exc":%s' % (current, js(args.exc_type.__qualname__)))
        return self.hook(args)


class Wrapped:
    """Python 3.9 only: its atexit reports a handler's error to no hook, so the
    handler is wrapped, and the error printed as 3.9's atexit prints it (same
    text, same stream) without the wrapper's frame."""

    __slots__ = ("hid", "func", "exits")

    def __init__(self, hid, func, exits):
        self.hid = hid
        self.func = func
        self.exits = exits

    def __call__(self, *args, **kwargs):
        self.exits.begin(self.hid)
        try:
            result = self.func(*args, **kwargs)
        except BaseException as exc:
            self.exits.rec.emit("raise", ',"h":%d,"exc":%s' % (self.hid, js(type(exc).__qualname__)))
            if not isinstance(exc, SystemExit):
                sys.stderr.write("Error in atexit._run_exitfuncs:\n")
                cut(exc)
                self.exits.real_excepthook(type(exc), exc, exc.__traceback__)
            return None
        self.exits.end(self.hid)
        return result

    def __eq__(self, other):
        return self.func == other

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return repr(self.func)


class Exits:
    """Every exit handler registered in this process, and its begin/end events."""

    def __init__(self, rec, atexit):
        self.rec = rec
        self.handlers = {}  # handler id -> [func, kind, begin marker, end marker, began at]
        self.ids = rec.count()
        self.current = None
        self.exit_noted = False
        self.real_register = atexit.register
        self.real_excepthook = sys.__excepthook__

    def new(self, func, kind):
        """A handler's id and entry: [func, kind, begin marker, end marker, began at].

        The marker is registered just before and after the handler, so the
        handler itself stays what atexit calls: tracebacks and ``unregister``
        are untouched.  One C ``partial`` serves both places (its first call
        begins, its second ends): the cheapest callable to make, and one object
        less per handler for the garbage collector to walk.
        """
        hid = next(self.ids)  # atomic: two threads registering at once never share an id
        marker = partial(self.mark, hid)
        entry = self.handlers[hid] = [func, kind, marker, marker, None]
        self.rec.emit("reg", ',"h":%d,"kind":"%s"%s' % (hid, kind, describe(func)))
        return hid, entry

    def note_exit(self):
        """Record, once, that the atexit phase began and the exception it began with."""
        if self.exit_noted:
            return
        self.exit_noted = True
        exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        self.rec.emit("exit", ',"exc":%s' % js(type(exc).__qualname__) if exc is not None else "")

    def mark(self, hid):
        if self.handlers[hid][4] is None:
            self.begin(hid)
        else:
            self.end(hid)

    def begin(self, hid):
        entry = self.handlers[hid]
        if entry[1] == "atexit":
            self.note_exit()  # threading callbacks run earlier, before thread joins
        self.current = hid
        if not isinstance(sys.unraisablehook, HookProxy):
            sys.unraisablehook = HookProxy(sys.unraisablehook, self)
        entry[4] = self.rec.monotonic()
        self.rec.emit("begin", ',"h":%d' % hid)

    def end(self, hid):
        entry = self.handlers[hid]
        began, entry[4] = entry[4], None
        duration = self.rec.monotonic() - began if began is not None else 0.0
        self.rec.emit("end", ',"h":%d,"dur":%.6f' % (hid, duration))
        self.current = None
        if isinstance(sys.unraisablehook, HookProxy):
            sys.unraisablehook = sys.unraisablehook.hook

    def done(self):
        self.note_exit()
        self.rec.emit("done")

    def register_done(self):
        """The probe's own last handler: registered first, it runs last."""
        self.real_register(self.done)

    def patch_threading(self, mod):
        """``threading._register_atexit`` callbacks run first, inside
        ``threading._shutdown``; bracket them with markers the same way."""
        real = getattr(mod, "_register_atexit", None)
        if real is None:
            return

        def _register_atexit(func, *args, **kwargs):
            hid, entry = self.new(func, "threading")
            call = partial(func, *args, **kwargs)

            def callback():
                # multiprocessing's _bootstrap calls threading._shutdown() itself: a raise
                # there reaches no hook (as it does at interpreter exit), so it is noted here.
                try:
                    return call()
                except BaseException as exc:
                    if self.current == hid:
                        self.rec.emit("raise", ',"h":%d,"exc":%s' % (hid, js(type(exc).__qualname__)))
                        self.current = None
                    entry[4] = None  # no end marker follows: a second run must begin again
                    cut(exc)
                    raise

            real(entry[3])
            real(callback)
            real(entry[2])

        mod._register_atexit = _register_atexit


def patch_atexit(rec):
    import atexit

    exits = Exits(rec, atexit)
    handlers = exits.handlers
    real_register, real_unregister, real_clear = atexit.register, atexit.unregister, atexit._clear

    def register(func, *args, **kwargs):
        try:
            if not callable(func):
                return real_register(func, *args, **kwargs)  # let atexit raise its TypeError
            hid, entry = exits.new(func, "atexit")
            if not PY310:
                real_register(Wrapped(hid, func, exits), *args, **kwargs)
                return func
            real_register(entry[3])
            real_register(func, *args, **kwargs)
            real_register(entry[2])
            return func
        except BaseException as exc:
            cut(exc)
            raise

    def unregister(func):
        try:
            real_unregister(func)
        except BaseException as exc:
            cut(exc)
            raise
        for hid, entry in list(handlers.items()):
            try:
                same = entry[1] == "atexit" and entry[0] == func
            except Exception:
                same = False
            if same:
                real_unregister(entry[2])
                real_unregister(entry[3])
                entry[1] = "gone"
                rec.emit("unreg", ',"h":%d' % hid)

    def clear():
        real_clear()
        for hid, entry in handlers.items():
            if entry[1] == "atexit":
                entry[1] = "gone"
                rec.emit("unreg", ',"h":%d' % hid)
        exits.register_done()

    for name, fn, real in (("register", register, real_register), ("unregister", unregister, real_unregister),
                           ("_clear", clear, real_clear)):
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = real.__doc__
        setattr(atexit, name, fn)
    return exits
