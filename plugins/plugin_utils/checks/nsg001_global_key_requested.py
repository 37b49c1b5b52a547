# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG001 global-key-requested (rules/catalog/NSG001-global-key-requested.yml): a container requests a
sysctl that is global, a read-only mirror or leaking on this kernel.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ..rule_context import Context, RuleLike
from .common import request_finding, requested_consequence, requested_keys


def check_global_key_requested(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    classes = tuple(params.get("classes") or ("global", "mirror", "leaking"))
    out = []
    for nset in ctx.sets:
        for key, requested in requested_keys(nset):
            info = ctx.klass(key)
            if info["class"] not in classes:
                continue
            consequence, error = requested_consequence(ctx, nset, key, requested, info["class"])
            value, dummy = ctx.set_value(nset, key)
            out.append(request_finding(ctx, rule, nset, key, requested, info, value, error,
                                        {"consequence": consequence}))
    return out
