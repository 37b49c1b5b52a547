# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disk cache of validated data files, so that a controller run parses each file once.

Ansible forks a worker per task and host, and each fork that lints a host used to parse and
schema-validate the knowledge base, the rule catalog and the profiles again: 0.2-0.35 s of CPU
per host, 90% of it PyYAML's pure-Python scanner and jsonschema (libyaml's ``CSafeLoader`` is no
way out: it segfaults on deep nesting, see docs/reliability.md). A memo in the process does not
survive the fork unless the main process filled it first.

So a file that parsed *and passed its loader's checks* is stored as JSON, one entry per file
path, under ``$NSGUARD_SYSCTL_CACHE_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/nsguard-sysctl/
compiled``. An entry is used only when it names the same file, the same SHA-256 of the file's
bytes (the file is still read, through the same bounded reader, on every load: a hit costs a
read and a hash, not a parse) and the same code version (a hash of the collection's
``plugin_utils`` sources and data schemas, which decide what "valid" means). Anything else is a
miss: the file is parsed and checked as before and the entry rewritten atomically.

What is never cached: a file with any error (so a malformed or hostile file is parsed again on
every load and gives exactly the error it gave without the cache), and a document that JSON
cannot carry unchanged (a YAML timestamp, ``!!binary``, an integer key). An entry that cannot be
read, does not decode, or whose body does not match its own checksum is ignored and replaced.
The directory must be the user's own (owned by this uid, not group- or world-writable; it is
created 0700); otherwise the cache is not used at all. ``NSGUARD_SYSCTL_CACHE_DIR=off`` turns
it off.

Plain Python, no Ansible import.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Iterable, Optional, Tuple, Union

from .atomic import atomic_write
from .datafile import MAX_BYTES, DataFileError, parse_yaml, read_bounded
from .vocabulary import data_dir

__all__ = ["ENV", "Loaded", "cache_dir", "code_version", "load_data", "memoized", "signature"]

ENV = "NSGUARD_SYSCTL_CACHE_DIR"
FORMAT = 1
MAX_ENTRIES = 256  # one per data file path; tests and site directories come and go

_HERE = Path(__file__).resolve().parent
_CODE_VERSION: Optional[str] = None


def code_version() -> str:
    """A hash of what decides validity: the controller sources beside this file and the JSON
    schemas of the collection's data (read once per process, about 0.5 ms)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        digest = hashlib.sha256(b"nsguard-datacache-%d\0" % FORMAT)
        files = sorted(_HERE.glob("*.py")) + sorted(data_dir("rules").glob("*/*.schema.json"))
        for path in files:
            digest.update(path.name.encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing")
        _CODE_VERSION = digest.hexdigest()
    return _CODE_VERSION


def cache_dir() -> Optional[Path]:
    """The cache directory, created if need be, or None when the cache is off or unsafe."""
    configured = os.environ.get(ENV)
    if configured is not None and configured.strip().lower() in ("", "off", "0", "false", "no"):
        return None
    if configured:
        path = Path(configured).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "nsguard-sysctl" / "compiled"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.stat(path)
    except OSError:
        return None
    # Another user's directory, or one others may write into, could hand us documents that
    # never passed validation: then parse every time rather than trust it.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        return None
    return path


class Loaded:
    """A parsed document; ``cached`` when it came from a cache entry and so already passed the
    loader's checks. Call :meth:`remember` once the checks passed for a parsed one."""

    def __init__(self, document: Any, cached: bool, entry: Optional[Path], header: Dict[str, Any]) -> None:
        self.document = document
        self.cached = cached
        self._entry = entry
        self._header = header

    def remember(self) -> None:
        if self.cached or self._entry is None:
            return
        try:
            # the file's own key order: it is shown (a rule page lists message_vars as written)
            body = json.dumps(self.document, separators=(",", ":"), allow_nan=False)
            if json.loads(body) != self.document:  # e.g. an integer key that JSON makes a string
                return
        except (TypeError, ValueError, RecursionError):  # a timestamp, !!binary, a NaN...
            return
        header = dict(self._header, body=hashlib.sha256(body.encode()).hexdigest())
        try:
            atomic_write(self._entry, json.dumps(header, sort_keys=True) + "\n" + body, perms=0o600)
            _prune(self._entry.parent)
        except OSError:
            pass  # a full or read-only disk costs speed, not the run


def _prune(directory: Path) -> None:
    """Keep at most MAX_ENTRIES entries, dropping the least recently written."""
    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith(".json") and e.is_file(follow_symlinks=False)]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime)
        for entry in entries[:len(entries) - MAX_ENTRIES]:
            os.unlink(entry.path)
    except OSError:
        pass


def _read_entry(entry: Path, header: Dict[str, Any]) -> Any:
    """The cached document, or raise (any exception: the entry is then ignored)."""
    raw = read_bounded(str(entry), MAX_BYTES * 4).decode("utf-8")
    first, body = raw.split("\n", 1)
    stored = json.loads(first)
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in header.items()):
        raise ValueError("stale")
    if stored.get("body") != hashlib.sha256(body.encode()).hexdigest():
        raise ValueError("corrupt")
    return json.loads(body)


def load_data(path: Union[str, "os.PathLike[str]"], kind: str) -> Loaded:
    """The document in ``path`` as :func:`datafile.load_yaml` reads it, from the cache when an
    entry for these bytes, this ``kind`` of check and this code exists. Raises
    :class:`DataFileError` exactly as ``load_yaml`` does."""
    source = str(path)
    try:
        raw = read_bounded(source, MAX_BYTES)
    except OSError as exc:
        raise DataFileError(source, "$", "cannot read: %s" % (exc.strerror or exc)) from exc
    directory = cache_dir()
    entry: Optional[Path] = None
    header: Dict[str, Any] = {}
    if directory is not None:
        absolute = os.path.abspath(source)
        header = {"format": FORMAT, "kind": kind, "path": absolute, "code": code_version(),
                  "sha256": hashlib.sha256(raw).hexdigest()}
        entry = directory / (hashlib.sha256(("%s\0%s" % (kind, absolute)).encode()).hexdigest()[:40] + ".json")
        try:
            return Loaded(_read_entry(entry, header), True, entry, header)
        except Exception:  # noqa: BLE001 - missing, stale, corrupt, unreadable: all mean parse
            pass
    return Loaded(parse_yaml(raw, source), False, entry, header)


# --------------------------------------------------------------------------- the process memo

def signature(paths: Iterable[Union[str, "os.PathLike[str]"]]) -> Tuple[Any, ...]:
    """What a loaded set of data depends on, cheaply: each path's YAML names with their inode,
    size and mtime (a directory's entries; a missing path is ``None``). About 2 us a file."""
    out = []
    for path in paths:
        try:
            if os.path.isdir(path):
                names = tuple(sorted((e.name, e.inode(), e.stat().st_size, e.stat().st_mtime_ns)
                                     for e in os.scandir(path) if e.name.endswith((".yml", ".yaml"))))
            else:
                info = os.stat(path)
                names = ((os.path.basename(path), info.st_ino, info.st_size, info.st_mtime_ns),)
        except OSError:
            names = None
        out.append((os.fspath(path), names))
    return tuple(out)


_MEMO: Dict[Hashable, Tuple[Tuple[Any, ...], Any]] = {}
_MEMO_LOCK = threading.Lock()


def memoized(key: Hashable, paths: Iterable[Union[str, "os.PathLike[str]"]], build: Callable[[], Any]) -> Any:
    """``build()``, once per process for ``key`` while the files under ``paths`` keep their
    signature. Loaded in Ansible's main process (see ``evaluator.preload``), the value reaches every
    worker fork for free; a worker that finds nothing builds it from the disk cache."""
    current = signature(paths)
    with _MEMO_LOCK:
        found = _MEMO.get(key)
        if found is not None and found[0] == current:
            return found[1]
    value = build()
    with _MEMO_LOCK:
        _MEMO[key] = (current, value)
    return value


def clear_memo() -> None:
    with _MEMO_LOCK:
        _MEMO.clear()
