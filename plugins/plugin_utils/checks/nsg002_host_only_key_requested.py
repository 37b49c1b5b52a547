# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG002 host-only-key-requested (rules/catalog/NSG002-host-only-key-requested.yml): a container
requests a sysctl that does not exist in its namespace (host-only).

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ..rule_context import Context, RuleLike
from ..vocabulary import GLOBAL_CLASSES, key_to_path
from .common import request_finding, requested_keys


def _quote(text: Optional[str]) -> str:
    return '"%s"' % text if text else ""


def check_host_only_key_requested(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for nset in ctx.sets:
        for key, requested in requested_keys(nset):
            info = ctx.klass(key)
            dummy, state = ctx.set_value(nset, key)
            if info["class"] != "host-only" and not (state == "absent" and info["class"] not in GLOBAL_CLASSES):
                continue
            verdict = ctx.runtime_verdict(key, nset, requested)
            error = verdict.get("error")
            if not error:
                error = "open /proc/sys/%s: no such file or directory" % key_to_path(key)
            out.append(request_finding(ctx, rule, nset, key, requested, info, None, error,
                                        {"error": _quote(error)}))
    return out
