# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG005 conntrack-capacity (rules/catalog/NSG005-conntrack-capacity.yml): conntrack use per network
namespace, in the shared hash table, and the host's sizing.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import remediation as rem
from ..rule_context import Context, RuleLike, ceil_to, make_finding
from ..vocabulary import set_label


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
