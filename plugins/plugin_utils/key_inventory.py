"""Which sysctl names exist: the listed kernels (``rules/knowledge/key-inventory/*.txt``).

Written by ``scripts/gen_key_inventory.py`` from a real ``/proc/sys`` (names only; interface
names under ``net.*.conf``/``net.*.neigh`` as ``*``). A key is *unknown* when its directory is
listed but the key is not, on any listed kernel, and no knowledge entry names it: a typo such as
``net.ipv4.foo_bar``. A key under a directory no listed kernel has (``net.bridge.*`` without
br_netfilter, ``net.ipv4.vs.*`` without IPVS) is not judged: a module may provide it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

from .datafile import MAX_BYTES, read_bounded
from .vocabulary import data_dir

INVENTORY_DIR = data_dir("rules", "knowledge", "key-inventory")
_DEVICE_DIRS = {("net", p, d) for p in ("ipv4", "ipv6", "mpls") for d in ("conf", "neigh")}


@dataclass(frozen=True)
class Inventory:
    keys: FrozenSet[str]
    dirs: FrozenSet[str]
    kernels: Tuple[str, ...]

    def has(self, key: str) -> bool:
        return _generic(key) in self.keys

    def has_dir(self, key: str) -> bool:
        parent = _generic(key).rpartition(".")[0]
        return parent in self.dirs

    def unknown(self, key: str) -> bool:
        """In no listed kernel, although its directory is listed (see the module docstring)."""
        return bool(self.keys) and not self.has(key) and self.has_dir(key)


def _generic(key: str) -> str:
    parts = key.split(".")
    if len(parts) >= 5 and tuple(parts[:3]) in _DEVICE_DIRS:
        parts[3] = "*"
    return ".".join(parts)


def parse(text: str) -> Tuple[FrozenSet[str], Optional[str]]:
    kernel = None
    keys = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# kernel:"):
            kernel = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            keys.add(line)
    return frozenset(keys), kernel


@functools.lru_cache(maxsize=4)
def load(directory: Path = INVENTORY_DIR) -> Inventory:
    """Every listed kernel of ``directory`` (empty when there is none: nothing is unknown)."""
    keys, kernels = set(), []
    if directory.is_dir():
        for path in sorted(directory.glob("*.txt")):
            try:
                found, kernel = parse(read_bounded(str(path), MAX_BYTES).decode("utf-8", "replace"))
            except OSError:
                continue  # an unreadable inventory only makes fewer keys "unknown"
            keys |= found
            kernels.append(kernel or path.stem)
    dirs = set()
    for key in keys:
        parts = key.split(".")
        for end in range(1, len(parts)):
            dirs.add(".".join(parts[:end]))
    return Inventory(frozenset(keys), frozenset(dirs), tuple(kernels))
