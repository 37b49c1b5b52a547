# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG004 host-tuning-not-inherited (rules/catalog/NSG004-host-tuning-not-inherited.yml): the host
tunes a per-namespace sysctl that its containers do not get.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from ..rule_context import Context, RuleLike, glob_any, make_finding
from ..vocabulary import PER_NAMESPACE_CLASSES, squash, writable
from .common import container_where, spec_tasks


def check_host_tuning_not_inherited(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    namespaces = set(params.get("namespaces") or ("net", "ipc"))
    ignore = list(params.get("ignore_keys") or [])
    probe = ctx.facts.get("probe") or {}
    from ...module_utils.probe_facts import value_differs_keys  # the compact facts' reader, no imports of its own
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
            tasks = spec_tasks(ctx, rule, nset, {key: host_value})
            how = ("is copied from the host only when the namespace is created: the host changed it afterwards "
                   "(or the container changed its own)" if inherited else
                   "starts at the kernel default in every new namespace: the host's tuning never reaches containers")
            out.append(make_finding(
                ctx, rule, severity="info" if inherited else None, nset=nset, key=key, klass=info,
                values={"host": host_value, "container": value,
                        "persisted": (ctx.persisted_entry(key) or {}).get("value")},
                message_vars={"host_value": squash(host_value), "container_value": squash(value),
                              "tuned_by": "; ".join(why), "how": how},
                remediation=container_where(tasks, nset, ctx=ctx, keys=[key]),
                details={"tuned_by": why},
            ))
    return out
