# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read ``/proc/sys`` with our own code: keys, values as ``sysctl -n`` prints them, modes.

Target side: standard library only, Python >= 3.8. Pure helpers (key names, values, patterns)
are separate from the walker so that parsers can be tested on recorded trees.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import os
import stat

PROC_SYS = "/proc/sys"

# Not sysctls: binfmt_misc is its own filesystem mounted over fs/binfmt_misc.
SKIP_DIRS = frozenset(["fs/binfmt_misc"])

# Values that change on every read or with load, not with namespaces. They are never reported
# as "differs" and never used as evidence that a key belongs to a namespace.
VOLATILE_KEYS = frozenset([
    "fs.dentry-state", "fs.inode-nr", "fs.inode-state", "fs.file-nr", "fs.dquot-nr",
    "fs.quota.allocated_dquots", "fs.quota.cache_hits", "fs.quota.drops", "fs.quota.free_dquots",
    "fs.quota.lookups", "fs.quota.reads", "fs.quota.syncs", "fs.quota.writes",
    "kernel.random.boot_id", "kernel.random.entropy_avail", "kernel.random.uuid",
    "kernel.ns_last_pid", "kernel.msg_next_id", "kernel.sem_next_id", "kernel.shm_next_id",
    "kernel.tainted", "kernel.pty.nr", "kernel.unprivileged_userns_apparmor_policy",
    "net.netfilter.nf_conntrack_count", "fs.aio-nr", "fs.epoll.max_user_watches_used",
    "kernel.sched_domain", "vm.nr_pdflush_threads", "fs.fanotify.watches",
])

# procfs allocates (and zeroes) a buffer of the size asked for on every read of a sysctl, so a
# page is asked for; the loop below reads on for the rare longer value.
READ_CHUNK = 4096


def text_safe(text):
    # type: (str) -> str
    """A name read from the filesystem as text that survives UTF-8 JSON.

    ``os.scandir``/``os.listdir`` give undecodable bytes as lone surrogates; Ansible refuses a
    module result that holds one, and an interface name may hold any byte but ``/``, ``:``,
    blanks and NUL (a container with its own netns names its devices), so every such name
    in the facts is escaped as ``\\xNN``, the way values are.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def path_to_key(relpath):
    # type: (str) -> str
    """``net/ipv4/conf/eth0.100/rp_filter`` -> ``net.ipv4.conf.eth0/100.rp_filter`` (as sysctl).

    Undecodable bytes in a name come out escaped (:func:`text_safe`); such a key is read
    through the path the walk found, never through :func:`key_to_path`.
    """
    return text_safe(".".join(part.replace(".", "/") for part in relpath.split("/")))


def key_to_path(key, root=PROC_SYS):
    # type: (str, str) -> str
    """Inverse of :func:`path_to_key`; a key written with ``/`` separators is taken as a path.

    ``sysctl`` accepts both ``net.ipv4.ip_forward`` and ``net/ipv4/ip_forward``; in the dotted
    form a ``/`` stands for a literal dot inside one component (``eth0/100`` -> ``eth0.100``).
    """
    if "." not in key.split("/")[0] and "/" in key:
        rel = key
    else:
        rel = "/".join(part.replace("/", ".") for part in key.split("."))
    return os.path.join(root, rel)


def format_value(raw):
    # type: (bytes) -> str
    """A value as ``sysctl -n`` prints it: decoded, without the trailing newline.

    Multi-field values keep their tabs; undecodable bytes are escaped, never dropped.
    """
    text = raw.decode("utf-8", "backslashreplace")
    if text.endswith("\n"):
        text = text[:-1]
    return text


def normalize_value(value):
    # type: (object) -> str
    """Compare values the way sysctl.d writes them: runs of blanks are one separator."""
    return " ".join(str(value).split())


def mode_string(st_mode):
    # type: (int) -> str
    return "%04o" % stat.S_IMODE(st_mode)


def compile_filter(include=None, exclude=None):
    # type: (list, list) -> callable
    """Return ``wanted(key) -> bool`` from fnmatch patterns (empty include = everything)."""
    include = [p for p in (include or []) if p]
    exclude = [p for p in (exclude or []) if p]

    def wanted(key):
        if include and not any(fnmatch.fnmatchcase(key, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in exclude)

    return wanted


# O_NONBLOCK: a walker that meets something other than a sysctl file (a FIFO planted in a
# recorded tree) must not block on it; sysctl files ignore the flag.
_O_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_READ_BITS = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _read_fd(fd):
    # type: (int) -> str
    chunks = []
    while True:
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        if len(chunk) < READ_CHUNK:
            break
    return format_value(b"".join(chunks))


def read_key_file(location):
    # type: (object) -> str
    """Read one sysctl file; raise OSError as the kernel answers.

    ``location`` is a path, or ``(dir_fd, name)`` from :func:`iter_entries`: opening relative to
    the open directory skips the lookup of every parent directory, which in a kernel with many
    network namespaces walks long dentry hash chains (each namespace has its own ``net`` tree).
    """
    if isinstance(location, tuple):
        fd = os.open(location[1], _O_FLAGS, dir_fd=location[0])
    else:
        fd = os.open(location, _O_FLAGS)
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def error_reason(exc):
    # type: (OSError) -> str
    return errno.errorcode.get(exc.errno, "E%s" % exc.errno) if exc.errno else type(exc).__name__


def _walk(root, subdir):
    # type: (str, str) -> iter
    """Yield ``(key, dir_fd, entry)`` for every non-directory entry under ``root/subdir``, sorted.

    Directories are opened once each and their entries looked up relative to them; the kind of
    an entry comes from the directory listing (``d_type``), so walking costs no ``stat``.
    Nothing is followed through a symlink (procfs has none here; a planted one is not ours to
    follow). ``dir_fd`` is valid until the next item.
    """
    stack = [subdir]
    while stack:
        rel = stack.pop()
        base = os.path.join(root, rel) if rel else root
        try:
            dir_fd = os.open(base, _O_FLAGS | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            try:
                entries = sorted(os.scandir(dir_fd), key=_entry_name, reverse=True)
            except OSError:
                continue
            prefix = rel + "/" if rel else ""
            key_prefix = path_to_key(rel) + "." if rel else ""  # once per directory, not per key
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue  # vanished (an interface went away) between listing and looking
                if is_dir:
                    if prefix + entry.name not in SKIP_DIRS:
                        stack.append(prefix + entry.name)
                else:
                    yield key_prefix + text_safe(entry.name.replace(".", "/")), dir_fd, entry
        finally:
            os.close(dir_fd)


def _entry_name(entry):
    # type: (os.DirEntry) -> str
    return entry.name


def iter_entries(root=PROC_SYS, subdir=""):
    # type: (str, str) -> iter
    """Yield ``(key, location, st_mode, st_ino)`` for every regular file under ``root/subdir``.

    ``location`` is ``(dir_fd, name)`` for :func:`read_key_file`, valid until the next item.
    """
    for key, dir_fd, entry in _walk(root, subdir):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished between listing and stat
        if stat.S_ISREG(st.st_mode):
            yield key, (dir_fd, entry.name), st.st_mode, st.st_ino


def _unreadable(st, exc=None):
    # type: (os.stat_result, OSError) -> dict
    mode = mode_string(st.st_mode)
    if exc is None or not st.st_mode & _READ_BITS:
        return {"mode": mode, "reason": "write-only",
                "message": "write-only key (mode %s): it has no value to read" % mode}
    reason = error_reason(exc)
    return {"mode": mode, "reason": reason, "message": "%s: %s" % (reason, exc.strerror)}


def read_tree(root=PROC_SYS, wanted=None, subdirs=None, with_inodes=False):
    # type: (str, callable, list, bool) -> tuple
    """Read every key under ``root`` (or only under ``subdirs``).

    Returns ``(keys, unreadable)``: ``keys[key] = {"value", "mode"}`` (plus ``"ino"`` when
    ``with_inodes``) and ``unreadable[key] = {"mode", "reason", "message"}`` for keys that exist
    but cannot be read (write-only, EIO, EACCES, ...). The walk never writes.

    Each key costs one lookup: the file is opened and its mode taken from the open descriptor
    (a ``stat`` before the ``open`` would walk the dentry hash chain twice). Only when the open
    is refused (a write-only key: procfs refuses even root) is the entry stat-ed for its mode.
    """
    keys = {}
    unreadable = {}
    for sub in (subdirs or [""]):
        for key, dir_fd, entry in _walk(root, sub):
            if wanted is not None and not wanted(key):
                continue
            try:
                fd = os.open(entry.name, _O_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                try:
                    st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue  # vanished between listing and opening
                if stat.S_ISREG(st.st_mode):
                    unreadable[key] = _unreadable(st, exc)
                    if with_inodes:
                        unreadable[key]["ino"] = st.st_ino
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue  # a FIFO, device or directory swapped in: not a sysctl
                if not st.st_mode & _READ_BITS:
                    # Opened anyway (root on a recorded tree): a key without read bits is
                    # write-only in the kernel, which would have refused the open.
                    item = _unreadable(st)
                    target = unreadable
                else:
                    try:
                        item = {"value": _read_fd(fd), "mode": mode_string(st.st_mode)}
                        target = keys
                    except OSError as exc:
                        if exc.errno == errno.ENOENT:
                            continue  # its interface went away between opening and reading
                        item = _unreadable(st, exc)
                        target = unreadable
            finally:
                os.close(fd)
            if with_inodes:
                item["ino"] = st.st_ino
            target[key] = item
    return keys, unreadable


def stat_keys(root=PROC_SYS, wanted=None):
    # type: (str, callable) -> dict
    """``{key: (mode, inode)}`` for every key: the cheap half of the probe (no reads)."""
    out = {}
    for key, _path, st_mode, ino in iter_entries(root):
        if wanted is None or wanted(key):
            out[key] = (mode_string(st_mode), ino)
    return out


def read_keys(names, root=PROC_SYS):
    # type: (list, str) -> tuple
    """Read named keys only. Returns ``(keys, unreadable, absent)``."""
    keys = {}
    unreadable = {}
    absent = []
    for key in names:
        path = key_to_path(key, root)
        try:
            st = os.stat(path)
        except OSError:
            absent.append(key)
            continue
        mode = mode_string(st.st_mode)
        try:
            keys[key] = {"value": read_key_file(path), "mode": mode}
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                absent.append(key)
                continue
            reason = error_reason(exc)
            unreadable[key] = {"mode": mode, "reason": reason, "message": "%s: %s" % (reason, exc.strerror)}
    return keys, unreadable, absent
