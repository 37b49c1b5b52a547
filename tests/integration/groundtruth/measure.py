"""Measure, through the running kernel, the class of every key under /proc/sys.

Everything happens in forked children that unshare throwaway namespaces (ctypes; Python 3.11
has no os.unshare/os.setns) and die when done; nothing is left behind. Steps:

1. Snapshot the host; snapshot the view of a fresh namespace of each type alone (net, ipc, uts,
   pid via a grandchild, user) and of a fresh set of all of net+ipc+uts+pid together. A key
   absent in the fresh set is host-only; the type whose fresh namespace gives the key another
   table entry (inode, same procfs, same moment) owns it.
2. In a fresh set, open every key for writing (permission, no write), and write a distinctive
   value to every key that has its own entry there (and to a few harmless shared limits), then
   compare the host: a change is a leak (own entry) or a global key (shared entry), restored at
   once. A shared key the write did not reach the host with is attributed to a namespace type by
   repeating the write in one type at a time.
3. The same in a fresh user namespace (uid 0 mapped to 0) for keys a user namespace owns.
4. Inheritance: for per-namespace keys whose fresh value equals the host's, set a distinctive
   value on the host (all at once), create a fresh namespace, read, restore (all at once). UTS
   keys copy from the creating namespace: checked with a nested UTS namespace instead.
5. Per-device keys (net.ipv4.conf.<dev>.*, neigh.<dev>.*): the host's devices are absent in a
   fresh netns, so veth devices with the same names are created there, and the same existence
   and write checks run on their keys.
6. Read-only-everywhere keys with equal values are moved by an action where one exists
   (MRT_INIT / MRT6_INIT make a netns's conf.all.mc_forwarding 1; an nft conntrack rule and five
   UDP datagrams on lo make its nf_conntrack_count 5).
7. Inheritance of net.ipv4/ipv6.conf.{all,default}.* and ip_forward without touching them on the
   host: with net.core.devconf_inherit_init_net set to 3 (then 2, then left as the host has it)
   for a few milliseconds, a throwaway netns A sets every such key to a distinctive value and
   creates a netns B inside itself: which keys B copies from A (3), that B has the compiled
   defaults instead (2), and that with the host's own mode B does not copy A. Combined with the
   step-4 host-write results on the other conf keys of the same family (IPv4 copies init_net,
   IPv6 does not), that decides every conf key. devinet_init_net/addrconf_init_net copy the same
   structs in modes 0/1 and 3, from init_net or from the creator (9efd6a3cecdd).
8. Keys whose observations fit two classes are decided by the cited kernel source
   (``sources.py``) after their observations are checked; they are counted apart.

Policy (which writes are allowed and with which values) is in ``policy.py``. Every host write
goes through :class:`HostLedger`, which restores it (only if nobody changed the key since).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, procsys

from . import policy
from .sources import SOURCE_DECIDED

TYPES = ("net", "ipc", "uts", "pid", "user")
SET_TYPES = ("net", "ipc", "uts", "pid")
DEVICE_KEY = re.compile(r"^net\.(ipv4|ipv6)\.(conf|neigh)\.([^.]+)\.")
NOT_DEVICES = ("all", "default")
PER_NS = ("isolated", "isolated-inherited")
TIMEOUT = 20.0
HOST_LOCK = "/run/nsguard-host-sysctl.lock"  # shared with the other tests that change host sysctls


@contextlib.contextmanager
def host_lock():
    """Hold the advisory lock every test that writes host sysctls takes (test_audit_support)."""
    with open(HOST_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_device_key(key: str) -> bool:
    match = DEVICE_KEY.match(key)
    return bool(match) and match.group(3) not in NOT_DEVICES


def device_of(key: str) -> Optional[str]:
    match = DEVICE_KEY.match(key)
    if not match or match.group(3) in NOT_DEVICES:
        return None
    return match.group(3).replace("/", ".")


# --------------------------------------------------------------------------- children

def snapshot(subdirs: Optional[Sequence[str]] = None) -> Dict[str, list]:
    """``{key: [mode, inode, value or None]}`` as the calling process sees /proc/sys."""
    keys, unreadable = procsys.read_tree(subdirs=subdirs, with_inodes=True)
    out = {k: [r["mode"], r["ino"], r["value"]] for k, r in keys.items()}
    out.update({k: [r["mode"], r["ino"], None] for k, r in unreadable.items()})
    return out


def read_values(keys: Sequence[str]) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for key in keys:
        try:
            out[key] = procsys.read_key_file(procsys.key_to_path(key))
        except OSError:
            out[key] = None
    return out


def write_value(key: str, value: str) -> Optional[str]:
    """Write ``value``; None on success, else the errno name."""
    try:
        fd = os.open(procsys.key_to_path(key), os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        # An empty value must still be a write: "" would be a zero-length no-op.
        os.write(fd, value.encode() if value else b"\n")
        return None
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        os.close(fd)


def open_for_write(key: str) -> Optional[str]:
    """The permission check of a write, without writing: None when open(O_WRONLY) works."""
    try:
        fd = os.open(procsys.key_to_path(key), os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    os.close(fd)
    return None


def write_plan(plan: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Run in a throwaway namespace: open test for every planned key, writes where asked.

    ``plan[key] = {"values": [candidate, ...]}`` (empty: open test only). The first candidate
    the kernel accepts is kept (and read back); the namespace dies with the child.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for key, item in plan.items():
        before = read_values([key])[key]
        record: Dict[str, Any] = {"open": open_for_write(key), "before": before, "wrote": None,
                                  "errors": [], "after": None}
        if record["open"] is None:
            for value in item.get("values") or ():
                if policy.same_value(value, before):
                    continue
                err = write_value(key, value)
                if err is None:
                    after = read_values([key])[key]
                    if policy.same_value(after, before):
                        # The kernel rounded it back (ms values are kept in jiffies): no change.
                        record["errors"].append(f"{value!r} reads back as {after!r}")
                        continue
                    record["wrote"] = value
                    record["after"] = after
                    break
                record["errors"].append(err)
        out[key] = record
    return out


def _in_namespaces(types: Sequence[str], fn: Callable[[], Any], user_map: bool = False) -> Callable[[], Any]:
    """A child target: unshare ``types`` (a pid namespace runs ``fn`` in a grandchild)."""
    def target():
        flags = 0
        for t in types:
            flags |= nsenter.NS_FLAGS[t]
        nsenter.unshare(flags)
        if user_map:
            # Map uid/gid 0 to 0: the process keeps kuid 0 and full capabilities in the new
            # user namespace (the "unshare -U -r as root" case).
            for name, text in (("uid_map", "0 0 1"), ("setgroups", "deny"), ("gid_map", "0 0 1")):
                with open(f"/proc/self/{name}", "w") as handle:
                    handle.write(text)
        if "pid" in types:
            return nsenter.run_in_grandchild(fn)
        return fn()
    return target


def run_children(jobs: Dict[str, Callable[[], Any]], parallel: int = 2) -> Dict[str, Any]:
    answers = nsenter.run_parallel([nsenter.Job(n, t) for n, t in jobs.items()], parallel=parallel, timeout=TIMEOUT)
    out = {}
    for name in jobs:
        answer = answers.get(name) or {}
        if not answer.get("ok"):
            raise RuntimeError(f"throwaway namespace job {name!r} failed: {answer.get('error')}")
        out[name] = answer["value"]
    return out


# --------------------------------------------------------------------------- host ledger

@dataclass
class HostLedger:
    """Every host value this measurement changed, restored only if still ours."""

    original: Dict[str, str] = field(default_factory=dict)
    written: Dict[str, str] = field(default_factory=dict)
    restore_problems: List[str] = field(default_factory=list)
    restored: int = 0
    touched: Dict[str, str] = field(default_factory=dict)  # every key ever changed: its first original

    def note(self, key: str, original: str, written: str) -> None:
        self.touched.setdefault(key, original)
        self.original.setdefault(key, original)
        self.written[key] = written

    def write(self, key: str, value: str, original: str) -> Optional[str]:
        """Write ``value`` on the host; None when the host now shows a value other than ``original``.

        Noted before the write so that a crash still restores it; after it, the value the kernel
        shows is what is recorded (a value in ms is kept in jiffies: 1001 reads back as 1004).
        """
        fresh_note = key not in self.written
        previous = self.written.get(key)
        self.note(key, original, value)
        err = write_value(key, value)
        shown = read_values([key])[key]
        if err is None and not policy.same_value(shown, original):
            self.written[key] = shown
            return None
        if shown is not None and not policy.same_value(shown, original):
            self.written[key] = shown  # refused yet changed: keep it to restore
            return err or "changed"
        if fresh_note:
            self.written.pop(key, None)
            self.original.pop(key, None)
        else:
            self.written[key] = previous
        return err or f"{value!r} reads back as the original {shown!r}"

    def restore(self, keys: Optional[Sequence[str]] = None) -> None:
        # Newest first: coupled keys (pm_type <-> path_manager) unwind in the order they moved.
        done: Dict[str, str] = {}
        for key in reversed(list(keys if keys is not None else self.written)):
            if key not in self.written:
                continue
            current = read_values([key])[key]
            written, original = self.written.pop(key), self.original.pop(key)
            if policy.same_value(current, original):
                done[key] = original
                continue
            if not policy.same_value(current, written):
                # Someone else changed it since our write: theirs now, not ours to undo.
                self.restore_problems.append(f"{key}: changed by someone else to {current!r}; left alone")
                continue
            err = write_value(key, original)
            done[key] = original
            if err is not None or not policy.same_value(read_values([key])[key], original):
                self.restore_problems.append(f"{key}: could not restore {original!r} ({err})")
            else:
                self.restored += 1
        # Second pass: restoring one alias of a setting can move another we already restored
        # (net.ipv6.route.gc_min_interval in s and gc_min_interval_ms share one variable).
        for key, original in done.items():
            if not policy.same_value(read_values([key])[key], original):
                err = write_value(key, original)
                if err is not None or not policy.same_value(read_values([key])[key], original):
                    self.restore_problems.append(f"{key}: moved by a coupled key, could not restore {original!r}")


# --------------------------------------------------------------------------- the measurement

@dataclass
class KeyTruth:
    key: str
    klass: Optional[str] = None          # None: not established (reason says why)
    namespace: Optional[str] = None
    category: str = ""                   # host-only, per-device, per-namespace, mirror, global, leaking, untested
    how: str = ""                        # the observations that decided
    reason: Optional[str] = None         # why not established
    exists: Optional[bool] = None
    owner: Optional[str] = None
    open_error: Optional[str] = None
    host_changed: Optional[bool] = None
    inherited: Optional[bool] = None
    basis: str = "measured"              # measured | source (observations checked, class from sources.py)


@dataclass
class GroundTruth:
    kernel: str
    keys: Dict[str, KeyTruth]
    host_writes: int
    ledger: HostLedger
    duration_s: float
    devices: List[str]
    notes: List[str] = field(default_factory=list)
    devconf: Dict[str, Any] = field(default_factory=dict)  # step 7: runs, cross-check with step 4

    def established(self) -> Dict[str, KeyTruth]:
        return {k: t for k, t in self.keys.items() if t.klass is not None}

    def untested(self) -> Dict[str, KeyTruth]:
        return {k: t for k, t in self.keys.items() if t.klass is None}


def _owner(key: str, host: Dict[str, list], views: Dict[str, Dict[str, list]]) -> Optional[str]:
    for t in TYPES:
        seen = views[t].get(key)
        if seen is not None and seen[1] != host[key][1]:
            return t
    return None


def _writable(mode: str) -> bool:
    return bool(int(mode, 8) & 0o222)


def measure(ledger: HostLedger) -> GroundTruth:
    started = time.monotonic()
    kernel = os.uname().release
    host = snapshot()
    views = run_children({t: _in_namespaces([t], snapshot) for t in TYPES}
                         | {"set": _in_namespaces(SET_TYPES, snapshot)})
    host_after = procsys.stat_keys()
    # Permission to write, checked without writing (open(O_WRONLY) runs sysctl_perm only).
    host_open = {k: open_for_write(k) for k in host}
    truth: Dict[str, KeyTruth] = {}
    unstable = {k for k in host if host_after.get(k, (None, None))[1] != host[k][1]}
    congestion = (host.get("net.ipv4.tcp_available_congestion_control") or [None, None, ""])[2].split()

    owner = {k: _owner(k, host, views) for k in host if k not in unstable}
    fresh = views["set"]

    # ---- step 2: writes in a fresh set ----------------------------------------------------
    plan: Dict[str, Dict[str, Any]] = {}
    for key, (mode, _ino, value) in host.items():
        if key not in fresh or key in unstable or key.startswith("user."):
            continue
        values: List[str] = []
        if not policy.matches(key, policy.NEVER_WRITE):
            if owner.get(key) in ("net", "ipc", "pid"):
                values = policy.candidates(key, fresh[key][2], congestion)
            elif key in policy.HARMLESS_GLOBAL:
                values = policy.candidates(key, value, congestion)
        plan[key] = {"values": values}
    set_writes = run_children({"w": _in_namespaces(SET_TYPES, lambda: write_plan(plan))})["w"]
    host_changed = _host_changes(set_writes, host, ledger)

    # A shared key whose write stayed in the namespace: which namespace type keeps it?
    shared_ns = [k for k, r in set_writes.items() if r["wrote"] is not None and owner.get(k) is None
                 and not host_changed.get(k)]
    shared_owner: Dict[str, str] = {}
    for t in SET_TYPES:
        sub = {k: plan[k] for k in shared_ns if k not in shared_owner}
        if not sub:
            break
        res = run_children({t: _in_namespaces([t], lambda sub=sub: write_plan(sub))})[t]
        changed = _host_changes(res, host, ledger)
        for k, r in res.items():
            if r["wrote"] is not None and not changed.get(k):
                shared_owner[k] = t

    # ---- step 3: user namespace -------------------------------------------------------------
    user_keys = [k for k in host if k in views["user"] and owner.get(k) == "user"]
    user_plan = {k: {"values": policy.candidates(k, views["user"][k][2])} for k in user_keys}
    user_writes = run_children({"u": _in_namespaces(["user"], lambda: write_plan(user_plan), user_map=True)})["u"]
    host_changed.update(_host_changes(user_writes, host, ledger))
    all_writes = dict(set_writes)
    all_writes.update(user_writes)

    # ---- step 4: inheritance ----------------------------------------------------------------
    no_shm = _no_shm_segments()
    inherit_keys: Dict[str, str] = {}
    inherit_errors: Dict[str, str] = {}
    inherit_skipped: Dict[str, str] = {}
    aliases: Dict[str, str] = {}
    for key, rec in all_writes.items():
        o = owner.get(key)
        original = host[key][2]
        pristine = (views[o].get(key) or [None, None, None])[2] if o else None
        if not (o in ("net", "ipc", "pid", "user") and rec["wrote"] is not None and not host_changed.get(key)
                and not is_device_key(key) and key not in procsys.VOLATILE_KEYS
                and original is not None and policy.same_value(pristine, original)):
            continue
        if policy.matches(key, policy.DISRUPTIVE_ON_HOST):
            inherit_skipped[key] = "policy.DISRUPTIVE_ON_HOST"
            continue
        if key + "_ms" in host:
            # The same variable in a coarser unit: measured through the _ms alias (below).
            aliases[key] = key + "_ms"
            continue
        if key == "kernel.shm_rmid_forced" and not no_shm:
            inherit_skipped[key] = "the host has System V shared memory segments that 1 would destroy"
            continue
        # The host may refuse a value the fresh namespace took (other limits): try the others.
        errors = []
        for value in policy.candidates(key, original, congestion):
            err = ledger.write(key, value, original)
            if err is None:
                inherit_keys[key] = ledger.written[key]  # as the kernel shows it
                break
            errors.append(err)
        else:
            inherit_errors[key] = ", ".join(errors) or "no distinctive value"
    inherited: Dict[str, bool] = {}
    if inherit_keys:
        inherit_types = sorted({owner[k] for k in inherit_keys})
        try:
            seen = run_children({"i": _in_namespaces(inherit_types, lambda: read_values(list(inherit_keys)),
                                                     user_map="user" in inherit_types)})["i"]
        finally:
            ledger.restore(list(inherit_keys))
        for key, value in inherit_keys.items():
            inherited[key] = policy.same_value(seen.get(key), value)
    for key, alias in aliases.items():
        if alias in inherited:
            inherited[key] = inherited[alias]
        else:
            inherit_skipped[key] = f"alias of {alias}, whose inheritance was not measured"
    uts_inherit = run_children({"uts": _nested_uts_check})["uts"]

    # ---- step 5: per-device keys --------------------------------------------------------------
    devices = sorted({d for k in host if (d := device_of(k)) and d != "lo"})
    device_result = run_children({"dev": _in_namespaces(["net"], lambda: _device_check(devices, host, congestion))})["dev"]
    device_changed = _host_changes(device_result["writes"], host, ledger)

    # ---- step 6: actions for read-only keys ---------------------------------------------------
    actions = run_children({"act": _in_namespaces(["net"], _action_checks)})["act"]
    actions["host"] = read_values(list(actions["after"]))

    # ---- step 7: conf inheritance through devconf_inherit_init_net ----------------------------
    devconf = _devconf_runs(host, ledger)
    devconf_truth = _devconf_verdicts(devconf, host, inherited)

    # ---- classify every host key ------------------------------------------------------------
    for key, (mode, _ino, value) in sorted(host.items()):
        t = KeyTruth(key=key, exists=key in fresh, owner=owner.get(key))
        truth[key] = t
        rec = all_writes.get(key) or {}
        t.open_error = rec.get("open")
        t.host_changed = host_changed.get(key)
        if key in unstable:
            _untested(t, "the host's inode changed during the measurement (dentry cache eviction)")
        elif is_device_key(key):
            _device_truth(t, key, fresh, rec, device_result, device_changed)
        elif not t.exists:
            _set(t, "host-only", "none", "host-only", "absent in a fresh namespace set")
        elif t.owner is None:
            _shared_truth(t, key, mode, rec, shared_owner, uts_inherit)
        else:
            _own_truth(t, key, host_open[key], value, views, rec, inherited, inherit_errors, inherit_skipped,
                       actions, devconf_truth)
        if t.klass is None and key in SOURCE_DECIDED:
            _source_truth(t, key, mode, value, views, rec, host_open[key], devconf, host)
    ledger.restore()
    return GroundTruth(kernel=kernel, keys=truth, host_writes=len(ledger.touched),
                       ledger=ledger, duration_s=time.monotonic() - started, devices=devices, devconf=devconf)


def _host_changes(results: Dict[str, Dict[str, Any]], host: Dict[str, list], ledger: HostLedger) -> Dict[str, bool]:
    """Which written keys the host now shows changed; those are noted in the ledger and restored."""
    written = [k for k, r in results.items() if r["wrote"] is not None and k in host]
    now = read_values(written)
    changed: Dict[str, bool] = {}
    for key in written:
        original = host[key][2]
        wrote = results[key]["wrote"]
        # A write that reached the host leaves exactly our value there. Comparing with that (not
        # with "different from before") keeps another test's concurrent change from counting.
        shown = results[key].get("after")  # as the kernel showed it in the namespace
        moved = (not policy.same_value(now[key], original)
                 and (policy.same_value(now[key], wrote) or policy.same_value(now[key], shown)))
        changed[key] = moved
        if moved and original is not None:
            ledger.note(key, original, now[key])
    ledger.restore([k for k, v in changed.items() if v])
    return changed


def _no_shm_segments() -> bool:
    try:
        with open("/proc/sysvipc/shm") as handle:
            return len(handle.read().strip().splitlines()) <= 1  # the header only
    except OSError:
        return False


def _nested_uts_check() -> Dict[str, bool]:
    """In a fresh UTS namespace set a name, create another inside it: does it copy the name?"""
    out = {}
    nsenter.unshare(nsenter.CLONE_NEWUTS)
    for key in ("kernel.hostname", "kernel.domainname"):
        value = "nsguard-gt-" + key[-4:]
        if write_value(key, value) is not None:
            continue
        out[key] = value
    nsenter.unshare(nsenter.CLONE_NEWUTS)
    seen = read_values(list(out))
    return {k: policy.same_value(seen[k], v) for k, v in out.items()}


def _device_check(devices: Sequence[str], host: Dict[str, list], congestion: Sequence[str]) -> Dict[str, Any]:
    """In a fresh netns: veth devices named like the host's, then their keys' existence and writes."""
    names = list(devices)
    spare = None
    if len(names) % 2:
        spare = "nsgt-spare0"
        names.append(spare)
    errors = []
    for a, b in zip(names[0::2], names[1::2]):
        proc = subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                              capture_output=True, text=True, timeout=10, check=False)
        if proc.returncode != 0:
            errors.append(f"ip link add {a} veth peer {b}: {proc.stderr.strip()}")
    view = snapshot(["net/ipv4/conf", "net/ipv6/conf", "net/ipv4/neigh", "net/ipv6/neigh"])
    plan = {}
    for key in host:
        if not is_device_key(key) or device_of(key) == "lo" or key not in view:
            continue
        values = [] if policy.matches(key, policy.NEVER_WRITE) else policy.candidates(key, view[key][2], congestion)
        plan[key] = {"values": values}
    return {"present": sorted(k for k in view if is_device_key(k)), "writes": write_plan(plan), "errors": errors}


NFT_COUNT_RULES = "table inet nsguard_gt {\n chain out {\n  type filter hook output priority 0;\n  ct state new counter\n }\n}\n"


def _action_checks() -> Dict[str, Any]:
    """In a fresh netns, do what moves read-only per-namespace values, reading them before and after.

    MRT_INIT / MRT6_INIT open multicast routing (conf.all.mc_forwarding becomes 1); an nft rule
    that uses conntrack plus five UDP datagrams to 127.0.0.1 make nf_conntrack_count 5. The table
    and sockets die with the namespace.
    """
    keys = ["net.ipv4.conf.all.mc_forwarding", "net.ipv6.conf.all.mc_forwarding", "net.netfilter.nf_conntrack_count"]
    before = read_values(keys)
    socks = []
    errors = {}
    mrt = ((socket.AF_INET, socket.IPPROTO_IGMP, socket.IPPROTO_IP),       # MRT_INIT = 200
           (socket.AF_INET6, socket.IPPROTO_ICMPV6, socket.IPPROTO_IPV6))  # MRT6_INIT = 200
    for key, (family, proto, level) in zip(keys, mrt):
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
            socks.append(sock)
            sock.setsockopt(level, 200, 1)
        except OSError as exc:
            errors[key] = str(exc)
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, timeout=10)
        subprocess.run(["nft", "-f", "-"], input=NFT_COUNT_RULES, text=True, check=True, capture_output=True,
                       timeout=10)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(udp)
        for port in range(9, 14):
            udp.sendto(b"x", ("127.0.0.1", port))
    except (OSError, subprocess.SubprocessError) as exc:
        errors[keys[2]] = str(exc)
    after = read_values(keys)
    for s in socks:
        s.close()
    return {"before": before, "after": after, "errors": errors}


# --------------------------------------------------------------------------- per-key verdicts

def _set(t: KeyTruth, klass: str, namespace: str, category: str, how: str) -> None:
    t.klass, t.namespace, t.category, t.how = klass, namespace, category, how


def _untested(t: KeyTruth, reason: str) -> None:
    t.klass, t.namespace, t.category, t.reason = None, None, "untested", reason


def _device_truth(t: KeyTruth, key: str, fresh: Dict[str, list], rec: Dict[str, Any],
                  device_result: Dict[str, Any], device_changed: Dict[str, bool]) -> None:
    if device_of(key) == "lo":
        # lo exists in every netns: its keys are measured like any per-namespace key.
        if not t.exists or t.owner != "net":
            _untested(t, f"lo key without its own entry in a fresh netns (exists {t.exists}, owner {t.owner})")
        elif rec.get("wrote") is not None and t.host_changed:
            _set(t, "leaking", "none", "leaking", "lo key: a write in a fresh netns changed the host")
        else:
            _set(t, "isolated", "net", "per-device", _describe_write("lo key, own entry in a fresh netns", rec))
        return
    if key in fresh:
        _untested(t, "device key present in a fresh netns although the device is not there")
        return
    if key not in device_result["present"]:
        _untested(t, f"no such key on a veth named {device_of(key)} in a fresh netns "
                     f"({'; '.join(device_result['errors']) or 'device-type specific key'})")
        return
    wrec = device_result["writes"].get(key) or {}
    if device_changed.get(key):
        _set(t, "leaking", "none", "leaking", "device key: a write in a fresh netns changed the host")
        t.host_changed = True
        return
    t.open_error = wrec.get("open")
    t.host_changed = False if wrec.get("wrote") is not None else None
    _set(t, "isolated", "net", "per-device",
         _describe_write(f"absent in a fresh netns; present on a veth named {device_of(key)} created there", wrec))


def _describe_write(prefix: str, rec: Dict[str, Any]) -> str:
    if rec.get("wrote") is not None:
        return f"{prefix}; wrote {rec['wrote']!r} there, host unchanged"
    if rec.get("open") is not None:
        return f"{prefix}; write refused there ({rec['open']})"
    return f"{prefix}; writable there, no distinctive value accepted {rec.get('errors')}"


def _shared_truth(t: KeyTruth, key: str, mode: str, rec: Dict[str, Any], shared_owner: Dict[str, str],
                  uts_inherit: Dict[str, bool]) -> None:
    wrote = rec.get("wrote")
    if wrote is not None and not t.host_changed:
        ns = shared_owner.get(key)
        if ns is None:
            _untested(t, "a write in a fresh set stayed there, but no single namespace type kept it")
            return
        if ns == "uts":
            if key not in uts_inherit:
                _untested(t, "UTS key: nested-namespace copy check failed")
                return
            klass = "isolated-inherited" if uts_inherit[key] else "isolated"
            how = "copied from the creating UTS namespace" if uts_inherit[key] else "not copied"
        else:
            klass, how = "isolated", "fresh value of its own"
        _set(t, klass, ns, "per-namespace",
             f"one table entry; wrote {wrote!r} in a fresh {ns} namespace, host unchanged; {how}")
        return
    if wrote is not None and t.host_changed:
        _set(t, "global", "none", "global", f"same table entry; wrote {wrote!r} in a fresh set and the HOST changed")
        return
    if not _writable(mode):
        _set(t, "global", "none", "global", f"same table entry, read-only everywhere (mode {mode})")
        return
    opened = rec.get("open")
    if opened is not None:
        _set(t, "global", "none", "global", f"same table entry; a write in a fresh set is refused ({opened}) "
             "as it is on the host")
        return
    _set(t, "global", "none", "global", "same table entry as the host and writable from a fresh set "
         "(open for write works); value write not made: " + _why_not_written(key, rec))


def _why_not_written(key: str, rec: Dict[str, Any]) -> str:
    if policy.matches(key, policy.NEVER_WRITE):
        return "an action or a one-way switch"
    if key in policy.HARMLESS_GLOBAL:
        return f"every value tried was refused {rec.get('errors')}"
    return "a shared key not on the harmless list (the write would be the host's)"


def _own_truth(t: KeyTruth, key: str, host_open: Optional[str], value: Optional[str],
               views: Dict[str, Dict[str, list]], rec: Dict[str, Any], inherited: Dict[str, bool],
               inherit_errors: Dict[str, str], inherit_skipped: Dict[str, str], actions: Dict[str, Any],
               devconf_truth: Dict[str, Any]) -> None:
    o = t.owner
    view = views[o].get(key) or [None, None, None]
    child_mode, child_value = view[0], view[2]
    mode = f"{child_mode} there"
    opened = rec.get("open")
    # Writable means root can open it for writing (ipc *_next_id are 0444 yet writable by root).
    host_w, child_w = host_open is None, opened is None
    if host_w and not child_w:
        if policy.same_value(child_value, value):
            _set(t, "mirror", "none", "mirror", f"own entry in a fresh {o} namespace, mode {mode}, writable on the "
                 f"host, write refused there ({opened}), value equal to the host's")
        else:
            _set(t, "isolated", o, "per-namespace", f"own entry in a fresh {o} namespace, read-only there, "
                 "value of its own")
        return
    if not host_w and not child_w:
        moved = key in actions["after"] and not policy.same_value(actions["after"][key], actions["before"][key])
        if moved and not policy.same_value(actions["host"][key], actions["after"][key]):
            _set(t, "isolated", o, "per-namespace", f"read-only everywhere; an action in a fresh netns moved it "
                 f"there ({actions['before'][key]} -> {actions['after'][key]}), the host shows {actions['host'][key]}")
        elif key in procsys.VOLATILE_KEYS:
            _untested(t, "read-only everywhere and volatile: values cannot be compared "
                         + str(actions["errors"].get(key, "")))
        elif not policy.same_value(child_value, value):
            _set(t, "isolated", o, "per-namespace", f"own entry in a fresh {o} namespace, read-only everywhere, "
                 f"value {child_value!r} there vs {value!r} on the host")
        else:
            _untested(t, "read-only everywhere with the host's value in a fresh namespace; nothing a "
                         "namespace can do changes it (mirror or per-namespace cannot be told apart)")
        return
    wrote = rec.get("wrote")
    if wrote is None and key in devconf_truth:
        _devconf_truth(t, o, devconf_truth[key], f"own writable entry in a fresh {o} namespace")
        return
    if wrote is None:
        if policy.matches(key, policy.NEVER_WRITE):
            _untested(t, "own writable entry in a fresh namespace; a write could not be undone on the host "
                         "if it leaked (policy.NEVER_WRITE)")
        elif value is None:
            _untested(t, f"own writable entry in a fresh {o} namespace, but unreadable (mode {child_mode}): "
                         "no value to write or compare")
        else:
            _untested(t, f"own writable entry; no distinctive value known or accepted {rec.get('errors')}")
        return
    if t.host_changed:
        _set(t, "leaking", "none", "leaking", f"own entry in a fresh {o} namespace; wrote {wrote!r} there and "
             "the HOST changed")
        return
    prefix = f"own entry in a fresh {o} namespace; wrote {wrote!r} there, host unchanged"
    fresh_value = child_value  # the pristine snapshot: a coupled key may have moved it before the write
    if value is None:
        _set(t, "isolated", o, "per-namespace", prefix + "; no value to copy (unreadable)")
    elif key in procsys.VOLATILE_KEYS or not policy.same_value(fresh_value, value):
        _set(t, "isolated", o, "per-namespace", prefix + f"; fresh value {fresh_value!r} vs host {value!r}")
    elif key in inherited:
        t.inherited = inherited[key]
        klass = "isolated-inherited" if inherited[key] else "isolated"
        _set(t, klass, o, "per-namespace", prefix + ("; host set to a distinctive value: a fresh namespace "
             + ("copied it" if inherited[key] else "did not copy it")))
    elif key in inherit_errors:
        _untested(t, f"per-namespace; inheritance check: the host refused every distinctive value ({inherit_errors[key]})")
    elif key in devconf_truth:
        _devconf_truth(t, o, devconf_truth[key], prefix)
    else:
        _untested(t, "per-namespace with the host's value in a fresh namespace; inheritance check not made: "
                     + inherit_skipped.get(key, "no reason recorded"))


# --------------------------------------------------------------------------- step 7: devconf

def _devconf_child(keys: Sequence[str]) -> Dict[str, Any]:
    """A throwaway netns A sets a distinctive value for every key, then creates a netns B inside itself.

    The host's devconf_inherit_init_net, set by the parent for the life of this child, decides
    what A and B start with. route.flush is written in A too (it flushes A's routes only).
    """
    nsenter.unshare(nsenter.CLONE_NEWNET)                       # A, created from the host's netns
    fresh = read_values(keys)
    errors: Dict[str, List[str]] = {}
    for key in keys:
        for value in policy.devconf_values(key, fresh[key]):
            err = write_value(key, value)
            now = read_values([key])[key]
            if err is None and not policy.same_value(now, fresh[key]):
                break
            errors.setdefault(key, []).append(err or f"{value!r} reads back as {now!r}")
    final = read_values(keys)
    flush = {key: write_value(key, "1") for key in policy.ROUTE_FLUSH}
    nsenter.unshare(nsenter.CLONE_NEWNET)                       # B, created by a process in A
    return {"fresh": fresh, "final": final, "b": read_values(keys), "errors": errors, "flush": flush}


def _devconf_runs(host: Dict[str, list], ledger: HostLedger) -> Dict[str, Any]:
    """The child above with devconf_inherit_init_net 3, then 2, then as the host has it (restored at once)."""
    keys = sorted(k for k in host if policy.matches(k, policy.DEVCONF_KEYS) and not is_device_key(k))
    if policy.DEVCONF_KEY not in host or not keys:
        return {"error": "no net.core.devconf_inherit_init_net on this kernel", "keys": keys, "runs": {}}
    original = host[policy.DEVCONF_KEY][2]
    runs: Dict[str, Any] = {}
    errors: Dict[str, str] = {}
    for mode in policy.DEVCONF_MODES + (original,):
        if mode in runs or mode in errors:
            continue
        if mode != original:
            err = ledger.write(policy.DEVCONF_KEY, mode, original)
            if err is not None:
                errors[mode] = err
                continue
        try:
            runs[mode] = run_children({"devconf": lambda: _devconf_child(keys)})["devconf"]
        finally:
            if mode != original:
                ledger.restore([policy.DEVCONF_KEY])
    return {"host_mode": original, "keys": keys, "runs": runs, "errors": errors,
            "host_after": read_values(keys), "host_mode_after": read_values([policy.DEVCONF_KEY])[policy.DEVCONF_KEY]}


def _family(key: str) -> str:
    return "IPv4" if key.startswith("net.ipv4.") else "IPv6"


def _devconf_verdicts(devconf: Dict[str, Any], host: Dict[str, list],
                      inherited: Dict[str, bool]) -> Dict[str, Dict[str, Any]]:
    """Per conf key ``{"klass", "how"}`` or ``{"reason"}``; ``devconf["crosscheck"]`` per family.

    Mode 3 says whether a key is part of what a new netns copies (B copied A's value) or not (B
    has the compiled default), mode 2 that B gets the compiled value otherwise, the host's mode
    that B does not copy its creator. Whether the host's mode copies from the host at all is
    read, per family, from the step-4 host-write results on the other conf keys: a family whose
    host-write results equal the mode-3 copy results copies from the host; one where no key was
    copied from the host does not.
    """
    runs = devconf.get("runs") or {}
    keys = devconf.get("keys") or []
    mode = devconf.get("host_mode")
    if not {"3", "2", mode} <= set(runs):
        reason = f"devconf_inherit_init_net runs incomplete: {devconf.get('errors') or devconf.get('error')}"
        devconf["crosscheck"] = {"reason": reason}
        return {k: {"reason": reason} for k in keys}
    r3, r2, r0 = runs["3"], runs["2"], runs[mode]
    out: Dict[str, Dict[str, Any]] = {}
    copied: Dict[str, bool] = {}
    for key in keys:
        compiled, a3, b3 = r2["fresh"][key], r3["final"][key], r3["b"][key]
        if policy.same_value(a3, compiled):
            out[key] = {"reason": f"no value other than the compiled {compiled!r} held in a throwaway netns "
                                  f"({'; '.join(map(str, r3['errors'].get(key, []))) or 'not written'})"}
            continue
        if not policy.same_value(devconf["host_after"].get(key), host[key][2]):
            out[key] = {"reason": f"the host's value moved during the runs ({devconf['host_after'].get(key)!r})"}
            continue
        if not policy.same_value(r2["b"][key], compiled) and policy.same_value(r2["b"][key], r2["final"][key]):
            out[key] = {"reason": f"devconf_inherit_init_net=2 copied the creator's {r2['final'][key]!r}"}
            continue
        a0, b0 = r0["final"][key], r0["b"][key]
        if policy.same_value(b0, a0) and not policy.same_value(a0, host[key][2]) and not policy.same_value(a0, compiled):
            out[key] = {"reason": f"with the host's devconf_inherit_init_net={mode} B copied its creator's {a0!r}"}
            continue
        if policy.same_value(b3, a3):
            copied[key] = True
        elif policy.same_value(b3, compiled):
            copied[key] = False
        else:
            out[key] = {"reason": f"devconf_inherit_init_net=3: B read {b3!r}, neither A's {a3!r} nor the compiled {compiled!r}"}
    cross: Dict[str, Any] = {}
    copies: Dict[str, Optional[bool]] = {}
    for fam in ("IPv4", "IPv6"):
        pairs = {k: (inherited[k], copied[k]) for k in copied if _family(k) == fam and k in inherited}
        if pairs and all(i == c for i, c in pairs.values()) and any(i for i, dummy in pairs.values()):
            copies[fam] = True
            mismatch = []
        elif pairs and not any(i for i, dummy in pairs.values()) and any(c for dummy, c in pairs.values()):
            copies[fam] = False
            mismatch = []
        else:
            copies[fam] = None
            mismatch = sorted(k for k, (i, c) in pairs.items() if i != c)
        cross[fam] = {"measured_both_ways": len(pairs), "copies_from_host": copies[fam], "mismatch": mismatch,
                      "copied_by_mode_3": sum(1 for k, c in copied.items() if c and _family(k) == fam),
                      "not_copied_by_mode_3": sorted(k for k, c in copied.items() if not c and _family(k) == fam)}
    devconf["crosscheck"] = cross
    for key, was_copied in copied.items():
        fam = _family(key)
        n = cross[fam]["measured_both_ways"]
        if copies[fam] is None:
            out[key] = {"reason": f"the {fam} host-write results ({n} keys) neither all match the mode-3 copy "
                                  f"nor are all 'not copied': {cross[fam]['mismatch']}"}
            continue
        klass = "isolated-inherited" if copies[fam] and was_copied else "isolated"
        a3, compiled, b0 = r3["final"][key], r2["fresh"][key], r0["b"][key]
        how = (f"devconf_inherit_init_net=3: a netns created inside a throwaway netns holding {a3!r} "
               f"{'copied it' if was_copied else 'did not copy it (compiled value)'}; =2: the compiled {compiled!r}; "
               f"={mode} (the host's): B read {b0!r}, not its creator's; {n} other {fam} conf keys measured with "
               f"host writes {'are' if copies[fam] else 'are not'} copied from the host")
        if host[key][2] is None:
            how += f"; the host's stays unreadable ({devconf['host_after'].get(key)!r})"
        out[key] = {"klass": klass, "how": how}
    return out


def _devconf_truth(t: KeyTruth, owner: str, verdict: Dict[str, Any], prefix: str) -> None:
    if "klass" not in verdict:
        _untested(t, f"per-namespace; conf inheritance through devconf_inherit_init_net not decided: {verdict['reason']}")
        return
    t.inherited = verdict["klass"] == "isolated-inherited"
    _set(t, verdict["klass"], owner, "per-namespace", f"{prefix}; {verdict['how']}")


# --------------------------------------------------------------------------- step 8: source-decided

def _source_truth(t: KeyTruth, key: str, host_mode: str, value: Optional[str], views: Dict[str, Dict[str, list]],
                  rec: Dict[str, Any], host_open: Optional[str], devconf: Dict[str, Any],
                  host: Dict[str, list]) -> None:
    """Check the observations ``sources.SOURCE_DECIDED[key].check`` needs; the class is the source's."""
    verdict = SOURCE_DECIDED[key]
    child = (views.get(t.owner or "") or views["set"]).get(key) or [None, None, None]
    own = t.owner == verdict.namespace if verdict.namespace != "none" else t.owner is not None
    runs = (devconf.get("runs") or {}).values()
    check, seen = verdict.check, ""
    ok = False
    if check == "read-only-equal":
        ok = (t.exists and not _writable(host_mode) and child[0] is not None and not _writable(child[0])
              and rec.get("open") is not None and policy.same_value(child[2], value) and value is not None
              and (own or verdict.namespace == "none"))
        seen = (f"present in a fresh set, mode {host_mode} on the host and {child[0]} there, write refused there "
                f"({rec.get('open')}), the host's value {value!r} there too")
    elif check == "eio-everywhere":
        errs = [e for r in runs for e in r["errors"].get(key, [])]
        ok = own and value is None and child[2] is None and bool(errs) and all(e == "EIO" for e in errs)
        seen = f"own entry in a fresh netns; unreadable on the host and there; writes in throwaway netns: {errs}"
    elif check == "write-only-accepted":
        flushes = [r["flush"].get(key) for r in runs]
        ok = own and not int(host_mode, 8) & 0o444 and bool(flushes) and all(f is None for f in flushes)
        seen = f"own write-only entry (mode {host_mode}) in a fresh netns; a write there accepted ({flushes})"
    elif check == "single-choice":
        choices = ((host.get(verdict.choices) or [None, None, ""])[2] or "").split()
        ok = own and rec.get("open") is None and choices == [value]
        seen = f"own writable entry in a fresh netns; the only accepted value ({verdict.choices}: {choices}) is the one it holds"
    elif check == "no-op":
        errors = rec.get("errors") or []
        ok = (own and rec.get("open") is None and rec.get("wrote") is None and not t.host_changed
              and any("reads back as" in str(e) for e in errors))
        seen = f"own writable entry in a fresh {t.owner} namespace; writes there accepted but without effect ({errors})"
    elif check == "not-written":
        ok = own and rec.get("open") is None and host_open is None and policy.matches(key, policy.NEVER_WRITE)
        seen = (f"own entry in a fresh netns, writable there (open for write works) and on the host, value "
                f"{child[2]!r} there and {value!r} on the host; never written (policy.NEVER_WRITE)")
    if not ok:
        t.reason = f"{t.reason}; source-decided check {check!r} does not fit: {seen}"
        return
    t.basis, t.reason = "source", None
    _set(t, verdict.klass, verdict.namespace, "source-decided", f"{seen}; class from the source: {verdict.source}")
