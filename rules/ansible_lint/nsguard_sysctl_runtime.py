"""sysctl-rejected-by-runtime: every runtime that could run the spec refuses the key."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlRejectedByRuntimeRule(SysctlRule):
    """Container spec sets a sysctl that the runtime refuses."""

    id = "sysctl-rejected-by-runtime"
    description = (
        "Docker, Podman, runc and the kubelet accept only the sysctls they know to be namespaced. "
        "A key they refuse (kernel.pid_max, kernel.hostname) stops the container from starting, "
        "even on a kernel that namespaces it."
    )
    severity = "HIGH"
    tags = ["idiom", "nsguard-sysctl"]
    reasons = frozenset({"runtime-rejected", "unsettable"})
