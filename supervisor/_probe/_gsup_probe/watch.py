"""Watched functions (``--watch MODULE:QUALNAME`` and the built-in sets): a *begin* and an *end* around each call.

Loaded by the package (``_load_watch``) only when a watched module is first imported, and
dropped from ``sys.modules`` at once: it reaches the package's names as ``from . import name``.
"""

import sys

from . import FUNCTION, WRAPPED, cut, describe, innermost, js, where

# gunicorn's server hooks that run while workers and the master stop.
GUNICORN_HOOKS = frozenset(("on_exit", "worker_exit", "worker_int", "worker_abort", "child_exit"))
# Celery's shutdown signals: the main process on TERM/INT/QUIT, each pool process as it
# ends, the main process at the end of a warm shutdown.
CELERY_SIGNALS = frozenset(("worker_shutting_down", "worker_process_shutdown", "worker_shutdown"))

_CO_GENERATOR, _CO_COROUTINE, _CO_ITERABLE_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x100, 0x200


def _lookup(module, path):
    """``(owner, name, raw attribute)`` for a dotted ``path`` in ``module`` (raw is
    None when missing).  A class attribute is read from the ``__dict__`` of the
    class or the base defining it, so a classmethod or staticmethod is seen as one."""
    parts = path.split(".")
    owner = module
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None, parts[-1], None
    name = parts[-1]
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in klass.__dict__:
                return owner, name, klass.__dict__[name]
        return owner, name, None
    return owner, name, getattr(owner, name, None)


class Watch:
    """Wraps watched functions: each call writes ``watch.begin`` before the
    original runs, then ``watch.end`` or ``watch.raise`` (a begin alone means the
    process died inside it).  A wrapper returns what the original returns and
    re-raises what it raises, its own frame cut from the traceback (see ``cut``)."""

    def __init__(self, rec, main_ident):
        import _thread

        self.rec = rec
        self.ids = rec.count()  # next() is atomic: calls in threads never share an id
        self.get_ident = _thread.get_ident
        self.main_ident = main_ident  # read at start-up: this may be loaded in another thread
        self.hooks = {}  # (hook, id(function)) -> (function, wrapper): gunicorn hands it out per call

    def patch(self, module, entries):
        """Wrap each ``(attribute path, naming)`` of ``entries`` in ``module``."""
        for path, naming in entries:
            try:
                self.install(module, path, naming)
            except Exception:
                pass

    def install(self, module, path, naming):
        """Wrap ``path`` in ``module``.  ``naming`` is a preset's (None: a --watch
        the user typed, the only kind whose failure is reported: a preset's path
        that this version of the library lacks is simply not watched)."""
        owner, name, raw = _lookup(module, path)
        modname = getattr(module, "__name__", "?")
        if raw is None:
            why = "no such attribute" if modname != "__main__" else \
                "the script (__main__) has run before anything could wrap it: move the function to a module"
            return self.missing(naming, modname, path, why)
        if id(getattr(raw, "__func__", raw)) in WRAPPED:
            return None  # watched twice (a preset and --watch): once is enough
        if naming:
            replacement = self.special(naming, raw)
        else:
            watched = "%s:%s" % (modname, path)
            desc = ',"name":%s,"module":%s,"where":%s,"watch":%s' % (
                js(path), js(modname), js(where(innermost(raw))), js(watched))
            replacement = self.replacement(raw, isinstance(owner, type), desc)
        if replacement is None:
            return self.missing(naming, modname, path, "not a function or method the probe can wrap")
        try:
            setattr(owner, name, replacement)
        except (AttributeError, TypeError) as exc:
            self.missing(naming, modname, path, "cannot be replaced: %s" % exc)
        return None

    def replacement(self, raw, in_class, desc):
        """What goes in ``raw``'s place: classmethods and staticmethods stay what
        they are; in a class, a callable that never binds (a builtin) stays unbound."""
        kind = type(raw)
        if kind is classmethod or kind is staticmethod:
            inner = self.wrapper(raw.__func__, desc)
            return kind(inner) if inner is not None else None
        if not callable(raw):
            return None
        if in_class and not isinstance(raw, FUNCTION):
            if hasattr(raw, "__get__"):
                return None  # a descriptor of its own (property, partialmethod): left alone
            inner = self.wrapper(raw, desc)
            return staticmethod(inner) if inner is not None else None
        return self.wrapper(raw, desc)

    def wrapper(self, func, desc):
        """A wrapper that reports calls of ``func``: ``async def`` ones awaited,
        generators reported from their first step to their last; async
        generators are not wrapped (None)."""
        flags = getattr(getattr(func, "__code__", None), "co_flags", 0)
        if flags & _CO_ASYNC_GENERATOR:
            return None
        if flags & _CO_COROUTINE:
            wrapper = _async_watcher(self, func, desc)
        elif flags & _CO_GENERATOR and not flags & _CO_ITERABLE_COROUTINE:
            wrapper = _generator_watcher(self, func, desc)
        else:
            wrapper = _call_watcher(self, func, desc)
        return _wraps(wrapper, func)

    def special(self, naming, raw):
        """A preset's wrapper that names calls after what ``raw`` hands out or runs."""
        make = {"hooks": self.gunicorn_getattr, "finalize": self.finalize_call,
                "celery_signals": self.celery_send, "celery_task": self.celery_task}.get(naming)
        if make is None or not isinstance(raw, FUNCTION):
            return None
        return _wraps(make(raw), raw)

    def gunicorn_getattr(self, real):
        """gunicorn calls its server hooks as ``self.cfg.<hook>(...)`` in the
        arbiter and the workers, and every setting is read through
        ``Config.__getattr__``: the configured function (the user's, or
        gunicorn's no-op default) is handed out wrapped, and each call is
        reported by the hook's name, where that function is defined."""
        hooks, cache = GUNICORN_HOOKS, self.hooks

        def __getattr__(cfg, name):
            try:
                value = real(cfg, name)
            except BaseException as exc:
                cut(exc)
                raise
            if name not in hooks or not callable(value):
                return value
            entry = cache.get((name, id(value)))
            if entry is None or entry[0] is not value:
                desc = ',"name":%s,"module":"gunicorn","where":%s,"watch":"gunicorn.config:Config.%s"' % (
                    js(name), js(where(innermost(value))), name)
                entry = cache[(name, id(value))] = (value, self.wrapper(value, desc) or value)
            return entry[1]

        return __getattr__

    def finalize_call(self, real):
        """The garbage collector, ``finalize._exitfunc`` at exit and explicit
        calls all run a ``weakref.finalize`` through ``__call__``: each call of
        a live finalizer is reported by its callback's name (a dead one runs nothing)."""
        watch = self

        def __call__(fin, *args, **kwargs):
            desc = None
            try:
                info = None if fin._shutdown else fin._registry.get(fin)
                if info is not None:
                    desc = describe(info.func) + ',"watch":"weakref:finalize.__call__"'
            except Exception:
                pass
            with _Call(watch, desc):
                return real(fin, *args, **kwargs)

        return __call__

    def celery_send(self, real):
        """``Signal.send`` of Celery's shutdown signals, reported under the signal's
        name (its receivers run inside it); every other signal is passed through."""
        watch, names = self, CELERY_SIGNALS

        def send(signal, *args, **kwargs):
            name = getattr(signal, "name", None)
            if name not in names:
                return real(signal, *args, **kwargs)
            desc = ',"name":%s,"module":"celery.signals","where":"","watch":"celery:%s"' % (js(name), name)
            with _Call(watch, desc):
                return real(signal, *args, **kwargs)

        return send

    def celery_task(self, real):
        """The call that runs one task in a pool process (``fast_trace_task`` or
        ``trace_task_ret``, both ``(name, id, ...)``), reported as ``task NAME[ID]``
        with ``(acks_late)`` when the task acknowledges its message only once done:
        a begin without an end is the task the process was running when it died."""
        watch = self

        def trace(task, uuid, *args, **kwargs):
            desc = None
            try:
                name = "task %s[%s]%s" % (task, uuid, " (acks_late)" if _acks_late(task) else "")
                desc = ',"name":%s,"module":"celery","where":"","watch":"celery:task"' % js(name)
            except Exception:
                pass
            with _Call(watch, desc):
                return real(task, uuid, *args, **kwargs)

        return trace

    def begin(self, desc):
        """Write ``watch.begin``; returns what ``end`` and ``raised`` need."""
        try:
            call = next(self.ids)
            self.rec.emit("watch.begin", ',"c":%d%s,"th":%s' % (call, desc, js(self.thread())))
            return call, self.rec.monotonic()
        except Exception:
            return 0, 0.0

    def end(self, call):
        self.rec.emit("watch.end", ',"c":%d,"dur":%.6f' % (call[0], self.rec.monotonic() - call[1]))

    def raised(self, call, exc):
        try:
            message = str(exc)[:500]
        except Exception:
            message = ""
        self.rec.emit("watch.raise", ',"c":%d,"dur":%.6f,"exc":%s,"msg":%s' % (
            call[0], self.rec.monotonic() - call[1], js(type(exc).__qualname__), js(message)))

    def missing(self, naming, modname, path, why):
        if naming is None:
            self.rec.emit("watch.missing", ',"module":%s,"qualname":%s,"why":%s' % (js(modname), js(path), js(why)))

    def thread(self):
        """The calling thread's name, read without creating a thread object
        (``threading.current_thread`` would, for a thread threading did not start)."""
        ident = self.get_ident()
        threads = getattr(sys.modules.get("threading"), "_active", None)
        thread = threads.get(ident) if isinstance(threads, dict) else None
        if thread is not None:
            return getattr(thread, "name", ident)
        return "MainThread" if ident == self.main_ident else ident


def _acks_late(task):
    """Does the task named ``task`` acknowledge its message only after running?"""
    app = getattr(sys.modules.get("celery"), "current_app", None)
    found = app.tasks.get(task) if app is not None else None
    return bool(getattr(found, "acks_late", False))


def _wraps(wrapper, func):
    """``functools.update_wrapper``, imported only once something is watched."""
    import functools

    functools.update_wrapper(wrapper, func)
    WRAPPED[id(wrapper)] = (wrapper, func)
    return wrapper


class _Call:
    """One call of a watched function, as a ``with`` block around it: ``begin``
    on entry, then ``end``, or ``raised`` and the wrapper's frame cut from the
    traceback (see ``cut``).  Without ``desc`` it reports nothing, and still
    cuts.  ``closing``: a generator closed early (``GeneratorExit``) ran as far
    as it was asked to, an ``end``."""

    __slots__ = ("watch", "desc", "closing", "call")

    def __init__(self, watch, desc, closing=False):
        self.watch, self.desc, self.closing = watch, desc, closing
        self.call = None

    def __enter__(self):
        if self.desc is not None:
            self.call = self.watch.begin(self.desc)

    def __exit__(self, kind, exc, tb):
        call = self.call
        if kind is None or (self.closing and issubclass(kind, GeneratorExit)):
            if call is not None:
                self.watch.end(call)
            return False
        if call is not None:
            self.watch.raised(call, exc)
        cut(exc)
        return False


def _call_watcher(watch, func, desc):
    def wrapper(*args, **kwargs):
        with _Call(watch, desc):
            return func(*args, **kwargs)

    return wrapper


def _async_watcher(watch, func, desc):
    async def wrapper(*args, **kwargs):
        with _Call(watch, desc):
            return await func(*args, **kwargs)

    return wrapper


def _generator_watcher(watch, func, desc):
    def wrapper(*args, **kwargs):
        with _Call(watch, desc, closing=True):
            return (yield from func(*args, **kwargs))

    return wrapper
