# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG003 expected-global-not-met (rules/catalog/NSG003-expected-global-not-met.yml): a workload needs
a value of a global sysctl that the host does not provide.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ..rule_context import Context, RuleLike


from .expected import expectation_findings


def check_expected_global(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return expectation_findings(ctx, rule, per_namespace=False)
