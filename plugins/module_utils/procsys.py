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

from ansible_collections.nsguard.sysctl.plugins.module_utils import sysctl_names

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
    return text_safe(sysctl_names.path_to_key(relpath))


def key_to_path(key, root=PROC_SYS):
    # type: (str, str) -> str
    """Inverse of :func:`path_to_key`; a key written with ``/`` separators is taken as a path.

    ``sysctl`` accepts both ``net.ipv4.ip_forward`` and ``net/ipv4/ip_forward``; in the dotted
    form a ``/`` stands for a literal dot inside one component (``eth0/100`` -> ``eth0.100``).
    """
    return os.path.join(root, key if sysctl_names.is_path_spelling(key) else sysctl_names.key_to_path(key))


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


_MODE_STRINGS = {}  # st_mode -> "0644": a tree has a handful of modes and thousands of keys


def mode_string(st_mode):
    # type: (int) -> str
    text = _MODE_STRINGS.get(st_mode)
    if text is None:
        text = _MODE_STRINGS[st_mode] = "%04o" % stat.S_IMODE(st_mode)
    return text


def compile_filter(include=None, exclude=None):
    # type: (list, list) -> callable
    """Return ``wanted(key) -> bool`` from fnmatch patterns (empty include = everything)."""
    include = [p for p in (include or []) if p]
    exclude = [p for p in (exclude or []) if p]
    if not include and not exclude:
        return everything  # the walkers skip the call per key for this one

    def wanted(key):
        if include and not any(fnmatch.fnmatchcase(key, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in exclude)

    return wanted


def everything(key):
    # type: (str) -> bool
    """The filter of no include and no exclude patterns."""
    return True


# O_NONBLOCK: a walker that meets something other than a sysctl file (a FIFO planted in a
# recorded tree) must not block on it; sysctl files ignore the flag.
_O_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_READ_BITS = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _read_fd(fd):
    # type: (int) -> str
    return _read_rest(fd, os.read(fd, READ_CHUNK))


def _read_rest(fd, chunk):
    # type: (int, bytes) -> str
    """The value whose first read gave ``chunk``."""
    if len(chunk) < READ_CHUNK:  # nearly every sysctl: one read
        return format_value(chunk)
    chunks = [chunk]
    while True:
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        if len(chunk) < READ_CHUNK:
            break
    return format_value(b"".join(chunks))


def read_key_file(path):
    # type: (str) -> str
    """Read one sysctl file by path; raise OSError as the kernel answers."""
    fd = os.open(path, _O_FLAGS)
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def error_reason(exc):
    # type: (OSError) -> str
    return errno.errorcode.get(exc.errno, "E%s" % exc.errno) if exc.errno else type(exc).__name__


_DIR_FLAGS = _O_FLAGS | getattr(os, "O_DIRECTORY", 0)
# A directory to look keys up in, resolved as a path is (symlinks followed, search permission
# only); None where the platform has no O_PATH (then each key is opened by its path).
_O_PATH_DIR = (os.O_PATH | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)) if hasattr(os, "O_PATH") else None


def _walk(root, subdir):
    # type: (str, str) -> iter
    """Yield ``(dir_fd, key_prefix, files)`` for every directory under ``root/subdir``.

    ``files`` are the directory's non-directory entries (``os.DirEntry``), for the caller to
    look up relative to ``dir_fd`` by ``.name`` and to name ``key_prefix + file_key_part(name)``
    (their ``.inode()`` is the listing's ``d_ino``, :func:`tree_inodes`). The order is the keys'
    order in every result: a directory's own entries (by name, descending), then its
    subdirectories (ascending), depth first. Each subdirectory is opened relative to its parent's descriptor:
    one lookup per directory instead of a walk from ``/proc/sys`` (with many namespaces the
    dentry hash chains of ``net`` and ``kernel`` are long, one entry per namespace), and
    at most one descriptor per level is held. The kind of an entry comes from the directory
    listing (``d_type``), so walking costs no ``stat``. Nothing is followed through a symlink
    (procfs has none here; a planted one is not ours to follow). ``dir_fd`` is valid until the
    next item.
    """
    try:
        dir_fd = os.open(os.path.join(root, subdir) if subdir else root, _DIR_FLAGS)
    except OSError:
        return
    for item in _walk_fd(dir_fd, subdir, path_to_key(subdir) + "." if subdir else ""):
        yield item


def _walk_fd(dir_fd, rel, key_prefix):
    # type: (int, str, str) -> iter
    """:func:`_walk` from an open directory (closed here)."""
    try:
        try:
            entries = sorted(os.scandir(dir_fd), key=_entry_name, reverse=True)
        except OSError:
            return
        files, subdirs = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue  # vanished (an interface went away) between listing and looking
            if is_dir:
                subdirs.append(entry.name)
            else:
                files.append(entry)
        yield dir_fd, key_prefix, files
        prefix = rel + "/" if rel else ""
        for name in reversed(subdirs):
            if prefix + name in SKIP_DIRS:
                continue
            try:
                sub_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # vanished, or something else is there now
            for item in _walk_fd(sub_fd, prefix + name, key_prefix + file_key_part(name) + "."):
                yield item
    finally:
        os.close(dir_fd)


def file_key_part(name):
    # type: (str) -> str
    """A directory entry's part of a key: its dots swapped (``eth0.100`` -> ``eth0/100``,
    :func:`sysctl_names.path_to_key` of one component, which holds no ``/``), made UTF-8-safe."""
    part = name.replace(".", "/")
    return part if name.isascii() else text_safe(part)


def _entry_name(entry):
    # type: (os.DirEntry) -> str
    return entry.name


def _unreadable(st, exc=None):
    # type: (os.stat_result, OSError) -> dict
    mode = mode_string(st.st_mode)
    if exc is None or not st.st_mode & _READ_BITS:
        return {"mode": mode, "reason": "write-only",
                "message": "write-only key (mode %s): it has no value to read" % mode}
    reason = error_reason(exc)
    return {"mode": mode, "reason": reason, "message": "%s: %s" % (reason, exc.strerror)}


def read_entry(name, dir_fd=None):
    # type: (str, int) -> tuple
    """Read one sysctl file: ``(True, {"value", "mode", "ino"})``, or ``(False, {"mode", "reason",
    "message", "ino"})`` for a key that exists but cannot be read (write-only, EIO, EACCES, ...),
    or None when there is no such regular file (it vanished, or something else is there).

    One lookup per key: the file is opened and its mode taken from the open descriptor (a
    ``stat`` before the ``open`` walks the dentry hash chain twice, and with many network
    namespaces those chains are long). Only a refused open (a write-only key: procfs refuses
    even root) costs a ``stat`` for the mode. ``name`` is relative to ``dir_fd`` when given.
    """
    try:
        fd = os.open(name, _O_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return _refused_entry(name, dir_fd, exc)
    try:
        return _opened_entry(fd, os.fstat(fd))
    finally:
        os.close(fd)


def _refused_entry(name, dir_fd, exc):
    # type: (str, int, OSError) -> tuple
    """:func:`read_entry` of a file whose open failed with ``exc``."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None  # vanished between listing and opening, or never there
    if not stat.S_ISREG(st.st_mode):
        return None
    return False, dict(_unreadable(st, exc), ino=st.st_ino)


def _opened_entry(fd, st):
    # type: (int, os.stat_result) -> tuple
    """:func:`read_entry` of an open file (``st`` its ``fstat``), nothing read from it yet."""
    if not stat.S_ISREG(st.st_mode):
        return None  # a FIFO, device or directory swapped in: not a sysctl
    if not st.st_mode & _READ_BITS:
        # Opened anyway (root on a recorded tree): a key without read bits is write-only
        # in the kernel, which would have refused the open.
        return False, dict(_unreadable(st), ino=st.st_ino)
    try:
        return True, {"value": _read_fd(fd), "mode": mode_string(st.st_mode), "ino": st.st_ino}
    except OSError as exc:
        return _read_failed(st, exc)


def _read_failed(st, exc):
    # type: (os.stat_result, OSError) -> tuple
    """:func:`read_entry` of an open regular file whose read failed with ``exc``."""
    if exc.errno == errno.ENOENT:
        return None  # its interface went away between opening and reading
    return False, dict(_unreadable(st, exc), ino=st.st_ino)


_S_IFMT, _S_IFREG = 0o170000, stat.S_IFREG


def read_tree(root=PROC_SYS, wanted=None, subdirs=None, with_inodes=False):
    # type: (str, callable, list, bool) -> tuple
    """Read every key under ``root`` (or only under ``subdirs``), as :func:`read_entry` each.

    Returns ``(keys, unreadable)``: ``keys[key] = {"value", "mode"}`` (plus ``"ino"`` when
    ``with_inodes``) and ``unreadable[key] = {"mode", "reason", "message"}`` for keys that exist
    but cannot be read (write-only, EIO, EACCES, ...). The walk never writes.

    This loop runs once per key, a few thousand times for the host and each probe snapshot and
    ~600 times per network namespace: :func:`read_entry`'s common case (a readable regular file
    whose value fits in one read) is inline here, with no call, tuple or dict but the result's
    per key; every other case goes through the same helpers as :func:`read_entry`.
    """
    keys = {}
    unreadable = {}
    if wanted is everything:
        wanted = None
    open_, fstat, read, close = os.open, os.fstat, os.read, os.close
    modes = _MODE_STRINGS
    for sub in (subdirs or [""]):
        for dir_fd, key_prefix, files in _walk(root, sub):
            for entry in files:
                name = entry.name
                key = key_prefix + file_key_part(name)
                if wanted is not None and not wanted(key):
                    continue
                try:
                    fd = open_(name, _O_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    got = _refused_entry(name, dir_fd, exc)
                else:
                    try:
                        st = fstat(fd)
                        st_mode = st.st_mode
                        if st_mode & _S_IFMT != _S_IFREG or not st_mode & _READ_BITS:
                            got = _opened_entry(fd, st)  # not a sysctl, or write-only
                        else:
                            try:
                                chunk = read(fd, READ_CHUNK)
                                value = format_value(chunk) if len(chunk) < READ_CHUNK else _read_rest(fd, chunk)
                            except OSError as exc:
                                got = _read_failed(st, exc)
                            else:
                                mode = modes.get(st_mode) or mode_string(st_mode)
                                keys[key] = ({"value": value, "mode": mode, "ino": st.st_ino} if with_inodes
                                             else {"value": value, "mode": mode})
                                continue
                    finally:
                        close(fd)
                if got is None:
                    continue
                readable, item = got
                if not with_inodes:
                    del item["ino"]
                (keys if readable else unreadable)[key] = item
    return keys, unreadable


def key_tables(keys):
    # type: (dict) -> dict
    """A read's readable keys (``{key: {"value", "mode", ...}}``) as the facts carry them
    (docs/facts.md, schema_version 3): ``keys`` ``{key: value}``, ``default_mode`` the mode
    most keys have (the lowest of equally common ones; None for no keys) and ``modes``
    ``{key: mode}`` for the keys whose mode is another.

    Flat tables, and one mode for most keys: Ansible's controller handles a module result, and
    copies a host's facts for every task, at a cost per mapping and per entry; ~1,300
    ``{value, mode}`` mappings were most of a host's (version 1), and a mode per key, nearly all
    ``0644``, half of what was left (version 2).
    """
    names = sorted(keys)
    counts = {}
    for key in names:
        mode = keys[key]["mode"]
        counts[mode] = counts.get(mode, 0) + 1
    default = min(counts, key=lambda mode: (-counts[mode], mode)) if counts else None
    return {
        "keys": {k: keys[k]["value"] for k in names},
        "default_mode": default,
        "modes": {k: keys[k]["mode"] for k in names if keys[k]["mode"] != default},
    }


def read_tree_changes(root, known):
    # type: (str, dict) -> tuple
    """The keys of ``known`` as this process sees them, less those it sees exactly as ``known``
    says: ``(keys, unreadable, absent)``.

    ``known`` is an earlier :func:`read_tree` ``(with_inodes=True)``, its readable and unreadable
    keys in one mapping (the probe's host read, seen again from a throwaway namespace). ``keys``
    and ``unreadable`` are as :func:`read_tree` gives them, with inodes, for every key of ``known``
    that may differ; ``absent`` lists the keys of ``known`` that have no file here. Keys that
    ``known`` lacks are not read.

    A key whose listing shows ``known``'s inode (``d_ino``) is ``known``'s table entry: procfs
    makes one inode per dentry, and a namespace that sees another entry under the same name has
    a dentry, and so an inode, of its own. The same entry has the same mode, so such a key is
    opened and read without an ``fstat`` and left out when its value is ``known``'s as well: on
    a fresh namespace's read that is most keys, and the ``fstat`` was a fifth of the cost. Every
    other key, and any key whose open or read fails, goes through :func:`read_entry`.
    """
    keys = {}
    unreadable = {}
    seen = set()
    open_, read, close = os.open, os.read, os.close
    for dir_fd, key_prefix, files in _walk(root, ""):
        for entry in files:
            name = entry.name
            key = key_prefix + file_key_part(name)
            own = known.get(key)
            if own is None:
                continue
            seen.add(key)
            if "value" in own and entry.inode() == own.get("ino"):
                try:
                    fd = open_(name, _O_FLAGS, dir_fd=dir_fd)
                except OSError:
                    pass  # refused here: read_entry below says how
                else:
                    try:
                        chunk = read(fd, READ_CHUNK)
                        value = format_value(chunk) if len(chunk) < READ_CHUNK else _read_rest(fd, chunk)
                    except OSError:
                        value = None  # read_entry below reads it again and says how it failed
                    finally:
                        close(fd)
                    if value is not None:
                        if value != own["value"]:
                            keys[key] = {"value": value, "mode": own["mode"], "ino": own["ino"]}
                        continue
            got = read_entry(name, dir_fd)
            if got is None:
                seen.discard(key)  # vanished, or not a regular file: absent
                continue
            readable, item = got
            (keys if readable else unreadable)[key] = item
    absent = [key for key in known if key not in seen]
    return keys, unreadable, absent


def stat_keys(root=PROC_SYS, wanted=None):
    # type: (str, callable) -> dict
    """``{key: (mode, inode)}`` for every key, a ``stat`` each (no reads): the kernel-truth
    harness's second look at the host (the probe's, which needs no mode, is :func:`tree_inodes`)."""
    out = {}
    lstat, modes = os.stat, _MODE_STRINGS
    for dir_fd, key_prefix, files in _walk(root, ""):
        for entry in files:
            name = entry.name
            try:
                st = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # vanished between listing and stat
            st_mode = st.st_mode
            if st_mode & _S_IFMT == _S_IFREG:
                key = key_prefix + file_key_part(name)
                if wanted is None or wanted(key):
                    out[key] = (modes.get(st_mode) or mode_string(st_mode), st.st_ino)
    return out


def tree_inodes(root=PROC_SYS):
    # type: (str) -> dict
    """``{key: inode}`` for every regular file, from the directory listings alone (no ``stat``).

    procfs fills a sysctl directory's listing from the dentries it looks up (or makes) for
    each entry, so an entry's ``d_ino`` and ``d_type`` are those of the inode a ``stat`` of
    the same name would find then: this is :func:`stat_keys` without its mode, at the cost of
    the walk (the probe's second look at the host needs only the inodes).
    """
    out = {}
    for dummy, key_prefix, files in _walk(root, ""):
        for entry in files:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue  # a FIFO or device planted in a recorded tree: not a sysctl
            except OSError:
                continue
            out[key_prefix + file_key_part(entry.name)] = entry.inode()
    return out


def read_keys(names, root=PROC_SYS):
    # type: (list, str) -> tuple
    """Read named keys only, as :func:`read_entry` each. Returns ``(keys, unreadable, absent)``.

    Each directory is looked up once (an ``O_PATH`` descriptor, resolved as the key's full path
    would be) and its keys relative to it: a path from ``/proc/sys`` walks the dentry hash chain
    of ``kernel`` or ``net``, which holds one entry per namespace on a host of many containers.
    """
    keys = {}
    unreadable = {}
    absent = []
    dirs = {}  # directory path -> O_PATH descriptor, or None when it cannot be looked up
    try:
        for key in names:
            path = key_to_path(key, root)
            parent, name = os.path.split(path)
            if _O_PATH_DIR is None:
                got = read_entry(path)
            else:
                if parent not in dirs:
                    try:
                        dirs[parent] = os.open(parent or ".", _O_PATH_DIR)
                    except OSError:
                        dirs[parent] = None  # no such directory: none of its keys exists
                got = read_entry(name, dirs[parent]) if dirs[parent] is not None else None
            if got is None:
                absent.append(key)
                continue
            readable, item = got
            del item["ino"]
            (keys if readable else unreadable)[key] = item
    finally:
        for fd in dirs.values():
            if fd is not None:
                os.close(fd)
    return keys, unreadable, absent
