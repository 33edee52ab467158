"""The probe's start-up: apply every patch once, and arm those applied when the program imports a module.

As coverage.py's ``patch.apply_patches``: one function reads in order what is
patched at start, each patch is a function of its part; the parts a process may
not need (``watch``, ``frames``) are loaded on first use.
"""

import sys

from . import PACKAGE, PY311, exits, recorder, signals, ways


def start(os, events_dir, entry_spec):
    """Apply the patches, keep the probe's compiled bytecode, and leave one
    name in ``sys.modules`` (the package's: the once-only guard)."""
    try:
        apply_patches(os, events_dir)
        if sys.dont_write_bytecode:
            for spec in (entry_spec, *(module.__spec__ for module in _parts())):
                cache_bytecode(spec)
    finally:
        for module in _parts():
            del sys.modules[module.__name__]


def apply_patches(os, events_dir):
    """Patch everything the probe watches and say this process has started, then
    arm the patches applied on import (a watched module already imported may
    already have something to report)."""
    rec = recorder.Recorder(os, events_dir)
    handlers = exits.patch_atexit(rec)
    getsignal, wrapped_signals = signals.patch_signals(rec)
    wrap = ways.patch_os(rec)
    note_signal_handlers = signals.handlers_noter(rec, getsignal, wrapped_signals)
    ways.patch_fork(rec, handlers, note_signal_handlers)
    on_import = {
        "threading": handlers.patch_threading,
        "_posixsubprocess": lambda mod: ways.patch_fork_exec(mod, wrap),
    }
    if not PY311:
        from . import frames

        frames.hide_probe_frames()
        handlers.real_excepthook = sys.__excepthook__  # 3.9's handler errors: a watched handler's frame too
        on_import["traceback"] = frames.patch_traceback
    rec.start(forked=False)
    _patch_imports(_merged(on_import, _watch_patches(rec, os.environ)))
    handlers.register_done()
    note_signal_handlers()


def _parts():
    """The probe's submodules in ``sys.modules``."""
    prefix = PACKAGE + "."
    return [module for name, module in list(sys.modules.items()) if name.startswith(prefix)]


def cache_bytecode(spec):
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


# -- what to watch: --watch MODULE:QUALNAME and the built-in sets ------------------

# Built-in watch sets, as data: preset -> {module: ((attribute path, naming), ...)}.
# An empty naming reports each call by its path; "hooks" and "finalize" report
# the function the wrapped one hands out or runs (see _Watch.special).  A path
# some version of the library lacks is skipped silently (Router.shutdown went in
# Starlette 1.0); only a --watch the user typed is reported missing.
WATCH_PRESETS = {
    "gunicorn": {"gunicorn.config": (("Config.__getattr__", "hooks"),)},
    "asgi": {
        "uvicorn.lifespan.on": (("LifespanOn.shutdown", ""),),
        "uvicorn.server": (("Server.shutdown", ""),),
        "starlette.routing": (("Router.shutdown", ""),),
    },
    "weakref": {"weakref": (("finalize.__call__", "finalize"),)},
    "logging": {"logging": (("shutdown", ""),)},
    "futures": {
        "concurrent.futures.thread": (("ThreadPoolExecutor.shutdown", ""),),
        "concurrent.futures.process": (("ProcessPoolExecutor.shutdown", ""),),
    },
}


def watch_table(environ):
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
    table = watch_table(environ)
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


def _load_watch():
    """The ``watch`` part, loaded after start-up: out of ``sys.modules`` again at once."""
    from . import watch

    sys.modules.pop(watch.__name__, None)
    cache_bytecode(watch.__spec__)
    return watch


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


# -- patches applied when the program imports a module ------------------------------


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


def _patch_imports(patches):
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _Finder(patches))
