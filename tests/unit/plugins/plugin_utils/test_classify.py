"""The classifier: kernel gates, runtime verdicts, and probe evidence against the knowledge."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host, decide, scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions import (
    KernelVersionError, gate_reached, parse_kernel)

KERNELS = ("4.4", "5.10.30", "5.10.35", "5.15", "6.6", "6.11", "6.14")

# The class each source gives, per kernel of KERNELS.
GATES = {
    # 2671fa4dc010 (5.13), stable 5.10.35 and 5.12.2: read-only mirror; before, writable and leaking.
    "net.netfilter.nf_conntrack_max": ["leaking", "leaking", "mirror", "mirror", "mirror", "mirror", "mirror"],
    "net.netfilter.nf_conntrack_expect_max": ["leaking", "leaking", "mirror", "mirror", "mirror", "mirror", "mirror"],
    # 19249c0724f2 (6.11): absent in a child netns before, read-only mirror since.
    "net.core.rmem_max": ["host-only"] * 5 + ["mirror", "mirror"],
    "net.core.wmem_default": ["host-only"] * 5 + ["mirror", "mirror"],
    # 7863dcc72d0f (6.14): per pid namespace.
    "kernel.pid_max": ["global"] * 6 + ["isolated"],
    # 356d1833b638 (4.15): per netns, copied from init_net.
    "net.ipv4.tcp_rmem": ["global"] + ["isolated-inherited"] * 6,
    "net.ipv4.tcp_wmem": ["global"] + ["isolated-inherited"] * 6,
    # 13b287e8d1ca (4.5), 1e579caa18b9 (4.6), tcp_syncookies 4.6, ip_local_reserved_ports 3.16.
    "net.ipv4.tcp_keepalive_time": ["global"] + ["isolated"] * 6,
    "net.ipv4.tcp_fin_timeout": ["global"] + ["isolated"] * 6,
    "net.ipv4.tcp_syncookies": ["global"] + ["isolated"] * 6,
    "net.ipv4.ip_local_reserved_ports": ["isolated"] * 7,
    # dbec28460a89 (4.9): user.* appear.
    "user.max_user_namespaces": ["host-only"] + ["isolated"] * 6,
    # Never changed.
    "net.core.somaxconn": ["isolated"] * 7,
    "vm.max_map_count": ["global"] * 7,
    "net.core.netdev_max_backlog": ["host-only"] * 7,
    "net.netfilter.nf_conntrack_buckets": ["mirror"] * 7,
}


@pytest.mark.parametrize("key", sorted(GATES))
@pytest.mark.parametrize("index,kernel", list(enumerate(KERNELS)))
def test_kernel_gates(key, index, kernel):
    answer = scope(load_knowledge(), key, kernel=kernel)
    assert answer["class"] == GATES[key][index], answer["evidence"]


def test_gate_namespaces_follow_the_class():
    kb = load_knowledge()
    assert scope(kb, "kernel.pid_max", "6.13.9")["namespace"] == "none"
    assert scope(kb, "kernel.pid_max", "6.14.0")["namespace"] == "pid"
    assert scope(kb, "net.ipv4.tcp_rmem", "4.14.330")["namespace"] == "none"
    assert scope(kb, "net.ipv4.tcp_rmem", "4.15")["namespace"] == "net"


@pytest.mark.parametrize("kernel,klass", [
    ("5.10.34", "leaking"), ("5.10.35", "mirror"), ("5.10.200-amd64", "mirror"), ("5.11.22", "leaking"),
    ("5.12.1", "leaking"), ("5.12.2", "mirror"), ("5.13.0-rc1", "mirror"), ("4.19.300", "leaking"),
    ("6.18.44-fc-v669", "mirror"), (None, "mirror"),
])
def test_backports_only_count_in_their_own_series(kernel, klass):
    assert scope(load_knowledge(), "net.netfilter.nf_conntrack_max", kernel)["class"] == klass


def test_gate_record():
    gate = scope(load_knowledge(), "net.netfilter.nf_conntrack_max", "5.10.30")["gate"]
    assert gate["since"] == "5.13" and gate["backports"] == ["5.10.35", "5.12.2"]
    assert (gate["class_before"], gate["class_after"], gate["reached"]) == ("leaking", "mirror", False)
    assert gate["commit"] == "2671fa4dc010"
    assert scope(load_knowledge(), "net.netfilter.nf_conntrack_max", "6.1")["gate"]["reached"] is True
    assert scope(load_knowledge(), "net.netfilter.nf_conntrack_max")["gate"]["reached"] is None
    assert scope(load_knowledge(), "net.core.somaxconn")["gate"] is None


def test_versions():
    assert parse_kernel("6.18.44-fc-v669") == (6, 18, 44)
    assert parse_kernel("4.18.0-553.el8_10.x86_64") == (4, 18, 0)
    assert parse_kernel("5.13") == (5, 13, 0)
    assert gate_reached((5, 10, 35), "5.13", ["5.10.35"]) and not gate_reached((5, 11, 0), "5.13", ["5.10.35"])
    with pytest.raises(KernelVersionError):
        parse_kernel("linux")
    with pytest.raises(KernelVersionError):
        scope(load_knowledge(), "vm.swappiness", kernel="latest")


def test_scope_shape():
    answer = scope(load_knowledge(), "net.core.somaxconn", kernel="6.18.44")
    assert set(answer) >= {"key", "class", "namespace", "evidence", "entry", "gate", "notes", "sources", "runtimes"}
    assert answer["evidence"] == "knowledge: net-core-somaxconn (net.core.somaxconn)"
    assert set(answer["runtimes"]) == {"runc", "crun", "docker-api", "docker-cli", "podman", "podman-api",
                                       "containerd", "kubelet", "lxc"}


# --------------------------------------------------------------------------- runtimes

def runtimes(key, kernel=None):
    return scope(load_knowledge(), key, kernel)["runtimes"]


def test_runtime_rejections_quote_the_runtime():
    r = runtimes("vm.max_map_count")
    # The measured words (rules/knowledge/runtime-acceptance), not recalled ones.
    assert r["runc"]["accepts"] is False and r["runc"]["stage"] == "runtime-validator"
    assert r["runc"]["error"] == 'runc run failed: sysctl "vm.max_map_count" is not in a separate kernel namespace'
    assert r["runc"]["verified"].startswith("measured: runc 1.1.5, measured 20")
    assert r["crun"]["error"] == "the sysctl `vm.max_map_count` is not namespaced"
    # crun is measured since crun 1.8.1 could be installed (was: read from its source only).
    assert r["crun"]["verified"].startswith("measured: crun 1.8.1, measured 20")
    assert r["podman"]["error"] == "Error: sysctl 'vm.max_map_count' is not allowed"
    # The Docker API goes to runc's validator; only the CLI has the allowlist, worded per version.
    assert 'runc create failed: sysctl "vm.max_map_count" is not in a separate kernel namespace' in r["docker-api"]["error"]
    assert "docker CLI 28.2.2 says" in r["docker-cli"]["quote"] and "is not allowed" in r["docker-cli"]["quote"]
    assert "docker CLI 20.10.24 says" in r["docker-cli"]["quote"] and "is not whitelisted" in r["docker-cli"]["quote"]
    assert r["kubelet"]["accepts"] is False and r["kubelet"]["safe"] is False
    # LXC validates nothing: the write fails at start (proc:mixed keeps /proc/sys read-only).
    assert r["lxc"]["stage"] == "container-init" and "Read-only file system" in r["lxc"]["error"]


def test_domainname_through_the_api_is_accepted_but_not_through_the_cli():
    r = runtimes("kernel.domainname")
    assert r["docker-api"]["accepts"] is True and r["docker-api"]["applies"] is True
    assert r["docker-cli"]["accepts"] is False and r["docker-cli"]["stage"] == "client"


def test_mirror_passes_validation_then_fails_in_the_container():
    r = runtimes("net.core.rmem_max", "6.18")
    assert r["docker-api"]["accepts"] is True and r["docker-api"]["applies"] is False
    assert "open /proc/sys/net/core/rmem_max: permission denied" in r["docker-api"]["error"]
    assert r["docker-api"]["stage"] == "container-init"
    assert r["runc"]["error_host_namespace"] == 'runc run failed: sysctl "net.core.rmem_max" not allowed in host network namespace'
    old = runtimes("net.core.rmem_max", "6.6")
    assert "no such file or directory" in old["runc"]["error"]


def test_hostname_and_ipc():
    r = runtimes("kernel.hostname")
    assert r["runc"]["accepts"] is False and 'conflicts with the OCI "hostname" field' in r["runc"]["error"]
    assert runtimes("kernel.domainname")["runc"]["requires"] == "uts"
    assert runtimes("kernel.shmmax")["runc"]["requires"] == "ipc"
    assert runtimes("fs.mqueue.msg_max")["kubelet"]["requires"] == "ipc"


@pytest.mark.parametrize("key,kernel,safe", [
    ("net.ipv4.tcp_keepalive_time", "4.4", False), ("net.ipv4.tcp_keepalive_time", "4.5", True),
    ("net.ipv4.tcp_rmem", "4.14", False), ("net.ipv4.tcp_rmem", "4.15", True),
    ("net.ipv4.ip_local_port_range", "3.10", True), ("kernel.shm_rmid_forced", None, True),
    ("net.core.somaxconn", None, False),
])
def test_kubelet_safe_set_with_kernel_minimums(key, kernel, safe):
    kubelet = runtimes(key, kernel)["kubelet"]
    assert kubelet["safe"] is safe
    if not safe:
        assert kubelet["error"] == f'forbidden sysctl: "{key}" not allowlisted'


# --------------------------------------------------------------------------- probe evidence

def facts(probe=None, release="6.18.44-fc-v669", keys=None):
    host_keys = {   # key: (value, mode)
        "net.core.somaxconn": ("4096", "0644"),
        "net.core.rmem_max": ("4194304", "0644"),
        "net.core.netdev_max_backlog": ("1000", "0644"),
        "net.ipv4.conf.eth0.forwarding": ("0", "0644"),
        "net.ipv4.tcp_rmem": ("4096\t131072\t6291456", "0644"),
        "net.netfilter.nf_conntrack_max": ("262144", "0644"),
        "net.netfilter.nf_hooks_lwtunnel": ("0", "0644"),
        "kernel.hostname": ("vm", "0644"),
        "kernel.shmmax": ("18446744073692774399", "0644"),
        "kernel.cad_pid": ("1", "0600"),
        "vm.max_map_count": ("65530", "0644"),
        "weird.key": ("1", "0644"),
    }
    if keys:
        host_keys.update(keys)
    return {
        "schema_version": 2,
        "host": {"kernel": {"release": release}, "keys": {k: value for k, (value, mode) in host_keys.items()},
                 "modes": {k: mode for k, (value, mode) in host_keys.items()},
                 "unreadable": {"vm.drop_caches": {"mode": "0200", "reason": "write-only"}}},
        "probe": probe if probe is not None else {
            "enabled": True, "namespaces": ["net", "ipc", "uts", "user", "pid"],
            "absent": ["net.core.netdev_max_backlog", "net.ipv4.conf.eth0.forwarding"],
            "mode_differs": {"net.core.rmem_max": "0444", "net.netfilter.nf_conntrack_max": "0444"},
            # cad_pid: one table entry whose handler reads the caller's pid namespace (a value-only
            # difference, no owner).
            "value_differs": {"pid": ["kernel.cad_pid"]},
            "owner": {"net": ["net.core.somaxconn", "net.core.rmem_max", "net.ipv4.tcp_rmem",
                              "net.netfilter.nf_conntrack_max", "net.netfilter.nf_hooks_lwtunnel"],
                      "ipc": ["kernel.shmmax"]},
            "unknown": [], "errors": []},
    }


def classify(f):
    return classify_host(load_knowledge(), f)


def test_compact_probe_agrees_with_knowledge():
    out = classify(facts())
    expect = {
        "net.core.somaxconn": ("isolated", "net", "probe"),
        "net.core.rmem_max": ("mirror", "none", "probe"),
        "net.core.netdev_max_backlog": ("host-only", "none", "probe"),
        "net.ipv4.conf.eth0.forwarding": ("isolated", "net", "knowledge"),   # per-device: absent with its device
        "net.ipv4.tcp_rmem": ("isolated-inherited", "net", "probe"),
        "net.netfilter.nf_conntrack_max": ("mirror", "none", "probe"),
        "net.netfilter.nf_hooks_lwtunnel": ("leaking", "none", "knowledge"),  # a probe cannot see a leak
        "kernel.hostname": ("isolated-inherited", "uts", "knowledge"),        # UTS shares one table
        "kernel.shmmax": ("isolated", "ipc", "probe"),
        "kernel.cad_pid": ("global", "none", "knowledge"),                    # value shown per pid ns
        "vm.max_map_count": ("global", "none", "probe"),
        "vm.drop_caches": ("global", "none", "probe"),                        # unreadable keys too
        "weird.key": ("global", "none", "probe"),
    }
    for key, (klass, namespace, by) in expect.items():
        got = out[key]
        assert (got["class"], got["namespace"], got["decided_by"]) == (klass, namespace, by), (key, got)
        assert got["conflict"] is None, (key, got)
    assert set(out) == set(expect)


def test_probe_wins_and_the_conflict_is_reported():
    f = facts()
    f["probe"]["absent"].append("net.core.somaxconn")            # knowledge: isolated
    f["probe"]["owner"]["net"].append("vm.max_map_count")          # knowledge: global
    f["probe"]["owner"]["ipc"].remove("kernel.shmmax")             # knowledge: isolated ipc
    f["probe"]["value_differs"]["net"] = ["net.ipv4.tcp_rmem"]       # knowledge: copied from the host
    out = classify(f)
    assert out["net.core.somaxconn"]["class"] == "host-only"
    assert out["net.core.somaxconn"]["conflict"] == ("knowledge says isolated (namespace net), "
                                                     "probe on this host says host-only (namespace none)")
    assert (out["vm.max_map_count"]["class"], out["vm.max_map_count"]["namespace"]) == ("isolated", "net")
    assert out["vm.max_map_count"]["conflict"]
    assert out["kernel.shmmax"]["class"] == "global" and out["kernel.shmmax"]["conflict"]
    assert out["net.ipv4.tcp_rmem"]["class"] == "isolated" and out["net.ipv4.tcp_rmem"]["conflict"]
    assert all(out[k]["decided_by"] == "probe" for k in ("net.core.somaxconn", "vm.max_map_count", "kernel.shmmax"))


def test_mirror_on_an_old_kernel_is_a_conflict():
    # A 5.4 kernel without the backport: knowledge says leaking; this host's probe sees 0444.
    out = classify(facts(release="5.4.0-150-generic"))
    got = out["net.netfilter.nf_conntrack_max"]
    assert (got["class"], got["decided_by"]) == ("mirror", "probe")
    assert got["conflict"].startswith("knowledge says leaking")
    assert "predates 5.13" in got["evidence"]


def test_without_probe_the_kernel_gates_decide():
    f = facts(probe={"enabled": False}, release="5.10.30")
    out = classify(f)
    assert out["net.netfilter.nf_conntrack_max"]["class"] == "leaking"
    assert out["net.core.rmem_max"]["class"] == "host-only"
    assert out["weird.key"]["decided_by"] == "default"
    assert all(v["decided_by"] in ("knowledge", "default") and v["conflict"] is None for v in out.values())


def test_probe_skipped_namespace_type_defers_to_knowledge():
    f = facts()
    f["probe"]["namespaces"] = ["net", "uts", "user", "pid"]   # no ipc namespace was probed
    f["probe"]["owner"]["ipc"] = []
    got = classify(f)["kernel.shmmax"]
    assert (got["class"], got["decided_by"], got["conflict"]) == ("isolated", "knowledge", None)


def test_failed_net_probe_is_no_evidence_for_global_net_keys():
    f = facts()
    f["probe"]["namespaces"] = ["ipc", "uts", "user", "pid"]   # the net probe failed
    f["probe"]["absent"], f["probe"]["mode_differs"], f["probe"]["owner"]["net"] = [], {}, []
    out = classify(f)
    for key, klass in (("net.core.netdev_max_backlog", "host-only"), ("net.core.rmem_max", "mirror"),
                       ("net.core.somaxconn", "isolated")):
        got = out[key]
        assert (got["class"], got["decided_by"], got["conflict"]) == (klass, "knowledge", None), got
    assert out["vm.max_map_count"]["decided_by"] == "probe"


def test_unknown_probe_evidence_defers_to_knowledge():
    f = facts()
    f["probe"]["unknown"] = ["net.core.netdev_max_backlog"]
    f["probe"]["absent"].remove("net.core.netdev_max_backlog")
    assert classify(f)["net.core.netdev_max_backlog"]["decided_by"] == "knowledge"


def test_per_key_probe_form():
    f = facts(probe={"enabled": True, "namespaces": ["net"], "keys": {
        "net.core.somaxconn": {"exists": True, "mode": "0644", "same_value": True, "same_inode": False, "owner": "net"},
        "net.core.rmem_max": {"exists": True, "mode": "0444", "same_value": True, "same_inode": False, "owner": "net"},
        "net.core.netdev_max_backlog": {"exists": False},
        "vm.max_map_count": {"exists": True, "mode": "0644", "same_value": True, "same_inode": True, "owner": None},
        "net.probe.only": {"exists": True, "mode": "0644", "same_value": False, "same_inode": False, "owner": "net"},
    }})
    out = classify(f)
    assert out["net.core.rmem_max"]["class"] == "mirror"
    assert out["net.core.netdev_max_backlog"]["class"] == "host-only"
    assert out["vm.max_map_count"]["class"] == "global"
    assert out["net.probe.only"]["class"] == "isolated"   # probe keys count even without a host record


def test_read_only_everywhere_is_the_knowledge_s_call():
    known = scope(load_knowledge(), "net.netfilter.nf_conntrack_count")
    entry = load_knowledge().entry("net.netfilter.nf_conntrack_count")
    got = decide(known, entry, {"exists": True, "mode": "0444", "same_value": True, "owner": "net"}, "0444")
    assert (got["class"], got["decided_by"]) == ("isolated", "knowledge")


def test_classify_does_not_mutate_facts():
    f = facts()
    before = copy.deepcopy(f)
    classify(f)
    assert f == before


def test_a_user_namespace_value_difference_does_not_touch_a_net_key():
    """value_differs is per namespace type: a fresh user namespace translating a net key's value
    (ping_group_range) says nothing about the net copy's inheritance."""
    f = facts()
    f["probe"]["value_differs"]["user"] = ["net.ipv4.tcp_rmem"]
    got = classify(f)["net.ipv4.tcp_rmem"]
    assert (got["class"], got["namespace"], got["conflict"]) == ("isolated-inherited", "net", None)
    f["probe"]["value_differs"]["net"] = ["net.ipv4.tcp_rmem"]
    assert classify(f)["net.ipv4.tcp_rmem"]["class"] == "isolated"


def test_a_value_only_difference_is_no_owner():
    """Another value through the host's own table entry: the knowledge decides when it names that
    namespace type; otherwise the key stays global and the evidence says what was seen."""
    kb = load_knowledge()
    per_pid = scope(kb, "kernel.pid_max")             # knowledge: isolated, pid (no shared_table)
    evidence = {"exists": True, "mode": None, "same_value": False, "same_inode": True, "owner": None,
                "value_differs_in": ["pid"], "value_only": True}
    got = decide(per_pid, kb.entry("kernel.pid_max"), evidence, "0644")
    assert (got["class"], got["namespace"], got["decided_by"], got["conflict"]) == ("isolated", "pid", "knowledge", None)
    glob = scope(kb, "vm.max_map_count")
    got = decide(glob, kb.entry("vm.max_map_count"), evidence, "0644")
    assert (got["class"], got["decided_by"]) == ("global", "probe")
    assert "differs in a fresh pid namespace through that entry" in got["evidence"]


def test_older_facts_with_a_flat_value_differs_still_classify():
    f = facts()
    f["probe"]["value_differs"] = ["kernel.cad_pid"]
    assert classify(f)["kernel.cad_pid"]["class"] == "global"


def test_hosts_with_the_same_classification_key_share_one_answer():
    """LintConfig.classification computes classify_host once per classification_key: hosts
    that differ only in values share it; another mode, kernel or probe gets its own."""
    import json

    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classification_key
    from tests.reports.synthetic import make_host

    config = lint.load_config({})
    one = json.loads(json.dumps(make_host("a", 2)[0]))
    other_values = copy.deepcopy(one)
    other_values["host"]["keys"]["net.core.somaxconn"] = "1"
    other_values["host"]["hostname"] = "b"
    other_mode = copy.deepcopy(one)
    other_mode["host"]["modes"]["net.core.somaxconn"] = "0444"
    other_kernel = copy.deepcopy(one)
    other_kernel["host"]["kernel"]["release"] = "5.4.0"
    other_probe = copy.deepcopy(one)
    other_probe["probe"]["namespaces"] = ["net"]
    assert classification_key(one) == classification_key(other_values)
    keys = {classification_key(f) for f in (one, other_mode, other_kernel, other_probe)}
    assert len(keys) == 4
    first = config.classification(one)
    assert config.classification(other_values) is first
    for facts in (one, other_mode, other_kernel, other_probe):
        assert config.classification(facts) == classify_host(config.kb, facts)
    assert config.classification(other_mode) is not first
