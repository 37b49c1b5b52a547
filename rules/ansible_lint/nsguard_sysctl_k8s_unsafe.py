"""sysctl-k8s-unsafe: a Pod asks for a sysctl outside the kubelet's safe set."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlK8sUnsafeRule(SysctlRule):
    """Pod sets a sysctl outside the Kubernetes safe set."""

    id = "sysctl-k8s-unsafe"
    description = (
        "The kubelet admits only the safe sysctls unless it runs with --allowed-unsafe-sysctls; "
        "otherwise the pod fails with SysctlForbidden, and Pod Security (baseline) forbids it. "
        "A warning by default (tag experimental): the linter cannot see the kubelet's flags."
    )
    severity = "MEDIUM"
    tags = ["unpredictability", "experimental", "nsguard-sysctl"]
    reasons = frozenset({"kubelet-unsafe"})
