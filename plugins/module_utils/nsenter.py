# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Enter and create namespaces in forked children, and collect their answers with a timeout.

Target side: standard library only, Python >= 3.8. ``os.setns``/``os.unshare`` exist from
Python 3.12; older interpreters reach ``setns(2)``/``unshare(2)`` through ctypes.

Why a fork per namespace set: ``setns`` changes the calling process for good (a pid namespace
only for children, a user namespace drops privileges), so the module's own process never
enters anything. The child enters, reads ``/proc/sys`` through the host's procfs (net, ipc, uts
and user sysctls resolve through the *reader's* namespaces, so no mount namespace is entered
and nothing of the container's filesystem is touched) and sends one JSON document back over a
pipe. A child that hangs is killed when its deadline passes.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import select
import signal
import time

CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000

NS_FLAGS = {
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "mnt": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
}

# The user namespace goes first: once inside it, the process holds capabilities over the
# namespaces that user namespace owns (this is nsenter's order too).
ENTER_ORDER = ("user", "ipc", "uts", "net", "pid")

_libc = None


class NamespaceError(Exception):
    """A namespace could not be opened, entered or created."""


def _get_libc():
    global _libc
    if _libc is None:
        # CDLL(None) is the running process's own symbols, libc included: find_library("c")
        # would start an ldconfig subprocess in every forked reader.
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def setns(fd, nstype):
    # type: (int, int) -> None
    """setns(2): os.setns where it exists, ctypes otherwise."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    if _get_libc().setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def unshare(flags):
    # type: (int) -> None
    """unshare(2): os.unshare where it exists, ctypes otherwise."""
    native = getattr(os, "unshare", None)
    if native is not None:
        native(flags)
        return
    if _get_libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_namespaces(paths):
    # type: (dict) -> dict
    """Open ``{nstype: path}`` and return ``{nstype: fd}``.

    Opening every file before entering anything matters: a process that vanishes between
    listing and entering fails here, cleanly, and never half-way through the entering.
    """
    fds = {}
    try:
        for nstype, path in paths.items():
            fds[nstype] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        raise NamespaceError("cannot open %s: %s" % (exc.filename or path, exc.strerror))
    return fds


NS_GET_USERNS = 0xB701  # ioctl_ns(2): an fd for the user namespace that owns a namespace


def owner_userns_inode(fd):
    # type: (int) -> int
    """Inode of the user namespace that owns the namespace behind ``fd`` (None if unknown)."""
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    except (OSError, IOError):
        return None
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


def entry_order(fds):
    # type: (dict) -> list
    """The order to enter ``{nstype: fd}``.

    After setns into a user namespace the process holds capabilities only over namespaces that
    user namespace owns. Namespaces owned by the target user namespace (the rootless-container
    case) are entered after it; namespaces owned by an ancestor (a rootful runtime that added a
    user namespace later) are entered before it, while the process still has the host's
    capabilities.
    """
    if "user" not in fds:
        return [t for t in ENTER_ORDER if t in fds]
    target_user = os.fstat(fds["user"]).st_ino
    before, after = [], []
    for nstype in ENTER_ORDER:
        if nstype == "user" or nstype not in fds:
            continue
        (after if owner_userns_inode(fds[nstype]) == target_user else before).append(nstype)
    return before + ["user"] + after


def enter_namespaces(fds):
    # type: (dict) -> None
    """Enter the namespaces behind ``{nstype: fd}`` (in the child!) in a working order."""
    for nstype in entry_order(fds):
        try:
            setns(fds[nstype], NS_FLAGS[nstype])
        except OSError as exc:
            raise NamespaceError("setns(%s) failed: %s" % (nstype, exc.strerror))


def _child_main(target, pipe_w):
    # type: (callable, int) -> None
    """Run ``target()`` and write its JSON result; never return to the caller's stack."""
    code = 0
    try:
        try:
            result = {"ok": True, "value": target()}
        except NamespaceError as exc:
            result = {"ok": False, "stage": "enter", "error": str(exc)}
        except Exception as exc:  # the parent must get a message, not a silent death
            result = {"ok": False, "stage": "read", "error": "%s: %s" % (type(exc).__name__, exc)}
        data = json.dumps(result, separators=(",", ":")).encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(pipe_w, view)
            view = view[written:]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def fork_call(target):
    # type: (callable) -> tuple
    """Fork a child that runs ``target`` and return ``(pid, read_fd)``."""
    if getattr(os, "setns", None) is None:
        _get_libc()  # resolve once in the parent, not once per child
    pipe_r, pipe_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(pipe_r)
        # Default signal handling: the parent may kill a hung child.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _child_main(target, pipe_w)
    os.close(pipe_w)
    return pid, pipe_r


def run_in_grandchild(target):
    # type: (callable) -> object
    """Run ``target`` in a further fork and return its value (raise on its failure).

    After ``setns`` into a pid namespace only *children* live in it; ``kernel.pid_max`` and
    ``kernel.ns_last_pid`` show the namespace's values to a process created after the setns.
    """
    pid, fd = fork_call(target)
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
        _reap(pid)
    if not chunks:
        raise NamespaceError("pid-namespace reader died without an answer")
    answer = json.loads(b"".join(chunks).decode("utf-8"))
    if not answer.get("ok"):
        raise NamespaceError(answer.get("error", "pid-namespace reader failed"))
    return answer["value"]


def _reap(pid):
    # type: (int) -> int
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


class Job:
    """One unit of work for :func:`run_parallel`: a name and a callable run in a child."""

    __slots__ = ("name", "target")

    def __init__(self, name, target):
        self.name = name
        self.target = target


def run_parallel(jobs, parallel=2, timeout=5.0, deadline=None):
    # type: (list, int, float, float) -> dict
    """Run each job in its own forked child, ``parallel`` at a time, each within ``timeout``.

    Returns ``{name: {"ok": True, "value": ...}}`` or ``{name: {"ok": False, "stage": ...,
    "error": ...}}``. A child that overruns its timeout (a hung setns, a blocked read) is
    killed with SIGKILL and reported; the other jobs go on. ``deadline`` (a ``time.monotonic()``
    value) bounds the whole run: jobs not started by then are reported as skipped.
    """
    pending = list(jobs)
    pending.reverse()
    running = {}  # fd -> [job, pid, started, chunks]
    results = {}
    parallel = max(1, int(parallel))
    while pending or running:
        now = time.monotonic()
        while pending and len(running) < parallel:
            job = pending.pop()
            if deadline is not None and now >= deadline:
                results[job.name] = {"ok": False, "stage": "schedule",
                                     "error": "not started: the gather's overall time limit was reached"}
                continue
            pid, fd = fork_call(job.target)
            running[fd] = [job, pid, now, []]
        if not running:
            break
        wait = min(entry[2] + timeout for entry in running.values()) - time.monotonic()
        try:
            ready = select.select(list(running), [], [], max(0.0, wait))[0]
        except InterruptedError:  # pragma: no cover - PEP 475 retries select on 3.5+
            ready = []
        for fd in ready:
            entry = running[fd]
            try:
                chunk = os.read(fd, 262144)
            except OSError as exc:
                chunk = b""
                if exc.errno not in (errno.EAGAIN, errno.EINTR):
                    entry[3] = None
            if chunk:
                entry[3].append(chunk)
                continue
            # EOF: the child finished (or died).
            del running[fd]
            os.close(fd)
            status = _reap(entry[1])
            results[entry[0].name] = _decode(entry[3], status)
        now = time.monotonic()
        for fd in [fd for fd, entry in running.items() if now - entry[2] >= timeout]:
            job, pid = running[fd][0], running[fd][1]
            del running[fd]
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(fd)
            _reap(pid)
            results[job.name] = {"ok": False, "stage": "timeout",
                                 "error": "no answer within %.1f s (namespace entry or read hung); the reader was killed" % timeout}
    return results


def _decode(chunks, status):
    # type: (list, int) -> dict
    if chunks:
        try:
            return json.loads(b"".join(chunks).decode("utf-8"))
        except ValueError as exc:
            return {"ok": False, "stage": "read", "error": "unreadable answer from the reader: %s" % exc}
    how = "signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit code %d" % os.WEXITSTATUS(status)
    return {"ok": False, "stage": "read", "error": "the reader died without an answer (%s)" % how}
