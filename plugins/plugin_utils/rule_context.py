# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a check reads and writes: the evaluation :class:`Context` (one host's facts, the
classifier's answer, the expectations, the knowledge base), :func:`make_finding` (a finding of
docs/findings.md) and the small helpers the checks share.

It imports neither the catalog nor the checks: a rule is known here as :class:`RuleLike`, the
part of :class:`.rule_catalog.Rule` a finding needs, so :mod:`.rules_builtin` imports this module
and :mod:`.rule_catalog` imports the checks without a cycle (docs/architecture.md).

Plain Python, no Ansible import.
"""
from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

from . import remediation as rem
from .expectations import Expectation
from .facts_schema import key_mode
from .vocabulary import set_label

__all__ = ["Context", "RuleLike", "ceil_to", "container_of", "glob_any", "make_finding"]


class RuleLike(Protocol):
    """What a check and :func:`make_finding` read of a catalog rule (:class:`.rule_catalog.Rule`)."""

    id: str
    name: str
    severity: str
    check: Mapping[str, Any]

    def render(self, variables: Mapping[str, Any]) -> str:
        ...



# identity.runtime -> the runtime name in the knowledge base (rules/knowledge/runtimes.yml).
# A running Docker container came through the Engine API (docker run's client check already
# passed), so what it meets again on re-create is the daemon's path: runc's validator.
_RUNTIME_KB = {"docker": "docker-api", "podman": "podman", "lxc": "lxc", "runc": "runc", "crun": "crun",
               "containerd": "runc", "cri-o": "runc", "crio": "runc"}


@dataclass
class Context:
    """Everything a check reads, computed once per evaluation. ``facts`` are of the current
    ``schema_version`` (docs/facts.md; ``facts_schema.read_facts`` converts an earlier one)."""

    facts: Mapping[str, Any]
    classification: Mapping[str, Mapping[str, Any]]
    host: str
    expectations: Sequence[Expectation] = ()
    options: rem.RemediationOptions = field(default_factory=rem.RemediationOptions)
    kb: Any = None
    _scope_cache: Dict[Tuple[str, Optional[str]], Dict[str, Any]] = field(default_factory=dict)
    _match_cache: Dict[str, List[Expectation]] = field(default_factory=dict)

    @property
    def host_facts(self) -> Mapping[str, Any]:
        return self.facts.get("host") or {}

    @property
    def kernel(self) -> Optional[str]:
        return (self.host_facts.get("kernel") or {}).get("release")

    @cached_property
    def sets(self) -> List[Mapping[str, Any]]:
        # every rule walks the sets: filtered once per evaluation (the facts do not change in it)
        return [s for s in (self.facts.get("namespace_sets") or []) if isinstance(s, Mapping)]

    @property
    def persisted(self) -> Mapping[str, Any]:
        return self.host_facts.get("persisted") or {}

    def host_value(self, key: str) -> Optional[str]:
        return (self.host_facts.get("keys") or {}).get(key)

    def host_mode(self, key: str) -> Optional[str]:
        mode = key_mode(self.host_facts, key)
        if mode is not None:
            return mode
        record = (self.host_facts.get("unreadable") or {}).get(key)
        return record.get("mode") if isinstance(record, Mapping) else None

    def persisted_entry(self, key: str) -> Optional[Mapping[str, Any]]:
        entry = (self.persisted.get("keys") or {}).get(key)
        return entry if isinstance(entry, Mapping) else None

    def scope(self, key: str, value: Optional[str] = None) -> Optional[Dict[str, Any]]:
        if self.kb is None:
            return None
        cache_key = (key, value)
        if cache_key not in self._scope_cache:
            from .classify import scope  # the classifier (issue 3); only needed with a knowledge base

            self._scope_cache[cache_key] = scope(self.kb, key, kernel=self.kernel, value=value)
        return self._scope_cache[cache_key]

    def klass(self, key: str) -> Dict[str, Any]:
        """Class, namespace and evidence of ``key`` on this host: the classifier's answer, or the
        knowledge alone for a key the host does not have (a typo, an unloaded module)."""
        known = self.classification.get(key)
        if isinstance(known, Mapping) and known.get("class"):
            return {"class": known["class"], "namespace": known.get("namespace") or "none",
                    "evidence": known.get("evidence") or "", "conflict": known.get("conflict")}
        scoped = self.scope(key)
        if scoped:
            return {"class": scoped["class"], "namespace": scoped["namespace"],
                    "evidence": "not on this host; " + scoped["evidence"], "conflict": None}
        return {"class": "unknown", "namespace": None, "evidence": "not on this host and no knowledge base given",
                "conflict": None}

    def runtime_name(self, nset: Mapping[str, Any]) -> Optional[str]:
        """The knowledge base's name of the path the set's sysctls took (``kubelet`` for a pod)."""
        identity = nset.get("identity") or {}
        return "kubelet" if identity.get("pod_name") else _RUNTIME_KB.get((identity.get("runtime") or "").lower())

    def runtime_verdict(self, key: str, nset: Mapping[str, Any], value: Optional[str] = None) -> Dict[str, Any]:
        """What the set's runtime does with ``key`` (knowledge base), or {} when unknown."""
        name = self.runtime_name(nset)
        scoped = self.scope(key, value)
        if not scoped or not name:
            return {}
        verdict = dict((scoped.get("runtimes") or {}).get(name) or {})
        if verdict:
            verdict["runtime"] = name
        return verdict

    def set_value(self, nset: Mapping[str, Any], key: str) -> Tuple[Optional[str], str]:
        """The set's value of ``key`` and how it is known: ``differs`` (own value), ``same``
        (the host's), ``absent`` (the key does not exist there), ``unknown``."""
        view = nset.get("view") or {}
        if key in (view.get("keys") or {}):   # the full view
            return view["keys"][key], "differs"
        differs = view.get("differs") or {}
        if key in differs:
            return (differs[key] or {}).get("container"), "differs"
        if key in (view.get("absent") or []):
            return None, "absent"
        if key in (view.get("unreadable") or {}):
            return None, "unknown"
        if view.get("mode") == "full" and view.get("keys"):
            return None, "absent"
        if self.host_value(key) is not None and not (nset.get("errors") and not view):
            return self.host_value(key), "same"
        return None, "unknown"

    def shared_namespaces(self, nset: Mapping[str, Any]) -> List[str]:
        """Namespace types (net, ipc, uts) the set shares with the host."""
        shared = set(nset.get("shares_host") or [])
        differs = set(nset.get("differs_from_host") or [])
        for kind in ("net", "ipc", "uts"):
            if nset.get("host_%s" % ("network" if kind == "net" else kind)):
                shared.add(kind)
            elif kind not in differs and "differs_from_host" in nset and nset.get("ns"):
                shared.add(kind)
        return sorted(k for k in shared if k in ("net", "ipc", "uts"))

    def matched(self, nset: Mapping[str, Any]) -> List[Expectation]:
        set_id = str(nset.get("id"))
        if set_id not in self._match_cache:
            # a profile's expectations share its selectors: test each selector tuple once per set
            # (9 profiles, 90 expectations: a tenth of the work, 2-3 ms a host of 30 sets)
            verdicts: Dict[int, bool] = {}
            matched = []
            for expectation in self.expectations:
                verdict = verdicts.get(id(expectation.selectors))
                if verdict is None:
                    verdict = verdicts[id(expectation.selectors)] = expectation.matches(nset)
                if verdict:
                    matched.append(expectation)
            self._match_cache[set_id] = matched
        return self._match_cache[set_id]

    def write_signals(self, nset: Mapping[str, Any]) -> Dict[str, Any]:
        """How a set could write global sysctls: privileged, /proc/sys read-write, or
        CAP_SYS_ADMIN / CAP_NET_ADMIN, each only counting in the host's user namespace."""
        priv = nset.get("privileges") or {}
        caps = {str(c).upper() for c in (priv.get("capabilities") or [])}
        caps = {c if c.startswith("CAP_") else "CAP_" + c for c in caps}
        host_userns = priv.get("userns_is_host")
        if host_userns is None:
            host_userns = "user" not in (nset.get("differs_from_host") or [])
        # Root of another user namespace mapped to the host's uid 0 (unshare -U -r run by root):
        # the kernel's sysctl check for most global tables is the file mode against the euid
        # (uid 0 on the host), not a capability, so a read-write /proc/sys is enough (measured,
        # tests/reliability/test_proc_sys_rw.py). Its capabilities still count only in its own
        # namespace: inherited mounts are locked there, it cannot remount /proc/sys.
        host_root = bool(priv.get("root_is_host_root")) and not host_userns
        signals = []
        if host_userns:
            if priv.get("privileged"):
                signals.append("privileged")
            if priv.get("proc_sys_rw"):
                signals.append("/proc/sys mounted read-write")
            for cap in ("CAP_SYS_ADMIN", "CAP_NET_ADMIN"):
                if cap in caps:
                    signals.append("%s in the host's user namespace" % cap)
        elif host_root and priv.get("proc_sys_rw"):
            signals.append("/proc/sys mounted read-write and its root is the host's root (uid_map 0 -> 0)")
        return {"signals": signals, "host_userns": bool(host_userns),
                "privileged": bool(priv.get("privileged")) and bool(host_userns),
                "proc_sys_rw": bool(priv.get("proc_sys_rw")) and (bool(host_userns) or host_root),
                "sys_admin": "CAP_SYS_ADMIN" in caps and bool(host_userns),
                "net_admin": "CAP_NET_ADMIN" in caps and bool(host_userns),
                "caps": sorted(caps & {"CAP_SYS_ADMIN", "CAP_NET_ADMIN"})}


# --------------------------------------------------------------------------- findings

def container_of(nset: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if not nset:
        return None
    identity = nset.get("identity") or {}
    out = {k: identity.get(k) for k in ("runtime", "id", "name", "image", "pod_name", "pod_namespace", "netns_name")}
    out["label"] = set_label(nset)
    out["pid"] = nset.get("representative_pid") or (nset.get("init") or {}).get("pid")
    return out


def make_finding(ctx: Context, rule: RuleLike, *, message_vars: Mapping[str, Any], severity: Optional[str] = None,
                 nset: Optional[Mapping[str, Any]] = None, key: Optional[str] = None,
                 values: Optional[Mapping[str, Any]] = None, klass: Optional[Mapping[str, Any]] = None,
                 remediation: Optional[Mapping[str, Any]] = None, details: Optional[Mapping[str, Any]] = None,
                 evidence: Optional[str] = None) -> Dict[str, Any]:
    """A finding of docs/findings.md."""
    full_values = {"host": None, "container": None, "requested": None, "expected": None, "persisted": None}
    full_values.update({k: v for k, v in (values or {}).items() if k in full_values})
    label = set_label(nset) if nset else "host"
    variables = {"key": key, "host": ctx.host, "label": label, "kernel": ctx.kernel,
                 "class": (klass or {}).get("class"), "namespace": (klass or {}).get("namespace")}
    variables.update(message_vars)
    return {
        "rule": rule.id,
        "rule_name": rule.name,
        "severity": severity or rule.severity,
        "host": ctx.host,
        "set_id": nset.get("id") if nset else None,
        "container": container_of(nset),
        "key": key,
        "values": full_values,
        "class": (klass or {}).get("class"),
        "namespace": (klass or {}).get("namespace"),
        "evidence": evidence if evidence is not None else (klass or {}).get("evidence"),
        "message": rule.render(variables),
        "remediation": dict(remediation or rem.remediation("none", [])),
        "details": dict(details or {}),
    }



def glob_any(patterns: Iterable[str], text: str) -> bool:
    return any(fnmatch.fnmatchcase(text, p) for p in patterns)


def ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
