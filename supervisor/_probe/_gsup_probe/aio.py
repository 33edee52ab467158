"""asyncio: the callbacks given to ``loop.add_signal_handler``, and the tasks ``asyncio.run`` cancels at its end.

Loaded by the package (``_aio_patches``) when the program imports
``asyncio.unix_events`` or ``asyncio.runners``, and dropped from
``sys.modules`` at once.  Nothing the program holds is replaced: the loop keeps
the program's own callback in its handle (asyncio's tests read it), the
probe only names it; ``_cancel_all_tasks`` is wrapped where ``asyncio.run`` and
``Runner.close`` look it up.
"""

import sys

from . import js, posing, where


def patch_unix_events(rec, module):
    """After ``add_signal_handler`` succeeds, a ``sig`` record naming the program's callback:
    asyncio itself installs ``_sighandler_noop`` (its wakeup fd does the work), which the
    report would otherwise show."""
    loop_class = getattr(module, "_UnixSelectorEventLoop", None)
    real = getattr(loop_class, "add_signal_handler", None)
    if real is None:
        return

    def add_signal_handler(self, sig, callback, *args):
        result = real(self, sig, callback, *args)
        try:
            inner = getattr(callback, "func", None) or getattr(callback, "__func__", None) or callback
            name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
            rec.emit("sig", ',"sig":%d,"handler":%s,"via":"asyncio","where":%s' % (int(sig), js(name), js(where(inner))))
        except Exception:
            pass
        return result

    loop_class.add_signal_handler = posing(add_signal_handler, real)


def patch_runners(rec, module):
    """``asyncio.run`` (and ``Runner.close``) cancel every task left and wait for them: each task
    is recorded before (name, coroutine, where it awaits), and whether its cleanup finished after.
    A process killed in the middle (a slow ``finally``) has the first records only."""
    real = getattr(module, "_cancel_all_tasks", None)
    if real is None:
        return
    tasks = sys.modules.get("asyncio.tasks")

    def _cancel_all_tasks(loop):
        left = []
        try:
            left = list(tasks.all_tasks(loop)) if tasks is not None else []
            for number, task in enumerate(left):
                rec.emit("aio.cancel", ',"i":%d,"name":%s,"coro":%s,"at":%s' % (
                    number, js(task.get_name()), js(_coro_name(task)), js(awaiting(task))))
        except Exception:
            pass
        result = real(loop)
        try:
            for number, task in enumerate(left):
                finished = task.done()
                state = "cancelled" if finished and task.cancelled() else "done" if finished else "pending"
                rec.emit("aio.cancelled", ',"i":%d,"state":"%s"' % (number, state))
        except Exception:
            pass
        return result

    module._cancel_all_tasks = posing(_cancel_all_tasks, real)


def _coro_name(task):
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__qualname__


def awaiting(task):
    """file:line where the task is suspended: down its chain of awaited coroutines to the
    innermost of the program's (asyncio's own only if the task runs nothing else)."""
    coro, frame = task.get_coro(), None
    for _ in range(100):
        inner = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if inner is None:
            break
        if frame is None or "/asyncio/" not in inner.f_code.co_filename:
            frame = inner  # asyncio's own frames (sleep, wait_for) say less than the program's await
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "%s:%d" % (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ""
