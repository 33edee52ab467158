"""gsup's probe, in parts: what every part shares (JSON text, a wrapper's frame cut, a function named).

``sitecustomize.py`` next to this package is the entry point ``site`` imports;
it calls ``patch.apply_patches``, which loads the parts below.  Rules every
part lives by (see ``shared/design/exit-semantics.md``):

* stdlib-only, never imports the rest of ``supervisor``: it runs inside the
  program being measured, under any interpreter from 3.9 on;
* cheap at start-up: no ``json``, ``re``, ``enum`` or ``signal`` import; events are
  JSON lines formatted by hand; a part the process does not need is not loaded
  (``watch`` when nothing watched is imported, ``frames`` from 3.11 on);
* never changes what it measures: every wrapper keeps return values, exceptions
  and the text of tracebacks; anything failing inside the probe is swallowed;
* loses nothing to SIGKILL: one ``os.write`` per event on an ``O_APPEND`` file,
  a *begin* written before a handler runs and an *end* after it.

The package's name is chosen for no program to share it: it sits on the
program's ``sys.path`` while it loads.  Its submodules are dropped from
``sys.modules`` once loaded (``patch.forget_parts``), so the program sees one
name, ``_gsup_probe``, as before the split.  Parts therefore reach each other
as attributes of this package (``from . import name``), never as
``from .part import name`` after start-up, which would load a second copy.

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
    ``raise`` (effective from 3.11; before that ``frames.hide_probe_frames`` covers it)."""
    if exc.__traceback__ is not None:
        exc.__traceback__ = exc.__traceback__.tb_next


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
