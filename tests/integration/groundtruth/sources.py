"""Keys whose every observable a measurement can make fits two classes: the kernel source decides.

For these keys the measurement checks what it can (existence, own table entry, modes, whether a
write is accepted in a throwaway namespace, that the host did not change) and the class comes
from the cited source. They are counted apart, as the ``source-decided`` category, so the
agreement on purely measured keys stays visible. A key whose observations do not fit the
``check`` named here stays untested with the reason.

Checks (see ``measure._source_check``):
- ``read-only-equal``: present in a fresh set, read-only on the host and there, same value;
- ``eio-everywhere``: own entry in a fresh netns; reading and writing give EIO on the host and there;
- ``write-only-accepted``: own write-only entry in a fresh netns; a write there is accepted;
- ``single-choice``: own writable entry; the only value the kernel accepts is the one it holds;
- ``no-op``: own writable entry; a write there is accepted and reads back unchanged, host unchanged;
- ``not-written``: own writable entry in a fresh netns, never written (the effect would be permanent).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class SourceVerdict:
    klass: str
    namespace: str
    check: str
    source: str
    choices: str = ""    # single-choice: the key listing the values the kernel accepts


TORVALDS = "torvalds/linux"

SOURCE_DECIDED: Dict[str, SourceVerdict] = {
    "net.ipv4.tcp_available_congestion_control": SourceVerdict(
        "mirror", "none", "read-only-equal",
        f"{TORVALDS} net/ipv4/sysctl_net_ipv4.c proc_tcp_available_congestion_control -> "
        "tcp_get_available_congestion_control walks the global tcp_cong_list (97684f0970f6: NULL data, global)"),
    "net.mptcp.available_schedulers": SourceVerdict(
        "mirror", "none", "read-only-equal",
        f"{TORVALDS} net/mptcp/ctrl.c proc_available_schedulers -> mptcp_get_available_schedulers "
        "(the global mptcp_sched_list)"),
    "net.mptcp.available_path_managers": SourceVerdict(
        "mirror", "none", "read-only-equal",
        f"{TORVALDS} net/mptcp/ctrl.c proc_available_path_managers -> mptcp_get_available_path_managers "
        "(the global path-manager list)"),
    "net.ipv4.conf.default.mc_forwarding": SourceVerdict(
        "isolated", "net", "read-only-equal",
        f"{TORVALDS} net/ipv4/devinet.c devinet_init_net (each netns its own devconf_dflt); "
        "net/ipv4/ipmr.c only moves conf.all and per-device mc_forwarding, so it stays 0"),
    "net.ipv6.conf.default.mc_forwarding": SourceVerdict(
        "isolated", "net", "read-only-equal",
        f"{TORVALDS} net/ipv6/addrconf.c addrconf_init_net (each netns its own devconf_dflt); "
        "net/ipv6/ip6mr.c only moves conf.all and per-device mc_forwarding, so it stays 0"),
    "net.ipv6.conf.all.stable_secret": SourceVerdict(
        "isolated", "net", "eio-everywhere",
        f"{TORVALDS} net/ipv6/addrconf.c addrconf_sysctl_stable_secret: "
        "'if (&net->ipv6.devconf_all->stable_secret == ctl->data) return -EIO' (conf.all has no secret)"),
    "net.ipv4.route.flush": SourceVerdict(
        "isolated", "net", "write-only-accepted",
        f"{TORVALDS} net/ipv4/route.c ipv4_sysctl_rtcache_flush: rt_cache_flush(ctl->extra1), the netns "
        "whose table it is"),
    "net.ipv6.route.flush": SourceVerdict(
        "isolated", "net", "write-only-accepted",
        f"{TORVALDS} net/ipv6/route.c ipv6_sysctl_rtcache_flush: fib6_run_gc(..., ctl->extra1, ...), "
        "the netns whose table it is"),
    "net.mptcp.scheduler": SourceVerdict(
        "isolated", "net", "single-choice",
        f"{TORVALDS} net/mptcp/ctrl.c proc_scheduler -> mptcp_set_scheduler(net, ...): the name is kept in "
        "the netns's mptcp_pernet", choices="net.mptcp.available_schedulers"),
    "kernel.auto_msgmni": SourceVerdict(
        "isolated", "ipc", "no-op",
        f"{TORVALDS} ipc/ipc_sysctl.c proc_ipc_auto_msgmni: reads and writes a stack dummy "
        "('writing to auto_msgmni has no effect'); the entry is per IPC namespace (setup_ipc_sysctls)"),
    "net.netfilter.nf_hooks_lwtunnel": SourceVerdict(
        "leaking", "none", "not-written",
        f"{TORVALDS} net/netfilter/nf_hooks_lwtunnel.c nf_hooks_lwtunnel_sysctl_handler: .data NULL, reads "
        "and sets the global static key nf_hooks_lwtunnel_enabled (static_branch_enable); 0 after 1 is EBUSY"),
}
