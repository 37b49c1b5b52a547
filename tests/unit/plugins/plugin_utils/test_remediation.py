"""The remediation renderer: the host guard evaluated by Ansible's own template engine, the
sysctl.d file chosen, and the container-spec tasks per runtime."""
from __future__ import annotations

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import remediation as rem
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import container_specs as specs

INIT = {"user": 4026531837, "pid": 4026531836}


def guard(facts, **variables):
    templar = Templar(loader=DataLoader(), variables=dict(variables, ansible_facts=facts))
    return templar.evaluate_conditional(trust_as_template(rem.HOST_GUARD))


def ns_stat(pid, user):
    """What ``ansible.builtin.stat`` of /proc/self/ns/{pid,user} (follow) registers in a loop."""
    return {"results": [{"item": "pid", "stat": {"exists": True, "inode": pid}},
                        {"item": "user", "stat": {"exists": True, "inode": user}}]}


@pytest.mark.parametrize("stat,runs", [
    (ns_stat(4026531836, 4026531837), True),
    (ns_stat(4026532248, 4026531837), False),
    ({"results": [{"item": "pid", "skipped": True}, {"item": "user", "skipped": True}]}, False),
])
def test_host_guard_from_the_registered_namespace_stat(stat, runs):
    """The fleet remediation playbook stats /proc/self/ns first; that beats Ansible's facts
    (this VM's stray /.dockerenv makes them say docker)."""
    docker_guess = {"virtualization_type": "docker", "virtualization_role": "guest",
                    "virtualization_tech_guest": ["container", "docker"]}
    assert guard(docker_guess, **{rem.NS_STAT_VAR: stat}) is runs


@pytest.mark.parametrize("facts,runs", [
    ({"nsguard_sysctl": {"host": {"ns": INIT}}}, True),
    # inside a docker/podman/LXC container: a pid namespace of its own
    ({"nsguard_sysctl": {"host": {"ns": dict(INIT, pid=4026532248)}}}, False),
    # a user-namespaced container
    ({"nsguard_sysctl": {"host": {"ns": dict(INIT, user=4026532250)}}}, False),
    # the nsguard facts win over Ansible's: this test VM has a stray /.dockerenv
    ({"nsguard_sysctl": {"host": {"ns": INIT}}, "virtualization_type": "docker", "virtualization_role": "guest",
      "virtualization_tech_guest": ["container", "docker"]}, True),
    # without nsguard facts, Ansible's virtual facts
    ({"virtualization_type": "docker", "virtualization_role": "guest",
      "virtualization_tech_guest": ["container", "docker"]}, False),
    ({"virtualization_type": "lxc", "virtualization_role": "guest", "virtualization_tech_guest": ["lxc", "container"]},
     False),
    # a container host that is itself a VM
    ({"virtualization_type": "kvm", "virtualization_role": "guest", "virtualization_tech_guest": ["kvm"]}, True),
    # an OpenVZ host (type openvz, role host)
    ({"virtualization_type": "openvz", "virtualization_role": "host", "virtualization_tech_guest": []}, True),
    # a container seen only through tech_guest (cgroup v2, custom type)
    ({"virtualization_type": "kvm", "virtualization_role": "guest", "virtualization_tech_guest": ["container", "kvm"]},
     False),
    # no facts at all: fail closed
    ({}, False),
])
def test_host_guard(facts, runs):
    assert guard(facts) is runs


def test_host_task_shape():
    task = rem.host_sysctl_task("NSG003", "net.ipv4.tcp_rmem", "4096\t87380\t6291456", why="x needs it")
    assert task["name"] == "NSG003 net.ipv4.tcp_rmem=4096 87380 6291456 on the host (x needs it)"
    assert task["ansible.posix.sysctl"] == {
        "name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456", "state": "present",
        "sysctl_file": "/etc/sysctl.d/90-nsguard-net.ipv4.tcp_rmem.conf", "sysctl_set": True, "reload": True}
    assert task["when"] == rem.HOST_GUARD and task["tags"] == ["nsguard", "NSG003", "nsguard_host"]


@pytest.mark.parametrize("source,expected", [
    (None, "/etc/sysctl.d/90-nsguard-vm.max_map_count.conf"),
    # the administrator's own file: fix the value where it is set
    ("/etc/sysctl.d/99-es.conf", "/etc/sysctl.d/99-es.conf"),
    ("/etc/sysctl.conf", "/etc/sysctl.conf"),
    # a vendor file that sorts before ours: ours is applied after it anyway
    ("/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/90-nsguard-vm.max_map_count.conf"),
    # one that sorts after ours: a name right after it
    ("/usr/lib/sysctl.d/99-sysctl.conf", "/etc/sysctl.d/99-sysctl.zz-nsguard-vm.max_map_count.conf"),
    ("/run/sysctl.d/zz.conf", "/etc/sysctl.d/zz.zz-nsguard-vm.max_map_count.conf"),
])
def test_sysctl_file_for(source, expected):
    persisted = {"keys": {"vm.max_map_count": {"value": "1", "file": source}}} if source else {}
    chosen = rem.sysctl_file_for("vm.max_map_count", persisted)
    assert chosen == expected
    if source and not source.startswith("/etc/"):
        assert chosen.rsplit("/", 1)[1] > source.rsplit("/", 1)[1]


@given(st.from_regex(r"[0-9a-z][0-9a-z._-]{0,20}\.conf", fullmatch=True))
def test_own_file_always_sorts_after_a_vendor_file(vendor):
    chosen = rem.sysctl_file_for("k.x", {"keys": {"k.x": {"file": "/usr/lib/sysctl.d/" + vendor}}})
    assert chosen.startswith("/etc/sysctl.d/") and chosen.rsplit("/", 1)[1] > vendor


def test_options_and_custom_dir():
    options = rem.RemediationOptions.from_mapping({"sysctl_d_dir": "/tmp/x/", "file_prefix": "60"})
    assert rem.sysctl_file_for("a.b", None, options) == "/tmp/x/60-nsguard-a.b.conf"
    with pytest.raises(ValueError, match="unknown remediation option"):
        rem.RemediationOptions.from_mapping({"dir": "/x"})


def test_docker_and_podman_spec_tasks_keep_existing_sysctls():
    identity = {"runtime": "docker", "name": "web", "image": "nginx:1"}
    [task] = rem.container_sysctl_tasks("NSG004", identity, {"net.core.somaxconn": "8192"},
                                        requested={"net.ipv4.ip_local_port_range": "1024\t65000"})
    assert task["community.docker.docker_container"] == {
        "name": "web", "state": "started", "image": "nginx:1",
        "sysctls": {"net.core.somaxconn": "8192", "net.ipv4.ip_local_port_range": "1024 65000"}}
    assert task["when"] == rem.SPEC_GUARD
    [task] = rem.container_sysctl_tasks("NSG001", dict(identity, runtime="podman"), {"vm.max_map_count": None},
                                        requested={"vm.max_map_count": "262144", "net.core.somaxconn": "1"})
    assert task["containers.podman.podman_container"]["sysctl"] == {"net.core.somaxconn": "1"}
    assert "without vm.max_map_count" in task["name"]


def test_lxc_netns_and_unknown():
    tasks = rem.container_sysctl_tasks("NSG001", {"runtime": "lxc", "name": "c1"}, {"vm.max_map_count": None},
                                       options=rem.RemediationOptions(lxc_path="/srv/lxc"))
    assert tasks[0]["ansible.builtin.lineinfile"] == {"path": "/srv/lxc/c1/config",
                                                      "regexp": r"^\s*lxc\.sysctl\.vm\.max_map_count\s*=",
                                                      "state": "absent"}
    [task] = rem.container_sysctl_tasks("NSG004", {"runtime": "netns", "netns_name": "blue"}, {"net.core.somaxconn": "9"})
    assert task["ansible.builtin.command"]["argv"] == ["ip", "netns", "exec", "blue", "sh", "-c", rem.NETNS_SCRIPT,
                                                       "nsguard", "net.core.somaxconn=9"]
    assert task["changed_when"] == "'changed ' in %s.stdout" % task["register"]
    # `ip netns exec` enters only the network namespace: a non-net key would be the host's
    assert rem.container_sysctl_tasks("NSG009", {"runtime": "netns", "netns_name": "blue"}, {"kernel.msgmax": "9"}) == []
    # a key that is the host's is never written into a spec, nor kept from the container's requests
    [task] = rem.container_sysctl_tasks("NSG004", {"runtime": "docker", "name": "c"}, {"net.core.somaxconn": "9"},
                                        requested={"vm.max_map_count": "1", "net.ipv4.tcp_fin_timeout": "5"},
                                        never=["vm.max_map_count"])
    assert task["community.docker.docker_container"]["sysctls"] == {"net.core.somaxconn": "9",
                                                                    "net.ipv4.tcp_fin_timeout": "5"}
    assert rem.container_sysctl_tasks("NSG009", {"runtime": "docker", "name": "c"}, {"vm.max_map_count": "9"},
                                      never=["vm.max_map_count"]) == []
    assert rem.container_sysctl_tasks("NSG004", {"runtime": "unknown"}, {"a.b": "1"}) == []
    assert rem.container_sysctl_tasks("NSG004", {"runtime": "runc", "name": "r"}, {"a.b": "1"}) == []


@pytest.mark.parametrize("pod,kind,owner", [
    ("web-5d8f7c9b6-x7k2p", "Deployment", "web"),
    ("node-exporter-x7k2p", "DaemonSet", "node-exporter"),
    ("db-0", "StatefulSet", "db"),
    ("standalone", "Pod", "standalone"),
])
def test_k8s_patch_of_the_owner(pod, kind, owner):
    identity = {"runtime": "containerd", "pod_name": pod, "pod_namespace": "prod", "name": "app"}
    [task] = rem.container_sysctl_tasks("NSG009", identity, {"net.core.somaxconn": "1024"})
    args = task["kubernetes.core.k8s"]
    assert (args["kind"], args["name"], args["namespace"], args["state"]) == (kind, owner, "prod", "patched")
    spec = args["definition"]["spec"] if kind == "Pod" else args["definition"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["sysctls"] == [{"name": "net.core.somaxconn", "value": "1024"}]
    # no connection keyword: the fleet playbook runs k8s tasks in a controller play of their own
    assert "delegate_to" not in task and task["when"] == rem.SPEC_GUARD


def test_privilege_tasks():
    [task] = rem.container_privilege_tasks("NSG006", {"runtime": "docker", "name": "t", "image": "i"}, privileged=True,
                                           proc_sys_rw=False, caps=["CAP_SYS_ADMIN", "CAP_CHOWN"])
    assert task["community.docker.docker_container"] == {"name": "t", "state": "started", "image": "i",
                                                         "privileged": False, "cap_drop": ["SYS_ADMIN"]}
    tasks = rem.container_privilege_tasks("NSG006", {"runtime": "lxc", "name": "c"}, privileged=True,
                                          proc_sys_rw=True, caps=["CAP_NET_ADMIN"])
    assert [t["ansible.builtin.lineinfile"]["line"] for t in tasks] == [
        "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed", "lxc.cap.drop = net_admin"]
    [task] = rem.container_privilege_tasks("NSG006", {"runtime": "cri-o", "pod_name": "a-0", "name": "c",
                                                      "labels": {"io.kubernetes.container.name": "main"}},
                                           privileged=False, proc_sys_rw=True, caps=[])
    container = task["kubernetes.core.k8s"]["definition"]["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "main", "securityContext": {"privileged": False, "allowPrivilegeEscalation": False,
                                                             "procMount": "Default"}}


@pytest.mark.parametrize("definition,path", [
    ({}, ["spec"]),
    ({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}, "metadata": {"x": 1}}, ["spec", "template", "spec"]),
])
def test_k8s_pod_spec_is_read_where_it_is_written(definition, path):
    """One place knows where a patch's pod spec sits (a Pod's spec, a workload's template): the
    task builder writes it with container_specs.with_pod_spec, the playbook's merge reads it with pod_spec_in."""
    pod = {"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "4096"}]}}
    written = specs.with_pod_spec(definition, pod)
    found = written
    for part in path:
        found = found[part]
    assert found == pod and specs.pod_spec_in(written) == pod
    assert {k: v for k, v in written.items() if k != "spec"} == {k: v for k, v in definition.items() if k != "spec"}
    assert written.get("spec", {}).get("template", {}).get("metadata") == (
        definition.get("spec", {}).get("template", {}).get("metadata"))
