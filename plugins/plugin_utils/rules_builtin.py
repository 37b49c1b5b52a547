# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks behind the built-in rules (rules/catalog/NSG0xx-*.yml) and the declarative
checks user rules may use. Each check is ``check(ctx, rule, params) -> [finding]``, reads only
the :class:`~.rule_context.Context` and never raises on missing facts: a set whose facts lack a
field is judged on what it has. Every check looks at every namespace set, identified as a
container or not.

Plain Python, no Ansible import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import consequence
from . import remediation as rem
from . import container_specs as specs
from . import static_judge
from .expectations import Constraint, Expectation, Selector, parse_constraint
from .rule_context import Context, RuleLike, ceil_to, glob_any, make_finding
from .vocabulary import (GLOBAL_CLASSES, PER_NAMESPACE_CLASSES, as_number, key_to_path, set_label, squash, worst_of,
                         writable)

__all__ = ["BUILTIN_CHECKS", "DECLARATIVE_CHECKS", "combined_target"]


def _quote(text: Optional[str]) -> str:
    return '"%s"' % text if text else ""


def _host_task_unless_lower(ctx: Context, rule: RuleLike, key: str, wanted: Any, why: str) -> Tuple[List[Dict[str, Any]], str]:
    """The host task setting ``key`` to ``wanted``, unless the host already has it or a higher
    number (a request for less than the host has must not lower it for everybody)."""
    host_value = ctx.host_value(key)
    if squash(host_value) == squash(wanted):
        return [], "the host already has %s=%s: only the container's spec needs the change" % (key, squash(wanted))
    got, want = as_number(host_value), as_number(wanted)
    if got is not None and want is not None and got > want:
        return [], ("the host already has a higher value (%s): lowering a global key changes it for every "
                    "container, so no host task is proposed" % host_value)
    return [rem.host_sysctl_task(rule.id, key, wanted, persisted=ctx.persisted, options=ctx.options, why=why)], ""


def _host_owned_reason(ctx: Context, nset: Mapping[str, Any], key: str) -> str:
    """Why ``key`` is the host's and no container spec may set it, or '' when it is the set's own:
    global on this host, or of a namespace the set shares with the host."""
    info = ctx.klass(key)
    if info["class"] in GLOBAL_CLASSES:
        return "%s is %s on this host: a container's spec must not set it; set it on the host" % (key, info["class"])
    if info["namespace"] in ctx.shared_namespaces(nset):
        return ("%s belongs to the %s namespace this container shares with the host: its value is the host's; "
                "set it on the host" % (key, info["namespace"]))
    return ""


def _requests(nset: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The set's requested sysctls by their dotted names: a '/'-spelled request
    (``net/ipv4/ip_forward``) is the key sysctl(8), runc and the kubelet read it as
    (NSG010 judges the spelling itself)."""
    named = {static_judge.normalize_key(raw) or raw: value for raw, value in (nset.get("requested") or {}).items()}
    return sorted(named.items())


def _spec_tasks(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], set_to: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Container-spec tasks for ``nset``, keeping its own requests (not its engine's defaults)
    except keys that are the host's (:func:`_host_owned_reason`)."""
    requested = dict(_requests(nset))
    never = [k for k in set(requested) | set(set_to) if _host_owned_reason(ctx, nset, k)]
    return rem.container_sysctl_tasks(rule.id, nset.get("identity") or {}, set_to, requested=requested,
                                      options=ctx.options, engine_defaults=nset.get("requested_defaults") or (),
                                      never=never)


def _spec_removal(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], key: str) -> List[Dict[str, Any]]:
    return _spec_tasks(ctx, rule, nset, {key: None})


def _no_spec_note(nset: Mapping[str, Any]) -> str:
    identity = nset.get("identity") or {}
    runtime = identity.get("runtime") or "unknown"
    if runtime in ("unknown", None):
        init = nset.get("init") or {}
        return ("the namespace set is not identified as a container (init %s, pid %s): change whatever "
                "starts it" % (init.get("comm") or "?", init.get("pid") or "?"))
    if runtime == "runc":
        return "edit linux.sysctl in the bundle's config.json (%s)" % (nset.get("requested_source") or "config.json")
    if runtime == "systemd-nspawn":
        return "systemd-nspawn has no sysctl option: set it from the container's own init (its network namespace is its own)"
    return "no Ansible module edits %s containers' specs: change it where the container is defined" % runtime


def _container_where(tasks: List[Dict[str, Any]], nset: Mapping[str, Any], note: str = "",
                     ctx: Optional[Context] = None, keys: Iterable[str] = ()) -> Dict[str, Any]:
    if not tasks:
        why = next(filter(None, (_host_owned_reason(ctx, nset, k) for k in keys)), "") if ctx is not None else ""
        note = "; ".join(n for n in (note, why or _no_spec_note(nset)) if n)
    return rem.remediation("container-spec", tasks, note)


# --------------------------------------------------------------------------- NSG001 / NSG002

def _requested_consequence(ctx: Context, nset: Mapping[str, Any], key: str, requested: str,
                           klass: str) -> Tuple[str, Optional[str]]:
    """What happens when this set's runtime is asked for ``key``: (sentence, quoted error), in
    the words both judges use (:func:`consequence.requested_effect`)."""
    verdict = ctx.runtime_verdict(key, nset, requested)
    signals = ctx.write_signals(nset)
    runtime = ((nset.get("identity") or {}).get("runtime") or "unknown").lower()
    writes = signals["signals"] if signals["privileged"] or signals["proc_sys_rw"] else ()
    text = consequence.requested_effect(klass, [(verdict["runtime"], verdict)] if verdict else [],
                                        can_write=writes, lxc=runtime == "lxc")
    return text + ".", verdict.get("error")


def _request_finding(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], key: str, requested: str,
                     info: Mapping[str, Any], container_value: Optional[str], error: Optional[str],
                     message_vars: Mapping[str, Any]) -> Dict[str, Any]:
    """A finding about a requested global key: fix it on the host, drop it from the spec."""
    tasks, note = _host_task_unless_lower(ctx, rule, key, requested, "%s asks for it" % set_label(nset))
    tasks += _spec_removal(ctx, rule, nset, key)
    variables = {"requested": squash(requested), "host_value": ctx.host_value(key)}
    variables.update(message_vars)
    return make_finding(
        ctx, rule, nset=nset, key=key, klass=info,
        values={"host": ctx.host_value(key), "container": container_value, "requested": requested,
                "persisted": (ctx.persisted_entry(key) or {}).get("value")},
        message_vars=variables,
        remediation=rem.remediation("host", tasks, note),
        details={"runtime_error": error, "runtime": (nset.get("identity") or {}).get("runtime")},
    )


def check_global_key_requested(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    classes = tuple(params.get("classes") or ("global", "mirror", "leaking"))
    out = []
    for nset in ctx.sets:
        for key, requested in _requests(nset):
            info = ctx.klass(key)
            if info["class"] not in classes:
                continue
            consequence, error = _requested_consequence(ctx, nset, key, requested, info["class"])
            value, dummy = ctx.set_value(nset, key)
            out.append(_request_finding(ctx, rule, nset, key, requested, info, value, error,
                                        {"consequence": consequence}))
    return out


def check_host_only_key_requested(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for nset in ctx.sets:
        for key, requested in _requests(nset):
            info = ctx.klass(key)
            dummy, state = ctx.set_value(nset, key)
            if info["class"] != "host-only" and not (state == "absent" and info["class"] not in GLOBAL_CLASSES):
                continue
            verdict = ctx.runtime_verdict(key, nset, requested)
            error = verdict.get("error")
            if not error:
                error = "open /proc/sys/%s: no such file or directory" % key_to_path(key)
            out.append(_request_finding(ctx, rule, nset, key, requested, info, None, error,
                                        {"error": _quote(error)}))
    return out


# --------------------------------------------------------------------------- NSG010

def _spec_context(ctx: Context, nset: Mapping[str, Any]) -> static_judge.SpecContext:
    """The set as the static judge sees a spec: the path its sysctls took, its host namespaces."""
    name = ctx.runtime_name(nset)
    pod = name == "kubelet"
    return static_judge.SpecContext(runtimes=(name,) if name else (), kubelet=pod,
                                    oci=specs.KUBELET_OCI if pod else (),
                                    host_namespaces=frozenset(ctx.shared_namespaces(nset)),
                                    where="the spec of %s" % set_label(nset))


def check_requested_key_name(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A request whose *name* no runtime on the set's path can write (a dotted interface name, a
    '/' spelling the path refuses, a name in no kernel): the static judge's decision
    (:func:`static_judge.name_verdicts`) over what the set's runtime was given."""
    if ctx.kb is None:
        return []
    out = []
    for nset in ctx.sets:
        spec = _spec_context(ctx, nset)
        for raw, requested in sorted((nset.get("requested") or {}).items()):
            for verdict in static_judge.name_verdicts(ctx.kb, raw, spec, requested):
                drop = verdict.reason in (static_judge.UNSETTABLE, static_judge.UNKNOWN)
                tasks = _spec_tasks(ctx, rule, nset, {verdict.key: None if drop else requested})
                out.append(make_finding(
                    ctx, rule, severity=verdict.level, nset=nset, key=verdict.key, klass=ctx.klass(verdict.key),
                    values={"host": ctx.host_value(verdict.key), "requested": requested},
                    message_vars={"requested": requested, "problem": verdict.message},
                    remediation=_container_where(tasks, nset),
                    details={"reason": verdict.reason, "as_written": raw, "runtime": spec.runtimes[0] if spec.runtimes else None},
                ))
    return out


# --------------------------------------------------------------------------- NSG003 / NSG009

def combined_target(constraints: Sequence[Constraint], current: Optional[str]) -> Optional[str]:
    """One value meeting every constraint (several workloads may ask for the same key), or None."""
    by_field: Dict[Optional[int], List[Constraint]] = {}
    for constraint in constraints:
        by_field.setdefault(constraint.field, []).append(constraint)
    if None in by_field and len(by_field) > 1:
        return None
    parts = str(current).split() if current is not None else []
    for index, group in by_field.items():
        equals = {squash(c.value) for c in group if c.op == "equals"}
        mins = [c.value for c in group if c.op == "min"]
        maxes = [c.value for c in group if c.op == "max"]
        if len(equals) > 1:
            return None
        if equals:
            candidate = equals.pop()
        elif mins:
            candidate = Constraint("min", max(mins)).target()
        elif maxes:
            candidate = Constraint("max", min(maxes)).target()
        else:
            one_of = [c for c in group if c.op == "one_of"]
            candidate = squash(one_of[0].value[0]) if one_of else None
        if candidate is None or not all(Constraint(c.op, c.value).check(candidate) for c in group):
            return None
        if index is None:
            return candidate
        if index >= len(parts):
            return None
        parts[index] = candidate
    return " ".join(parts) if parts else None


def _profiles(expectations: Sequence[Expectation]) -> str:
    seen: List[str] = []
    for exp in expectations:
        if exp.title not in seen:
            seen.append(exp.title)
    return ", ".join(seen)


def _expectation_findings(ctx: Context, rule: RuleLike, per_namespace: bool) -> List[Dict[str, Any]]:
    """NSG003 (global keys, checked against the host) and NSG009 (per-namespace keys, checked
    against the set's own namespace)."""
    out = []
    by_key_all: Dict[str, List[Tuple[Mapping[str, Any], Expectation]]] = {}
    for nset in ctx.sets:
        for exp in ctx.matched(nset):
            by_key_all.setdefault(exp.key, []).append((nset, exp))
    for key in sorted(by_key_all):
        info = ctx.klass(key)
        if (info["class"] in PER_NAMESPACE_CLASSES) != per_namespace:
            continue
        host_value = ctx.host_value(key)
        all_constraints = [c for dummy, exp in by_key_all[key] for c in exp.constraints]
        host_target = combined_target(all_constraints, host_value)
        by_set: Dict[str, Tuple[Mapping[str, Any], List[Expectation]]] = {}
        for nset, exp in by_key_all[key]:
            by_set.setdefault(str(nset.get("id")), (nset, []))[1].append(exp)
        for nset, exps in by_set.values():
            observed, state = (ctx.set_value(nset, key) if per_namespace else (host_value, "same"))
            failing = [(exp, c) for exp in exps for c in exp.constraints if c.check(observed) is not True]
            if not failing:
                continue
            severity = worst_of(exp.severity for exp, dummy in failing)
            expected = " and ".join(dict.fromkeys(c.describe() for dummy, c in failing))
            own = [c for exp in exps for c in exp.constraints]
            target = combined_target(own, observed)
            notes = []
            if not per_namespace:
                if host_target is None:
                    # one workload's value would break another: no task, say who disagrees
                    others = sorted({"%s (%s %s)" % (set_label(s), key, e.describe())
                                     for s, e in by_key_all[key] if str(s.get("id")) != str(nset.get("id"))})
                    notes.append("no single value satisfies every workload on this host%s" % (
                        ": " + "; ".join(others) if others else ""))
                target = host_target
            why = " ".join(dict.fromkeys(exp.why for exp, dummy in failing if exp.why))
            if per_namespace:
                tasks = _spec_tasks(ctx, rule, nset, {key: target}) if target else []
                remediation = _container_where(tasks, nset, "; ".join(notes), ctx, [key] if target else [])
            else:
                tasks = ([rem.host_sysctl_task(rule.id, key, target, persisted=ctx.persisted, options=ctx.options,
                                               why="%s expects %s" % (set_label(nset), expected))] if target else [])
                remediation = rem.remediation("host", tasks, "; ".join(notes))
            shown = observed if observed is not None else ("absent" if state == "absent" else "not available")
            out.append(make_finding(
                ctx, rule, severity=severity, nset=nset, key=key, klass=info,
                values={"host": host_value, "container": observed if per_namespace else host_value,
                        "expected": expected, "persisted": (ctx.persisted_entry(key) or {}).get("value")},
                message_vars={"profiles": _profiles([e for e, dummy in failing]), "expected": expected,
                              "observed": squash(shown), "host_value": host_value, "why": why,
                              "target": target},
                remediation=remediation,
                details={"expectations": [{"profile": e.profile, "constraint": c.describe(), "severity": e.severity,
                                           "source": e.source, "references": list(e.references)}
                                          for e, c in failing],
                         "target": target, "conflict": host_target is None and not per_namespace},
            ))
    return out


def check_expected_global(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return _expectation_findings(ctx, rule, per_namespace=False)


def check_expected_namespaced(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return _expectation_findings(ctx, rule, per_namespace=True)


# --------------------------------------------------------------------------- NSG004

def check_host_tuning_not_inherited(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    namespaces = set(params.get("namespaces") or ("net", "ipc"))
    ignore = list(params.get("ignore_keys") or [])
    probe = ctx.facts.get("probe") or {}
    from ..module_utils.probe_facts import value_differs_keys  # the compact facts' reader, no imports of its own
    # Per namespace type since the probe reports it so (a fresh user namespace reads some net
    # keys differently); the older flat list still reads.
    fresh_differs = value_differs_keys(probe, namespaces)
    # key -> (class info, reasons, only the probe says so)
    tuned: Dict[str, Tuple[Dict[str, Any], List[str], bool]] = {}
    candidates = set((ctx.persisted.get("keys") or {})) | fresh_differs
    for key in sorted(candidates):
        info = ctx.klass(key)
        if info["class"] not in PER_NAMESPACE_CLASSES or info["namespace"] not in namespaces or glob_any(ignore, key):
            continue
        host_value = ctx.host_value(key)
        if host_value is None or not writable(ctx.host_mode(key)):
            continue
        why = []
        entry = ctx.persisted_entry(key)
        if entry and squash(entry.get("value")) == squash(host_value):
            why.append("persisted in %s:%s" % (entry.get("file"), entry.get("line")))
        by_probe = info["class"] == "isolated" and key in fresh_differs
        if by_probe:
            why.append("a fresh %s namespace starts at another value" % info["namespace"])
        if why:
            tuned[key] = (info, why, by_probe and len(why) == 1)
    out = []
    for nset in ctx.sets:
        own = set(nset.get("differs_from_host") or [])
        requested = nset.get("requested") or {}
        for key, (info, why, probe_only) in sorted(tuned.items()):
            if info["namespace"] not in own or key in requested:
                continue
            if probe_only and "user" in own:
                continue  # read through another user namespace, some values print differently
            value, state = ctx.set_value(nset, key)
            if state != "differs" or squash(value) == squash(ctx.host_value(key)):
                continue
            inherited = info["class"] == "isolated-inherited"
            host_value = ctx.host_value(key)
            tasks = _spec_tasks(ctx, rule, nset, {key: host_value})
            how = ("is copied from the host only when the namespace is created: the host changed it afterwards "
                   "(or the container changed its own)" if inherited else
                   "starts at the kernel default in every new namespace: the host's tuning never reaches containers")
            out.append(make_finding(
                ctx, rule, severity="info" if inherited else None, nset=nset, key=key, klass=info,
                values={"host": host_value, "container": value,
                        "persisted": (ctx.persisted_entry(key) or {}).get("value")},
                message_vars={"host_value": squash(host_value), "container_value": squash(value),
                              "tuned_by": "; ".join(why), "how": how},
                remediation=_container_where(tasks, nset, ctx=ctx, keys=[key]),
                details={"tuned_by": why},
            ))
    return out


# --------------------------------------------------------------------------- NSG005

def _int(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _netns_label(ctx: Context, entry: Mapping[str, Any]) -> Tuple[str, Optional[Mapping[str, Any]]]:
    if entry.get("host"):
        return "host", None
    sets_by_id = {str(s.get("id")): s for s in ctx.sets}
    for set_id in entry.get("sets") or []:
        if str(set_id) in sets_by_id:
            nset = sets_by_id[str(set_id)]
            return set_label(nset), nset
    for nset in ctx.sets:
        if (nset.get("ns") or {}).get("net") == entry.get("net"):
            return set_label(nset), nset
    return "netns %s" % entry.get("net"), None


_CONNTRACK_MAX = "net.netfilter.nf_conntrack_max"
_CONNTRACK_BUCKETS = "net.netfilter.nf_conntrack_buckets"


@dataclass
class _Conntrack:
    """The host's conntrack facts as NSG005's three phases read them."""

    maximum: Optional[int]
    buckets: Optional[int]
    cpus: int
    per_netns: List[Mapping[str, Any]]  # entries with a count, largest count first
    sizing: Optional[int]  # the sizing rule's nf_conntrack_max, None when it is off
    details: Dict[str, Any]  # shared by every finding's details


def _conntrack_facts(ctx: Context, params: Mapping[str, Any]) -> Optional[_Conntrack]:
    conntrack = ctx.facts.get("conntrack") or {}
    if not conntrack.get("loaded"):
        return None
    maximum = _int(conntrack.get("max"))
    buckets = _int(conntrack.get("buckets"))
    cpus = _int(ctx.host_facts.get("cpus")) or 1
    per_netns = [e for e in (conntrack.get("per_netns") or []) if isinstance(e, Mapping) and _int(e.get("count")) is not None]
    ranked = sorted(per_netns, key=lambda e: -int(e["count"]))
    top = []
    for entry in ranked[:int(params["top"])]:
        label, dummy = _netns_label(ctx, entry)
        top.append({"net": entry.get("net"), "count": int(entry["count"]), "label": label,
                    "ratio": round(int(entry["count"]) / maximum, 4) if maximum else None})
    sizing = max(int(params["max_per_core"]) * cpus, int(params["min"])) if int(params["max_per_core"]) > 0 else None
    if sizing and int(params["cap"]) > 0:
        sizing = min(sizing, int(params["cap"]))
    details = {"max": maximum, "buckets": buckets, "cpus": cpus, "sizing": sizing, "top": top}
    return _Conntrack(maximum, buckets, cpus, ranked, sizing, details)


def _conntrack_usage(ctx: Context, rule: RuleLike, params: Mapping[str, Any], ct: _Conntrack) -> List[Dict[str, Any]]:
    """Each namespace's count against the one global limit."""
    out: List[Dict[str, Any]] = []
    if not ct.maximum:
        return out
    info_max = ctx.klass(_CONNTRACK_MAX)
    for entry in ct.per_netns:
        count = int(entry["count"])
        ratio = count / ct.maximum
        if ratio >= params["count_error_ratio"]:
            severity = "error"
        elif ratio >= params["count_warning_ratio"]:
            severity = "warning"
        else:
            continue
        label, nset = _netns_label(ctx, entry)
        target = max(ct.sizing or 0, ceil_to(count * 2, 1024))
        tasks = [rem.host_sysctl_task(rule.id, _CONNTRACK_MAX, target, persisted=ctx.persisted, options=ctx.options,
                                      why="netns %s holds %d entries" % (label, count))]
        out.append(make_finding(
            ctx, rule, severity=severity, nset=nset, key=_CONNTRACK_MAX, klass=info_max,
            values={"host": str(ct.maximum), "container": str(count)},
            message_vars={"situation": (
                "%s holds %d conntrack entries, %d%% of nf_conntrack_max (%d). The limit is one global number "
                "checked against each network namespace's own count; at the limit the kernel drops new "
                "connections in that namespace (\"nf_conntrack: table full in netns ..., dropping packet\"), "
                "and the container cannot raise it (read-only in its namespace since 5.13)."
                % (label, count, int(ratio * 100), ct.maximum)), "fix": "Raise it on the host"},
            remediation=rem.remediation("host", tasks),
            details=dict(ct.details, check="netns-usage", net=entry.get("net"), count=count,
                         ratio=round(ratio, 4)),
        ))
    return out


def _conntrack_table(ctx: Context, rule: RuleLike, params: Mapping[str, Any], ct: _Conntrack) -> List[Dict[str, Any]]:
    """The sum over every namespace against the shared hash table."""
    total = sum(int(e["count"]) for e in ct.per_netns)
    if not ct.buckets:
        return []
    load = total / ct.buckets
    severity = None
    reasons = []
    if load > params["hash_load_error"]:
        severity = "error"
    elif load > params["hash_load_warning"]:
        severity = "warning"
    if severity:
        reasons.append("%d entries in %d buckets is %.1f per bucket (warning above %s, error above %s)"
                       % (total, ct.buckets, load, params["hash_load_warning"], params["hash_load_error"]))
    if ct.maximum and total > ct.maximum:
        severity = severity or "warning"
        reasons.append("the %d entries of all namespaces together exceed nf_conntrack_max (%d), which does not "
                       "cap the host: it limits each namespace separately" % (total, ct.maximum))
    if not severity:
        return []
    target = max(ct.buckets, ceil_to(total / max(params["hash_load_warning"] / 2.0, 1.0), 1024))
    tasks = [rem.host_sysctl_task(rule.id, _CONNTRACK_BUCKETS, target, persisted=ctx.persisted, options=ctx.options,
                                  why="%d entries across %d namespaces" % (total, len(ct.per_netns)))]
    return [make_finding(
        ctx, rule, severity=severity, key=_CONNTRACK_BUCKETS, klass=ctx.klass(_CONNTRACK_BUCKETS),
        values={"host": str(ct.buckets), "container": str(total)},
        message_vars={"situation": "All network namespaces share one conntrack hash table and kernel memory: "
                      + "; ".join(reasons) + ".", "fix": "Size the shared table on the host"},
        remediation=rem.remediation("host", tasks),
        details=dict(ct.details, check="shared-table", total=total, load=round(load, 3)),
    )]


def _conntrack_sizing(ctx: Context, rule: RuleLike, params: Mapping[str, Any], ct: _Conntrack) -> List[Dict[str, Any]]:
    """The host's limit against a sizing rule (kube-proxy's by default)."""
    if not (params["sizing"] and ct.sizing and ct.maximum is not None and 0 < ct.maximum < ct.sizing):
        return []
    tasks = [rem.host_sysctl_task(rule.id, _CONNTRACK_MAX, ct.sizing, persisted=ctx.persisted, options=ctx.options,
                                  why="max(%d x %d cpus, %d)" % (params["max_per_core"], ct.cpus, params["min"]))]
    return [make_finding(
        ctx, rule, severity=params["sizing_severity"], key=_CONNTRACK_MAX, klass=ctx.klass(_CONNTRACK_MAX),
        values={"host": str(ct.maximum), "expected": ">=%d" % ct.sizing},
        message_vars={"situation": "nf_conntrack_max is %d, below the sizing rule max(max_per_core x cpus, min) = "
                      "max(%d x %d, %d) = %d (kube-proxy's defaults). Every namespace may hold up to this many "
                      "entries." % (ct.maximum, params["max_per_core"], ct.cpus, params["min"], ct.sizing),
                      "fix": "Raise it on the host"},
        remediation=rem.remediation("host", tasks),
        details=dict(ct.details, check="sizing"),
    )]


def check_conntrack(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """NSG005: per-namespace use of the global limit, the shared hash table, the sizing rule."""
    ct = _conntrack_facts(ctx, params)
    if ct is None:
        return []
    return (_conntrack_usage(ctx, rule, params, ct) + _conntrack_table(ctx, rule, params, ct)
            + _conntrack_sizing(ctx, rule, params, ct))


# --------------------------------------------------------------------------- NSG006

def _exposed_keys(ctx: Context) -> Tuple[List[str], List[str]]:
    """(writable global keys, leaking keys) on this host, by the classifier."""
    exposed, leaking = [], []
    for key, info in sorted(ctx.classification.items()):
        klass = (info or {}).get("class")
        if klass == "leaking":
            leaking.append(key)
        if klass in ("global", "leaking") and writable(ctx.host_mode(key)):
            exposed.append(key)
    return exposed, leaking


def check_container_can_change_global(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    exposed, leaking = _exposed_keys(ctx)
    allow = list(params.get("allow") or [])
    limit = int(params["list_limit"])
    out = []
    for nset in ctx.sets:
        signals = ctx.write_signals(nset)
        if not signals["signals"]:
            continue
        identity = nset.get("identity") or {}
        names = [n for n in (identity.get("name"), identity.get("pod_name"), identity.get("image"), set_label(nset)) if n]
        if any(glob_any(allow, str(n)) for n in names):
            continue
        full = signals["privileged"] or signals["proc_sys_rw"] or signals["sys_admin"]
        shared = ctx.shared_namespaces(nset)
        if full and not signals["host_userns"]:
            # Root mapped to host uid 0 in its own user namespace: the file mode lets it write,
            # handlers that call capable() (kernel.kptr_restrict, dmesg_restrict) refuse it.
            keys = list(exposed)
            reach = ("the global keys the kernel checks by file mode only, i.e. nearly every writable global key "
                     "(%d on this host; not those whose handler requires CAP_SYS_ADMIN on the host)" % len(keys))
        elif full:
            keys = list(exposed)
            reach = "every writable global key (%d on this host)" % len(keys)
        else:
            keys = [k for k in leaking if ctx.klass(k)["namespace"] in ("net", "none")]
            reach = ("its network namespace's keys wherever /proc/sys/net is writable (a remount, systemd-nspawn "
                     "--private-network)")
        for kind in shared:
            shared_keys = [k for k, i in ctx.classification.items()
                           if (i or {}).get("namespace") == kind and writable(ctx.host_mode(k))]
            if shared_keys and (full or kind == "net"):
                keys.extend(shared_keys)
                reach += "; the host's own %s namespace (shared), %d keys" % (kind, len(shared_keys))
        keys = sorted(dict.fromkeys(keys), key=lambda k: (k not in leaking, k))
        shown = keys[:limit]
        leak_note = ""
        if leaking:
            leak_note = ("On this kernel %s leak%s from a container network namespace: a write in its own namespace "
                         "changes the host's value." % (", ".join(leaking), "s" if len(leaking) == 1 else ""))
        tasks = rem.container_privilege_tasks(rule.id, identity, privileged=signals["privileged"],
                                              proc_sys_rw=signals["proc_sys_rw"], caps=signals["caps"],
                                              options=ctx.options)
        out.append(make_finding(
            ctx, rule, severity=None if full else "warning", nset=nset, key=None,
            message_vars={"signals": "; ".join(signals["signals"]), "reach": reach,
                          "examples": ", ".join(shown) + (", ..." if len(keys) > len(shown) else ""),
                          "leak_note": leak_note},
            remediation=_container_where(tasks, nset),
            details={"signals": signals["signals"], "exposed_keys": keys, "leaking_keys": leaking,
                     "shared_namespaces": shared},
            evidence="privileges: %s; classes from the classifier" % ", ".join(signals["signals"]),
        ))
    return out


# --------------------------------------------------------------------------- NSG007

def check_shared_namespace_sysctl(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for nset in ctx.sets:
        shared = ctx.shared_namespaces(nset)
        if not shared:
            continue
        for key, requested in _requests(nset):
            info = ctx.klass(key)
            verdict = ctx.runtime_verdict(key, nset, requested)
            needs = verdict.get("requires") or (info["namespace"] if info["class"] in PER_NAMESPACE_CLASSES else None)
            if needs not in shared or info["class"] in GLOBAL_CLASSES:
                continue
            error = verdict.get("error_host_namespace")
            what = consequence.host_namespace_effect([(verdict.get("runtime") or "", verdict)] if error else [])
            tasks, note = _host_task_unless_lower(ctx, rule, key, requested,
                                                  "%s shares the host's %s namespace" % (set_label(nset), needs))
            tasks += _spec_removal(ctx, rule, nset, key)
            out.append(make_finding(
                ctx, rule, nset=nset, key=key, klass=dict(info, namespace=needs),
                values={"host": ctx.host_value(key), "container": ctx.host_value(key), "requested": requested},
                message_vars={"requested": squash(requested), "host_value": ctx.host_value(key), "what": what,
                              "shared": needs},
                remediation=rem.remediation("host", tasks, note),
                details={"runtime_error": error, "shared_namespaces": shared},
            ))
    return out


# --------------------------------------------------------------------------- NSG008

def check_persisted_drift(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    classes = set(GLOBAL_CLASSES)
    if params.get("include_isolated"):
        classes |= set(PER_NAMESPACE_CLASSES)
    out = []
    writers = []
    for nset in ctx.sets:
        signals = ctx.write_signals(nset)
        if signals["privileged"] or signals["proc_sys_rw"] or signals["sys_admin"]:
            writers.append((nset, "global"))
        elif signals["net_admin"] or "net" in ctx.shared_namespaces(nset):
            writers.append((nset, "net"))
    for key, entry in sorted((ctx.persisted.get("keys") or {}).items()):
        if not isinstance(entry, Mapping) or "*" in key:
            continue
        info = ctx.klass(key)
        if info["class"] not in classes:
            continue
        runtime = ctx.host_value(key)
        if runtime is None or squash(runtime) == squash(entry.get("value")):
            continue
        able = [set_label(n) for n, reach in writers
                if reach == "global" or info["class"] == "leaking" or (info["namespace"] == "net" and reach == "net")]
        who = ("Containers able to have changed it: %s." % ", ".join(able) if able else
               "No running container could have changed it: a process on the host did, or the file changed after boot.")
        task = rem.host_sysctl_task(rule.id, key, entry.get("value"), persisted=ctx.persisted, options=ctx.options,
                                    why="back to the value persisted in %s" % entry.get("file"), reload=False)
        out.append(make_finding(
            ctx, rule, key=key, klass=info,
            values={"host": runtime, "persisted": entry.get("value")},
            message_vars={"runtime": squash(runtime), "persisted": squash(entry.get("value")),
                          "file": entry.get("file"), "line": entry.get("line"), "who": who},
            remediation=rem.remediation("host", [task], "if the running value is the one you want, persist it "
                                        "instead (set value to %s)" % squash(runtime)),
            details={"file": entry.get("file"), "line": entry.get("line"), "writers": able},
        ))
    return out


# --------------------------------------------------------------------------- declarative user checks

def _selectors(raw: Any) -> List[Selector]:
    if raw is None:
        return []
    return [Selector.parse(s) for s in (raw if isinstance(raw, list) else [raw])]


def check_host_value(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    key = rule.check["key"]
    constraints = parse_constraint(rule.check["expect"])
    value = ctx.host_value(key)
    failing = [c for c in constraints if c.check(value) is not True]
    if not failing:
        return []
    info = ctx.klass(key)
    target = combined_target(constraints, value)
    tasks = ([rem.host_sysctl_task(rule.id, key, target, persisted=ctx.persisted, options=ctx.options)]
             if target is not None else [])
    expected = " and ".join(c.describe() for c in constraints)
    return [make_finding(ctx, rule, key=key, klass=info, values={"host": value, "expected": expected},
                         message_vars={"observed": value, "expected": expected, "target": target},
                         remediation=rem.remediation("host", tasks))]


def check_set_value(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    key = rule.check["key"]
    constraints = parse_constraint(rule.check["expect"])
    selectors = _selectors(rule.check.get("match"))
    info = ctx.klass(key)
    expected = " and ".join(c.describe() for c in constraints)
    out = []
    for nset in ctx.sets:
        if selectors and not any(s.matches(nset) for s in selectors):
            continue
        value, dummy = ctx.set_value(nset, key)
        if all(c.check(value) is True for c in constraints):
            continue
        target = combined_target(constraints, value)
        if info["class"] in PER_NAMESPACE_CLASSES:
            tasks = _spec_tasks(ctx, rule, nset, {key: target}) if target else []
            remediation = _container_where(tasks, nset, ctx=ctx, keys=[key] if target else [])
        else:
            remediation = rem.remediation("host", [rem.host_sysctl_task(
                rule.id, key, target, persisted=ctx.persisted, options=ctx.options)] if target else [])
        out.append(make_finding(ctx, rule, nset=nset, key=key, klass=info,
                                values={"host": ctx.host_value(key), "container": value, "expected": expected},
                                message_vars={"observed": value, "expected": expected, "target": target},
                                remediation=remediation))
    return out


def check_requested_key(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    patterns = list(rule.check["keys"])
    classes = set(rule.check.get("classes") or [])
    out = []
    for nset in ctx.sets:
        for key, requested in _requests(nset):
            if not glob_any(patterns, key):
                continue
            info = ctx.klass(key)
            if classes and info["class"] not in classes:
                continue
            out.append(make_finding(ctx, rule, nset=nset, key=key, klass=info,
                                    values={"host": ctx.host_value(key), "requested": requested},
                                    message_vars={"requested": requested},
                                    remediation=_container_where(_spec_removal(ctx, rule, nset, key), nset)))
    return out


BUILTIN_CHECKS = {
    "global-key-requested": check_global_key_requested,
    "host-only-key-requested": check_host_only_key_requested,
    "expected-global-not-met": check_expected_global,
    "host-tuning-not-inherited": check_host_tuning_not_inherited,
    "conntrack-capacity": check_conntrack,
    "container-can-change-global": check_container_can_change_global,
    "shared-namespace-sysctl": check_shared_namespace_sysctl,
    "persisted-drift": check_persisted_drift,
    "expected-namespaced-not-met": check_expected_namespaced,
    "requested-key-name": check_requested_key_name,
}

DECLARATIVE_CHECKS = {
    "host-value": check_host_value,
    "set-value": check_set_value,
    "requested-key": check_requested_key,
}
