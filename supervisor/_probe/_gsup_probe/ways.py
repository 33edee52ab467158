"""Ways out and around: os._exit, exec, kill, fork and spawn, and the wait family that reaps children."""

from . import cut, describe, js


def passthrough(real, name, before=None, after=None):
    """Wrap ``real``: note the call before and/or its result after, change nothing.

    On an exception the wrapper's own frame is cut from the traceback (3.11+
    keeps it out of what is printed; before 3.11 ``hide_probe_frames`` does)."""

    def wrapper(*args, **kwargs):
        if before is not None:
            try:
                before(*args, **kwargs)
            except Exception:
                pass  # odd arguments are the real call's to refuse, in its own words
        try:
            result = real(*args, **kwargs)
        except BaseException as exc:
            cut(exc)
            raise
        if after is not None:
            try:
                after(result, *args, **kwargs)
            except Exception:
                pass
        return result

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = real.__doc__
    wrapper.__module__ = getattr(real, "__module__", None)
    return wrapper


class Ways:
    """What the ``os`` wrappers record: exits, execs, kills, spawns, reaps."""

    def __init__(self, rec):
        self.rec = rec

    def exit(self, status, *_, **__):
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

    def kill(self, pid, sig, *_, **__):
        self.rec.emit("kill", ',"pid":%d,"sig":%d' % (pid, sig))

    def killpg(self, pgid, sig, *_, **__):
        self.rec.emit("kill", ',"pgid":%d,"sig":%d' % (pgid, sig))

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


def patch_os(rec):
    os = rec.os
    ways = Ways(rec)

    def wrap(name, before=None, after=None):
        real = getattr(os, name, None)
        if real is not None:
            setattr(os, name, passthrough(real, name, before, after))

    wrap("_exit", before=ways.exit)
    wrap("execv", before=ways.exec)
    wrap("execve", before=ways.exec)
    wrap("kill", before=ways.kill)
    wrap("killpg", before=ways.killpg)
    wrap("fork", after=ways.spawn)
    wrap("posix_spawn", after=ways.spawn_argv(1))
    wrap("posix_spawnp", after=ways.spawn_argv(1))
    wrap("wait", after=ways.reaped_pair)
    wrap("wait3", after=ways.reaped_pair)
    wrap("wait4", after=ways.reaped_pair)
    wrap("waitid", after=ways.waitid)
    patch_waitpid(os, ways)
    return ways


def patch_waitpid(os, ways):
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

    waitpid.__doc__ = real.__doc__
    waitpid.__module__ = "os"
    os.waitpid = waitpid


def patch_fork_exec(mod, ways):
    """``subprocess`` starts children through ``fork_exec``: record their pids and
    argv, so a child adopted by gsup before its probe ran still has a parent."""
    real = getattr(mod, "fork_exec", None)
    if real is not None:
        mod.fork_exec = passthrough(real, "fork_exec", after=ways.spawn_argv(0))


def patch_fork(rec, exits, note_signal_handlers):
    """A forked child gets a file of its own and knows the handlers it inherited."""
    os = rec.os

    def after_fork():
        try:
            if rec.owns(rec.fd):
                os.close(rec.fd)  # the parent's file: this process gets its own
            exits.current = None
            rec.start(forked=True)
            for hid, entry in exits.handlers.items():
                if entry[1] != "gone":
                    rec.emit("inherit", ',"h":%d,"kind":"%s"%s' % (hid, entry[1], describe(entry[0])))
            note_signal_handlers()
        except Exception:
            pass

    os.register_at_fork(after_in_child=after_fork)
