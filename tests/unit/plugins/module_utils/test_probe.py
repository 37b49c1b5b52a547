"""probe: what a reader sends (only what differs), the comparison of the throwaway namespaces'
views, the evidence per key, and real probes checked against whole snapshots taken in real
throwaway namespaces (on the host, with an include filter, in a private network namespace)."""
from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, probe, procsys

root = pytest.mark.skipif(os.geteuid() != 0, reason="the probe makes throwaway namespaces as root")


def as_read(view):
    """A ``{key: [mode, ino, value or None]}`` view as ``read_tree(with_inodes=True)`` returns it."""
    keys = {k: {"value": v, "mode": m, "ino": i} for k, (m, i, v) in view.items() if v is not None}
    unreadable = {k: {"mode": m, "reason": "EIO", "message": "EIO: x", "ino": i}
                  for k, (m, i, v) in view.items() if v is None}
    return keys, unreadable


def seen_of(host, views):
    return {t: probe.differences(host, *as_read(view)) for t, view in views.items()}


def reference_compare(host, host_inodes, views):
    """The comparison of whole snapshots, key by key and type by type, as the module docstring
    states it (``views[nstype][key] = [mode, ino, value or None]``): the oracle for the probe."""
    absent, mode_differs, value_differs, owner, unknown = set(), {}, {}, {}, []
    for key, h in sorted(host.items()):
        stable = host_inodes.get(key, object()) == h.get("ino")
        if not stable:
            unknown.append(key)
        for nstype in probe.PROBE_TYPES:
            if nstype not in views:
                continue
            seen = views[nstype].get(key)
            if seen is None:
                absent.add(key)
                continue
            mode, ino, value = seen
            if mode != h["mode"]:
                mode_differs.setdefault(key, mode)
            if (value is not None and h.get("value") is not None and value != h["value"]
                    and key not in procsys.VOLATILE_KEYS):
                value_differs.setdefault(nstype, set()).add(key)
            if mode != h["mode"] or (stable and ino != h.get("ino")):
                owner.setdefault(key, nstype)
    by_type = {}
    for key, nstype in sorted(owner.items()):
        by_type.setdefault(nstype, []).append(key)
    return {"absent": sorted(absent), "mode_differs": mode_differs,
            "value_differs": {t: sorted(keys) for t, keys in sorted(value_differs.items())},
            "owner": by_type, "unknown": [k for k in unknown if k not in absent]}


def test_probe_compare_and_evidence():
    host = {"a.global": {"value": "1", "mode": "0644", "ino": 1},
            "net.x": {"value": "5", "mode": "0644", "ino": 2},
            "net.mirror": {"value": "9", "mode": "0644", "ino": 3},
            "net.hostonly": {"value": "0", "mode": "0644", "ino": 4},
            "evicted": {"value": "0", "mode": "0644", "ino": 5},
            "kernel.cad_pid": {"value": "1", "mode": "0600", "ino": 6},
            "net.ping": {"value": "1 0", "mode": "0644", "ino": 7}}
    after = {k: v["ino"] for k, v in host.items()}
    after["evicted"] = 55
    same = {k: [v["mode"], v["ino"], v["value"]] for k, v in host.items()}
    views_ = {"net": {"a.global": ["0644", 1, "1"], "net.x": ["0644", 20, "7"], "net.mirror": ["0444", 30, "9"],
                      "evicted": ["0644", 56, "0"], "kernel.cad_pid": same["kernel.cad_pid"],
                      "net.ping": ["0644", 70, "1 0"]},
              "ipc": dict(same),
              # One table entry whose handler reads the caller's pid namespace: another value, no owner.
              "pid": dict(same, **{"kernel.cad_pid": ["0600", 6, "0"]}),
              # A fresh user namespace translates the net key's value, through the same entry.
              "user": dict(same, **{"net.ping": ["0644", 7, "65534 65534"]})}
    result = probe.compare(host, after, seen_of(host, views_))
    assert result == dict(reference_compare(host, after, views_))
    assert result["absent"] == ["net.hostonly"]
    assert result["mode_differs"] == {"net.mirror": "0444"}
    assert result["owner"] == {"net": ["net.mirror", "net.ping", "net.x"]}
    assert result["value_differs"] == {"net": ["net.x"], "pid": ["kernel.cad_pid"], "user": ["net.ping"]}
    assert result["unknown"] == ["evicted"]
    facts = dict(result, enabled=True)
    assert probe.probe_evidence(facts, "net.mirror") == {"exists": True, "mode": "0444", "same_value": True,
                                                         "same_inode": False, "owner": "net",
                                                         "value_differs_in": [], "value_only": False}
    assert probe.probe_evidence(facts, "net.hostonly")["exists"] is False
    assert probe.probe_evidence(facts, "a.global")["owner"] is None
    assert probe.probe_evidence(facts, "evicted") is None
    assert probe.probe_evidence({"enabled": False}, "a.global") is None
    cad = probe.probe_evidence(facts, "kernel.cad_pid")
    assert (cad["owner"], cad["value_only"], cad["value_differs_in"], cad["same_value"]) == (None, True, ["pid"], False)
    # The user namespace's translation does not count against the owner's (net) comparison.
    ping = probe.probe_evidence(facts, "net.ping")
    assert (ping["owner"], ping["same_value"], ping["value_differs_in"]) == ("net", True, ["user"])
    assert probe.probe_evidence(facts, "net.x")["same_value"] is False
    assert probe.value_differs_keys(facts, ("net", "ipc")) == {"net.x"}
    assert probe.value_differs_keys(facts) == {"net.x", "kernel.cad_pid", "net.ping"}


def test_probe_reads_the_older_flat_value_differs():
    """Facts gathered before value_differs was split by type: the list applies to every type."""
    facts = {"enabled": True, "namespaces": ["net", "pid"], "value_differs": ["net.x"], "owner": {"net": ["net.x"]}}
    assert probe.probe_evidence(facts, "net.x")["same_value"] is False
    assert probe.value_differs_by_type(facts) == {"net": {"net.x"}, "pid": {"net.x"}}
    assert probe.value_differs_keys({"value_differs": []}) == set()


def test_a_reader_sends_only_what_differs_from_the_host():
    host = {key: {"value": "1", "mode": "0644", "ino": ino}
            for ino, key in enumerate(["same", "other.value", "other.inode", "other.mode", "unreadable.here"], 1)}
    host.update({"unreadable.both": {"mode": "0200", "reason": "write-only", "message": "m", "ino": 6},
                 "unreadable.host": {"mode": "0644", "reason": "EIO", "message": "m", "ino": 7},
                 "gone": {"value": "0", "mode": "0644", "ino": 8}})
    view = {"same": ["0644", 1, "1"], "other.value": ["0644", 2, "2"], "other.inode": ["0644", 30, "1"],
            "other.mode": ["0444", 4, "1"], "unreadable.here": ["0644", 5, None], "unreadable.both": ["0200", 6, None],
            "unreadable.host": ["0644", 7, "9"], "not.on.the.host": ["0644", 9, "1"]}
    assert probe.differences(host, *as_read(view)) == {
        "absent": ["gone"],
        "differs": {"other.value": ["0644", 2, "2"], "other.inode": ["0644", 30, "1"], "other.mode": ["0444", 4, "1"],
                    "unreadable.here": ["0644", 5, None], "unreadable.host": ["0644", 7, "9"]}}


def test_the_differences_give_the_comparison_of_whole_snapshots():
    """2,000 random hosts and views: compare() over what the readers send is the oracle's
    comparison of the whole snapshots (every field)."""
    rng = random.Random(15)
    modes, values = ["0644", "0444", "0600", "0200"], ["0", "1", "1 0", None]
    names = ["net.a", "net.b", "kernel.c", "kernel.ns_last_pid", "vm.d", "user.e", "fs.f", "kernel.g"]
    for _case in range(2000):
        host = {}
        for key in rng.sample(names, rng.randint(1, len(names))):
            value = rng.choice(values)
            host[key] = dict({"mode": rng.choice(modes), "ino": rng.randint(1, 3)},
                             **({"value": value} if value is not None else {"reason": "EIO", "message": "m"}))
        host_inodes = {k: (h["ino"] if rng.random() < 0.8 else h["ino"] + 7)  # moved meanwhile
                       for k, h in host.items() if rng.random() < 0.95}  # or gone
        views = {}
        for nstype in rng.sample(probe.PROBE_TYPES, rng.randint(0, 5)):
            views[nstype] = {}
            for key in names:
                h = host.get(key)
                if rng.random() < 0.1:
                    continue  # absent there
                if h is not None and rng.random() < 0.5:
                    views[nstype][key] = [h["mode"], h["ino"], h.get("value")]  # the host's own entry
                else:
                    views[nstype][key] = [rng.choice(modes), rng.randint(1, 3), rng.choice(values)]
        assert probe.compare(host, host_inodes, seen_of(host, views)) == reference_compare(host, host_inodes, views)


def whole_snapshot(nstype):
    """A throwaway namespace's whole /proc/sys, read in a forked child as the probe's readers
    did before they sent only differences (the oracle's input)."""
    def snapshot():
        keys, unreadable = procsys.read_tree(with_inodes=True)
        out = {k: [v["mode"], v["ino"], v["value"]] for k, v in keys.items()}
        out.update((k, [v["mode"], v["ino"], None]) for k, v in unreadable.items())
        return out

    def target():
        nsenter.unshare(nsenter.NS_FLAGS[nstype])
        return nsenter.run_in_grandchild(snapshot) if nstype == "pid" else snapshot()
    return target


def probe_against_oracle(wanted=None, between=None, attempts=3):
    """The probe and the oracle over the same host read; ``between`` runs after the host read.
    The kernel may change between the two (an inode evicted): equal in one of ``attempts``."""
    for _attempt in range(attempts):
        keys, unreadable = procsys.read_tree(wanted=wanted, with_inodes=True)
        host = dict(keys, **unreadable)
        if between:
            between()
        result = probe.run_probe(host, parallel=2)
        answers = nsenter.run_parallel([nsenter.Job(t, whole_snapshot(t)) for t in probe.PROBE_TYPES],
                                       parallel=len(probe.PROBE_TYPES), timeout=10.0)
        views = {t: a["value"] for t, a in answers.items() if a["ok"]}
        expected = reference_compare(host, procsys.tree_inodes(), views)
        got = {k: result[k] for k in expected}
        if got == expected:
            break
    assert result["errors"] == [] and result["namespaces"] == list(probe.PROBE_TYPES)
    assert got == expected
    return host, result


@root
def test_a_real_probe_gives_the_evidence_of_whole_snapshots():
    host, result = probe_against_oracle()
    assert result["key_count"] == len(host)
    # A fresh network namespace has its own table of net keys; the ipc keys belong to ipc.
    assert "net.core.somaxconn" in result["owner"]["net"]
    assert "kernel.shmmax" in result["owner"].get("ipc", [])
    assert "vm.swappiness" not in {k for keys in result["owner"].values() for k in keys}
    evidence = probe.probe_evidence(result, "net.core.somaxconn")
    assert evidence["exists"] is True and evidence["owner"] == "net"


@root
def test_a_real_probe_of_a_filtered_host_reads_only_its_keys():
    wanted = procsys.compile_filter(["net.core.*", "kernel.shm*", "kernel.hostname", "user.*"], ["net.core.rmem*"])
    host, result = probe_against_oracle(wanted)
    assert host and all(wanted(k) for k in host) and result["key_count"] == len(host)
    assert "net.core.somaxconn" in result["owner"]["net"] and "kernel.shmmax" in result["owner"]["ipc"]


@root
def test_a_real_probe_in_a_private_netns_with_devices_made_again():
    """In a network namespace of the test's own: a bridge made again after the host read (its keys
    get new inodes) and a device whose name is no UTF-8: the same evidence as whole snapshots."""
    def scenario():
        nsenter.unshare(nsenter.NS_FLAGS["net"])
        for name in ("nsgp0", b"nsg\xffp.1"):
            subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)

        def make_again():
            subprocess.run(["ip", "link", "del", "nsgp0"], check=True)
            subprocess.run(["ip", "link", "add", "nsgp0", "type", "bridge"], check=True)
        _host, result = probe_against_oracle(between=make_again)
        return result

    result = nsenter.run_in_grandchild(scenario)  # the namespace dies with the child
    bridge = [k for k in result["absent"] if k.startswith("net.ipv4.conf.nsgp0.")]
    assert bridge and "net.ipv4.conf.nsg\\xffp/1.forwarding" in result["absent"]
    # Seen with other inodes by the ipc, uts, user and pid readers, but the host's inode moved too:
    # no owner (and, absent in a fresh netns, not unknown either).
    assert not set(bridge) & {k for keys in result["owner"].values() for k in keys}


@root
def test_the_probe_keeps_to_its_timeout():
    """Each type's reader is killed at ``timeout``; a type not started within ``timeout`` of the
    probe's start is reported, not started: the probe ends within twice ``timeout``."""
    keys, unreadable = procsys.read_tree(with_inodes=True)
    started = time.monotonic()
    result = probe.run_probe(dict(keys, **unreadable), parallel=2, timeout=0.001)
    assert time.monotonic() - started < 1.0
    messages = {e["namespace"]: e["message"] for e in result["errors"]}
    assert set(messages) == set(probe.PROBE_TYPES) and result["namespaces"] == []
    killed = [t for t, m in messages.items() if "no answer within" in m and "the reader was killed" in m]
    not_started = [t for t, m in messages.items() if m.endswith("not started within the probe's 0.001 s")]
    # the first two types start at once (unless the machine held the process past the deadline)
    assert len(killed) <= 2 and sorted(killed + not_started) == sorted(probe.PROBE_TYPES)
    assert not [pid for pid in _children() if _named_reader(pid)]  # every reader killed and reaped


def _children():
    with open("/proc/self/task/%d/children" % os.getpid()) as handle:
        return [int(pid) for pid in handle.read().split()]


def _named_reader(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip() == "nsguard-sysctl"
    except OSError:
        return False
