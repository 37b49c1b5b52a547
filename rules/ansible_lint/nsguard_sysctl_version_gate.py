"""sysctl-runtime-version-gated: newer releases of the spec's runtime path refuse the key."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlRuntimeVersionGatedRule(SysctlRule):
    """Container spec sets a sysctl that newer releases of its runtime refuse."""

    id = "sysctl-runtime-version-gated"
    description = (
        "A per-interface key (net.ipv4.conf.eth0.rp_filter) in a Docker container's sysctls: "
        "Docker Engine 28 and later (API >= 1.48) refuse it and want the network endpoint's "
        "driver option com.docker.network.endpoint.sysctls; API 1.46-1.47 move eth0 keys there and "
        "refuse other interfaces. A warning (tag experimental): the linter cannot see the Engine "
        "version."
    )
    severity = "MEDIUM"
    tags = ["unpredictability", "experimental", "nsguard-sysctl"]
    reasons = frozenset({"runtime-version-gated"})
