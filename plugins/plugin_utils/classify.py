"""Classify sysctl keys: the knowledge base, kernel gates and (when there is one) the host's probe.

``scope()`` answers for one key from the knowledge alone (static linting, the
``sysctl_scope`` filter). ``classify_host()`` answers for every key of one host's facts
(``docs/facts.md``): the probe evidence decides where it can, the knowledge decides what a
non-destructive probe cannot see (a leak, whether a per-namespace key is copied from the host,
UTS keys that share one table), and a disagreement is reported as a conflict with the probe
winning. Both are pure functions of their arguments.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict, Mapping, Optional, Tuple

from . import acceptance
from .facts_schema import key_modes
from .knowledge import Entry, Gate, Knowledge, RuntimeSpec
from .versions import KernelVersion, format_kernel, gate_reached, parse_kernel, try_parse_kernel
from .vocabulary import PER_NAMESPACE_CLASSES, key_to_path, writable

UNKNOWN_VALUE = "<value>"


# --------------------------------------------------------------------------- knowledge alone

def _gate_state(entry: Entry, kernel: Optional[KernelVersion]) -> Tuple[str, str, Optional[Dict[str, Any]]]:
    """Class and namespace of ``entry`` on ``kernel`` (None: latest) and the gate that matters.

    Gates are sorted oldest first. The first gate the kernel has not reached gives the class
    (its ``class_before``); past every gate the entry's own class holds. The gate reported is
    that first unreached one, or the newest one when all are reached.
    """
    klass, namespace = entry.klass, entry.namespace
    if not entry.gates:
        return klass, namespace, None
    chosen: Optional[Gate] = None
    reached = True
    if kernel is not None:
        for gate in entry.gates:
            if not gate_reached(kernel, gate.since, gate.backports):
                chosen, reached = gate, False
                break
    if chosen is None:
        chosen = entry.gates[-1]
    index = entry.gates.index(chosen)
    after = entry.gates[index + 1] if index + 1 < len(entry.gates) else None
    class_after = after.class_before if after else entry.klass
    namespace_after = (after.namespace_before or entry.namespace) if after else entry.namespace
    if not reached:
        klass = chosen.class_before
        namespace = chosen.namespace_before or entry.namespace
    gate = {
        "since": chosen.since,
        "backports": list(chosen.backports),
        "class_before": chosen.class_before,
        "class_after": class_after,
        "namespace_before": chosen.namespace_before or entry.namespace,
        "namespace_after": namespace_after,
        "commit": chosen.commit,
        "title": chosen.title,
        "unverified": chosen.unverified,
        "reached": reached if kernel is not None else None,
    }
    return klass, namespace, gate


def _fmt(template: Optional[str], key: str, value: Optional[str]) -> Optional[str]:
    if template is None:
        return None
    return (template.replace("{key}", key).replace("{path}", key_to_path(key))
            .replace("{value}", value if value is not None else UNKNOWN_VALUE))


def runtime_verdicts(kb: Knowledge, key: str, klass: str, entry: Optional[Entry],
                     kernel: Optional[KernelVersion], value: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """What each runtime does with ``key`` requested for a container (new namespaces).

    ``accepts`` is the runtime's own validation; ``applies`` says whether the write then works
    in the container's namespaces (a host-only key is absent there, a mirror is read-only), with
    the error the runtime reports when it does not.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for name, spec in kb.runtimes.items():
        out[name] = _runtime_verdict(spec, key, klass, entry, kernel, value)
    return out


def _runtime_verdict(spec: RuntimeSpec, key: str, klass: str, entry: Optional[Entry],
                     kernel: Optional[KernelVersion], value: Optional[str]) -> Dict[str, Any]:
    rule = spec.rule_for(key)
    accepts = bool(rule.accepts) if rule else False
    error = _fmt(rule.error, key, value) if rule and not accepts else None
    verdict: Dict[str, Any] = {
        "accepts": accepts,
        "error": error,
        "requires": rule.requires if rule and accepts else None,
        "error_host_namespace": _fmt(rule.error_host_namespace, key, value) if rule else None,
        # How this verdict is known (the measurement, the runtime's source, or neither), and
        # the measured words of every version the harness ran, ready to quote.
        "verified": rule.verified_by if rule else "unverified",
        "quote": acceptance.quote(rule.rows, key, value) if rule and not accepts and rule.rows else None,
        "quote_host": acceptance.quote(rule.rows_host, key, value) if rule and rule.rows_host else None,
        "stage": (rule.rows[0].stage if rule and not accepts and rule.rows else None),
    }
    applies: Optional[bool] = None
    if accepts:
        applies = True
        kind = {"host-only": "absent", "mirror": "read_only"}.get(klass)
        if kind:
            applies = False
            verdict["error"] = _fmt(spec.apply_errors.get(kind), key, value)
            rows = spec.apply_rows.get(kind) or ()
            verdict["quote"] = acceptance.quote(rows, key, value) if rows else None
            verdict["stage"] = "container-init"
            verdict["verified"] = ("measured: " + "; ".join(r.citation() for r in rows)) if rows else "unverified"
    verdict["applies"] = applies
    if spec.name == "kubelet":
        safe = False
        if entry is not None and entry.kubelet_safe:
            minimum = try_parse_kernel(entry.kubelet_safe.get("kernel"))
            safe = minimum is None or kernel is None or kernel >= minimum
        verdict["safe"] = safe
        if accepts and not safe and verdict["error"] is None:
            # Accepted only when the node allowlists it (--allowed-unsafe-sysctls).
            verdict["error"] = _fmt('forbidden sysctl: "{key}" not allowlisted', key, value)
    if entry is not None and spec.name in entry.runtimes:
        override = entry.runtimes[spec.name]
        for field_name in ("accepts", "applies"):
            if field_name in override:
                verdict[field_name] = override[field_name]
        if "error" in override:
            verdict["error"] = _fmt(override["error"], key, value)
        if "note" in override:
            verdict["note"] = override["note"]
    return verdict


def _knowledge_evidence(entry: Optional[Entry], matched: Optional[str], gate: Optional[Mapping[str, Any]],
                        kernel: Optional[KernelVersion]) -> str:
    if entry is None:
        return "default: no knowledge entry matches; treated as global"
    text = f"knowledge: {entry.id} ({matched})"
    if gate is not None:
        on = format_kernel(kernel) if kernel is not None else "the latest known kernel"
        since = gate["since"] + (f" (backports {', '.join(gate['backports'])})" if gate["backports"] else "")
        if gate["reached"] is False:
            text += f" [kernel {on} predates {since}: {gate['class_before']}]"
        else:
            text += f" [{gate['class_before']} before {since}, {gate['class_after']} since; kernel {on}]"
    return text


def scope(kb: Knowledge, key: str, kernel: Optional[str] = None, value: Optional[str] = None) -> Dict[str, Any]:
    """The class of ``key`` on ``kernel`` (a release string; None = latest) from the knowledge alone.

    Raises :class:`KernelVersionError` for a ``kernel`` that is not a kernel release.
    """
    version = parse_kernel(kernel) if kernel is not None else None
    found = kb.lookup(key)
    entry, matched = found if found else (None, None)
    if entry is None:
        klass, namespace, gate = "global", "none", None
    else:
        klass, namespace, gate = _gate_state(entry, version)
    return {
        "key": key,
        "class": klass,
        "namespace": namespace,
        "evidence": _knowledge_evidence(entry, matched, gate, version),
        "entry": entry.id if entry else None,
        "pattern": matched,
        "gate": gate,
        "per_device": bool(entry and entry.per_device),
        "notes": entry.notes if entry else "",
        "sources": [s.as_dict() for s in entry.sources] if entry else [],
        "runtimes": runtime_verdicts(kb, key, klass, entry, version, value),
        "kernel": format_kernel(version) if version else None,
    }


# --------------------------------------------------------------------------- with a host's facts

def _conflict(knowledge: Tuple[str, str], probe: Tuple[str, str]) -> Optional[str]:
    if knowledge == probe:
        return None
    return (f"knowledge says {knowledge[0]} (namespace {knowledge[1]}), "
            f"probe on this host says {probe[0]} (namespace {probe[1]})")


def decide(known: Mapping[str, Any], entry: Optional[Entry], probe: Optional[Mapping[str, Any]],
           host_mode: Optional[str], probed_namespaces: Optional[Tuple[str, ...]] = None) -> Dict[str, Any]:
    """Combine the knowledge answer ``known`` (from :func:`scope`) with one key's probe record.

    In order: no probe record, or none of the namespace that matters (the knowledge stands);
    absent in a fresh namespace; one shared table entry; then the probe's table entry, the
    same as the host's (:func:`_decide_same_entry`) or its own (:func:`_decide_own_entry`).
    """
    k_class, k_ns = known["class"], known["namespace"]
    k_evidence = known["evidence"]
    base_by = "knowledge" if entry is not None else "default"
    result = partial(_result, known)

    if not probe or probe.get("exists") is None:
        return result(k_class, k_ns, k_evidence, base_by)

    # The namespace type whose fresh instance would show this key's behaviour: its owner, or for
    # global net.* keys (host-only, mirrors, leaks) the network namespace. A probe that did not
    # create one (it failed, or was told not to) has no evidence about the key.
    relevant = k_ns if k_ns != "none" else ("net" if known.get("key", "").startswith("net.") else None)
    if relevant is not None and probed_namespaces is not None and relevant not in probed_namespaces:
        return result(k_class, k_ns, f"{k_evidence} [probe: no fresh {relevant} namespace was probed]", base_by)

    if not probe.get("exists"):
        if entry is not None and entry.per_device:
            return result(k_class, k_ns, f"{k_evidence} [probe: absent in a fresh net namespace: "
                          "a per-device key, its device is not in that namespace]", "knowledge")
        verdict = ("host-only", "none")
        return result(*verdict, f"probe: absent in a fresh namespace set [{k_evidence}]", "probe",
                      _conflict((k_class, k_ns), verdict))

    if entry is not None and entry.shared_table:
        # One table entry serves every namespace and its handler reads the caller's namespace:
        # a probe's inode or value comparison says nothing about who owns the setting.
        return result(k_class, k_ns, f"{k_evidence} [probe: present in a fresh namespace set; one table entry "
                      "serves every namespace: the knowledge decides]", "knowledge")

    owner = probe.get("owner")
    child_mode = probe.get("mode") or host_mode  # the compact probe omits a mode equal to the host's
    host_w = writable(host_mode)
    child_w = writable(child_mode)
    modes = f"mode {child_mode or '?'} in a fresh namespace, {host_mode or '?'} on the host"

    if owner is None:
        return _decide_same_entry(known, probe, modes, host_w, child_w)
    return _decide_own_entry(known, entry, probe, owner, modes, host_w, child_w)


def _result(known: Mapping[str, Any], klass: str, namespace: str, evidence: str, decided_by: str,
            conflict: Optional[str] = None) -> Dict[str, Any]:
    """One key's classification as :func:`decide` answers it."""
    return {"class": klass, "namespace": namespace, "evidence": evidence, "decided_by": decided_by,
            "conflict": conflict, "entry": known["entry"], "knowledge_class": known["class"],
            "per_device": known["per_device"]}


def _decide_same_entry(known: Mapping[str, Any], probe: Mapping[str, Any], modes: str,
                       host_w: Optional[bool], child_w: Optional[bool]) -> Dict[str, Any]:
    """:func:`decide` for a key whose fresh namespace showed the host's own table entry."""
    k_class, k_ns, k_evidence = known["class"], known["namespace"], known["evidence"]
    result = partial(_result, known)
    differs_in = tuple(probe.get("value_differs_in") or ())
    if probe.get("value_only") and k_class in PER_NAMESPACE_CLASSES and k_ns in differs_in:
        # The host's own table entry shows another value in a fresh namespace of the type the
        # knowledge names: a handler that reads the caller's namespace. Only the knowledge can
        # say whether that namespace owns the setting.
        return result(k_class, k_ns, f"{k_evidence} [probe: same table entry, another value in a fresh "
                      f"{k_ns} namespace: the knowledge decides]", "knowledge")
    if k_ns == "uts" and k_class in PER_NAMESPACE_CLASSES:
        # UTS keys share one table entry (a site entry may lack shared_table): only the
        # knowledge can say.
        return result(k_class, k_ns, f"{k_evidence} [probe: same table entry; one table entry serves every "
                      "namespace: the knowledge decides]", "knowledge")
    if host_w and child_w is False:
        verdict = ("mirror", "none")
        return result(*verdict, f"probe: {modes} [{k_evidence}]", "probe", _conflict((k_class, k_ns), verdict))
    verdict = ("global", "none")
    seen = "same table entry in every throwaway namespace"
    if differs_in:
        seen += f" (its value differs in a fresh {'/'.join(differs_in)} namespace through that entry)"
    return result(*verdict, f"probe: {seen} [{k_evidence}]", "probe", _conflict((k_class, k_ns), verdict))


def _decide_own_entry(known: Mapping[str, Any], entry: Optional[Entry], probe: Mapping[str, Any], owner: str,
                      modes: str, host_w: Optional[bool], child_w: Optional[bool]) -> Dict[str, Any]:
    """:func:`decide` for a key the fresh ``owner`` namespace gave its own table entry."""
    k_class, k_ns, k_evidence = known["class"], known["namespace"], known["evidence"]
    result = partial(_result, known)
    if host_w and child_w is False:
        verdict = ("mirror", "none")
        return result(*verdict, f"probe: own entry in a fresh {owner} namespace, {modes} [{k_evidence}]",
                      "probe", _conflict((k_class, k_ns), verdict))
    if child_w is False and host_w is False:
        # Read-only everywhere: the probe cannot tell a per-namespace counter from a mirror.
        if k_class in PER_NAMESPACE_CLASSES + ("mirror",):
            return result(k_class, k_ns, f"{k_evidence} [probe: own entry in a fresh {owner} namespace, "
                          "read-only everywhere]", "knowledge")
        verdict = ("isolated", owner) if probe.get("same_value") is False else ("mirror", "none")
        return result(*verdict, f"probe: own entry in a fresh {owner} namespace, read-only everywhere "
                      f"[{k_evidence}]", "probe", _conflict((k_class, k_ns), verdict))
    if k_class == "leaking":
        # A leak looks like a per-namespace key to a non-destructive probe; only the knowledge knows.
        return result(k_class, k_ns, f"{k_evidence} [probe: own writable entry in a fresh {owner} namespace; "
                      "a probe cannot see a leak]", "knowledge")
    same_value = probe.get("same_value")
    volatile = bool(entry and entry.volatile)
    if k_class in PER_NAMESPACE_CLASSES and k_ns == owner:
        if k_class == "isolated-inherited" and same_value is False and not volatile:
            verdict = ("isolated", owner)
            return result(*verdict, f"probe: own entry in a fresh {owner} namespace with a value other than "
                          f"the host's, so not copied from the host [{k_evidence}]", "probe",
                          _conflict((k_class, k_ns), verdict))
        return result(k_class, k_ns, f"probe: own writable entry in a fresh {owner} namespace [{k_evidence}]",
                      "probe")
    klass = k_class if k_class in PER_NAMESPACE_CLASSES else "isolated"
    verdict = (klass, owner)
    return result(*verdict, f"probe: own writable entry in a fresh {owner} namespace [{k_evidence}]", "probe",
                  _conflict((k_class, k_ns), verdict))


def host_keys(facts: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """Every key the facts know of on the host, with its host mode (None when unknown).
    ``facts`` are of the current ``schema_version`` (``facts_schema.read_facts``)."""
    host = facts.get("host") or {}
    keys: Dict[str, Optional[str]] = key_modes(host)   # every readable key's mode
    for key, record in (host.get("unreadable") or {}).items():
        keys[key] = (record or {}).get("mode")
    probe = facts.get("probe") or {}
    for key in (probe.get("keys") or {}):  # the per-key probe form also names keys
        keys.setdefault(key, None)
    return keys


class _PerKeyProbe:
    """The per-key probe form (``probe.keys.<key>``) behind the compact form's interface."""

    def __init__(self, probe: Mapping[str, Any]) -> None:
        self.keys = probe.get("keys") or {}

    def evidence(self, key: str) -> Optional[Mapping[str, Any]]:
        return self.keys.get(key)


def probe_reader(probe: Optional[Mapping[str, Any]]):
    """An object with ``evidence(key)`` over either probe form of docs/facts.md, or None.

    The module's compact form lists only exceptions (absent, mode_differs, value_differs,
    owner, unknown); its own ``ProbeIndex`` turns that into per-key evidence, so both sides read
    the facts the same way.
    """
    if not probe or not probe.get("enabled", True):
        return None
    if "keys" in probe:
        return _PerKeyProbe(probe)
    from ..module_utils.probe_facts import ProbeIndex  # the compact facts' reader, no imports of its own
    return ProbeIndex(probe)


def classify_host(kb: Knowledge, facts: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Class, namespace, evidence, decided_by and conflict for every key of one host's facts
    (of the current ``schema_version``: facts_schema.upgrade_facts converts an earlier one)."""
    host = facts.get("host") or {}
    release = ((host.get("kernel") or {}).get("release"))
    version = try_parse_kernel(release)
    probe = facts.get("probe") or {}
    reader = probe_reader(probe)
    probed = tuple(probe.get("namespaces") or ()) or None
    out: Dict[str, Dict[str, Any]] = {}
    for key, host_mode in sorted(host_keys(facts).items()):
        found = kb.lookup(key)
        entry = found[0] if found else None
        known = _known(key, version, found)
        evidence = reader.evidence(key) if reader is not None else None
        out[key] = decide(known, entry, evidence, host_mode, probed)
    return out


def _known(key: str, version: Optional[KernelVersion],
           found: Optional[Tuple[Entry, str]]) -> Dict[str, Any]:
    """The part of :func:`scope` ``decide`` needs, without runtimes and sources (hot path)."""
    entry, matched = found if found else (None, None)
    if entry is None:
        klass, namespace, gate = "global", "none", None
    else:
        klass, namespace, gate = _gate_state(entry, version)
    return {"key": key, "class": klass, "namespace": namespace, "entry": entry.id if entry else None,
            "per_device": bool(entry and entry.per_device),
            "evidence": _knowledge_evidence(entry, matched, gate, version)}


def classification_key(facts: Mapping[str, Any]) -> Tuple[Any, ...]:
    """Everything of one host's facts that :func:`classify_host` reads, as one hashable value:
    the kernel release, the probe, and every key with its host mode (never a value). Hosts with
    the same key (one image and kernel across a fleet) have the same classification."""
    import json

    host = facts.get("host") or {}
    probe = facts.get("probe") or {}
    return ((host.get("kernel") or {}).get("release"), json.dumps(probe, sort_keys=True, default=str),
            tuple(sorted(host_keys(facts).items())))
