# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG007 shared-namespace-sysctl (rules/catalog/NSG007-shared-namespace-sysctl.yml): a container
shares the host's net, ipc or uts namespace yet requests sysctls of it.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from .. import consequence
from .. import remediation as rem
from ..rule_context import Context, RuleLike, make_finding
from ..vocabulary import GLOBAL_CLASSES, PER_NAMESPACE_CLASSES, set_label, squash
from .common import host_task_unless_lower, requested_keys, spec_removal


def check_shared_namespace_sysctl(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for nset in ctx.sets:
        shared = ctx.shared_namespaces(nset)
        if not shared:
            continue
        for key, requested in requested_keys(nset):
            info = ctx.klass(key)
            verdict = ctx.runtime_verdict(key, nset, requested)
            needs = verdict.get("requires") or (info["namespace"] if info["class"] in PER_NAMESPACE_CLASSES else None)
            if needs not in shared or info["class"] in GLOBAL_CLASSES:
                continue
            error = verdict.get("error_host_namespace")
            what = consequence.host_namespace_effect([(verdict.get("runtime") or "", verdict)] if error else [])
            tasks, note = host_task_unless_lower(ctx, rule, key, requested,
                                                  "%s shares the host's %s namespace" % (set_label(nset), needs))
            tasks += spec_removal(ctx, rule, nset, key)
            out.append(make_finding(
                ctx, rule, nset=nset, key=key, klass=dict(info, namespace=needs),
                values={"host": ctx.host_value(key), "container": ctx.host_value(key), "requested": requested},
                message_vars={"requested": squash(requested), "host_value": ctx.host_value(key), "what": what,
                              "shared": needs},
                remediation=rem.remediation("host", tasks, note),
                details={"runtime_error": error, "shared_namespaces": shared},
            ))
    return out
