# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One YAML reader for the controller's data files (knowledge, rules, expectation profiles).

Users point the collection at their own files, so a file is input, not code: whatever it holds,
reading it gives a document or a :class:`DataFileError` naming the file and where in it the
fault is, never another exception (fuzzed in tests/reliability/test_loader_fuzz.py). Beyond
``yaml.safe_load``'s own checks it bounds what the rest of the engine would walk: a "billion
laughs" alias bomb (a few hundred bytes that stand for 9^9 nodes by reference) kept schema
validation busy for minutes, nesting a few thousand levels deep raised RecursionError, a 5,000
digit number raised ValueError, and undecodable bytes raised UnicodeDecodeError. The bytes are
read through the target side's :func:`read_regular`: a FIFO named ``NSG900.yml`` blocked a plain
``open`` forever, and a link to ``/dev/zero`` or a directory is no document either.

Plain Python, no Ansible import.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml


MAX_BYTES = 8 * 1024 * 1024
MAX_NODES = 200000   # expanded (an alias counts each time it is used); the collection's largest file has ~500
MAX_DEPTH = 64       # the collection's deepest file has 10 levels

__all__ = ["DataFileError", "load_yaml", "parse_yaml", "read_bounded", "MAX_NODES", "MAX_DEPTH"]


class DataFileError(ValueError):
    """A data file that cannot be read as a bounded YAML document. ``file``, ``path`` (a JSON
    path ``$...``, or ``line L column C`` for a syntax error) and ``message``."""

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file = str(file)
        self.path = path
        self.message = message
        super().__init__("%s: %s: %s" % (self.file, path, message))

    def as_dict(self) -> Dict[str, str]:
        return {"file": self.file, "path": self.path, "message": self.message}


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bounded(path: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; OSError saying what it is otherwise.

    Opened non-blocking, so a FIFO named like a data file answers instead of blocking; a link
    the administrator made is followed, but only to a regular file (not ``/dev/zero``). This is
    not ``module_utils.safefile``, which also refuses links on the way: a data file the
    administrator links into place is theirs to link.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise OSError(errno.EINVAL, "%s, not a regular file; not read" % kind)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise OSError(errno.EFBIG, "larger than %d bytes; not read" % max_bytes)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_yaml(path: Union[str, Path], max_bytes: int = MAX_BYTES) -> Any:
    """The document in ``path`` (``None`` for an empty file). Raises :class:`DataFileError`."""
    source = str(path)
    try:
        raw = read_bounded(source, max_bytes)
    except OSError as exc:
        raise DataFileError(source, "$", "cannot read: %s" % (exc.strerror or exc)) from exc
    return parse_yaml(raw, source)


def parse_yaml(raw: bytes, source: str) -> Any:
    """The document in ``raw`` (the bytes of ``source``), bounded as :func:`load_yaml` says."""
    try:
        # Bytes, not text: PyYAML's reader honours a UTF-16 byte order mark and reports
        # undecodable bytes and control characters as YAMLError with their position.
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = "line %d column %d" % (mark.line + 1, mark.column + 1) if mark is not None else "$"
        if mark is None and getattr(exc, "position", None) is not None:
            where = "byte %d" % exc.position
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
        raise DataFileError(source, where, "not valid YAML: %s" % problem) from exc
    except RecursionError as exc:
        raise DataFileError(source, "$", "nested too deeply to read (more than %d levels)" % MAX_DEPTH) from exc
    except ValueError as exc:  # int() of a number longer than Python's 4,300 digit limit
        raise DataFileError(source, "$", "a value cannot be read: %s" % exc) from exc
    _check_size(document, source)
    return document


def _check_size(document: Any, source: str) -> None:
    """Refuse documents deeper than MAX_DEPTH or with more than MAX_NODES nodes once aliases
    are expanded. Each shared node is measured once (memo by identity), so a bomb is measured
    in microseconds, not expanded."""
    memo: Dict[int, Optional[tuple]] = {}

    def measure(node: Any, depth: int, where: str) -> tuple:
        if not isinstance(node, (dict, list)):
            return 1, 0
        if depth > MAX_DEPTH:
            raise DataFileError(source, where, "nested deeper than %d levels" % MAX_DEPTH)
        if id(node) in memo:
            if memo[id(node)] is None:  # &a [*a]: every later walk would recurse forever
                raise DataFileError(source, where, "an alias refers to a node that contains it")
            return memo[id(node)]
        memo[id(node)] = None
        children = node.items() if isinstance(node, dict) else enumerate(node)
        nodes, deepest = 1, 0
        for key, child in children:
            count, height = measure(child, depth + 1, "%s[%r]" % (where, key) if isinstance(key, int)
                                    else "%s.%s" % (where, key))
            nodes += count
            deepest = max(deepest, height + 1)
            if nodes > MAX_NODES:
                raise DataFileError(source, where, "more than %d nodes once its aliases are expanded "
                                    "(an alias bomb?)" % MAX_NODES)
        memo[id(node)] = (nodes, deepest)
        return nodes, deepest

    measure(document, 0, "$")
