# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks behind the built-in rules (rules/catalog/NSG0xx-*.yml) and the declarative
checks user rules may use, by the name a rule file gives in ``check``. Each check lives in its
own module of :mod:`.checks` (``checks/nsg001_global_key_requested.py`` for NSG001, and so on).

Each check is ``check(ctx, rule, params) -> [finding]``, reads only the
:class:`~.rule_context.Context` and never raises on missing facts: a set whose facts lack a
field is judged on what it has. Every check looks at every namespace set, identified as a
container or not. A new built-in rule is a module in :mod:`.checks`, its row here, and its
rule file.

Plain Python, no Ansible import.
"""
from __future__ import annotations

from .checks.declarative import check_host_value, check_requested_key, check_set_value
from .checks.expected import combined_target
from .checks.nsg001_global_key_requested import check_global_key_requested
from .checks.nsg002_host_only_key_requested import check_host_only_key_requested
from .checks.nsg003_expected_global_not_met import check_expected_global
from .checks.nsg004_host_tuning_not_inherited import check_host_tuning_not_inherited
from .checks.nsg005_conntrack_capacity import check_conntrack
from .checks.nsg006_container_can_change_global import check_container_can_change_global
from .checks.nsg007_shared_namespace_sysctl import check_shared_namespace_sysctl
from .checks.nsg008_persisted_drift import check_persisted_drift
from .checks.nsg009_expected_namespaced_not_met import check_expected_namespaced
from .checks.nsg010_requested_key_name import check_requested_key_name

__all__ = ["BUILTIN_CHECKS", "DECLARATIVE_CHECKS", "combined_target"]

BUILTIN_CHECKS = {
    "global-key-requested": check_global_key_requested,
    "host-only-key-requested": check_host_only_key_requested,
    "expected-global-not-met": check_expected_global,
    "host-tuning-not-inherited": check_host_tuning_not_inherited,
    "conntrack-capacity": check_conntrack,
    "container-can-change-global": check_container_can_change_global,
    "shared-namespace-sysctl": check_shared_namespace_sysctl,
    "persisted-drift": check_persisted_drift,
    "expected-namespaced-not-met": check_expected_namespaced,
    "requested-key-name": check_requested_key_name,
}

DECLARATIVE_CHECKS = {
    "host-value": check_host_value,
    "set-value": check_set_value,
    "requested-key": check_requested_key,
}
