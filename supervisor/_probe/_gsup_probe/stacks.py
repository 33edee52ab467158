"""Every thread's stack, written when gsup asks (``STACKS_SIGNAL``): where the process is right now.

Loaded by the package's handler (``_on_stacks_signal``) on the first request,
never at start-up, and dropped from ``sys.modules`` at once.  One request
appends one block to ``<events dir>/<pid>.stacks``, opened and closed within
the request (the probe holds no descriptor between events)::

    # gsup-stacks pid=<pid> t=<monotonic>
    # threads [[ident, "name", daemon], ...]
    # running <handler id>                    (an exit handler was running)
    # exc ["Type", "repr", "file:line"]       (the error that ended the main thread)
    # tasks [["name", "coroutine", "file:line"], ...]  (the running event loop's tasks)
    # logs [["Handler", "target", held], ...] (records still held by logging handlers)
    <faulthandler's dump of every thread>
    # end

faulthandler writes the frames from C, straight to the file, with no lock and
no allocation: it names each thread by the ident ``threading`` uses too, which
the ``threads`` line maps to a name and a daemon flag.  The reader lives in
``supervisor/stacks.py``.
"""

import sys

from . import _load_part, js


def write(rec, running):
    """Append one block for this process; ``running`` is the exit handler running, if any."""
    os = rec.os
    import faulthandler

    path = "%s/%d.stacks" % (rec.events_dir, os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        head = ["# gsup-stacks pid=%d t=%.6f" % (os.getpid(), rec.monotonic()), "# threads [%s]" % _threads()]
        if running is not None:
            head.append("# running %d" % running)
        exc = _uncaught()
        if exc:
            head.append("# exc %s" % exc)
        tasks = _tasks()
        if tasks:
            head.append("# tasks [%s]" % tasks)
        logs = held_logs()
        if logs:
            head.append("# logs [%s]" % logs)
        os.write(fd, ("\n".join(head) + "\n").encode("utf-8", "backslashreplace"))
        faulthandler.dump_traceback(fd, all_threads=True)
        os.write(fd, b"# end\n")
    finally:
        os.close(fd)


def _uncaught():
    """``["Type", "repr", "file:line"]`` of the error that ended the main thread (Python notes
    it before waiting for non-daemon threads, so a process stuck there still knows it)."""
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None:
        return ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = "%s:%d" % (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ""
    return "[%s,%s,%s]" % (js(type(exc).__qualname__), js(repr(exc)[:200]), js(where))


def _tasks():
    """``["name", "coroutine", "file:line"]`` of every task of the event loop running in this
    (the main) thread, each where its chain of awaits is suspended now."""
    events = sys.modules.get("asyncio.events")
    tasks = sys.modules.get("asyncio.tasks")
    loop = events._get_running_loop() if events is not None else None
    if loop is None or tasks is None:
        return ""
    awaiting = _load_part("aio").awaiting  # where a task waits: said once, in the asyncio part
    items = []
    for task in list(tasks.all_tasks(loop)):
        where = awaiting(task)
        name = getattr(task.get_coro(), "__qualname__", "?")
        items.append("[%s,%s,%s]" % (js(task.get_name()), js(name), js(where)))
    return ",".join(items)


def _threads():
    """``[ident, name, daemon]`` of every thread ``threading`` knows, as JSON items."""
    threading = sys.modules.get("threading")
    if threading is None:
        return ""
    items = []
    for ident, thread in list(getattr(threading, "_active", {}).items()):
        items.append("[%d,%s,%s]" % (ident, js(thread.name), "true" if thread.daemon else "false"))
    return ",".join(items)


def held_logs():
    """``["Class", "target", n]`` for each logging handler still holding ``n`` records:
    a MemoryHandler's buffer, a QueueHandler's queue no listener drained."""
    logging = sys.modules.get("logging")
    if logging is None:
        return ""
    items = []
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref() if callable(ref) else None
        held, target = _held(handler)
        if held:
            items.append("[%s,%s,%d]" % (js(type(handler).__name__), js(target), held))
    return ",".join(items)


def _held(handler):
    """How many records ``handler`` holds, and where they were meant to go."""
    try:
        buffer = getattr(handler, "buffer", None)
        if isinstance(buffer, list):
            target = getattr(handler, "target", None)
            return len(buffer), getattr(target, "baseFilename", None) or type(target).__name__
        queue = getattr(handler, "queue", None)
        if queue is not None and hasattr(queue, "qsize"):
            return queue.qsize(), "queue"
    except Exception:
        pass
    return 0, ""
