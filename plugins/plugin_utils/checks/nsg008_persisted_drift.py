# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG008 persisted-drift (rules/catalog/NSG008-persisted-drift.yml): a global sysctl's running value
differs from what the host persists.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from .. import remediation as rem
from ..rule_context import Context, RuleLike, make_finding
from ..vocabulary import GLOBAL_CLASSES, PER_NAMESPACE_CLASSES, set_label, squash


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
