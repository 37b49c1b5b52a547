"""sysctl-absent-in-container: a container spec asks for a sysctl its namespace does not have."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlFixRule


class SysctlAbsentInContainerRule(SysctlFixRule):
    """Container spec sets a sysctl that does not exist inside a container."""

    id = "sysctl-absent-in-container"
    description = (
        "The key exists only in the host's (initial) namespace, e.g. net.core.netdev_max_backlog "
        "or net.ipv4.neigh.default.gc_thresh3. Runtimes accept any net.* name, so the mistake "
        "shows only when the container fails to start. Set it on the host; --fix removes it from "
        "the container spec."
    )
    severity = "HIGH"
    tags = ["idiom", "nsguard-sysctl"]
    reasons = frozenset({"host-only"})
