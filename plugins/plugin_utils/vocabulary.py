# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's shared words, each defined once: every other plugin_utils module imports them.

- **Severities**: :data:`SEVERITIES` worst first; :data:`SEVERITY_RANK` is the index in it, so
  *lower is worse* (``error`` 0, ``info`` 2) and sorting by rank puts the worst first.
- **fail_on** (:data:`FAIL_ON`) and its one decision, :func:`fail_on_reached`, used by the lint
  action (per host) and the fleet report (per run).
- **The finding order** (:func:`finding_sort_key`): host, worst first, rule, set, key, message.
- **Class groups**: :data:`PER_NAMESPACE_CLASSES` (each namespace has its own value) and
  :data:`GLOBAL_CLASSES` (the value is the host's, whatever a container sees or writes).
- **Key <-> path**: sysctl's swap, defined in ``module_utils/sysctl_names.py`` because the target
  needs it too, re-exported here.
- **Labels**: :func:`set_label` (a namespace set of the facts) and :func:`container_label` (the
  ``container`` of a finding); both name a set the same way, by :func:`identity_name` first.
- **Values**: :func:`writable`, :func:`squash` and :func:`as_number`, each with its ``None`` rule.
- **Data paths**: :func:`data_dir` (the collection root, from where this file sits).

Plain Python, no Ansible import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Tuple

from ..module_utils.sysctl_names import is_path_spelling, key_to_path, normalize_key, path_to_key

__all__ = [
    "SEVERITIES", "SEVERITY_RANK", "worst_of", "FAIL_ON", "fail_on_reached", "finding_sort_key",
    "PER_NAMESPACE_CLASSES", "GLOBAL_CLASSES",
    "key_to_path", "path_to_key", "normalize_key", "is_path_spelling",
    "identity_name", "set_label", "container_label",
    "writable", "squash", "as_number",
    "COLLECTION_ROOT", "data_dir",
]

# --------------------------------------------------------------------------- severities

SEVERITIES = ("error", "warning", "info")  # worst first
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}  # lower is worse
_UNKNOWN_RANK = SEVERITY_RANK["info"]  # a severity outside the list weighs as little as info


def worst_of(severities: Iterable[str]) -> Optional[str]:
    """The worst of ``severities`` (the first of equals), None for none."""
    worst = None
    for severity in severities:
        if worst is None or SEVERITY_RANK.get(severity, _UNKNOWN_RANK) < SEVERITY_RANK.get(worst, _UNKNOWN_RANK):
            worst = severity
    return worst


# --------------------------------------------------------------------------- fail_on

FAIL_ON = ("never", "warning", "error")


def fail_on_reached(counts: Mapping[str, int], fail_on: str, incomplete: bool = False) -> bool:
    """The pass/fail verdict. ``never``: never. ``warning``/``error``: a finding of that severity or
    worse in ``counts``, or ``incomplete`` (a host not audited, or only in part: what was not read
    is unknown, so it cannot pass)."""
    if fail_on not in FAIL_ON:
        raise ValueError("fail_on must be one of %s, not %r" % (", ".join(FAIL_ON), fail_on))
    if fail_on == "never":
        return False
    if incomplete:
        return True
    return any(counts.get(name, 0) for name in SEVERITIES[:SEVERITY_RANK[fail_on] + 1])


# --------------------------------------------------------------------------- finding order

def finding_sort_key(finding: Mapping[str, Any]) -> Tuple[Any, ...]:
    """One stable order for findings, in the lint result and in every report."""
    return (str(finding.get("host") or ""), SEVERITY_RANK.get(finding["severity"], _UNKNOWN_RANK), finding["rule"],
            str(finding.get("set_id") or ""), str(finding.get("key") or ""), str(finding.get("message") or ""))


# --------------------------------------------------------------------------- class groups

PER_NAMESPACE_CLASSES = ("isolated", "isolated-inherited")
GLOBAL_CLASSES = ("global", "mirror", "host-only", "leaking")  # the value is the host's, for every container


# --------------------------------------------------------------------------- labels

def identity_name(identity: Mapping[str, Any]) -> Optional[str]:
    """A container's name from its identity: ``pod_namespace/pod``, the name, the ``ip netns``
    name, or the first 12 characters of its id; None when it has none of them."""
    if identity.get("pod_name"):
        return "%s/%s" % (identity.get("pod_namespace") or "default", identity["pod_name"])
    for key in ("name", "netns_name"):
        if identity.get(key):
            return str(identity[key])
    if identity.get("id"):
        return str(identity["id"])[:12]
    return None


def set_label(nset: Mapping[str, Any]) -> str:
    """A short human name for a namespace set of the facts (``comm[pid]`` for an unnamed one).
    Facts come from the target: a field of the wrong type (an ``identity`` list, an ``init``
    string) names the set by what is left, never raises."""
    identity = nset.get("identity") if isinstance(nset.get("identity"), Mapping) else {}
    name = identity_name(identity)
    if name:
        return name
    init = nset.get("init") if isinstance(nset.get("init"), Mapping) else {}
    if init.get("comm"):
        return "%s[%s]" % (init["comm"], init.get("pid", "?"))
    return str(nset.get("id") or "?")


def container_label(identity: Optional[Mapping[str, Any]], set_id: Optional[str] = None) -> str:
    """The short human name of a finding's namespace set: the ``label`` the rule engine put in
    ``finding.container`` (:func:`set_label`, the name its messages use), else the identity's
    name, ``pid N``, the set id, or ``(host)``."""
    identity = identity or {}
    if identity.get("label"):
        return str(identity["label"])
    name = identity_name(identity)
    if name:
        return name
    if identity.get("pid"):
        return "pid %s" % identity["pid"]
    return set_id or "(host)"


# --------------------------------------------------------------------------- values

def writable(mode: Any) -> Optional[bool]:
    """Whether an octal mode string (``"0644"``) has a write bit; None when it is missing or not
    octal (unknown: callers that need a yes/no read None as no)."""
    if not mode:
        return None
    try:
        return bool(int(str(mode), 8) & 0o222)
    except ValueError:
        return None


def squash(value: Any) -> Optional[str]:
    """A value as ``sysctl -n`` prints it: whitespace runs squashed to one space; None stays None."""
    return None if value is None else " ".join(str(value).split())


def as_number(value: Any) -> Optional[float]:
    """``value`` as a float, None when it is None or not a number."""
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- data paths

COLLECTION_ROOT = Path(__file__).resolve().parents[2]  # <root>/plugins/plugin_utils/vocabulary.py


def data_dir(*parts: str) -> Path:
    """A directory of the collection's data (``data_dir("rules", "catalog")``), found from where
    this code sits: a checkout, an installed collection or the lint package's snapshot alike."""
    return COLLECTION_ROOT.joinpath(*parts)
