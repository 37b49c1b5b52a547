"""sysctl-host-namespace: a namespaced sysctl in a container that shares that namespace with the host."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlHostNamespaceRule(SysctlRule):
    """Container in the host's network or IPC namespace sets a sysctl of that namespace."""

    id = "sysctl-host-namespace"
    description = (
        "With host networking (network_mode: host, hostNetwork: true) or host IPC the container "
        "has no namespace of its own for net.* or IPC sysctls: runc and the kubelet refuse them, "
        "and the setting would be the host's. Set it on the host, or drop the host mode."
    )
    severity = "HIGH"
    tags = ["idiom", "security", "nsguard-sysctl"]
    reasons = frozenset({"host-namespace"})
