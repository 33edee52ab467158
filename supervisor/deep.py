"""``--deep``: make interpreters started with ``-I`` or ``-E`` load the probe, leaving nothing behind.

Such an interpreter ignores ``PYTHONPATH``, so gsup's ``sitecustomize`` never
loads; but ``site`` still runs the ``.pth`` files of the interpreter's own
site-packages.  Writing one there would dirty a shared install (or fail: it
may not be writable), and a SIGKILLed gsup could never remove it.  So this
small script, run between gsup and its guardian, puts the program in a
private mount namespace and lays a throwaway overlay over that directory
whose only addition is one ``.pth`` line.  Only the program's tree sees it;
the kernel removes the namespace, the overlay and the tmpfs beneath it when
the tree's last process ends, however gsup ends.  Nothing is written to disk.

The ``.pth`` line acts only in an interpreter that ignores the environment
(``sys.flags.ignore_environment``) and only under gsup (``GSUP_EVENTS``);
it borrows ``sys.path`` just long enough to import the probe, so the program
sees the path it would see without gsup.  Every other process starts the
probe from ``PYTHONPATH`` as usual.

It needs the right to create a mount namespace (root, or CAP_SYS_ADMIN);
without it, it says so on the status pipe in the guardian's words
(``{"error": ...}``) and gsup fails with that one line.

Command line: ``python -I -S deep.py PROBE_DIR SITE_DIR... -- GUARDIAN_COMMAND...``
with the guardian's status pipe on fd 3.  Standard library only, like the guardian.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys

STATUS_FD = 3  # the guardian's status pipe: the first line gsup reads
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PTH_NAME = "zzz-gsup-deep.pth"  # .pth files run in name order: last, as sitecustomize would

_PTH_CODE = (
    "try:\n"
    " import os\n"
    " if os.environ.get('GSUP_EVENTS') and '_gsup_probe' not in sys.modules:\n"
    "  sys.path.insert(0, %(dir)r)\n"
    "  try:\n"
    "   import _gsup_probe\n"
    "  finally:\n"
    "   sys.path.remove(%(dir)r)\n"
    "  _gsup_probe.start(os, os.environ['GSUP_EVENTS'], None)\n"
    "except Exception:\n"
    " pass\n"
)


def pth_line(probe_dir: str) -> str:
    """The one line ``site`` executes (it runs lines that start with ``import``)."""
    return "import sys; exec(%r) if sys.flags.ignore_environment else None\n" % (_PTH_CODE % {"dir": probe_dir})


class DeepError(Exception):
    """Why the overlay could not be laid: one line for the user."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        hint = ""
        if code in (errno.EPERM, errno.EACCES):  # root in a container may lack CAP_SYS_ADMIN
            hint = ": it needs CAP_SYS_ADMIN, drop --deep" if os.geteuid() == 0 else \
                ": run gsup as root, or drop --deep"
        raise DeepError(f"--deep cannot {what} ({os.strerror(code)}){hint}")


def _mount(libc: ctypes.CDLL, source: str, target: str, fstype: str | None, flags: int,
           data: str | None, what: str) -> None:
    _check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), what)


def private_namespace(libc: ctypes.CDLL) -> None:
    """A mount namespace of our own whose mounts never propagate back."""
    _check(libc.unshare(CLONE_NEWNS), "create a private mount namespace")
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None, "make the mount namespace private")


def overlay(libc: ctypes.CDLL, site_dir: str, line: str) -> None:
    """``site_dir`` as before plus one ``.pth`` file, its upper layer on a tmpfs that only the
    overlay can reach: the tmpfs is mounted on ``site_dir`` itself, then covered by the overlay,
    whose lower layer is the original directory, held open by an ``O_PATH`` descriptor."""
    info = os.stat(site_dir)
    lower = os.open(site_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        _mount(libc, "gsup-deep", site_dir, "tmpfs", 0, "mode=0755,size=1m", f"mount a tmpfs on {site_dir}")
        upper, work = os.path.join(site_dir, "upper"), os.path.join(site_dir, "work")
        os.mkdir(upper)
        os.mkdir(work)
        os.chmod(upper, info.st_mode & 0o7777)
        os.chown(upper, info.st_uid, info.st_gid)
        with open(os.path.join(upper, PTH_NAME), "w") as pth:
            pth.write(line)
        _mount(libc, "gsup-deep", site_dir, "overlay", 0,
               f"lowerdir=/proc/self/fd/{lower},upperdir={upper},workdir={work}", f"overlay {site_dir}")
    finally:
        os.close(lower)


def main(argv: list[str]) -> None:
    if "--" not in argv or argv.index("--") < 2:
        sys.exit("usage: deep.py PROBE_DIR SITE_DIR... -- COMMAND...")
    split = argv.index("--")
    probe_dir, site_dirs, command = argv[0], argv[1:split], argv[split + 1:]
    try:
        libc = _libc()
        private_namespace(libc)
        for site_dir in site_dirs:
            overlay(libc, site_dir, pth_line(probe_dir))
    except (DeepError, OSError) as err:
        message = str(err) if isinstance(err, DeepError) else f"--deep cannot overlay the site-packages: {err}"
        os.write(STATUS_FD, (json.dumps({"error": message}) + "\n").encode())
        sys.exit(1)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
