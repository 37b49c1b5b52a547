# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declarative checks a user rule may use (docs/rules.md): a host value, a set value, a
requested key, each against constraints."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from .. import remediation as rem
from ..expectations import Selector, parse_constraint
from ..rule_context import Context, RuleLike, glob_any, make_finding
from ..vocabulary import PER_NAMESPACE_CLASSES
from .common import container_where, requested_keys, spec_removal, spec_tasks


from .expected import combined_target


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
            tasks = spec_tasks(ctx, rule, nset, {key: target}) if target else []
            remediation = container_where(tasks, nset, ctx=ctx, keys=[key] if target else [])
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
        for key, requested in requested_keys(nset):
            if not glob_any(patterns, key):
                continue
            info = ctx.klass(key)
            if classes and info["class"] not in classes:
                continue
            out.append(make_finding(ctx, rule, nset=nset, key=key, klass=info,
                                    values={"host": ctx.host_value(key), "requested": requested},
                                    message_vars={"requested": requested},
                                    remediation=container_where(spec_removal(ctx, rule, nset, key), nset)))
    return out
