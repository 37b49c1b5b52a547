"""Which writes the ground-truth measurement may make, and with which values.

Four kinds of write happen, and each has its own rule:

1. Inside a throwaway namespace, to a key that has its own table entry there (the fresh
   namespace's copy): harmless to the host unless the key leaks, which is what the write is for.
   Only keys whose leak could not be undone are kept out (``NEVER_WRITE``).
2. Inside a throwaway namespace, to a key that shares the host's table entry: that IS a write to
   the host's setting when the key is global. Done only for ``HARMLESS_GLOBAL`` keys (limits
   nudged by one for a few milliseconds), to show that such a write reaches the host; every
   other shared key is only opened for writing (which checks permission without writing).
3. On the host, for the inheritance check of per-namespace keys (does a fresh namespace copy the
   host's value?): every such key except ``DISRUPTIVE_ON_HOST``, whose brief change would alter
   routing, addressing, ARP/ND, packet filtering or IPC objects for everything on the machine.
4. On the host, ``net.core.devconf_inherit_init_net`` (``DEVCONF_MODES``) for the few milliseconds
   a throwaway netns needs to create another one inside itself. It decides only what the
   net.ipv4/ipv6.conf.{all,default} of a network namespace created in that window start with:
   no existing namespace, setting, route or packet is touched. This is how the inheritance of
   the ``DISRUPTIVE_ON_HOST`` conf keys is measured without changing the host's forwarding/ARP.
   Inside that throwaway netns (never on the host) ``conf.default.stable_secret`` gets
   ``STABLE_SECRET`` and ``route.flush`` is written (it flushes that netns's routes only).

Every host write is recorded in a ledger and restored (see ``measure.HostLedger``).
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Iterable, List, Optional

# Set by the kernel matrix's guest /init (tests/kernels/initramfs.py): the "host" is a throwaway
# qemu guest where nothing else runs, so a few writes a real host cannot take are made.
THROWAWAY_HOST = os.environ.get("NSGUARD_THROWAWAY_HOST") == "1"

# Writes whose effect on the host could not be undone, or that act instead of setting a value.
NEVER_WRITE = (
    "net.netfilter.nf_hooks_lwtunnel",   # global static key: once enabled, disabling gives EBUSY
    "vm.drop_caches", "vm.compact_memory", "vm.stat_refresh",  # actions, not settings
    "kernel.init_private*",              # platform (Firecracker) write-only hooks
    "*.stable_secret",                   # EIO until set; setting one cannot be undone
    "kernel.modules_disabled", "kernel.kexec_load_disabled", "kernel.tainted",  # one-way
    "net.ipv4.route.flush", "net.ipv6.route.flush",  # actions
)

# Shared-table keys a throwaway namespace may nudge (the write may land on the host and is
# restored at once): plain limits whose +-1 for a few milliseconds changes nothing that runs.
HARMLESS_GLOBAL = (
    "vm.max_map_count", "vm.stat_interval", "vm.swappiness", "vm.vfs_cache_pressure",
    "vm.dirty_expire_centisecs", "vm.dirty_writeback_centisecs",
    "fs.mount-max", "fs.file-max", "fs.aio-max-nr", "fs.inotify.max_user_watches",
    "fs.inotify.max_user_instances", "fs.inotify.max_queued_events", "fs.epoll.max_user_watches",
    "fs.lease-break-time", "fs.pipe-user-pages-soft",
    "kernel.threads-max", "kernel.keys.maxkeys", "kernel.keys.maxbytes", "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes", "kernel.keys.gc_delay", "kernel.pty.max", "kernel.max_lock_depth",
    "kernel.printk_ratelimit", "kernel.printk_ratelimit_burst", "kernel.hung_task_warnings",
    # One global value before 6.14 (then per pid namespace with its own entry): the write shows a
    # kernel's side of that gate; +-1 on the largest pid for milliseconds changes no running pid.
    "kernel.pid_max",
    # Keys whose one table entry reads the caller's namespace: a write in the throwaway
    # namespace is expected to stay there (and would be harmless on the host anyway).
    "kernel.hostname", "kernel.domainname", "kernel.ns_last_pid",
)

# Per-namespace keys never changed on the host for the inheritance check.
DISRUPTIVE_ON_HOST = (
    "net.ipv4.ip_forward", "*.forwarding", "*.disable_ipv6", "*.disable_policy", "*.disable_xfrm",
    "*.addr_gen_mode", "*.rp_filter", "*.arp_ignore", "*.arp_filter", "*.arp_announce", "*.arp_accept",
    "*.proxy_arp", "*.proxy_arp_pvlan", "*.proxy_ndp", "*.accept_local", "*.route_localnet",
    "*.src_valid_mark", "*.bc_forwarding", "*.ignore_routes_with_linkdown", "*.drop_*",
    "*.arp_evict_nocarrier", "*.accept_ra", "*.autoconf", "*.accept_dad", "*.mtu",
    # kernel.shm_rmid_forced=1 destroys every orphaned shared memory segment at once: allowed
    # only while the host has no System V shared memory segment (see measure.py).
    "kernel.msg_next_id", "kernel.sem_next_id", "kernel.shm_next_id",  # the host's next IPC ids
)

# net.core.devconf_inherit_init_net (Documentation/admin-guide/sysctl/net.rst): 3 = a new netns
# copies conf.{all,default} from the netns of the process creating it (9efd6a3cecdd, 5.8), 2 =
# compiled defaults, 0 (default) = IPv4 copies init_net, IPv6 compiled defaults, 1 = both copy init_net.
DEVCONF_KEY = "net.core.devconf_inherit_init_net"
DEVCONF_MODES = ("3", "2")
DEVCONF_KEYS = ("net.ipv4.conf.all.*", "net.ipv4.conf.default.*", "net.ipv6.conf.all.*",
                "net.ipv6.conf.default.*", "net.ipv4.ip_forward")
STABLE_SECRET = "fd00::6e73:6774:1"   # a secret written only in a throwaway netns
ROUTE_FLUSH = ("net.ipv4.route.flush", "net.ipv6.route.flush")

_INT = re.compile(r"^-?\d+$")
_RANGES = re.compile(r"^[\d,-]+$")
ENUMS = {
    "net.mptcp.path_manager": ("kernel", "userspace"),
    "net.mptcp.pm_type": ("0", "1"),
    "net.netfilter.nf_log.": ("NONE", "nf_log_ipv4", "nf_log_ipv6", "nf_log_arp", "nf_log_netdev",
                              "nf_log_bridge", "nfnetlink_log"),
}
_HEX = re.compile(r"^[0-9a-f,]+$")


def matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def candidates(key: str, value: Optional[str], congestion: Iterable[str] = ()) -> List[str]:
    """Values other than ``value`` to try writing, most harmless first; [] when none is known."""
    if value is None:
        return []
    if key in ("kernel.hostname", "kernel.domainname"):
        return ["nsguard-gt-" + key.split(".")[-1][:4]]
    if key == "kernel.ns_last_pid":
        # Above any pid in use, so a leak to the host would show. Before 6.14 a pid namespace is
        # bounded by the one global kernel.pid_max (32768 on a small machine: both large values
        # give EINVAL on Debian's 6.1 and 6.12 in a 1-CPU guest). A value under it is accepted
        # outside a pid namespace too, so the per-type attribution writes the host's own counter,
        # which cannot be restored while the host allocates pids: only in a throwaway guest.
        return ["3000000", "300000"] + (["30000"] if THROWAWAY_HOST else [])
    if key.endswith("tcp_congestion_control"):
        return [c for c in congestion if c != value]
    for prefix, options in ENUMS.items():
        if key.startswith(prefix):
            # All options, the current one last: a coupled key (pm_type <-> path_manager) may
            # already have moved the current value by the time this one is written.
            return [v for v in options if v != value] + [v for v in options if v == value]
    if key.endswith("tcp_fastopen_key") and "-" in value:
        head, tail = value[:-1], value[-1]
        return [head + ("1" if tail == "0" else "0")]
    if value == "" and key.endswith("ip_local_reserved_ports"):
        return ["49999"]
    if _RANGES.match(value) and ("-" in value.lstrip("-") or "," in value):
        return ["0-1", "1"]
    fields = value.split()
    if fields and all(_INT.match(f) for f in fields):
        ints = [int(f) for f in fields]
        out: List[List[int]] = []
        positions = [len(ints) - 1, 0] if len(ints) > 1 else [0]
        for pos in positions:
            for delta in (1, -1):
                changed = list(ints)
                changed[pos] += delta
                out.append(changed)
        if len(ints) == 1:
            v = ints[0]
            out += [[1], [0], [2], [v * 2], [v // 2], [v + 10], [60], [1000]]
        seen, texts = set(), []
        for item in out:
            text = " ".join(str(i) for i in item)
            if item != ints and text not in seen:
                seen.add(text)
                texts.append(text)
        return texts
    if _HEX.match(value) and value:
        last = value[-1]
        flipped = "1" if last == "0" else "0"
        return [value[:-1] + flipped]
    return []


def devconf_values(key: str, value: Optional[str]) -> List[str]:
    """Values for a conf.{all,default} key in a throwaway netns (never the host): a secret for
    stable_secret (unset, EIO, in a new netns), else the usual candidates."""
    if key.endswith(".stable_secret"):
        return [STABLE_SECRET]
    return candidates(key, value)


def same_value(a: Optional[str], b: Optional[str]) -> bool:
    """Values compare the way sysctl.d writes them: runs of blanks are one separator."""
    if a is None or b is None:
        return a is b
    return a.split() == b.split()
