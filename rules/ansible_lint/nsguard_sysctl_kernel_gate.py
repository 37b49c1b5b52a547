"""sysctl-kernel-gated: the key is namespaced only on some of the kernels from the floor on."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlKernelGatedRule(SysctlRule):
    """Container sysctl is namespaced only from a later kernel than the floor."""

    id = "sysctl-kernel-gated"
    description = (
        "Whether the kernel namespaces this sysctl depends on its version (kernel.pid_max since "
        "6.14, tcp_rmem since 4.15, ...). On hosts older than the version named, the container "
        "cannot own it. A warning by default (tag experimental); set the floor with "
        "NSGUARD_SYSCTL_KERNEL_FLOOR to the oldest kernel you run."
    )
    severity = "MEDIUM"
    tags = ["unpredictability", "experimental", "nsguard-sysctl"]
    reasons = frozenset({"kernel-gated"})
