"""The probe's event writer: this process's file, one ``os.write`` of one JSON line per event."""

import sys

from . import js


class Recorder:
    """This process's event file: one ``os.write`` of one JSON line per event.

    The file's descriptor is moved to a high number (programs allocate from the
    lowest free one, so they practically never reach it): a daemon that closes
    fds 3-255 and opens its log cannot be handed our number.  A program that
    closes *every* fd makes the next write fail, and the file is opened again.
    Where no high number is available (a tiny fd limit), each write first checks
    that the descriptor is still the file it was.
    """

    HIGH_FDS = (1009, 1013, 1019, 1021)

    def __init__(self, os, events_dir):
        import atexit
        import time

        self.os = os
        self.events_dir = events_dir
        self.monotonic = time.monotonic
        self.monotonic_ns = time.monotonic_ns
        self._write, self._fstat = os.write, os.fstat
        self.fd = -1
        self.path = ""
        self.identity = None
        self.check = False  # True when the fd is low: verify it before each write
        self.seq = self.count()  # next() is atomic: threads never share a sequence number
        self.opaque = atexit._ncallbacks()  # registered before the probe: it cannot follow them

    @staticmethod
    def count():
        """1, 2, 3...: ``itertools.count`` without importing it (one import less at start-up)."""
        return iter(range(1, sys.maxsize))

    def emit(self, kind, body=""):
        # No getpid() check here (a syscall on every event): every fork that can
        # run Python in the child (os.fork, subprocess's preexec_fn) runs the
        # at-fork hook, which gives the child its own file first.
        try:
            if self.check and not self.owns(self.fd):
                self._open(create=False)
            data = ('{"k":"%s","n":%d,"t":%.6f%s}\n' % (kind, next(self.seq), self.monotonic(), body)).encode(
                "utf-8", "backslashreplace")
            try:
                self._write(self.fd, data)
            except OSError:
                if self.owns(self.fd):
                    return  # still our file, just not writable now (ENOSPC...): the event is lost, not the fd
                self._open(create=False)  # closed under us: open it again
                self._write(self.fd, data)
        except Exception:
            pass

    def owns(self, fd):
        """Is ``fd`` still our event file?"""
        try:
            info = self._fstat(fd)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self.identity

    def _open(self, create):
        os = self.os
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(self.path, flags, 0o600)
        info = os.fstat(fd)
        self.identity = (info.st_dev, info.st_ino)
        self.fd, self.check = fd, True
        for high in self.HIGH_FDS:
            try:
                os.fstat(high)
                continue  # taken (an fd the program inherited): try the next
            except OSError:
                pass
            try:
                os.dup2(fd, high, inheritable=False)
            except OSError:
                return  # above the fd limit: keep the low fd, checked on each write
            os.close(fd)
            self.fd, self.check = high, False
            return

    def start(self, forked):
        """Open this process's own file and write who it is."""
        os = self.os
        pid = os.getpid()
        start = "0"  # clock ticks since boot: with the pid, the process's identity
        try:
            start = _read(os, "/proc/self/stat").rpartition(b")")[2].split()[19].decode()
        except Exception:
            pass
        self.path = "%s/%d-%s-%d.jsonl" % (self.events_dir, pid, start, self.monotonic_ns())
        self._open(create=True)
        self.seq = self.count()
        argv = ",".join(js(a) for a in _cmdline(os))
        self.emit("start", ',"pid":%d,"ppid":%d,"st":%s,"argv":[%s],"exe":%s,"py":"%d.%d.%d","fork":%s,"ncb":%d'
                  % (pid, os.getppid(), start, argv, js(sys.executable), *sys.version_info[:3],
                     "true" if forked else "false", self.opaque))


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
