# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading host metadata that tenants can reach, without being led anywhere.

Runtime state directories and sysctl.d hold what containers are made of or point at: a planted
symbolic link could lead into a container's root filesystem or through ``/proc/PID/root``, a
FIFO would block an ``open`` forever, ``/dev/zero`` or a huge file would eat memory. Every read
of such a path goes through :func:`read_regular`, every listing through :func:`glob_beneath`,
and a link that must be followed (sysctl.d) is resolved by :func:`resolve_links` first.

Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import glob
import os
import stat

MAX_BYTES = 8 * 1024 * 1024
MAX_HOPS = 40  # the kernel's own limit on links in one lookup

_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


class UnsafeFile(OSError):
    """A host metadata path that is not read: a symbolic link below a runtime's directory, not
    a regular file (FIFO, device), or larger than the cap. ``strerror`` says which and why,
    ``filename`` is the path; ``str()`` is ``"PATH: REASON"``."""

    def __str__(self):
        return "%s: %s" % (self.filename, self.strerror)


def _link_on_the_way(beneath, parts):
    # type: (str, list) -> object
    """``"PATH -> TARGET"`` of the first symbolic link among ``beneath/parts[0]/...``."""
    current = beneath
    for part in parts:
        current = current.rstrip("/") + "/" + part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return "%s -> %s" % (current, os.readlink(current))
        except OSError:
            return None
    return None


def read_regular(path, limit=MAX_BYTES, beneath=None, follow_last=False):
    # type: (str, int, object, bool) -> bytes
    """The bytes of the regular file ``path``, read the way tenant-reachable metadata must be.

    Runtime state directories hold what containers are made of: a planted symbolic link could
    lead into a container's root filesystem or ``/proc/PID/root``, a FIFO would block an
    ``open`` forever, ``/dev/zero`` or a huge file would eat memory. So ``beneath`` (default: the
    file's directory) is opened as given -- ``/var/run -> /run`` and a data root moved by a
    symbolic link stay usable -- and every component below it is opened relative to its parent
    with ``O_NOFOLLOW`` (the last one too unless ``follow_last``: configuration files that the
    administrator may link), non-blocking; only a regular file of at most ``limit`` bytes is
    read. Raises FileNotFoundError when a component is missing, :class:`UnsafeFile` (an
    OSError naming the path) for the rest.
    """
    if not os.path.isabs(path):
        # Below the working directory, not "/"; joined, not normalised: ".." must stay visible.
        path = os.path.join(os.getcwd(), path)
    beneath = (beneath or os.path.dirname(path) or "/").rstrip("/") or "/"
    rel = path[len(beneath):] if beneath == "/" or path.startswith(beneath + "/") else None
    parts = [p for p in (rel or "").split("/") if p]
    if rel is None or not parts or any(p in (".", "..") for p in parts):
        raise UnsafeFile(errno.EINVAL, "not a path below %s; not read" % beneath, path)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    fd = os.open(beneath, os.O_RDONLY | os.O_DIRECTORY | cloexec)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | cloexec | os.O_NONBLOCK
            flags |= 0 if last else os.O_DIRECTORY
            flags |= os.O_NOFOLLOW if not (last and follow_last) else 0
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    link = _link_on_the_way(beneath, parts[:index + 1])
                    if link:
                        raise UnsafeFile(exc.errno, "a symbolic link on the way (%s); not followed" % link, path)
                raise
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "not a regular file")
            raise UnsafeFile(errno.EINVAL, "%s, not a regular file; not read" % kind, path)
        if info.st_size > limit:
            raise UnsafeFile(errno.EFBIG, "%d bytes, larger than %d; not read" % (info.st_size, limit), path)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnsafeFile(errno.EFBIG, "grew beyond %d bytes while read; not read" % limit, path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def literal_prefix(pattern):
    # type: (str) -> str
    """The leading components of ``pattern`` that hold no glob magic, as an absolute path:
    ``/run/containerd/runc/*`` -> ``/run/containerd/runc``; the whole path when none does."""
    literal = []
    for part in [p for p in pattern.split("/") if p]:
        if glob.has_magic(part):
            break
        literal.append(part)
    return "/" + "/".join(literal)


def glob_beneath(pattern, on_link=None, ignore=()):
    # type: (str, object, tuple) -> list
    """:func:`glob.glob` that follows no symbolic link below the pattern's literal prefix.

    ``glob`` lists a linked directory's entries (``task_dir/NS/*`` with ``NS`` a link into a
    container's root would open a directory there); here a matching link is passed to
    ``on_link(path, target)`` and skipped, and names starting with ``ignore`` are skipped
    silently. Hidden names match only a pattern part that starts with ``.``, as in glob."""
    parts = [p for p in pattern.split("/") if p]
    # The last part is looked at even when literal: it may be the link.
    fixed = min(len([p for p in literal_prefix(pattern).split("/") if p]), max(len(parts) - 1, 0))
    current = ["/" + "/".join(parts[:fixed])]
    for index, part in enumerate(parts[fixed:]):
        last = fixed + index == len(parts) - 1
        found = []
        for directory in current:
            if not glob.has_magic(part):
                names = [part]
            else:
                try:
                    names = sorted(e.name for e in os.scandir(directory))
                except OSError:
                    continue
                names = [n for n in names if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
            for name in names:
                path = directory.rstrip("/") + "/" + name
                if ignore and name.startswith(ignore):
                    continue
                try:
                    mode = os.lstat(path).st_mode
                except OSError:
                    continue
                if stat.S_ISLNK(mode):
                    if on_link is not None:
                        on_link(path, _readlink(path))
                    continue
                if last or stat.S_ISDIR(mode):
                    found.append(path)
        current = found
    return sorted(current)


def lexists_file(path):
    # type: (str) -> bool
    """A regular file or symbolic link is there (the reader then refuses the link, naming it)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _readlink(path):
    # type: (str) -> str
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def resolve_links(path, refuse=("/proc",), max_hops=MAX_HOPS):
    # type: (str, tuple, int) -> str
    """The path ``path`` leads to, links resolved one component at a time by lstat/readlink
    (nothing is opened). Raises :class:`UnsafeFile` naming ``path`` when the way leads under
    one of ``refuse`` (``/proc/PID/root`` and ``/proc/self/fd/N`` are magic: the kernel follows
    them into another process's filesystem, which :func:`os.path.realpath` cannot see) or has
    more than ``max_hops`` links (a loop); FileNotFoundError when a part is missing."""
    pending = [p for p in os.path.abspath(path).split("/") if p]
    done = "/"
    hops = 0
    link = None
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        current = os.path.dirname(done) if part == ".." else os.path.join(done, part)
        if part != ".." and stat.S_ISLNK(os.lstat(current).st_mode):
            hops += 1
            if hops > max_hops:
                raise UnsafeFile(errno.ELOOP, "more than %d symbolic links (a loop); not followed" % max_hops, path)
            target = os.readlink(current)
            link = "%s -> %s" % (current, target)
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                done = "/"
            continue
        done = current
        for root in refuse:
            if done == root or done.startswith(root.rstrip("/") + "/"):
                raise UnsafeFile(errno.EPERM, "leads under %s (%s); not followed" % (root, link or done), path)
    return done
