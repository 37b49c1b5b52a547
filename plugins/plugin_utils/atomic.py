# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes for the controller (reports, generated playbooks).

A report is replaced whole or not at all: the data goes to a temporary file in the *same*
directory (``os.replace`` is only atomic within one filesystem), is flushed and fsync'ed, and
then renamed over the target. A crash or an exception at any point before the rename leaves
the previous file untouched and no temporary file behind (except after SIGKILL or power loss,
where a ``.<name>.*.tmp`` file may remain next to the target; it is never read).

A set of files (the fleet reports) is staged the same way (:class:`StagedSet`): every file is
rendered and fsync'ed under a temporary name first, and only then are all renamed into place,
one after the other. A run killed while rendering (SIGKILL included) leaves the previous set
whole; the next run removes the temporary files such a kill left (:func:`remove_stale`). Only
a kill inside the final renames (microseconds for six files) can leave two generations.

Plain Python: no Ansible import, so bench scripts and tests use it directly.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Union

__all__ = ["atomic_open", "atomic_write", "StagedSet", "remove_stale"]


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


def _tmp_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_stale(directory: str, names: "list[str]") -> "list[str]":
    """Remove the temporary files an interrupted write of ``names`` left in ``directory``
    (``.<name>.*.tmp``); returns what was removed. Another writer's file of the same moment
    would go too: two runs must not write one report directory at once."""
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    prefixes = tuple(_tmp_prefix(name) for name in names)
    for entry in entries:
        if entry.startswith(prefixes) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))
                removed.append(entry)
    return removed


@contextlib.contextmanager
def _staged_file(path: str, mode: str, encoding: str, perms: "int | None") -> Iterator["tuple[IO, str]"]:
    """A temporary file next to ``path``, written, flushed and fsync'ed; removed if the body raises."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open mode must be 'w' or 'wb', not %r" % (mode,))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=directory)
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
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StagedSet:
    """Files written under temporary names, renamed into place together by :meth:`commit`."""

    def __init__(self) -> None:
        self._staged: "list[tuple[str, str]]" = []

    @contextlib.contextmanager
    def open(self, path: Union[str, "os.PathLike[str]"], mode: str = "w", *, encoding: str = "utf-8",
             perms: "int | None" = None) -> Iterator[IO]:
        path = os.fspath(path)
        with _staged_file(path, mode, encoding, perms) as (handle, tmp):
            yield handle
        self._staged.append((tmp, path))

    def commit(self) -> None:
        """Rename every staged file into place (the directories fsync'ed after)."""
        directories = set()
        for tmp, path in self._staged:
            os.replace(tmp, path)
            directories.add(os.path.dirname(os.path.abspath(path)))
        self._staged = []
        for directory in directories:
            _fsync_dir(directory)

    def discard(self) -> None:
        for tmp, dummy in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._staged = []


@contextlib.contextmanager
def atomic_open(path: Union[str, "os.PathLike[str]"], mode: str = "w", *, encoding: str = "utf-8",
                perms: int | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit replace ``path`` with it.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``. ``perms`` defaults to 0666 & ~umask,
    the mode ``open()`` would have given a new file (mkstemp's 0600 would surprise readers
    such as a web server publishing the reports). If the body raises, the temporary file is
    removed and the exception propagates; the old ``path`` is unchanged.
    """
    path = os.fspath(path)
    with _staged_file(path, mode, encoding, perms) as (handle, tmp):
        yield handle
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def atomic_write(path: Union[str, "os.PathLike[str]"], data: Union[str, bytes], *, encoding: str = "utf-8",
                 perms: int | None = None) -> None:
    """Write ``data`` (str or bytes) to ``path`` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding, perms=perms) as handle:
        handle.write(data)
