# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG010 requested-key-name (rules/catalog/NSG010-requested-key-name.yml): a container requests a
sysctl by a name no runtime on its path can write.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from .. import container_specs as specs
from .. import static_judge
from ..rule_context import Context, RuleLike, make_finding
from ..vocabulary import set_label
from .common import container_where, spec_tasks


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
                tasks = spec_tasks(ctx, rule, nset, {verdict.key: None if drop else requested})
                out.append(make_finding(
                    ctx, rule, severity=verdict.level, nset=nset, key=verdict.key, klass=ctx.klass(verdict.key),
                    values={"host": ctx.host_value(verdict.key), "requested": requested},
                    message_vars={"requested": requested, "problem": verdict.message},
                    remediation=container_where(tasks, nset),
                    details={"reason": verdict.reason, "as_written": raw, "runtime": spec.runtimes[0] if spec.runtimes else None},
                ))
    return out
