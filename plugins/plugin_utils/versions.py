"""Kernel release parsing and the comparisons the knowledge base's gates need.

A kernel release as ``uname -r`` prints it (``6.18.44-fc-v669``, ``4.18.0-553.el8_10.x86_64``,
``5.10.0-30-amd64``) is reduced to a tuple of up to three integers. Only the upstream part
counts: distribution suffixes cannot be interpreted (a RHEL 4.18 carries 5.x backports), which is
why the classifier lets the probe overrule a gate whenever the host was probed.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

KernelVersion = Tuple[int, int, int]

_RELEASE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class KernelVersionError(ValueError):
    """A string that does not start with a kernel version number."""


def parse_kernel(release: str) -> KernelVersion:
    """``'6.18.44-fc-v669'`` -> ``(6, 18, 44)``; ``'5.13'`` -> ``(5, 13, 0)``."""
    if isinstance(release, (tuple, list)):
        parts = [int(p) for p in release] + [0, 0, 0]
        return (parts[0], parts[1], parts[2])
    match = _RELEASE.match(str(release))
    if not match:
        raise KernelVersionError(f"not a kernel release: {release!r}")
    major, minor, patch = match.groups()
    return (int(major), int(minor or 0), int(patch or 0))


def try_parse_kernel(release: Optional[str]) -> Optional[KernelVersion]:
    """Like :func:`parse_kernel` but ``None`` for ``None`` or an unparsable string."""
    if release is None:
        return None
    try:
        return parse_kernel(release)
    except KernelVersionError:
        return None


def format_kernel(version: KernelVersion) -> str:
    """``(5, 13, 0)`` -> ``'5.13'``; ``(5, 10, 35)`` -> ``'5.10.35'``."""
    major, minor, patch = version
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def gate_reached(kernel: KernelVersion, since: str, backports: Iterable[str] = ()) -> bool:
    """True when a change merged in ``since`` is in ``kernel``.

    A backport ``5.10.35`` means the change is in every 5.10.y with y >= 35, but not in
    5.11 (a later stable series without its own backport entry is assumed not to have it
    unless it is at or past ``since``).
    """
    if kernel >= parse_kernel(since):
        return True
    for backport in backports:
        bp = parse_kernel(backport)
        if kernel[:2] == bp[:2] and kernel >= bp:
            return True
    return False
