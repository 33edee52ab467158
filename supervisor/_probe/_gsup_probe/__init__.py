"""gsup's probe, the part every instrumented process loads: event writer, start-up and the patches applied at start.

``sitecustomize.py`` next to this package is the entry point ``site`` imports;
it calls ``start`` here.  ``apply_patches`` reads, in order, what is patched at
start (coverage.py's ``patch.apply_patches`` is the model); each patch is a
``_patch_*`` function in the section of its concern, below: the event writer,
start-up, exit handlers (atexit, threading), signal handlers, ways out
(os._exit, exec, kill, fork, spawn, the wait family), frames (before 3.11),
patches applied on import, what to watch.

Why one module for these sections: every process of the tree loads them, and
each extra file costs about as much as 300 lines of code (measured on this
probe: ~0.15 ms per module on 3.13 and 3.9; split into one module per section,
``python -c pass`` took 0.4 ms longer than with the single file before, over
its budget).  A concern a process may not need is a module of its own, loaded
on first use: ``watch`` when a watched module is first imported.  Capabilities
to come (stacks on a signal, asyncio, logging) belong there too: a submodule
loaded by the patch that needs it, as ``_load_watch`` does.

Rules every part lives by (see ``shared/design/exit-semantics.md``):

* stdlib-only, never imports the rest of ``supervisor``: it runs inside the
  program being measured, under any interpreter from 3.9 on;
* cheap at start-up: no ``json``, ``re``, ``enum`` or ``signal`` import; events are
  JSON lines formatted by hand;
* never changes what it measures: every wrapper keeps return values, exceptions
  and the text of tracebacks; anything failing inside the probe is swallowed;
* loses nothing to SIGKILL: one ``os.write`` per event on an ``O_APPEND`` file,
  a *begin* written before a handler runs and an *end* after it.

The package's name is chosen for no program to share it: it sits on the
program's ``sys.path`` while it loads, and stays in ``sys.modules`` (the
once-only guard, the one name the program can see there, as before the split).
A submodule is dropped from ``sys.modules`` once loaded, so it reaches this
module's names as package attributes (``from . import js``), never another
submodule's with ``from .part import name``, which would load a second copy.

The reader lives in ``supervisor/events.py``; the two share only the file format.
"""
import sys
from _functools import partial  # noqa: F401  (builtin: costs nothing to import; the parts share it)

PY310 = sys.version_info >= (3, 10)
PY311 = sys.version_info >= (3, 11)
PACKAGE = __name__


def _function():
    """Only its type is used: ``FUNCTION``."""


FUNCTION = type(_function)

_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES[34] = '\\"'
_ESCAPES[92] = "\\\\"


def js(value):
    """A JSON string, written by hand: importing ``json`` would cost more than the probe."""
    text = str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return '"' + text.translate(_ESCAPES) + '"'


def cut(exc):
    """Drop the current wrapper's frame from ``exc``'s traceback before a bare
    ``raise``, and the probe's frames it called (``Recorder.held_back``), up to the
    program's (effective from 3.11; before that ``_hide_probe_frames`` covers it)."""
    tb = exc.__traceback__
    if tb is not None:
        tb = tb.tb_next
        while tb is not None and _is_probe(tb.tb_frame):
            tb = tb.tb_next
        exc.__traceback__ = tb


def posing(wrapper, real):
    """``wrapper`` made to pass for ``real``: the names pickle looks it up by,
    its doc, ``__wrapped__`` (``inspect.signature`` and ``help`` follow it) and
    ``__text_signature__`` (test_inspect reads it)."""
    wrapper.__name__ = real.__name__
    wrapper.__qualname__ = getattr(real, "__qualname__", real.__name__)
    wrapper.__module__ = real.__module__
    wrapper.__doc__ = real.__doc__
    wrapper.__wrapped__ = real
    wrapper.__text_signature__ = getattr(real, "__text_signature__", None)
    return wrapper


def replace(module, name, wrapper):
    """Put ``wrapper`` in place of ``module.name``, and in the module its original
    names (``posix`` for ``os``), so that pickling it finds the same object."""
    real = getattr(module, name)
    setattr(module, name, wrapper)
    home = sys.modules.get(getattr(real, "__module__", None) or "")
    if home is not None and home is not module and getattr(home, name, None) is real:
        setattr(home, name, wrapper)


WRAPPED = {}  # id(watch wrapper) -> (wrapper, original): describe sees through them


def innermost(func):
    """What ``func`` runs: through functools.partial, bound methods and the
    probe's own watch wrappers (so a watched function registered with atexit
    keeps its own file:line)."""
    if type(func) is FUNCTION and id(func) not in WRAPPED:
        return func  # the common case, at a fraction of the cost
    inner = func
    for _ in range(5):
        inner = WRAPPED.get(id(inner), (None, inner))[1]
        nxt = getattr(inner, "func", None) or getattr(inner, "__func__", None)
        if nxt is None or nxt is inner:
            break
        inner = nxt
    return inner


def where(func):
    code = getattr(func, "__code__", None)
    return "%s:%d" % (code.co_filename, code.co_firstlineno) if code else ""


_DESCRIBED = {}  # code -> ((qualname, module), fields): a function registered again (a bound method per object)
# is cheap; keyed by code, not function, so that closures made per object are not kept alive


def describe(func):
    """The JSON fields naming ``func``: qualname, module, file:line."""
    inner = innermost(func)
    if type(inner) is FUNCTION:
        known = _DESCRIBED.get(inner.__code__)
        if known is not None and known[0] == (inner.__qualname__, inner.__module__):
            return known[1]
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    fields = ',"name":%s,"module":%s,"where":%s' % (
        js(name), js(getattr(inner, "__module__", None) or ""), js(where(inner)))
    if type(inner) is FUNCTION:
        _DESCRIBED[inner.__code__] = ((inner.__qualname__, inner.__module__), fields)
    return fields


# -- the event writer ------------------------------------------------------------------


class Recorder:
    """This process's event file: one JSON line per event, appended by one
    ``os.write`` between an ``os.open`` and an ``os.close``.

    No descriptor stays open between events, so a program that lists, closes or
    passes on its fds (``pass_fds``, a daemon closing everything) sees only its
    own.  Opening and closing costs about 2.6 µs per event (measured); an exit
    handler's *end* waits for the next handler's *begin* (nothing of the
    program runs between the two) so that both go out in one write.

    The file is named from the pid at the moment of writing: a forked child
    whose at-fork hook never ran, or was cut short, still starts a file of its
    own before its first event, and never writes into its parent's.
    """

    def __init__(self, os, events_dir):
        import atexit
        import time

        self.os = os
        self.events_dir = events_dir
        self.monotonic = time.monotonic
        self.monotonic_ns = time.monotonic_ns
        self._open, self._write, self._close, self.getpid = os.open, os.write, os.close, os.getpid
        import _signal

        self._sigmask, self._every = _signal.pthread_sigmask, _signal.valid_signals()
        self._block, self._setmask = _signal.SIG_BLOCK, _signal.SIG_SETMASK
        self.flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.pid = 0  # whose file ``path`` is: another pid means a fork, and a file of its own first
        self.path = ""
        self.held = []  # lines that go out with the next one written
        self.holding = False  # True while start-up's lines are gathered into one write
        self.on_fork = None  # what a forked child writes after its start (set by ``_patch_fork``)
        self.nested = 0  # signal handlers running (the main thread's): see ``_write_held_back``
        self.seq = self.count()  # next() is atomic: threads never share a sequence number
        self.opaque = atexit._ncallbacks()  # registered before the probe: it cannot follow them

    @staticmethod
    def count():
        """1, 2, 3...: ``itertools.count`` without importing it (one import less at start-up)."""
        return iter(range(1, sys.maxsize))

    def emit(self, kind, body="", hold=False, again=True):
        """Write one event; with ``hold`` it waits for the next one, to go out in the same write.

        A signal handler may run in the middle (its exception, if any, is lost
        here as it always was); the event is then written again: if the first
        write had gone out after all, the reader drops the copy (same ``n``).
        Cut short before its line was made, it is made once ``again``."""
        line = None
        try:
            if self.getpid() != self.pid:
                self.start(forked=True)
            line = '{"k":"%s","n":%d,"t":%.6f%s}\n' % (kind, next(self.seq), self.monotonic(), body)
            if hold or self.holding:
                self.held.append(line)
                return
            self.write(line)
        except Exception as exc:
            if isinstance(exc, (OSError, ValueError)):
                return  # the probe's own failure: this event is lost, never the program
            if line is None:
                if again:
                    self.emit(kind, body, hold, again=False)
                return
            try:
                self.write(line)
            except Exception:
                pass

    def write(self, text):
        held = self.held
        while held:
            try:
                text = held.pop() + text  # pop() is atomic: a line held is written once
            except IndexError:
                break
        data = text.encode("utf-8", "backslashreplace")
        if self.nested:
            # From inside a signal handler.  A signal storm nests handlers, each interrupting
            # the one before at its next bytecode, until Python raises RecursionError in the
            # deepest; one raised between the open and the ``try`` leaked the fd (thousands of
            # times on 3.9), and with the fd table full every later event of the process and of
            # its children was lost.  Outside handlers (every other event) this is not paid.
            self.held_back(self._append, data)
        else:
            self._append(data)

    def _append(self, data):
        fd = self._open(self.path, self.flags, 0o600)
        try:
            self._write(fd, data)
        finally:
            self._close(fd)

    def held_back(self, call, *args):
        """``call(*args)`` with every signal held back; pending handlers run once it returned.

        The mask in place is read first, by a call that changes nothing: ``pthread_sigmask``
        runs pending handlers after changing the mask, and one that raised after the block
        would leave every signal blocked."""
        sigmask = self._sigmask
        old = sigmask(self._block, ())
        try:
            sigmask(self._block, self._every)
            return call(*args)
        finally:
            sigmask(self._setmask, old)

    def flush(self):
        """Write what is held, now."""
        self.holding = False
        if self.held:
            try:
                self.write("")
            except Exception:
                pass

    def start(self, forked):
        """Name this process's own file and write who it is (and, forked, what it inherited).

        The pid is noted first: whatever cuts this short, the process never
        writes into another's file, nor starts a second file of its own."""
        os = self.os
        pid = self.getpid()
        if pid == self.pid:
            return
        start = "0"  # clock ticks since boot: with the pid, the process's identity
        try:
            start = _read(os, "/proc/self/stat").rpartition(b")")[2].split()[19].decode()
        except Exception:
            pass
        self.path = "%s/%d-%s-%d.jsonl" % (self.events_dir, pid, start, self.monotonic_ns())
        self.pid, self.seq, self.held, self.holding = pid, self.count(), [], True
        try:
            argv = ",".join(js(a) for a in _cmdline(os))
            self.emit("start", ',"pid":%d,"ppid":%d,"pg":%d,"st":%s,"argv":[%s],"exe":%s,"py":"%d.%d.%d","fork":%s,'
                      '"ncb":%d' % (pid, os.getppid(), os.getpgrp(), start, argv, js(sys.executable),
                                    *sys.version_info[:3], "true" if forked else "false", self.opaque))
            if forked and self.on_fork is not None:
                self.on_fork()
        finally:
            if forked:
                self.flush()


def _read(os, path):
    """A whole /proc file, read with ``os`` calls (``open`` builds two objects)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _cmdline(os):
    try:
        raw = _read(os, "/proc/self/cmdline").split(b"\0")[:-1]
        return [a.decode("utf-8", "surrogateescape") for a in raw]
    except Exception:
        return list(getattr(sys, "orig_argv", sys.argv))


# -- start-up --------------------------------------------------------------------------


def start(os, events_dir, entry_spec):
    """Apply the patches, keep the probe's compiled bytecode, and leave one
    name in ``sys.modules`` (the package's: the once-only guard)."""
    try:
        __path__[:] = [os.path.abspath(p) for p in __path__]  # watch may load after a chdir
        apply_patches(os, events_dir)
        if sys.dont_write_bytecode:
            for spec in (entry_spec, __spec__, *(module.__spec__ for module in _parts())):
                _cache_bytecode(spec)
    finally:
        for module in _parts():
            del sys.modules[module.__name__]


def apply_patches(os, events_dir):
    """Patch everything the probe watches and say this process has started, then
    arm the patches applied on import (a watched module already imported may
    already have something to report)."""
    rec = Recorder(os, events_dir)
    handlers = _patch_atexit(rec)
    getsignal, wrapped_signals, own_signals = _patch_signals(rec)
    _arm_stacks(rec, handlers, own_signals)
    wrap = _patch_os(rec)
    note_signal_handlers = _handlers_noter(rec, getsignal, wrapped_signals)
    _patch_fork(rec, handlers, note_signal_handlers)
    on_import = {
        "threading": handlers.patch_threading,
        "_posixsubprocess": lambda mod: _patch_fork_exec(mod, wrap),
        "signal": lambda mod: _patch_signal_sends(mod, wrap),
    }
    if not PY311:
        on_import["threading"] = _both(on_import["threading"], _hide_probe_frames())
        handlers.real_excepthook = sys.__excepthook__  # 3.9's handler errors: a watched handler's frame too
        on_import["traceback"] = _patch_traceback
    rec.start(forked=False)
    try:
        _patch_imports(_merged(_merged(_merged(on_import, _framework_notes(rec)), _watch_patches(rec, os.environ)),
                               _aio_patches(rec)))
        handlers.register_done()
        note_signal_handlers()
    finally:
        rec.flush()  # start-up's lines, in one write


# -- exit handlers: atexit's and threading's, a begin and an end around each run -------


def note_held_logs(rec, moment):
    """Records logging handlers still hold as the process leaves (``moment``: after atexit,
    ``done``; at ``os._exit``): a MemoryHandler never flushed, a queue no listener drained.
    The ``stacks`` part counts them, loaded only if ``logging`` has handlers at all."""
    logging = sys.modules.get("logging")
    try:
        for ref in list(getattr(logging, "_handlerList", ())):
            handler = ref()
            if getattr(handler, "buffer", None) or getattr(handler, "queue", None) is not None:
                break
        else:
            return  # nothing that holds records: the common case costs one look per handler
        held = _load_part("stacks").held_logs()
        if held:
            rec.emit("logs", ',"at":"%s","held":[%s]' % (moment, held), True)
    except Exception:
        pass


class _HookProxy:
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


class _Wrapped:
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
            self.exits.last_error = exc  # what an explicit _run_exitfuncs() raises in the end
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


class _Exits:
    """Every exit handler registered in this process, and its begin/end events."""

    def __init__(self, rec, atexit):
        self.rec = rec
        self.handlers = {}  # handler id -> [func, kind, begin marker, end marker, began at]
        self.ids = rec.count()
        self.current = None
        self.exit_noted = False
        self.real_register = atexit.register
        self.real_excepthook = sys.__excepthook__
        self.last_error = None  # 3.9: the last error a handler raised (see _run_exitfuncs_39)

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
        # held: the begin (or done) that follows at once goes out in the same write
        self.rec.emit("exit", ',"exc":%s' % js(type(exc).__qualname__) if exc is not None else "", True)

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
        if not isinstance(sys.unraisablehook, _HookProxy):
            sys.unraisablehook = _HookProxy(sys.unraisablehook, self)
        entry[4] = self.rec.monotonic()
        self.rec.emit("begin", ',"h":%d' % hid)

    def end(self, hid):
        entry = self.handlers[hid]
        began, entry[4] = entry[4], None
        duration = self.rec.monotonic() - began if began is not None else 0.0
        # An atexit handler's end goes out with what follows: the next begin, or
        # the probe's own last handler; nothing of the program runs in between.
        self.rec.emit("end", ',"h":%d,"dur":%.6f' % (hid, duration), entry[1] == "atexit")
        self.current = None
        if isinstance(sys.unraisablehook, _HookProxy):
            sys.unraisablehook = sys.unraisablehook.hook

    def done(self):
        self.note_exit()
        note_held_logs(self.rec, "done")
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


def _patch_atexit(rec):
    import atexit

    exits = _Exits(rec, atexit)
    handlers = exits.handlers
    real_register, real_unregister, real_clear = atexit.register, atexit.unregister, atexit._clear

    def register(func, *args, **kwargs):
        try:
            if not callable(func):
                return real_register(func, *args, **kwargs)  # let atexit raise its TypeError
            hid, entry = exits.new(func, "atexit")
            if not PY310:
                real_register(_Wrapped(hid, func, exits), *args, **kwargs)
                return func
            real_register(entry[3])
            real_register(func, *args, **kwargs)
            real_register(entry[2])
            return func
        except BaseException as exc:
            cut(exc)
            raise

    def unregister(func):
        # A watched function (``logging.shutdown``) was registered before it was
        # wrapped: unregistering the wrapper the program now sees removes that too.
        watched = WRAPPED.get(id(func))
        funcs = (func,) if watched is None or watched[0] is not func else (func, watched[1])
        try:
            for one in funcs:
                real_unregister(one)
        except BaseException as exc:
            cut(exc)
            raise
        for hid, entry in list(handlers.items()):
            try:
                same = entry[1] == "atexit" and any(entry[0] == one for one in funcs)
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
        setattr(atexit, name, posing(fn, real))
    if not PY310:
        atexit._run_exitfuncs = posing(_run_exitfuncs_39(exits, atexit._run_exitfuncs), atexit._run_exitfuncs)
    return exits


def _run_exitfuncs_39(exits, real):
    """3.9's explicit ``atexit._run_exitfuncs()`` raises the last error a handler
    raised; ``_Wrapped`` keeps it from atexit (which would print the wrapper's
    frame), so it is raised here, as atexit would have."""

    def _run_exitfuncs():
        exits.last_error = None
        try:
            real()
        except BaseException as exc:
            cut(exc)
            raise
        error, exits.last_error = exits.last_error, None
        if error is not None:
            raise error

    return _run_exitfuncs


# -- signal handlers: recorded when installed and each time they run -------------------


def _handler_name(handler):
    """A handler's name as a user wrote it: through ``functools.partial`` (asyncio.Runner's
    SIGINT handler), bound methods and ``__wrapped__`` (``functools.wraps``), as atexit's are."""
    if handler == 0:
        return "SIG_DFL"
    if handler == 1:
        return "SIG_IGN"
    if handler is None:
        return "None"
    inner = innermost(handler)
    for _ in range(5):
        nxt = getattr(inner, "__wrapped__", None)
        if nxt is None or nxt is inner or not callable(nxt):
            break
        inner = innermost(nxt)
    return getattr(inner, "__qualname__", None) or type(inner).__qualname__


def _patch_signals(rec):
    """Patch ``_signal`` (what ``signal.signal`` calls) so each Python handler is
    recorded when installed and each time it runs; returns the patched getsignal."""
    import _signal

    originals = {}  # signal number -> (wrapper installed, original handler)
    own = {}  # signal number -> the probe's own handler there, which the program sees as SIG_DFL
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
            rec.nested += 1
            try:
                rec.emit("sigrun", ',"sig":%d' % signum)
                try:
                    return handler(signum, frame)
                except BaseException as exc:
                    _note_raise(rec, signum, handler, exc)
                    cut(exc)
                    raise
            finally:
                rec.nested -= 1

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
        rec.emit("sig", ',"sig":%d,"handler":%s' % (signalnum, js(_handler_name(handler))))
        if own.get(signalnum) is old:
            del own[signalnum]  # the program's own handler from now on: the probe's is gone
            return 0
        return previous[1] if previous is not None and previous[0] is old else old

    def getsignal(signalnum):
        try:
            handler = real_getsignal(signalnum)
        except BaseException as exc:
            cut(exc)
            raise
        return 0 if own.get(signalnum) is handler else unwrap(signalnum, handler)  # 0: SIG_DFL

    _signal.signal = posing(signal, real_signal)
    _signal.getsignal = posing(getsignal, real_getsignal)
    if PY311 and real_getsignal(2) is default_int:
        real_signal(2, wrap_handler(2, default_int))  # so a Ctrl-C is seen arriving
    return getsignal, originals, own


def _arm_stacks(rec, exits, own):
    """Write every thread's stack when gsup asks (the ``stacks`` part, loaded on the first
    request): on SIGRTMAX-2, then go on; on SIGRTMAX-3, then stop (SIGSTOP), as gsup asks
    just before it SIGKILLs, so that the program runs nothing between its stacks and its end.

    A Python-level handler, so that nothing is open between requests: it runs
    in the main thread between bytecodes, and a main thread blocked in a lock,
    ``recv()``, ``time.sleep`` or ``threading._shutdown`` is woken for it (EINTR)
    and goes back to waiting afterwards (PEP 475).  The program sees SIG_DFL
    there; if it installs a handler of its own on one of them, it wins."""
    import _signal

    first = getattr(_signal, "SIGRTMAX", 0) - 3
    if first <= 0:
        return
    part = []
    kill, pid, stop = rec.os.kill, rec.os.getpid, getattr(_signal, "SIGSTOP", 19)

    def on_stacks_signal(signum, frame):
        try:
            if not part:
                part.append(_load_part("stacks"))
            part[0].write(rec, exits.current)
        except Exception:
            pass  # nothing of the program is at stake: only this answer is lost
        if signum == first:
            try:
                kill(pid(), stop)  # the real os.kill (taken before the probe wraps it): no event
            except Exception:
                pass

    for signum in (first, first + 1):
        if _signal.getsignal(signum) == 0:
            _signal.signal.__wrapped__(signum, on_stacks_signal)
            own[signum] = on_stacks_signal


def _note_raise(rec, signum, handler, exc):
    """A signal handler raised (``sys.exit()`` in a SIGTERM handler, Ctrl-C's KeyboardInterrupt):
    what and where, for the report to say what began the shutdown even if atexit never
    starts (Python notes no ``sys.last_exc`` for a SystemExit)."""
    try:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = "%s:%d" % (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ""
        rec.emit("sigexc", ',"sig":%d,"handler":%s,"exc":%s,"repr":%s,"where":%s' % (
            signum, js(_handler_name(handler)), js(type(exc).__qualname__), js(repr(exc)[:200]), js(where)))
    except Exception:
        pass


def _handlers_noter(rec, getsignal, wrapped):
    """A function writing the Python handlers in place: at start, and again in a
    forked child, which inherits its parent's (their runs there are the child's own)."""

    def note_signal_handlers():
        for signum in sorted({2, 15, *wrapped}):
            rec.emit("sig0", ',"sig":%d,"handler":%s' % (signum, js(_handler_name(getsignal(signum)))))

    return note_signal_handlers


# -- ways out: os._exit, exec, kill, fork and spawn, and the wait family ---------------


def _passthrough(real, name, before=None, after=None):
    """Wrap ``real``: note the call before and/or its result after, change nothing.

    On an exception the wrapper's own frame is cut from the traceback (3.11+
    keeps it out of what is printed; before 3.11 ``_hide_probe_frames`` does)."""

    def wrapper(*args, **kwargs):
        if before is not None:
            _note(before, args, kwargs)
        try:
            result = real(*args, **kwargs)
        except BaseException as exc:
            cut(exc)
            raise
        if after is not None:
            _note(after, (result, *args), kwargs)
        return result

    return posing(wrapper, real)


def _note(note, args, kwargs):
    """Run a wrapper's ``note``; odd arguments are the real call's to refuse, in its own words.

    A signal handler's exception raised in the middle (the handler ran here by
    chance) may have cut the note short: it runs once more, so the event is
    not lost (the exception is, as it was before: nothing of the program runs here)."""
    try:
        note(*args, **kwargs)
    except Exception as exc:
        if not isinstance(exc, (TypeError, ValueError, OverflowError)):
            try:
                note(*args, **kwargs)
            except Exception:
                pass


class _Ways:
    """What the ``os`` wrappers record: exits, execs, kills, spawns, reaps."""

    def __init__(self, rec):
        self.rec = rec

    def exit(self, status, *_, **__):
        note_held_logs(self.rec, "os_exit")
        self.rec.emit("os_exit", ',"code":%s' % (int(status) if isinstance(status, int) else js(status)))

    def exec(self, path, args, *_, **__):
        self.rec.emit("exec", ',"argv":[%s]' % ",".join(js(a) for a in args))

    def spawn(self, pid, *_, **__):
        if isinstance(pid, int) and pid > 0:
            self.rec.emit("spawn", ',"pid":%d' % pid)

    def spawn_argv(self, position):
        """A spawn record with the child's argv, which sits at ``position``."""

        def note(pid, *args, **__):
            if isinstance(pid, int) and pid > 0:
                try:
                    argv = ",".join(js(a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else a)
                                    for a in args[position])
                except Exception:
                    argv = ""
                self.rec.emit("spawn", ',"pid":%d,"argv":[%s]' % (pid, argv))

        return note

    # Signals sent: receiver, signal and (the event's) time; a process sending one to
    # itself is how servers re-raise after their own handler ran (uvicorn, coverage.py).

    def kill(self, pid, sig, *_, **__):
        self.rec.emit("kill", ',"pid":%d,"sig":%d' % (pid, sig))

    def killpg(self, pgid, sig, *_, **__):
        self.rec.emit("kill", ',"pgid":%d,"sig":%d' % (pgid, sig))

    def raise_signal(self, sig, *_, **__):
        self.rec.emit("kill", ',"pid":%d,"sig":%d,"via":"raise_signal"' % (self.rec.getpid(), sig))

    def pthread_kill(self, thread_id, sig, *_, **__):
        self.rec.emit("kill", ',"pid":%d,"sig":%d,"via":"pthread_kill","tid":%d'
                      % (self.rec.getpid(), sig, thread_id))

    def reaped(self, pid, status):
        if pid > 0:
            self.rec.emit("reaped", ',"pid":%d,"status":%d' % (pid, status))

    def reaped_pair(self, result, *_, **__):
        self.reaped(result[0], result[1])

    def waitid(self, result, idtype, ident, options, *_):
        if result is None or options & getattr(self.rec.os, "WNOWAIT", 0) or result.si_code not in (1, 2, 3):
            return  # nothing, a peek, or a stop/continue: not a death
        if result.si_code == 1:  # CLD_EXITED
            status = (result.si_status & 0xFF) << 8
        else:  # CLD_KILLED, CLD_DUMPED: wait status carries the signal number
            status = result.si_status & 0x7F
        self.reaped(result.si_pid, status)


def _patch_os(rec):
    os = rec.os
    ways = _Ways(rec)

    def wrap(name, before=None, after=None):
        real = getattr(os, name, None)
        if real is not None:
            replace(os, name, _passthrough(real, name, before, after))

    _patch_waitpid(os, ways)  # first: it calls the real waitid, never a wrapper (one frame, one event)
    wrap("_exit", before=ways.exit)
    # An audit hook would note kills and execs with no probe frame on the stack during
    # the call (a faulthandler dump of a signal sent to oneself shows it), but it cost
    # ~0.1 ms of start-up (measured), more than the probe's budget allows.
    wrap("execv", before=ways.exec)
    wrap("execve", before=ways.exec)
    wrap("kill", before=ways.kill)
    wrap("killpg", before=ways.killpg)
    for name in ("fork", "forkpty"):
        real = getattr(os, name, None)
        if real is not None:
            replace(os, name, _fork(real, name, ways))
    wrap("posix_spawn", after=ways.spawn_argv(1))
    wrap("posix_spawnp", after=ways.spawn_argv(1))
    wrap("wait", after=ways.reaped_pair)
    wrap("wait3", after=ways.reaped_pair)
    wrap("wait4", after=ways.reaped_pair)
    wrap("waitid", after=ways.waitid)
    return ways


def _patch_signal_sends(signal, ways):
    """``signal.raise_signal`` and ``signal.pthread_kill``, patched once ``signal`` is imported
    (nothing at start-up: ``python -c pass`` never imports it), in ``signal`` and in ``_signal``,
    where they come from (``replace``)."""
    for name, note in (("raise_signal", ways.raise_signal), ("pthread_kill", ways.pthread_kill)):
        real = getattr(signal, name, None)
        if real is not None:
            wrapper = _passthrough(real, name, before=note)
            wrapper.__module__ = "signal"  # a Python function there says it is signal's (test_signal checks)
            replace(signal, name, wrapper)


def _patch_waitpid(os, ways):
    """``waitpid`` that records a child's status *before* reaping it.

    It peeks with ``waitid(WNOWAIT)``, records, then reaps.  If this process dies
    in between (a signal to the whole group lands while it waits), the child
    stays a zombie for gsup, the subreaper, to reap with the same status;
    recording after reaping would lose the status with the parent.
    """
    real = os.waitpid
    real_waitid = getattr(os, "waitid", None)
    exited, nowait = getattr(os, "WEXITED", 4), getattr(os, "WNOWAIT", 0x1000000)
    nohang = os.WNOHANG
    p_pid, p_all, p_pgid = getattr(os, "P_PID", 1), getattr(os, "P_ALL", 0), getattr(os, "P_PGID", 2)

    def waitpid(pid, options):
        peeked = False
        try:
            if real_waitid is not None and not options & ~nohang:
                if pid > 0:
                    idtype, ident = p_pid, pid
                elif pid == -1:
                    idtype, ident = p_all, 0
                else:
                    idtype, ident = p_pgid, -pid if pid < -1 else os.getpgid(0)
                info = real_waitid(idtype, ident, exited | nowait | (options & nohang))
                if info is not None and info.si_pid:
                    ways.waitid(info, idtype, ident, exited)
                    pid, peeked = info.si_pid, True
            result = real(pid, options)
        except BaseException as exc:
            cut(exc)
            raise
        if not peeked:
            ways.reaped(result[0], result[1])
        return result

    replace(os, "waitpid", posing(waitpid, real))


def _patch_fork_exec(mod, ways):
    """``subprocess`` starts children through ``fork_exec``: record their pids and
    argv, so a child adopted by gsup before its probe ran still has a parent."""
    real = getattr(mod, "fork_exec", None)
    if real is not None:
        replace(mod, "fork_exec", _passthrough(real, "fork_exec", after=ways.spawn_argv(0)))


def _patch_fork(rec, exits, note_signal_handlers):
    """A forked child gets a file of its own and knows the handlers it inherited.

    ``os.fork`` runs with every signal blocked (``_fork``), so no handler can
    run half-way through the child's switch to its own file; the
    at-fork hook covers the other ways to fork (a ``preexec_fn``, C code), and
    ``Recorder.emit`` checks the pid in case even that was cut short."""

    def inherited():
        exits.current = None
        for hid, entry in list(exits.handlers.items()):
            if entry[1] != "gone":
                rec.emit("inherit", ',"h":%d,"kind":"%s"%s' % (hid, entry[1], describe(entry[0])))
        note_signal_handlers()

    def after_fork():
        try:
            rec.start(forked=True)
        except BaseException:
            pass  # a handler's exception: nothing of the program runs here to take it

    rec.on_fork = inherited
    rec.os.register_at_fork(after_in_child=after_fork)


def _fork(real, name, ways):
    """``os.fork`` (or ``forkpty``) run with every signal held back (``Recorder.held_back``),
    the mask put back once the at-fork hooks ran, in parent and child alike.

    A signal arriving meanwhile is handled as the program returns from the call,
    where it would have been without gsup, instead of inside an at-fork hook,
    which would print the handler's exception and lose it."""

    def forked():
        result = real()
        pid = result if type(result) is int else result[0]
        if pid > 0:
            ways.spawn(pid)
        return result

    def fork():
        try:
            return ways.rec.held_back(forked)
        except BaseException as exc:
            cut(exc)
            raise

    return posing(fork, real)


# -- before 3.11: tracebacks printed without the probe's wrapper frames ----------------


def _is_probe(frame):
    """Is ``frame`` running code of the probe (any of its parts)?"""
    name = frame.f_globals.get("__name__")
    return type(name) is str and name.partition(".")[0] == PACKAGE


def _patch_traceback(mod):
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


def _hide_probe_frames():
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

    sys.excepthook = sys.__excepthook__ = posing(excepthook, real)
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

    sys.unraisablehook = sys.__unraisablehook__ = posing(unraisablehook, real_unraisable)

    def patch_threading(mod):
        """An error in a thread is printed by ``threading.excepthook``, in C: the
        same unlinking goes in front of it (and stands in as ``__excepthook__``)."""
        real_thread_hook = getattr(mod, "excepthook", None)
        if real_thread_hook is None:
            return

        def excepthook(args):
            try:
                strip(args.exc_value, set())
                tb = strip_tb(args.exc_traceback)
                if tb is not args.exc_traceback:
                    args = type(args)((args.exc_type, args.exc_value, tb, args.thread))
            except Exception:
                pass
            return real_thread_hook(args)

        posing(excepthook, real_thread_hook)  # threading's __all__ check reads __module__
        if getattr(mod, "__excepthook__", None) is real_thread_hook:
            mod.__excepthook__ = excepthook
        mod.excepthook = excepthook

    return patch_threading


# -- patches applied when the program imports a module ---------------------------------


class _Finder:
    """Patches a few modules when the program imports them, and costs one dict
    lookup for every other first import."""

    def __init__(self, patches):
        self.patches = patches

    def find_spec(self, name, path=None, target=None):
        patch = self.patches.get(name)
        if patch is None:
            return None
        finders = sys.meta_path
        for finder in finders[finders.index(self) + 1:] if self in finders else ():
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, patch)
        return spec


class _Loader:
    def __init__(self, loader, patch):
        self.loader = loader
        self.patch = patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        try:
            self.patch(module)
        except Exception:
            pass

    def __getattr__(self, name):
        return getattr(self.loader, name)


# The patched module runs below ``_Loader.exec_module``: an exception it raises (an
# ImportError, a Ctrl-C) would show that frame in the program's traceback.  Filed under
# the import system's name, the frame is trimmed with importlib's own (import.c's
# ``remove_importlib_frames``), and ``warnings`` skips it as it skips theirs.
_Loader.exec_module.__code__ = _Loader.exec_module.__code__.replace(
    co_filename="<frozen importlib._bootstrap_external>")


def _patch_imports(patches):
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _Finder(patches))


# -- which server framework runs here: one line when its module is first imported -------

# module -> framework: what tells gsup's report which process of a server's tree is which
# (reloader, master, worker: ``supervisor/kinds.py``).  A module the process imported
# before the probe ran (none of these) is noted at start.
FRAMEWORKS = {
    "werkzeug.serving": "werkzeug",
    "django.core.management.commands.runserver": "django",
    "uvicorn.server": "uvicorn",
    "gunicorn.arbiter": "gunicorn",
    "hypercorn.run": "hypercorn",
    "aiohttp.web_runner": "aiohttp",
    "celery.worker": "celery",
}


def _framework_notes(rec):
    """module name -> patch writing ``{"k":"uses","fw":...}``, for ``_patch_imports`` (one
    function for them all: a closure per module would cost start-up time in every process)."""

    def note(module):
        rec.emit("uses", ',"fw":"%s"' % FRAMEWORKS.get(module.__name__, "?"))

    return dict.fromkeys(FRAMEWORKS, note)


# -- what to watch: --watch MODULE:QUALNAME and the built-in sets ----------------------

# Built-in watch sets, as data: preset -> {module: ((attribute path, naming), ...)}.
# An empty naming reports each call by its path; "hooks" and "finalize" report
# the function the wrapped one hands out or runs, "celery_signals" the sends of
# Celery's shutdown signals, "celery_task" each task a pool process runs (see _Watch.special).  A path
# some version of the library lacks is skipped silently (Router.shutdown went in
# Starlette 1.0); only a --watch the user typed is reported missing.
WATCH_PRESETS = {
    "gunicorn": {"gunicorn.config": (("Config.__getattr__", "hooks"),)},
    "asgi": {
        "uvicorn.lifespan.on": (("LifespanOn.startup", ""), ("LifespanOn.shutdown", "")),
        "uvicorn.server": (("Server.shutdown", ""),),
        "starlette.routing": (("Router.startup", ""), ("Router.shutdown", "")),
        "hypercorn.asyncio.lifespan": (("Lifespan.wait_for_startup", ""), ("Lifespan.wait_for_shutdown", "")),
    },
    "aiohttp": {"aiohttp.web_app": (("Application.startup", ""), ("Application.shutdown", ""),
                                    ("Application.cleanup", ""))},
    "weakref": {"weakref": (("finalize.__call__", "finalize"),)},
    "logging": {"logging": (("shutdown", ""),)},
    "futures": {
        "concurrent.futures.thread": (("ThreadPoolExecutor.shutdown", ""),),
        "concurrent.futures.process": (("ProcessPoolExecutor.shutdown", ""),),
    },
    "celery": {
        "celery.utils.dispatch.signal": (("Signal.send", "celery_signals"),),
        "celery.app.trace": (("fast_trace_task", "celery_task"), ("trace_task_ret", "celery_task")),
    },
}


def _watch_table(environ):
    """module -> [(attribute path, naming)] from ``GSUP_WATCH`` and the presets
    ``GSUP_WATCH_PRESETS`` names (unset or ``auto``: all of them; ``none``: none)."""
    chosen = environ.get("GSUP_WATCH_PRESETS", "auto").split(",")
    table = {}
    for preset in WATCH_PRESETS if "auto" in chosen else chosen:
        for module, entries in WATCH_PRESETS.get(preset, {}).items():
            table.setdefault(module, []).extend(entries)
    for spec in environ.get("GSUP_WATCH", "").split(","):
        module, _, path = spec.strip().partition(":")
        if module and path:
            table.setdefault(module, []).append((path, None))
    return table


def _watch_patches(rec, environ):
    """module name -> patch that wraps what is watched in it, for ``_patch_imports``.

    The ``watch`` part is loaded by the first of these patches to run: most
    processes never import a watched module, and never pay for it."""
    table = _watch_table(environ)
    if not table:
        return {}
    import _thread

    main_ident = _thread.get_ident()
    watches = []  # the one Watch, made on first use

    def patcher(entries):
        def patch(module):
            try:
                if not watches:
                    watches.append(_load_watch().Watch(rec, main_ident))
                watches[0].patch(module, entries)
            except Exception:
                pass

        return patch

    return {module: patcher(entries) for module, entries in table.items()}


def _aio_patches(rec):
    """module name -> patch, for asyncio's signal handlers and ``asyncio.run``'s last
    cancellations; the ``aio`` part loads with the first of them (programs without asyncio never pay)."""
    part = []

    def patcher(name):
        def patch(module):
            try:
                if not part:
                    part.append(_load_part("aio"))
                getattr(part[0], name)(rec, module)
            except Exception:
                pass

        return patch

    return {"asyncio.unix_events": patcher("patch_unix_events"), "asyncio.runners": patcher("patch_runners")}


def _load_watch():
    """The ``watch`` part, loaded after start-up: out of ``sys.modules`` again at once."""
    return _load_part("watch")


def _load_part(name):
    """A part of the probe loaded on first use (``watch``, ``stacks``), out of ``sys.modules`` again at once."""
    import importlib

    part = importlib.import_module("%s.%s" % (PACKAGE, name))
    sys.modules.pop(part.__name__, None)
    _cache_bytecode(part.__spec__)
    return part


def _merged(patches, more):
    """One patch per module name: both run when two areas want the same module."""
    for name, patch in more.items():
        first = patches.get(name)
        patches[name] = patch if first is None else _both(first, patch)
    return patches


def _both(first, second):
    def patch(module):
        try:
            first(module)
        finally:
            second(module)

    return patch


# -- the probe's own bytecode ----------------------------------------------------------


def _parts():
    """The probe's submodules in ``sys.modules``."""
    prefix = PACKAGE + "."
    return [module for name, module in list(sys.modules.items()) if name.startswith(prefix)]


def _cache_bytecode(spec):
    """Write the .pyc of the module ``spec`` describes if it was just compiled from source.

    Compiling the probe costs more than everything else it does at start-up,
    and every process of the tree loads it.  ``PYTHONDONTWRITEBYTECODE`` (or a
    read-only install) would make every one of them compile it again; Python
    still *reads* a cached file then, so the probe writes its own, once per
    interpreter version, in gsup's directory and nowhere else.
    """
    cached, source = getattr(spec, "cached", None), getattr(spec, "origin", None)
    if not cached or not source or not sys.dont_write_bytecode:
        return  # Python caches it itself
    import os

    try:
        if os.stat(cached).st_mtime >= os.stat(source).st_mtime:
            return
    except OSError:
        pass
    import py_compile

    py_compile.compile(source, cfile=cached, doraise=False, quiet=2)
