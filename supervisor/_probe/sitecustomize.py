"""gsup's probe: records how a Python process registers, runs and skips exit handlers.

gsup prepends this directory to ``PYTHONPATH`` and names an events directory in
``GSUP_EVENTS``; ``site`` then imports this file as ``sitecustomize`` in every
Python process of the tree that inherits the environment.

Rules this file lives by (see ``shared/design/exit-semantics.md``):

* stdlib-only and never imports the rest of ``supervisor``: it runs inside the
  program being measured, under any interpreter from 3.9 on;
* cheap at start-up: no ``json``, ``re``, ``enum`` or ``signal`` import; events are
  JSON lines formatted by hand;
* never changes what it measures: every wrapper keeps return values, exceptions
  and the text of tracebacks; anything failing inside the probe is swallowed;
* loses nothing to SIGKILL: one ``os.write`` per event on an ``O_APPEND`` file,
  a *begin* written before a handler runs and an *end* after it.

The reader lives in ``supervisor/events.py``; the two share only the file format.
"""

import sys

_HERE = __file__.rpartition("/")[0]
_STATE_KEY = "_gsup_probe"


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


def _install(os, events_dir):  # noqa: C901  (one closure keeps the hot path cheap)
    """Patch atexit, threading, signals and process-ending calls of ``os``.

    Everything lives in this closure so that the probe adds one name to
    ``sitecustomize`` and its hot path uses fast local lookups.
    """
    import _signal
    import atexit
    import time

    write = os.write
    getpid = os.getpid
    monotonic = time.monotonic
    py310 = sys.version_info >= (3, 10)
    py311 = sys.version_info >= (3, 11)

    esc = {i: "\\u%04x" % i for i in range(32)}
    esc[34] = '\\"'
    esc[92] = "\\\\"

    def cut(exc):
        """Drop this wrapper's frame from ``exc``'s traceback before a bare raise
        (effective from 3.11; before that ``hide_probe_frames`` covers printing)."""
        if exc.__traceback__ is not None:
            exc.__traceback__ = exc.__traceback__.tb_next

    def js(value):
        return '"' + str(value).translate(esc) + '"'

    real_excepthook = sys.__excepthook__
    st = {"fd": -1, "pid": 0, "seq": 0, "current": None, "exit_noted": False, "path": "", "id": None,
          "ncb": atexit._ncallbacks()}  # handlers registered before the probe: it cannot follow them
    handlers = {}  # handler id -> [func, kind, begin marker, end marker]

    def open_file():
        pid = getpid()
        start = "0"
        try:
            with open("/proc/self/stat", "rb") as f:
                start = f.read().rpartition(b")")[2].split()[19].decode()
        except Exception:
            pass
        name = "%s/%d-%s-%d.jsonl" % (events_dir, pid, start, time.monotonic_ns())
        attach(os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), name)
        st["pid"] = pid
        st["seq"] = 0
        return start

    def attach(fd, path):
        info = os.fstat(fd)
        st["fd"], st["path"], st["id"] = fd, path, (info.st_dev, info.st_ino)

    def ours(fd):
        """Is ``fd`` still our event file?  A program that closes every fd (as
        daemons do) may get that number back for a file of its own."""
        try:
            info = os.fstat(fd)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == st["id"]

    def emit(kind, body=""):
        try:
            if st["pid"] != getpid():
                return  # a fork the at-fork hook did not see (raw C fork)
            if not ours(st["fd"]):
                attach(os.open(st["path"], os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), st["path"])
            st["seq"] += 1
            line = '{"k":"%s","n":%d,"t":%.6f%s}\n' % (kind, st["seq"], monotonic(), body)
            write(st["fd"], line.encode("utf-8", "backslashreplace"))
        except Exception:
            pass

    def cmdline():
        try:
            with open("/proc/self/cmdline", "rb") as f:
                raw = f.read().split(b"\0")[:-1]
            return [a.decode("utf-8", "surrogateescape") for a in raw]
        except Exception:
            return list(getattr(sys, "orig_argv", sys.argv))

    def emit_start(forked):
        start = open_file()
        argv = ",".join(js(a) for a in cmdline())
        emit(
            "start",
            ',"pid":%d,"ppid":%d,"st":%s,"argv":[%s],"exe":%s,"py":"%d.%d.%d","fork":%s,"ncb":%d'
            % (getpid(), os.getppid(), start, argv, js(sys.executable), *sys.version_info[:3],
               "true" if forked else "false", st["ncb"]),
        )

    # -- exit handlers -------------------------------------------------------

    def describe(func):
        """Return the JSON fields naming ``func``: qualname, module, file:line."""
        inner = func
        for _ in range(5):  # functools.partial, bound methods, decorators
            nxt = getattr(inner, "func", None) or getattr(inner, "__func__", None)
            if nxt is None or nxt is inner:
                break
            inner = nxt
        name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
        code = getattr(inner, "__code__", None)
        where = "%s:%d" % (code.co_filename, code.co_firstlineno) if code else ""
        return ',"name":%s,"module":%s,"where":%s' % (
            js(name), js(getattr(inner, "__module__", None) or ""), js(where))

    def note_exit():
        """Record, once, that interpreter shutdown began and what it began with."""
        if st["exit_noted"]:
            return
        st["exit_noted"] = True
        exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        body = ',"exc":%s' % js(type(exc).__qualname__) if exc is not None else ""
        emit("exit", body)

    class HookProxy:
        """``sys.unraisablehook`` while a handler runs: notes its exception, then
        hands it to the hook that was in place, so the printed text is unchanged."""

        def __init__(self, hook):
            self.hook = hook

        def __call__(self, args):
            msg = args.err_msg or ""
            threading_mod = sys.modules.get("threading")
            if st["current"] is not None and (
                msg.startswith("Exception ignored in atexit callback")
                or (args.err_msg is None and args.object is threading_mod)
            ):
                emit("raise", ',"h":%d,"exc":%s' % (st["current"], js(args.exc_type.__qualname__)))
            return self.hook(args)

    def begin(hid):
        if handlers[hid][1] == "atexit":
            note_exit()  # threading callbacks run earlier, before thread joins
        st["current"] = hid
        hook = sys.unraisablehook
        if not isinstance(hook, HookProxy):
            sys.unraisablehook = HookProxy(hook)
        handlers[hid].append(monotonic())
        emit("begin", ',"h":%d' % hid)

    def end(hid):
        entry = handlers[hid]
        dur = monotonic() - entry[-1] if len(entry) > 4 else 0.0
        emit("end", ',"h":%d,"dur":%.6f' % (hid, dur))
        st["current"] = None
        hook = sys.unraisablehook
        if isinstance(hook, HookProxy):
            sys.unraisablehook = hook.hook

    class Marker:
        """Registered just before and after a handler so that the handler itself
        stays what atexit calls: tracebacks and ``unregister`` are untouched."""

        __slots__ = ("hid", "fn")

        def __init__(self, hid, fn):
            self.hid = hid
            self.fn = fn

        def __call__(self):
            self.fn(self.hid)

    class Wrapped:
        """Python 3.9 only: its atexit reports a handler's error to no hook, so
        the handler is wrapped, and the error printed as 3.9's atexit prints it
        (same text, same stream) without the wrapper's frame."""

        __slots__ = ("hid", "func")

        def __init__(self, hid, func):
            self.hid = hid
            self.func = func

        def __call__(self, *args, **kwargs):
            begin(self.hid)
            try:
                result = self.func(*args, **kwargs)
            except BaseException as exc:
                emit("raise", ',"h":%d,"exc":%s' % (self.hid, js(type(exc).__qualname__)))
                if not isinstance(exc, SystemExit):
                    sys.stderr.write("Error in atexit._run_exitfuncs:\n")
                    if exc.__traceback__ is not None:
                        exc.__traceback__ = exc.__traceback__.tb_next
                    real_excepthook(type(exc), exc, exc.__traceback__)
                return None
            end(self.hid)
            return result

        def __eq__(self, other):
            return self.func == other

        def __hash__(self):
            return id(self)

        def __repr__(self):
            return repr(self.func)

    def new_handler(func, kind):
        hid = len(handlers) + 1
        handlers[hid] = [func, kind, Marker(hid, begin), Marker(hid, end)]
        emit("reg", ',"h":%d,"kind":"%s"%s' % (hid, kind, describe(func)))
        return hid

    real_register = atexit.register
    real_unregister = atexit.unregister
    real_clear = atexit._clear

    def register(func, *args, **kwargs):
        try:
            if not callable(func):
                return real_register(func, *args, **kwargs)  # let atexit raise its TypeError
            hid = new_handler(func, "atexit")
            if not py310:
                real_register(Wrapped(hid, func), *args, **kwargs)
                return func
            entry = handlers[hid]
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
                emit("unreg", ',"h":%d' % hid)

    def clear():
        real_clear()
        for hid, entry in handlers.items():
            if entry[1] == "atexit":
                entry[1] = "gone"
                emit("unreg", ',"h":%d' % hid)
        real_register(done)

    def done():
        note_exit()
        emit("done")

    for name, fn in (("register", register), ("unregister", unregister), ("_clear", clear)):
        fn.__name__ = fn.__qualname__ = name
        setattr(atexit, name, fn)
    register.__doc__ = real_register.__doc__
    unregister.__doc__ = real_unregister.__doc__

    def patch_threading(mod):
        """``threading._register_atexit`` callbacks run first, inside
        ``threading._shutdown``; bracket them with markers the same way."""
        real = getattr(mod, "_register_atexit", None)
        if real is None:
            return

        def _register_atexit(func, *args, **kwargs):
            hid = new_handler(func, "threading")
            entry = handlers[hid]
            real(entry[3])
            real(func, *args, **kwargs)
            real(entry[2])

        mod._register_atexit = _register_atexit

    def patch_posixsubprocess(mod):
        """``subprocess`` starts children through ``fork_exec``: record their pids,
        so a child adopted by gsup before its probe ran still has a known parent."""
        real = getattr(mod, "fork_exec", None)
        if real is not None:
            mod.fork_exec = passthrough_fn(real, "fork_exec", after=on_spawn_argv(0))


    # -- signal handlers -----------------------------------------------------

    originals = {}  # signal number -> (wrapper installed, original handler)
    real_signal = _signal.signal
    real_getsignal = _signal.getsignal
    default_int = _signal.default_int_handler

    def handler_name(handler):
        if handler == 0:
            return "SIG_DFL"
        if handler == 1:
            return "SIG_IGN"
        if handler is None:
            return "None"
        return getattr(handler, "__qualname__", None) or type(handler).__qualname__

    def unwrap(signum, handler):
        pair = originals.get(signum)
        return pair[1] if pair is not None and pair[0] is handler else handler

    def wrap_handler(signum, handler):
        # Before 3.11 a wrapper frame would show in the traceback of an exception
        # the handler raises; the default SIGINT handler raises KeyboardInterrupt
        # every time, so there it is left bare and its run is inferred instead.
        if not callable(handler) or (handler is default_int and not py311):
            return handler

        def wrapper(signum, frame):
            emit("sigrun", ',"sig":%d' % signum)
            try:
                return handler(signum, frame)
            except BaseException as exc:
                if exc.__traceback__ is not None:
                    exc.__traceback__ = exc.__traceback__.tb_next
                raise

        originals[signum] = (wrapper, handler)
        return wrapper

    def signal(signalnum, handler):
        try:
            old = real_signal(signalnum, wrap_handler(signalnum, handler))
        except BaseException as exc:
            cut(exc)
            raise
        emit("sig", ',"sig":%d,"handler":%s' % (signalnum, js(handler_name(handler))))
        return unwrap(signalnum, old)

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
    if py311 and real_getsignal(2) is default_int:
        real_signal(2, wrap_handler(2, default_int))  # so a Ctrl-C is seen arriving

    # -- ways out: os._exit, exec, and the wait family ------------------------

    def passthrough_fn(real, name, before=None, after=None):
        """Wrap ``real``: note the call before and/or its result after, change nothing.

        On an exception the wrapper's own frame is cut from the traceback (3.11+
        keeps it out of what is printed; before 3.11 ``hide_probe_frames`` does)."""

        def wrapper(*args, **kwargs):
            if before is not None:
                before(*args)
            try:
                result = real(*args, **kwargs)
            except BaseException as exc:
                if exc.__traceback__ is not None:
                    exc.__traceback__ = exc.__traceback__.tb_next
                raise
            if after is not None:
                after(result, *args)
            return result

        wrapper.__name__ = wrapper.__qualname__ = name
        wrapper.__doc__ = real.__doc__
        wrapper.__module__ = getattr(real, "__module__", None)
        return wrapper

    def passthrough(name, before=None, after=None):
        real = getattr(os, name, None)
        if real is not None:
            setattr(os, name, passthrough_fn(real, name, before, after))

    def on_exit(code, *_):
        emit("os_exit", ',"code":%s' % (int(code) if isinstance(code, int) else js(code)))

    def on_exec(path, args, *_):
        emit("exec", ',"argv":[%s]' % ",".join(js(a) for a in args))

    def on_spawn(pid, *_):
        if isinstance(pid, int) and pid > 0:
            emit("spawn", ',"pid":%d' % pid)

    def on_spawn_argv(position):
        """A spawn record with the child's argv, which sits at ``position``."""

        def note(pid, *args):
            if isinstance(pid, int) and pid > 0:
                try:
                    argv = ",".join(js(a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else a)
                                    for a in args[position])
                except Exception:
                    argv = ""
                emit("spawn", ',"pid":%d,"argv":[%s]' % (pid, argv))

        return note

    def on_kill(pid, sig):
        emit("kill", ',"pid":%d,"sig":%d' % (pid, sig))

    def on_killpg(pgid, sig):
        emit("kill", ',"pgid":%d,"sig":%d' % (pgid, sig))

    def reaped(pid, status):
        if pid > 0:
            emit("reaped", ',"pid":%d,"status":%d' % (pid, status))

    def on_waitid(result, idtype, ident, options, *_):
        if result is None or options & getattr(os, "WNOWAIT", 0) or result.si_code not in (1, 2, 3):
            return  # nothing, a peek, or a stop/continue: not a death
        if result.si_code == 1:  # CLD_EXITED
            status = (result.si_status & 0xFF) << 8
        else:  # CLD_KILLED, CLD_DUMPED: wait status carries the signal number
            status = result.si_status & 0x7F
        reaped(result.si_pid, status)

    def install_waitpid():
        """``waitpid`` that records a child's status *before* reaping it.

        It peeks with ``waitid(WNOWAIT)``, records, then reaps.  If this process
        dies in between (a signal to the whole group lands while it waits), the
        child stays a zombie for gsup, the subreaper, to reap with the same
        status; recording after reaping would lose the status with the parent.
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
                        on_waitid(info, idtype, ident, exited)
                        pid, peeked = info.si_pid, True
                result = real(pid, options)
            except BaseException as exc:
                if exc.__traceback__ is not None:
                    exc.__traceback__ = exc.__traceback__.tb_next
                raise
            if not peeked:
                reaped(result[0], result[1])
            return result

        waitpid.__doc__ = real.__doc__
        waitpid.__module__ = "os"
        os.waitpid = waitpid

    passthrough("_exit", before=on_exit)
    for name in ("execv", "execve"):
        passthrough(name, before=on_exec)
    passthrough("kill", before=on_kill)
    passthrough("fork", after=on_spawn)
    passthrough("posix_spawn", after=on_spawn_argv(1))
    passthrough("posix_spawnp", after=on_spawn_argv(1))
    passthrough("killpg", before=on_killpg)
    passthrough("wait", after=lambda r, *a: reaped(r[0], r[1]))
    install_waitpid()
    passthrough("wait3", after=lambda r, *a: reaped(r[0], r[1]))
    passthrough("wait4", after=lambda r, *a: reaped(r[0], r[1]))
    passthrough("waitid", after=on_waitid)

    def after_fork():
        try:
            if ours(st["fd"]):
                os.close(st["fd"])  # the parent's file: this process gets its own
            st["pid"] = 0
            st["current"] = None
            emit_start(True)
            for hid, entry in handlers.items():
                if entry[1] != "gone":
                    emit("inherit", ',"h":%d,"kind":"%s"%s' % (hid, entry[1], describe(entry[0])))
        except Exception:
            pass

    os.register_at_fork(after_in_child=after_fork)

    if not py311:
        hide_probe_frames(sys.modules[__name__].__dict__)

    probe_globals = globals()

    def patch_traceback(mod):
        """Before 3.11 a re-raise keeps the wrapper's frame (see ``cut``): tracebacks
        the program prints itself (logging, traceback.print_exc) skip probe frames."""
        real_walk = getattr(mod, "walk_tb", None)
        if real_walk is None:
            return

        def walk_tb(tb):
            for frame, lineno in real_walk(tb):
                if frame.f_globals is not probe_globals:
                    yield frame, lineno

        walk_tb.__doc__ = real_walk.__doc__
        walk_tb.__module__ = "traceback"
        mod.walk_tb = walk_tb

    class Finder:
        """Patches a few modules when the program imports them, and costs one
        dict lookup for every other first import."""

        patches = {"threading": patch_threading, "_posixsubprocess": patch_posixsubprocess}
        if not py311:
            patches["traceback"] = patch_traceback

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
                spec.loader = Loader(spec.loader, patch)
            return spec

    class Loader:
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

    finder = Finder()  # last: its patches use the wrappers above
    for name, patch in finder.patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, finder)

    emit_start(False)
    real_register(done)
    for signum in (2, 15):
        emit("sig0", ',"sig":%d,"handler":%s' % (signum, js(handler_name(getsignal(signum)))))


def hide_probe_frames(namespace):
    """Before 3.11 a re-raised exception keeps the frame of the wrapper it passed
    through (see ``_install``), so a Ctrl-C landing in a probed ``os.waitpid``
    would print one extra line.  Unhandled exceptions reach ``sys.excepthook``
    with the full chain; this hook unlinks probe frames, then calls the real
    one.  It also stands in as ``sys.__excepthook__``, so identity checks such
    as ``sys.excepthook is sys.__excepthook__`` still hold.
    """
    real = sys.excepthook

    def strip_tb(tb):
        while tb is not None and tb.tb_frame.f_globals is namespace:
            tb = tb.tb_next
        head = tb
        while tb is not None:
            nxt = tb.tb_next
            while nxt is not None and nxt.tb_frame.f_globals is namespace:
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


def _cache_own_bytecode():
    """Write this file's .pyc if it was just compiled from source.

    Compiling the probe costs more than everything else it does at start-up,
    and every process of the tree loads it.  ``PYTHONDONTWRITEBYTECODE`` (or a
    read-only install) would make every one of them compile it again; Python
    still *reads* a cached file then, so the probe writes its own, once per
    interpreter version, in gsup's directory and nowhere else.
    """
    spec = globals().get("__spec__")
    cached = getattr(spec, "cached", None)
    if not cached or not sys.dont_write_bytecode:
        return  # Python caches it itself
    import os

    try:
        if os.stat(cached).st_mtime >= os.stat(__file__).st_mtime:
            return
    except OSError:
        pass
    import py_compile

    py_compile.compile(__file__, cfile=cached, doraise=False, quiet=2)


def _main():
    if _STATE_KEY in sys.modules:
        return  # a second run of site in this process (subinterpreter, path listed twice)
    sys.modules[_STATE_KEY] = sys.modules.get(__name__)  # type: ignore[assignment]
    try:
        import os

        events_dir = os.environ.get("GSUP_EVENTS")
        if events_dir:
            _install(os, events_dir)
            _cache_own_bytecode()
    except Exception:
        pass


_main()
_chain_sitecustomize()
