# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Enter and create namespaces in forked children, and collect their answers with a timeout.

Target side: standard library only, Python >= 3.8. ``os.setns``/``os.unshare`` exist from
Python 3.12; older interpreters reach ``setns(2)``/``unshare(2)`` through ctypes.

Why forked children: ``setns`` changes the calling process (a pid namespace only for children,
a user namespace drops privileges), so the module's own process never enters anything. A child
enters, reads ``/proc/sys`` through the host's procfs (net, ipc, uts and user sysctls resolve
through the *reader's* namespaces, so no mount namespace is entered and nothing of the
container's filesystem is touched) and sends one JSON document back over a pipe. A child that
hangs is killed when its deadline passes.

The children are a pool: one per CPU, each running job after job. After each job a worker goes
back to the namespaces it started in (``setns`` to descriptors it opened at start); only a job
that left it in another *user* namespace, from which there is no way back, or one whose way back
failed, costs the worker its life, and a fresh one is forked for the next job. A fork of the
module per namespace set was a third of a gather's time with a hundred containers.
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
import stat
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


PR_SET_NAME = 15
WORKER_COMM = b"nsguard-sysctl"  # nsscan.WORKER_COMM: how the scan knows a gather's own processes


def name_worker():
    # type: () -> None
    """Name this forked process :data:`WORKER_COMM` (``prctl(PR_SET_NAME)``, what ``ps`` shows),
    so that a gather's scan, this one's or another's running at the same time, leaves it out.
    Never raises: it runs in a fresh fork, before the code that answers the parent."""
    try:
        _get_libc().prctl(PR_SET_NAME, ctypes.c_char_p(WORKER_COMM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - a nameless worker is only counted as a set
        pass


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


def call(target):
    # type: (callable) -> dict
    """Run ``target()`` and return the answer document; never raise."""
    try:
        return {"ok": True, "value": target()}
    except NamespaceError as exc:
        return {"ok": False, "stage": "enter", "error": str(exc)}
    except Exception as exc:  # the parent must get a message, not a silent death
        return {"ok": False, "stage": "read", "error": "%s: %s" % (type(exc).__name__, exc)}


def _write_all(fd, data):
    # type: (int, bytes) -> None
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _child_main(target, pipe_w):
    # type: (callable, int) -> None
    """Run ``target`` and write its JSON answer; never return to the caller's stack."""
    code = 0
    try:
        _write_all(pipe_w, json.dumps(call(target), separators=(",", ":")).encode("utf-8"))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def fork_call(target):
    # type: (callable) -> tuple
    """Fork a child that runs ``target`` and return ``(pid, read_fd)``."""
    _get_libc()  # resolve once in the parent, not once per child (name_worker, setns before 3.12)
    pipe_r, pipe_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        name_worker()
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
    data, _status = _drain_and_reap(*fork_call(target))
    if not data:
        raise NamespaceError("pid-namespace reader died without an answer")
    answer = json.loads(data.decode("utf-8"))
    if not answer.get("ok"):
        raise NamespaceError(answer.get("error", "pid-namespace reader failed"))
    return answer["value"]


# A host binary that prints files, for reads that only a new process in an entered pid namespace
# can make (kernel.pid_max). Spawning it (vfork + exec) costs a fifth of forking the module.
# Only root-owned files that nobody else can write qualify; the module never enters a mount
# namespace, so this is always the host's own binary, never one from a container.
CAT_CANDIDATES = ("/usr/bin/cat", "/bin/cat")
_cat = []


def host_cat():
    # type: () -> str
    """Path of a trustworthy host ``cat``, or None (then callers fork a reader instead)."""
    if not _cat:
        found = None
        for path in CAT_CANDIDATES:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                found = path
                break
        _cat.append(found)
    return _cat[0]


def read_files_as_new_process(paths):
    # type: (list) -> list
    """Each file's content as a process created now sees it (one line each), or None.

    ``kernel.pid_max`` shows the pid namespace of the process that reads it, and after
    ``setns(CLONE_NEWPID)`` only a new process lives there. None when no host ``cat`` qualifies,
    it fails, or a file does not answer with exactly one line: the caller then forks a reader,
    which reports every key's own error.
    """
    cat = host_cat()
    if cat is None or not hasattr(os, "posix_spawn"):
        return None
    read_fd, write_fd = os.pipe()
    try:
        pid = os.posix_spawn(cat, ["cat", "--"] + list(paths), {"LC_ALL": "C"}, file_actions=[
            (os.POSIX_SPAWN_DUP2, write_fd, 1),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ])
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    os.close(write_fd)
    data, status = _drain_and_reap(pid, read_fd)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    lines = data.split(b"\n")
    if lines[-1] != b"" or len(lines) != len(paths) + 1:
        return None
    return lines[:-1]


def _drain_and_reap(pid, read_fd):
    # type: (int, int) -> tuple
    """Read a child's pipe to its end, close it, reap the child: ``(bytes, wait status)``."""
    chunks = []
    try:
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        status = _reap(pid)
    return b"".join(chunks), status


def _reap(pid):
    # type: (int) -> int
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


class Job:
    """One unit of work for :func:`run_parallel`: a name and a callable run in a child.

    The callable may enter or create namespaces; it must leave everything else of the process
    (working directory, credentials, signal handlers) as it found it, because the next job runs
    in the same worker. ``timeout`` overrides the run's per-job timeout (a job that reads several
    sets gets the time of several).
    """

    __slots__ = ("name", "target", "timeout")

    def __init__(self, name, target, timeout=None):
        self.name = name
        self.target = target
        self.timeout = timeout


# What a worker checks after each job (the types it may enter), and how it reads where it is.
# ``pid_for_children`` is the pid namespace setns(2) changes (a process never changes its own);
# kernels before 4.12 lack it.
_HOME_TYPES = ENTER_ORDER


def _own_ns_path(nstype):
    # type: (str) -> str
    if nstype == "pid" and os.path.exists("/proc/self/ns/pid_for_children"):
        return "/proc/self/ns/pid_for_children"
    return "/proc/self/ns/%s" % nstype


class Home:
    """The namespaces a process started in, and the way back to them after a job.

    Use :func:`home`: one per process, so that its five descriptors are opened once.
    """

    def __init__(self):
        self.paths = dict((t, _own_ns_path(t)) for t in _HOME_TYPES)
        self.fds = {}
        self.inodes = {}
        for nstype, path in self.paths.items():
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self.fds[nstype] = fd
            self.inodes[nstype] = os.fstat(fd).st_ino

    def go_back(self):
        # type: () -> bool
        """Return to the starting namespaces; False when that is impossible (the worker must go)."""
        for nstype, path in self.paths.items():
            try:
                if os.stat(path).st_ino == self.inodes[nstype]:
                    continue
            except OSError:
                return False
            if nstype == "user":
                return False  # no capability over the parent user namespace: no way back
            try:
                setns(self.fds[nstype], NS_FLAGS[nstype])
            except OSError:
                return False
        return True


_homes = {}


def home():
    # type: () -> Home
    """This process's :class:`Home`, made on first use (a fork makes its own)."""
    pid = os.getpid()
    if pid not in _homes:
        _homes.clear()  # an entry inherited through fork describes the parent
        _homes[pid] = Home()
    return _homes[pid]


def _worker_main(jobs, cmd_r, res_w):
    # type: (list, int, int) -> None
    """Run the jobs the parent names (one index per line) until told to stop (EOF)."""
    code = 0
    try:
        failure = None
        try:
            own = home()
        except OSError as exc:  # say why on the first job, then go (the parent forks no more)
            own = None
            failure = {"ok": False, "stage": "enter", "last": True,
                       "error": "the reader cannot open its own namespaces: %s" % (exc.strerror or exc)}
        pending = b""
        while True:
            while b"\n" not in pending:
                chunk = os.read(cmd_r, 64)
                if not chunk:
                    os._exit(0)
                pending += chunk
            line, pending = pending.split(b"\n", 1)
            if own is None:
                _write_all(res_w, json.dumps(failure).encode("utf-8") + b"\n")
                break
            answer = call(jobs[int(line)].target)
            reusable = own.go_back()
            if not reusable:
                answer["last"] = True  # the parent must not send this worker another job
            _write_all(res_w, json.dumps(answer, separators=(",", ":")).encode("utf-8") + b"\n")
            if not reusable:
                break
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class _Worker:
    __slots__ = ("pid", "cmd_w", "res_r", "chunks", "job", "started", "limit", "leaving")

    def __init__(self, pid, cmd_w, res_r):
        self.pid = pid
        self.cmd_w = cmd_w
        self.res_r = res_r
        self.chunks = []
        self.job = None
        self.started = 0.0
        self.limit = 0.0  # seconds the current job may take
        self.leaving = False  # answered its last job and is exiting


def _spawn_worker(jobs, workers):
    # type: (list, dict) -> _Worker
    _get_libc()  # resolve once in the parent, not once per worker (name_worker, setns before 3.12)
    cmd_r, cmd_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # worker
        name_worker()
        try:
            os.close(cmd_w)
            os.close(res_r)
            # The other workers' pipe ends: holding them would hide those workers' exits (no
            # EOF) and their stop signal (the parent closing their command pipe).
            for other in workers.values():
                os.close(other.cmd_w)
                os.close(other.res_r)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except BaseException:
            os._exit(1)
        _worker_main(jobs, cmd_r, res_w)
    os.close(cmd_r)
    os.close(res_w)
    return _Worker(pid, cmd_w, res_r)


def _retire(worker, workers, kill=False):
    # type: (_Worker, dict, bool) -> int
    """Forget a worker: stop it (killed, or told by EOF on its command pipe), reap it."""
    workers.pop(worker.res_r, None)
    if kill:
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for fd in (worker.cmd_w, worker.res_r):
        try:
            os.close(fd)
        except OSError:
            pass
    return _reap(worker.pid)


def run_parallel(jobs, parallel=2, timeout=5.0, deadline=None):
    # type: (list, int, float, float) -> dict
    """Run the jobs in a pool of ``parallel`` forked workers, each job within ``timeout``.

    Returns ``{name: {"ok": True, "value": ...}}`` or ``{name: {"ok": False, "stage": ...,
    "error": ...}}``. A worker that overruns its job's timeout (a hung setns, a blocked read) is
    killed with SIGKILL, the job reported, and a fresh worker takes the next job. ``deadline``
    (a ``time.monotonic()`` value) bounds the whole run: jobs not started by then are reported
    as skipped.
    """
    return start_parallel(jobs, parallel, timeout, deadline).wait()


def start_parallel(jobs, parallel=2, timeout=5.0, deadline=None):
    # type: (list, int, float, float) -> ParallelRun
    """:func:`run_parallel` in two steps: fork the workers and hand out the first jobs now,
    collect with ``.wait()`` later, so that the caller's own work runs while they read (the
    module starts the probe before it reads the host). ``.wait()`` must follow (it also stops
    the workers), in a ``finally`` where the caller may raise meanwhile."""
    run = ParallelRun(jobs, parallel, timeout, deadline)
    try:
        run.schedule(time.monotonic())
    except BaseException:
        run.close()
        raise
    return run


class ParallelRun:
    """The state of one :func:`start_parallel` run."""

    def __init__(self, jobs, parallel, timeout, deadline):
        self.jobs = list(jobs)
        self.pending = list(range(len(self.jobs)))
        self.pending.reverse()
        self.workers = {}  # res_r -> _Worker
        self.results = {}
        self.parallel = max(1, int(parallel))
        self.timeout = timeout
        self.deadline = deadline
        self.done = False

    def schedule(self, now):
        # type: (float) -> None
        """Hand pending jobs to idle workers, forking up to ``parallel`` of them; after the
        deadline, report the rest as not started."""
        while self.pending:
            if self.deadline is not None and now >= self.deadline:
                self._skip_pending()
                break
            worker = self._idle_worker()
            if worker is None:
                break
            index = self.pending.pop()
            try:
                _write_all(worker.cmd_w, b"%d\n" % index)
            except OSError:  # it died while idle: the job goes to another worker
                _retire(worker, self.workers, kill=True)
                self.pending.append(index)
                continue
            self._started(worker, index, now)

    def _skip_pending(self):
        # type: () -> None
        for index in self.pending:
            self.results[self.jobs[index].name] = {
                "ok": False, "stage": "schedule", "error": "not started: the gather's overall time limit was reached"}
        del self.pending[:]

    def _idle_worker(self):
        # type: () -> object
        """A worker without a job, a new one while the pool has room, else None."""
        worker = next((w for w in self.workers.values() if w.job is None and not w.leaving), None)
        if worker is None and sum(1 for w in self.workers.values() if not w.leaving) < self.parallel:
            worker = _spawn_worker(self.jobs, self.workers)
            self.workers[worker.res_r] = worker
        return worker

    def _started(self, worker, index, now):
        # type: (_Worker, int, float) -> None
        worker.job, worker.started = index, now
        worker.limit = _timeout_of(self.jobs[index], self.timeout)
        if self.deadline is not None:
            # A job of several sets gets their time, but not beyond the run's deadline
            # (at least the per-job timeout).
            worker.limit = min(worker.limit, max(self.timeout, self.deadline - now))

    def wait(self):
        # type: () -> dict
        """Run to the end; the results (see :func:`run_parallel`)."""
        try:
            while not self.done:
                self._step()
                if not self.done:
                    self.schedule(time.monotonic())
        finally:
            self.close()
        return self.results

    def _step(self):
        # type: () -> None
        """One round: wait for an answer or the nearest job timeout, take what arrived, kill
        the workers whose job overran."""
        busy = [w for w in self.workers.values() if w.job is not None]
        if not busy:
            self.done = True
            return
        wait = min(w.started + w.limit for w in busy) - time.monotonic()
        try:
            ready = select.select(list(self.workers), [], [], max(0.0, wait))[0]
        except InterruptedError:  # pragma: no cover - PEP 475 retries select on 3.5+
            ready = []
        for fd in ready:
            worker = self.workers.get(fd)
            if worker is not None:
                self._receive(worker)
        self._kill_overdue(time.monotonic())

    def _receive(self, worker):
        # type: (_Worker) -> None
        """Read what a worker sent: an answer line, or EOF (it exited)."""
        try:
            chunk = os.read(worker.res_r, 262144)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return
            chunk = b""
        if chunk:
            worker.chunks.append(chunk)
            if b"\n" in chunk and worker.job is not None:
                line, rest = b"".join(worker.chunks).split(b"\n", 1)
                worker.chunks = [rest] if rest else []
                answer = _decode([line], 0)
                worker.leaving = bool(answer.pop("last", False))
                self.results[self.jobs[worker.job].name] = answer
                worker.job = None
            return
        # EOF: the worker exited, after its answer (a job it could not come back from)
        # or without one (it died).
        index = worker.job
        status = _retire(worker, self.workers)
        if index is not None:
            self.results[self.jobs[index].name] = _decode(worker.chunks, status)

    def _kill_overdue(self, now):
        # type: (float) -> None
        for worker in [w for w in self.workers.values() if w.job is not None and now - w.started >= w.limit]:
            index = worker.job
            _retire(worker, self.workers, kill=True)
            self.results[self.jobs[index].name] = {
                "ok": False, "stage": "timeout",
                "error": "no answer within %.1f s (namespace entry or read hung); the reader was killed"
                         % worker.limit}

    def close(self):
        # type: () -> None
        """Stop every worker (killed when busy) and reap them; idempotent."""
        for worker in list(self.workers.values()):
            _retire(worker, self.workers, kill=worker.job is not None)


def _timeout_of(job, default):
    # type: (Job, float) -> float
    return job.timeout if job.timeout is not None else default


def _decode(chunks, status):
    # type: (list, int) -> dict
    if chunks:
        try:
            return json.loads(b"".join(chunks).decode("utf-8"))
        except ValueError as exc:
            return {"ok": False, "stage": "read", "error": "unreadable answer from the reader: %s" % exc}
    how = "signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit code %d" % os.WEXITSTATUS(status)
    return {"ok": False, "stage": "read", "error": "the reader died without an answer (%s)" % how}
