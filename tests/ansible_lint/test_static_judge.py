"""The kernel-floor policy (plugins/plugin_utils/static_judge.py) against the real knowledge base."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import static_judge as sj
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge

DOCKER = sj.SpecContext(runtimes=("docker",))
COMPOSE = sj.SpecContext(runtimes=("docker", "podman"))
POD = sj.SpecContext(runtimes=("kubelet",), kubelet=True)
INSIDE = sj.SpecContext(direct_write=True)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def reasons(verdicts):
    return [(v.reason, v.level) for v in verdicts]


def test_global_key_is_an_error_with_the_runtime_text(kb):
    [v] = sj.assess(kb, "vm.max_map_count", DOCKER, floor="4.18", value="262144")
    assert (v.reason, v.level, v.klass) == ("global", "error", "global")
    assert "vm.max_map_count" in v.message and "docker rejects it" in v.message
    assert "262144" in v.message  # the runtime's own error, with the value asked for
    assert "on the host" in v.message


def test_namespaced_key_is_fine(kb):
    assert sj.assess(kb, "net.core.somaxconn", DOCKER, floor="4.18") == []
    assert sj.assess(kb, "kernel.shmmax", COMPOSE, floor="4.18") == []


def test_kernel_gate_after_the_floor_warns_and_names_the_version(kb):
    [v] = sj.assess(kb, "kernel.pid_max", INSIDE, floor="4.18")
    assert (v.reason, v.level, v.since) == ("kernel-gated", "warning", "6.14")
    assert "6.14" in v.message and sj.FLOOR_ENV in v.message
    assert sj.assess(kb, "kernel.pid_max", INSIDE, floor="6.13")[0].reason == "kernel-gated"
    # At or past the gate the key is namespaced: nothing to say.
    assert sj.assess(kb, "kernel.pid_max", INSIDE, floor="6.14") == []
    assert sj.assess(kb, "kernel.pid_max", INSIDE, floor="6.18.44") == []


def test_gate_before_the_floor_is_fine(kb):
    # tcp_rmem is per netns since 4.15 and in the kubelet's safe set (kernel >= 4.15).
    assert sj.assess(kb, "net.ipv4.tcp_rmem", POD, floor="4.18") == []
    below = sj.assess(kb, "net.ipv4.tcp_rmem", POD, floor="4.14")
    assert reasons(below) == [("kernel-gated", "warning"), ("kubelet-unsafe", "warning")]
    assert below[0].since == "4.15"


def test_runtime_refusal_is_an_error_even_where_the_kernel_namespaces_the_key(kb):
    assert scope(kb, "kernel.pid_max", kernel="6.14")["class"] in sj.NAMESPACED
    [v] = sj.assess(kb, "kernel.pid_max", DOCKER, floor="6.14")
    assert (v.reason, v.level, v.runtime) == ("runtime-rejected", "error", "docker")
    assert v.runtime_error and "kernel.pid_max" in v.runtime_error
    [v] = sj.assess(kb, "kernel.hostname", POD, floor="4.18")
    assert (v.reason, v.level, v.namespace) == ("runtime-rejected", "error", "uts")
    assert "hostname" in sj.remediation(v, "x", "sysctl-rejected-by-runtime")


def test_compose_needs_every_runtime_to_refuse(kb):
    [v] = sj.assess(kb, "user.max_user_namespaces", COMPOSE, floor="4.18")
    assert v.reason == "runtime-rejected" and "docker and podman" in v.message


def test_host_only_and_mirror_keys(kb):
    [v] = sj.assess(kb, "net.core.netdev_max_backlog", DOCKER, floor="4.18")
    assert (v.reason, v.klass) == ("host-only", "host-only")
    assert "no such file" in v.message  # runc's error, quoted from the knowledge base
    # Absent before 6.11, a read-only mirror since: global either way, and the message says when.
    [v] = sj.assess(kb, "net.core.rmem_max", DOCKER, floor="4.18")
    assert (v.reason, v.klass, v.since) == ("global", "host-only", "6.11")
    [v] = sj.assess(kb, "net.core.rmem_max", DOCKER, floor="6.11")
    assert (v.reason, v.klass) == ("global", "mirror")
    assert "permission denied" in v.message


def test_conntrack_max_leaks_before_5_13_and_is_a_mirror_after(kb):
    [v] = sj.assess(kb, "net.netfilter.nf_conntrack_max", POD, floor="4.18")
    assert (v.reason, v.level, v.klass, v.since) == ("global", "error", "leaking", "5.13")
    assert "changes the host" in v.message


def test_host_namespace(kb):
    host_net = sj.SpecContext(runtimes=("docker",), host_namespaces=frozenset({"net"}), where="svc")
    [v] = sj.assess(kb, "net.core.somaxconn", host_net, floor="4.18")
    assert (v.reason, v.level) == ("host-namespace", "error")
    assert "not allowed in host network namespace" in (v.runtime_error or "")
    # A global key stays a global-key error; an IPC key is not affected by host networking.
    assert reasons(sj.assess(kb, "vm.swappiness", host_net, floor="4.18")) == [("global", "error")]
    assert sj.assess(kb, "kernel.shmmax", host_net, floor="4.18") == []
    host_ipc = sj.SpecContext(runtimes=("docker",), host_namespaces=frozenset({"ipc"}))
    assert reasons(sj.assess(kb, "kernel.shmmax", host_ipc, floor="4.18")) == [("host-namespace", "error")]


def test_kubelet_safe_set(kb):
    [v] = sj.assess(kb, "net.core.somaxconn", POD, floor="4.18")
    assert (v.reason, v.level) == ("kubelet-unsafe", "warning")
    assert "--allowed-unsafe-sysctls=net.core.somaxconn" in v.message
    for safe in ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range"):
        assert sj.assess(kb, safe, POD, floor="4.18") == [], safe
    # Outside a pod the safe set does not matter.
    assert sj.assess(kb, "net.core.somaxconn", DOCKER, floor="4.18") == []


@pytest.mark.parametrize("raw, dotted", [
    ("net.core.somaxconn", "net.core.somaxconn"),
    ("net/ipv4/ip_local_port_range", "net.ipv4.ip_local_port_range"),
    ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
    ("net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
    ("  vm.swappiness ", "vm.swappiness"),
    ("{{ key }}", None), ("net.{% if x %}a{% endif %}", None), ("", None), (None, None),
    (["vm.swappiness"], None), ({"a": 1}, None), (True, None), ("vm swappiness", None),
])
def test_normalize_key(raw, dotted):
    assert sj.normalize_key(raw) == dotted


def test_templated_and_odd_keys_yield_nothing(kb):
    for key in ("{{ k }}", "{{ lookup('env', 'K') }}", None, 42, ["a"], {"b": 1}, "", "a b"):
        assert sj.assess(kb, key, DOCKER, floor="4.18") == []


def test_floor_option(monkeypatch):
    monkeypatch.delenv(sj.FLOOR_ENV, raising=False)
    assert sj.parse_floor() == "4.18"
    monkeypatch.setenv(sj.FLOOR_ENV, "5.14.0-427.el9.x86_64")
    assert sj.parse_floor() == "5.14"
    monkeypatch.setenv(sj.FLOOR_ENV, "newest")
    with pytest.raises(sj.FloorError, match=sj.FLOOR_ENV):
        sj.parse_floor()
    assert sj.parse_floor("6.1.55") == "6.1.55"


def test_remediation_is_a_ready_host_task(kb):
    [v] = sj.assess(kb, "vm.max_map_count", DOCKER, floor="4.18")
    text = sj.remediation(v, 262144, "sysctl-global-in-container")
    lead, dummy, body = text.partition("\n")
    assert "host" in lead
    [task] = yaml.safe_load(body)
    assert task["ansible.posix.sysctl"]["name"] == "vm.max_map_count"
    assert task["ansible.posix.sysctl"]["value"] == "262144"
    assert task["ansible.posix.sysctl"]["sysctl_set"] is True
    assert "sysctl-global-in-container" in task["tags"]
    assert task["when"]  # the guard that keeps it out of containers
    # No value known (a Kubernetes value left out): a variable to fill in.
    [task] = yaml.safe_load(sj.remediation(v, None, "t").partition("\n")[2])
    assert task["ansible.posix.sysctl"]["value"].startswith("{{")
    [u] = sj.assess(kb, "net.core.somaxconn", POD, floor="4.18")
    assert yaml.safe_load(sj.remediation(u, "1", "t").partition("\n")[2]) == {"allowedUnsafeSysctls": ["net.core.somaxconn"]}


def test_every_exact_key_of_the_knowledge_base(kb):
    """Every key the knowledge base lists gets a verdict consistent with its classes."""
    keys = sorted({m for entry in kb for m in entry.match if not any(c in m for c in "*?[")})
    assert len(keys) > 50
    for key in keys:
        at_floor, latest = scope(kb, key, kernel="4.18"), scope(kb, key, kernel=None)
        verdicts = sj.assess(kb, key, sj.SpecContext(), floor="4.18")  # no runtime, no host mode
        got = {v.reason for v in verdicts}
        if at_floor["class"] not in sj.NAMESPACED and latest["class"] not in sj.NAMESPACED:
            assert got <= {"global", "host-only"} and got, key
        elif (at_floor["class"] in sj.NAMESPACED) != (latest["class"] in sj.NAMESPACED):
            assert got == {"kernel-gated"}, key
        else:
            assert got == set(), key


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.text(max_size=40), st.from_regex(r"(net|kernel|vm|fs|user)[./][a-z0-9_./{} ]{0,30}"),
                     st.integers(), st.none()),
       value=st.one_of(st.none(), st.text(max_size=10), st.integers()),
       runtimes=st.lists(st.sampled_from(["docker", "podman", "kubelet", "runc", "nosuch"]), max_size=3),
       hostns=st.frozensets(st.sampled_from(["net", "ipc", "uts", "pid"])),
       floor=st.sampled_from(["3.10", "4.18", "5.13", "6.14", "9.0"]))
def test_assess_never_raises(kb, key, value, runtimes, hostns, floor):
    ctx = sj.SpecContext(runtimes=tuple(runtimes), host_namespaces=hostns, kubelet="kubelet" in runtimes)
    for verdict in sj.assess(kb, key, ctx, floor=floor, value=value):
        assert verdict.level in ("error", "warning") and verdict.message
        assert sj.remediation(verdict, value, "t")
