"""probe: the comparison of the throwaway namespaces' views, the evidence per key, and a real probe."""
from __future__ import annotations

import os

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import probe, procsys


def test_probe_compare_and_evidence():
    host = {"a.global": {"value": "1", "mode": "0644", "ino": 1},
            "net.x": {"value": "5", "mode": "0644", "ino": 2},
            "net.mirror": {"value": "9", "mode": "0644", "ino": 3},
            "net.hostonly": {"value": "0", "mode": "0644", "ino": 4},
            "evicted": {"value": "0", "mode": "0644", "ino": 5},
            "kernel.cad_pid": {"value": "1", "mode": "0600", "ino": 6},
            "net.ping": {"value": "1 0", "mode": "0644", "ino": 7}}
    after = {k: (v["mode"], v["ino"]) for k, v in host.items()}
    after["evicted"] = ("0644", 55)
    same = {k: [v["mode"], v["ino"], v["value"]] for k, v in host.items()}
    views_ = {"net": {"a.global": ["0644", 1, "1"], "net.x": ["0644", 20, "7"], "net.mirror": ["0444", 30, "9"],
                      "evicted": ["0644", 56, "0"], "kernel.cad_pid": same["kernel.cad_pid"],
                      "net.ping": ["0644", 70, "1 0"]},
              "ipc": dict(same),
              # One table entry whose handler reads the caller's pid namespace: another value, no owner.
              "pid": dict(same, **{"kernel.cad_pid": ["0600", 6, "0"]}),
              # A fresh user namespace translates the net key's value, through the same entry.
              "user": dict(same, **{"net.ping": ["0644", 7, "65534 65534"]})}
    result = probe.compare(host, after, views_)
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


@pytest.mark.skipif(os.geteuid() != 0, reason="the probe makes throwaway namespaces as root")
def test_a_real_probe_attributes_keys_to_their_namespace_types():
    started = probe.start_probe(types=("net", "ipc", "uts"))
    try:
        host, _unreadable = procsys.read_tree(with_inodes=True)
    except BaseException:
        started.abandon()
        raise
    result = started.finish(host)
    assert result["enabled"] is True and result["errors"] == []
    assert result["namespaces"] == ["net", "ipc", "uts"] and result["key_count"] == len(host)
    # A fresh network namespace has its own table of net keys; the ipc keys belong to ipc.
    assert "net.core.somaxconn" in result["owner"]["net"]
    assert "kernel.shmmax" in result["owner"].get("ipc", [])
    assert "vm.swappiness" not in {k for keys in result["owner"].values() for k in keys}
    evidence = probe.probe_evidence(result, "net.core.somaxconn")
    assert evidence["exists"] is True and evidence["owner"] == "net"
