"""sysctl-unknown-key: a container spec asks for a sysctl no kernel has (a typo)."""
from __future__ import annotations

from nsguard_sysctl_lintlib import SysctlRule


class SysctlUnknownKeyRule(SysctlRule):
    """Container spec sets a sysctl that no known kernel has."""

    id = "sysctl-unknown-key"
    description = (
        "No knowledge entry names the key and no listed kernel has it, although its directory "
        "exists (net.ipv4.foo_bar): probably a typo. Runtimes accept any net.* name, so the "
        "container fails to start when the runtime writes it. A warning (tag experimental): the "
        "key lists come from the kernels measured, and a newer kernel may add the key."
    )
    severity = "MEDIUM"
    tags = ["idiom", "experimental", "nsguard-sysctl"]
    reasons = frozenset({"unknown"})
