# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes for the controller (reports, generated playbooks).

A report is replaced whole or not at all: the data goes to a temporary file in the *same*
directory (``os.replace`` is only atomic within one filesystem), is flushed and fsync'ed, and
then renamed over the target. A crash or an exception at any point before the rename leaves
the previous file untouched and no temporary file behind (except after SIGKILL or power loss,
where a ``.<name>.*.tmp`` file may remain next to the target; it is never read).

Plain Python: no Ansible import, so bench scripts and tests use it directly.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Union

__all__ = ["atomic_open", "atomic_write"]


def _umask() -> int:
    # os.umask can only be read by setting it; do it once, the value does not change in a run.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DEFAULT_MODE = 0o666 & ~_umask()


def _fsync_dir(path: str) -> None:
    """Make the rename itself durable (the directory entry lives in the directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. a filesystem that refuses to open directories: best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: Union[str, "os.PathLike[str]"], mode: str = "w", *, encoding: str = "utf-8",
                perms: int | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit replace ``path`` with it.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``. ``perms`` defaults to 0666 & ~umask,
    the mode ``open()`` would have given a new file (mkstemp's 0600 would surprise readers
    such as a web server publishing the reports). If the body raises, the temporary file is
    removed and the exception propagates; the old ``path`` is unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open mode must be 'w' or 'wb', not %r" % (mode,))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _DEFAULT_MODE if perms is None else perms)
        if mode == "wb":
            handle = os.fdopen(fd, "wb")
        else:
            # newline="" keeps "\n" as written on every platform (the renderers choose line ends);
            # backslashreplace: a lone surrogate (a non-UTF-8 command line decoded with
            # surrogateescape) is written as the text \udcXX instead of failing the report.
            handle = os.fdopen(fd, "w", encoding=encoding, errors="backslashreplace", newline="")
        # The final path, for writers that refer to files beside it (fleet.sarif -> fleet.md):
        # ``handle.name`` is only the descriptor.
        handle.target_path = os.path.abspath(path)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write(path: Union[str, "os.PathLike[str]"], data: Union[str, bytes], *, encoding: str = "utf-8",
                 perms: int | None = None) -> None:
    """Write ``data`` (str or bytes) to ``path`` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding, perms=perms) as handle:
        handle.write(data)
