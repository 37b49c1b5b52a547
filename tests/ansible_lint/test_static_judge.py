"""The kernel-floor policy (plugins/plugin_utils/static_judge.py) against the real knowledge base."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import static_judge as sj
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.vocabulary import PER_NAMESPACE_CLASSES

DOCKER = sj.SpecContext(runtimes=("docker-api",))
CLI = sj.SpecContext(runtimes=("docker-cli",))
COMPOSE = sj.SpecContext(runtimes=("docker-api", "podman"))
POD = sj.SpecContext(runtimes=("kubelet",), kubelet=True, oci=("runc", "crun"))
INSIDE = sj.SpecContext(direct_write=True)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def reasons(verdicts):
    return [(v.reason, v.level) for v in verdicts]


def test_global_key_is_an_error_with_the_runtime_text(kb):
    [v] = sj.assess(kb, "vm.max_map_count", DOCKER, floor="4.18", value="262144")
    assert (v.reason, v.level, v.klass) == ("global", "error", "global")
    # The Docker API path: runc's validator, as measured (version and date), not the CLI's allowlist.
    assert "vm.max_map_count" in v.message and "the runtime rejects it" in v.message
    assert ('Docker Engine API 20.10.24 says "failed to create shim task: OCI runtime create failed: runc create '
            'failed: sysctl "vm.max_map_count" is not in a separate kernel namespace: unknown" (measured 20') in v.message
    assert "whitelisted" not in v.message
    assert "on the host" in v.message
    # The docker CLI path (docker run --sysctl): the allowlist, in each measured client's words.
    [v] = sj.assess(kb, "vm.max_map_count", CLI, floor="4.18", value="262144")
    assert "docker CLI 28.2.2 says \"invalid argument \"vm.max_map_count=262144\" for \"--sysctl\" flag: sysctl 'vm.max_map_count=262144' is not allowed\"" in v.message
    assert "docker CLI 20.10.24 says" in v.message and "is not whitelisted" in v.message


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
    assert scope(kb, "kernel.pid_max", kernel="6.14")["class"] in PER_NAMESPACE_CLASSES
    [v] = sj.assess(kb, "kernel.pid_max", DOCKER, floor="6.14")
    assert (v.reason, v.level, v.runtime) == ("runtime-rejected", "error", "docker-api")
    assert v.runtime_error and "kernel.pid_max" in v.runtime_error
    [v] = sj.assess(kb, "kernel.hostname", POD, floor="4.18")
    assert (v.reason, v.level, v.namespace) == ("runtime-rejected", "error", "uts")
    assert "hostname" in sj.remediation(v, "x", "sysctl-rejected-by-runtime")


def test_compose_needs_every_runtime_to_refuse(kb):
    [v] = sj.assess(kb, "user.max_user_namespaces", COMPOSE, floor="4.18")
    assert v.reason == "runtime-rejected" and "Docker Engine API 20.10.24 says" in v.message
    assert "podman 4.3.1 says \"Error: sysctl 'user.max_user_namespaces' is not allowed\"" in v.message
    assert "has none of its own" in v.message  # not "although the kernel keeps it per namespace"
    # kernel.shmmax is accepted by both: nothing to say.
    assert sj.assess(kb, "kernel.shmmax", COMPOSE, floor="4.18") == []


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
    host_net = sj.SpecContext(runtimes=("docker-api",), host_namespaces=frozenset({"net"}), where="svc")
    [v] = sj.assess(kb, "net.core.somaxconn", host_net, floor="4.18")
    assert (v.reason, v.level) == ("host-namespace", "error")
    assert "not allowed in host network namespace" in (v.runtime_error or "")
    # A global key stays a global-key error; an IPC key is not affected by host networking.
    assert reasons(sj.assess(kb, "vm.swappiness", host_net, floor="4.18")) == [("global", "error")]
    assert sj.assess(kb, "kernel.shmmax", host_net, floor="4.18") == []
    host_ipc = sj.SpecContext(runtimes=("docker-api",), host_namespaces=frozenset({"ipc"}))
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
        if at_floor["class"] not in PER_NAMESPACE_CLASSES and latest["class"] not in PER_NAMESPACE_CLASSES:
            assert got <= {"global", "host-only"} and got, key
        elif (at_floor["class"] in PER_NAMESPACE_CLASSES) != (latest["class"] in PER_NAMESPACE_CLASSES):
            assert got == {"kernel-gated"}, key
        else:
            assert got == set(), key


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.text(max_size=40), st.from_regex(r"(net|kernel|vm|fs|user)[./][a-z0-9_./{} ]{0,30}"),
                     st.integers(), st.none()),
       value=st.one_of(st.none(), st.text(max_size=10), st.integers()),
       runtimes=st.lists(st.sampled_from(["docker-api", "docker-cli", "podman", "kubelet", "runc", "nosuch"]), max_size=3),
       hostns=st.frozensets(st.sampled_from(["net", "ipc", "uts", "pid"])),
       floor=st.sampled_from(["3.10", "4.18", "5.13", "6.14", "9.0"]))
def test_assess_never_raises(kb, key, value, runtimes, hostns, floor):
    ctx = sj.SpecContext(runtimes=tuple(runtimes), host_namespaces=hostns, kubelet="kubelet" in runtimes)
    for verdict in sj.assess(kb, key, ctx, floor=floor, value=value):
        assert verdict.level in ("error", "warning") and verdict.message
        assert sj.remediation(verdict, value, "t")


# --------------------------------------------------------------------------- measured paths (issue 13)
def test_domainname_is_accepted_through_the_api_and_refused_by_the_cli(kb):
    api = sj.SpecContext(runtimes=("docker-api",), where="the docker_container task")
    assert sj.assess(kb, "kernel.domainname", api, floor="4.18", value="ex.internal") == []
    [v] = sj.assess(kb, "kernel.domainname", CLI, floor="4.18", value="ex.internal")
    assert (v.reason, v.level) == ("runtime-rejected", "error")
    assert "sysctl 'kernel.domainname=ex.internal' is not whitelisted" in v.message  # 20.10.24
    assert "sysctl 'kernel.domainname=ex.internal' is not allowed" in v.message      # 28.2.2
    [v] = sj.assess(kb, "kernel.hostname", api, floor="4.18")
    assert 'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field' in v.message


def test_compose_host_network_quotes_each_path(kb):
    ctx = sj.SpecContext(runtimes=("docker-api", "podman"), host_namespaces=frozenset({"net"}), where="svc")
    [v] = sj.assess(kb, "net.core.somaxconn", ctx, floor="4.18", value="1024")
    assert 'runc create failed: sysctl "net.core.somaxconn" not allowed in host network namespace' in v.message
    assert "podman 4.3.1 says \"Error: sysctl net.core.somaxconn=1024 can't be set since Network Namespace" in v.message
    assert v.message.index("Docker Engine API") < v.message.index("podman 4.3.1")


def test_podman_host_ipc_refuses_mqueue_itself_and_leaves_shmmax_to_runc(kb):
    ctx = sj.SpecContext(runtimes=("podman",), host_namespaces=frozenset({"ipc"}))
    [v] = sj.assess(kb, "fs.mqueue.msg_max", ctx, floor="4.18", value="20")
    assert "can't be set since IPC Namespace set to host" in v.message
    [v] = sj.assess(kb, "kernel.shmmax", ctx, floor="4.18", value="1")
    assert 'runc create failed: sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace' in v.message


def test_unknown_key_is_unknown_never_allowlisted(kb):
    for ctx in (DOCKER, CLI, POD):
        [v] = sj.assess(kb, "net.ipv4.foo_bar", ctx, floor="4.18", value="1")
        assert (v.reason, v.level) == ("unknown", "warning")
        assert "not a sysctl of any kernel" in v.message
        assert "allowed-unsafe-sysctls" not in v.message + sj.remediation(v, "1", "sysctl-unknown-key")
    [v] = sj.assess(kb, "net.ipv4.foo_bar", DOCKER, floor="4.18", value="1")
    assert "open /proc/sys/net/ipv4/foo_bar: no such file or directory" in v.message  # measured at container init
    # A key the knowledge names, or one under a directory no listed kernel has, is not "unknown".
    assert sj.assess(kb, "net.bridge.bridge-nf-call-iptables", DOCKER, floor="4.18") == [] or \
        all(v.reason != "unknown" for v in sj.assess(kb, "net.bridge.bridge-nf-call-iptables", DOCKER, floor="4.18"))
    assert all(v.reason != "unknown" for v in sj.assess(kb, "net.ipv4.vs.conntrack", DOCKER, floor="4.18"))
    assert sj.assess(kb, "net.ipv4.conf.lo.rp_filter", POD, floor="4.18")[0].reason == "kubelet-unsafe"


def test_vlan_dotted_interface_is_unsettable_everywhere(kb):
    for ctx in (DOCKER, CLI, POD):
        [v] = sj.assess(kb, "net.ipv4.conf.eth0.100.rp_filter", ctx, floor="4.18", value="2")
        assert (v.reason, v.level) == ("unsettable", "error")
        assert "/proc/sys/net/ipv4/conf/eth0/100/rp_filter" in v.message
        assert "net/ipv4/conf/eth0.100/rp_filter" in v.message  # the spelling that works on the host
    # The '/' spelling names the interface correctly: judged as the per-interface key it is.
    assert all(v.reason != "unsettable" for v in sj.assess(kb, "net/ipv4/conf/eth0.100/rp_filter", POD, floor="4.18"))


def test_slash_spelling_is_refused_by_the_clis_only(kb):
    [v] = sj.assess(kb, "net/ipv4/ip_forward", CLI, floor="4.18", value="1")
    assert (v.reason, v.level) == ("runtime-rejected", "error")
    assert "sysctl 'net/ipv4/ip_forward=1' is not allowed" in v.message
    podman = sj.SpecContext(runtimes=("podman",))
    assert sj.assess(kb, "net/ipv4/ip_forward", podman, floor="4.18")[0].reason == "runtime-rejected"
    assert sj.assess(kb, "net/ipv4/ip_forward", DOCKER, floor="4.18") == []  # runc >= 1.1 takes it (measured)


def test_next_id_in_a_pod_is_refused_by_the_oci_runtime(kb):
    [v] = sj.assess(kb, "kernel.shm_next_id", POD, floor="4.18")
    assert (v.reason, v.level, v.runtime) == ("runtime-rejected", "error", "runc")
    assert "passes the kubelet" in v.message and "cannot help" in v.message
    assert 'runc 1.1.5 says "runc run failed: sysctl "kernel.shm_next_id" is not in a separate kernel namespace"' in v.message
    assert "allowedUnsafeSysctls" not in sj.remediation(v, "1", "sysctl-rejected-by-runtime")


def test_kubernetes_version_option(kb, monkeypatch):
    assert sj.assess(kb, "net.ipv4.tcp_rmem", POD, floor="4.18") == []
    [v] = sj.assess(kb, "net.ipv4.tcp_rmem", POD, floor="4.18", k8s="1.31")
    assert (v.reason, v.level) == ("kubelet-unsafe", "warning")
    assert "only since Kubernetes 1.32" in v.message and "safe_sysctls.go, listed there at b0cb9cc1e0a8" in v.message
    assert sj.assess(kb, "net.ipv4.tcp_rmem", POD, floor="4.18", k8s="1.32") == []
    for key, since in (("net.ipv4.tcp_keepalive_time", "1.29"), ("net.ipv4.tcp_fin_timeout", "1.29"),
                       ("net.ipv4.ip_local_reserved_ports", "1.27")):
        minor = int(since.split(".")[1])
        assert [x.reason for x in sj.assess(kb, key, POD, floor="4.18", k8s="1.%d" % (minor - 1))] == ["kubelet-unsafe"]
        assert sj.assess(kb, key, POD, floor="4.18", k8s=since) == []
    monkeypatch.setenv(sj.K8S_ENV, "1.28")
    assert [x.reason for x in sj.assess(kb, "net.ipv4.tcp_fin_timeout", POD, floor="4.18")] == ["kubelet-unsafe"]
    monkeypatch.setenv(sj.K8S_ENV, "one.two")
    with pytest.raises(sj.K8sVersionError, match="NSGUARD_SYSCTL_K8S_VERSION='one.two'"):
        sj.assess(kb, "net.ipv4.tcp_fin_timeout", POD, floor="4.18")


def test_docker_per_interface_keys_are_version_gated_on_a_bridge(kb):
    bridge = sj.SpecContext(runtimes=("docker-api",), docker_bridge=True)
    [v] = sj.assess(kb, "net.ipv4.conf.eth0.rp_filter", bridge, floor="4.18", value="2")
    assert (v.reason, v.level) == ("runtime-version-gated", "warning")
    assert "must be supplied using driver option 'com.docker.network.endpoint.sysctls'" in v.message
    assert "container_routes.go" in v.message
    assert "net.ipv4.conf.IFNAME.rp_filter=2" in sj.remediation(v, "2", "sysctl-runtime-version-gated")
    assert sj.assess(kb, "net.ipv4.conf.eth0.rp_filter", DOCKER, floor="4.18") == []  # network none/host


def test_podman_joining_the_host_netns_by_path(kb):
    """podman --network ns:/proc/1/ns/net: crun does not notice the host's namespace and
    writes there (measured, host-net-path rows); the verdict says what each path did."""
    joined = frozenset({"net"})
    ctx = sj.SpecContext(runtimes=("podman",), host_namespaces=joined, joined_by_path=joined, where="t")
    [v] = sj.assess(kb, "net.core.somaxconn", ctx, floor="4.18", value="4096")
    assert v.reason == sj.HOST_NAMESPACE and v.level == "error"
    assert "joins the host's net namespace by path" in v.message
    assert "podman with crun 4.3.1 accepts it and writes the host's own value (measured 20" in v.message
