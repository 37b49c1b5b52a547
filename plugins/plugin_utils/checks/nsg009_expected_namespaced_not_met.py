# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG009 expected-namespaced-not-met (rules/catalog/NSG009-expected-namespaced-not-met.yml): a
workload needs a value of a per-namespace sysctl that its own namespace does not have.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ..rule_context import Context, RuleLike


from .expected import expectation_findings


def check_expected_namespaced(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return expectation_findings(ctx, rule, per_namespace=True)
