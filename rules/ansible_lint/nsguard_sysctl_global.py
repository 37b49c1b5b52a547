"""sysctl-global-in-container: a container spec asks for a sysctl the host owns."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlFixRule


class SysctlGlobalInContainerRule(SysctlFixRule):
    """Container spec sets a sysctl that is global to the host."""

    id = "sysctl-global-in-container"
    description = (
        "The kernel keeps this sysctl global (or shows a read-only mirror of the host's value) on "
        "every kernel since the configured floor. A runtime rejects it at deploy time, or a "
        "privileged container writes it for the whole host. Set it on the host with "
        "ansible.posix.sysctl; --fix removes it from the container spec."
    )
    severity = "HIGH"
    tags = ["idiom", "security", "nsguard-sysctl"]
    reasons = frozenset({"global"})
