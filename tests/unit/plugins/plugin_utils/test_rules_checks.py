"""Each built-in check beyond its catalog examples: the branches a real host reaches (runtime
errors quoted from the knowledge base, conflicting workloads, userns, thresholds, writers)."""
from __future__ import annotations

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge

CATALOG = rule_catalog.load_catalog()
KB = load_knowledge()
PROFILES, dummy = ex.load_profiles()


def lint(partial, classes=None, expectations=(), rule=None, **kwargs):
    facts = rule_catalog.example_facts(partial)
    errors = []
    found = evaluator.evaluate(facts, rule_catalog.example_classification(classes), CATALOG, list(expectations), host="h",
                       kb=KB, errors=errors, **kwargs)
    assert errors == []
    return [f for f in found if rule is None or f["rule"] == rule]


def user(document):
    found, errors = ex.expectations_from_data(document, "test")
    assert errors == []
    return found


HOST_65530 = {"keys": {"vm.max_map_count": "65530"}, "modes": {"vm.max_map_count": "0644"}}


# --------------------------------------------------------------------------- NSG001
def test_nsg001_quotes_the_docker_error_from_the_knowledge_base():
    found = lint({"host": HOST_65530, "namespace_sets": [
        {"identity": {"runtime": "docker", "name": "es"}, "requested": {"vm.max_map_count": "262144"}}]},
        {"vm.max_map_count": "global"}, rule="NSG001")
    assert len(found) == 1
    # A running Docker container came through the Engine API: runc's validator, as measured.
    assert ('Docker Engine API 20.10.24 says "failed to create shim task: OCI runtime create failed: runc create '
            'failed: sysctl "vm.max_map_count" is not in a separate kernel namespace: unknown" (measured 20'
            in found[0]["message"])
    assert "whitelisted" not in found[0]["message"]  # the docker CLI's allowlist is not on this path
    assert 'sysctl "vm.max_map_count" is not in a separate kernel namespace' in found[0]["details"]["runtime_error"]


def test_nsg001_mirror_fails_with_eacces_and_privileged_writes_reach_the_host():
    found = lint({"host": {"keys": {"net.core.rmem_max": "212992"}, "modes": {"net.core.rmem_max": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "podman", "name": "p"}, "requested": {"net.core.rmem_max": "8388608"}}]},
        {"net.core.rmem_max": "mirror"}, rule="NSG001")
    assert "permission denied" in found[0]["message"]
    found = lint({"host": HOST_65530, "namespace_sets": [
        {"identity": {"runtime": "unknown"}, "requested": {"vm.max_map_count": "262144"},
         "privileges": {"privileged": True, "userns_is_host": True}}]},
        {"vm.max_map_count": "global"}, rule="NSG001")
    assert "changes the host for every container" in found[0]["message"]


def test_nsg001_never_lowers_a_global_key_for_everybody():
    found = lint({"host": {"keys": {"vm.max_map_count": "1048576"}, "modes": {"vm.max_map_count": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "lxc", "name": "x"}, "requested": {"vm.max_map_count": "262144"}}]},
        {"vm.max_map_count": "global"}, rule="NSG001")
    tasks = found[0]["remediation"]["tasks"]
    assert [next(iter(set(t) & {"ansible.posix.sysctl", "ansible.builtin.lineinfile"})) for t in tasks] == [
        "ansible.builtin.lineinfile"]
    assert "higher value" in found[0]["remediation"]["note"]


# --------------------------------------------------------------------------- NSG002
def test_nsg002_from_the_view_when_the_class_is_unknown():
    """A key absent in the set's namespace is host-only for that set even without a class."""
    found = lint({"host": {"keys": {"net.ipv4.tcp_syncookies": "1"}, "modes": {"net.ipv4.tcp_syncookies": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "runc", "name": "r"}, "requested": {"net.ipv4.tcp_syncookies": "1"},
         "view": {"absent": ["net.ipv4.tcp_syncookies"]}}]},
        {"net.ipv4.tcp_syncookies": {"class": "isolated", "namespace": "net"}}, rule="NSG002")
    assert len(found) == 1 and "no such file or directory" in found[0]["message"]
    # the host already has the value and runc has no spec Ansible edits: no task, a note
    assert found[0]["remediation"]["tasks"] == []
    assert "already has net.ipv4.tcp_syncookies=1" in found[0]["remediation"]["note"]


def test_nsg002_names_the_real_path_of_a_vlan_interface_key():
    """``eth0/100`` in a key is the interface ``eth0.100``: the path the kernel does not have is
    ``/proc/sys/net/ipv4/conf/eth0.100/rp_filter``, not ``.../eth0/100/rp_filter``."""
    key = "net.ipv4.conf.eth0/100.rp_filter"
    found = lint({"host": {"keys": {key: {"value": "1", "mode": "0644"}}}, "namespace_sets": [
        {"identity": {"runtime": "unknown", "name": "v"}, "requested": {key: "2"}, "view": {"absent": [key]}}]},
        {key: {"class": "isolated", "namespace": "net"}}, rule="NSG002")
    assert len(found) == 1
    assert "open /proc/sys/net/ipv4/conf/eth0.100/rp_filter: no such file or directory" in found[0]["message"]


# --------------------------------------------------------------------------- NSG003
def sets_es_and_sonar():
    return [{"id": "es", "identity": {"runtime": "docker", "name": "es", "image": "elasticsearch:8.15.0"}},
            {"id": "sq", "identity": {"runtime": "docker", "name": "sq", "image": "sonarqube:10-community"}}]


def test_nsg003_one_host_value_satisfies_every_workload():
    found = lint({"host": HOST_65530, "namespace_sets": sets_es_and_sonar()}, {"vm.max_map_count": "global"},
                 PROFILES, rule="NSG003")
    by_set = {f["set_id"]: f for f in found if f["key"] == "vm.max_map_count"}
    assert by_set["es"]["severity"] == "error" and by_set["sq"]["severity"] == "error"
    # ES wants >=262144 (error) and >=1048576 (warning), SonarQube >=524288: 1048576 meets all
    for finding in by_set.values():
        assert finding["details"]["target"] == "1048576"
        assert finding["remediation"]["tasks"][0]["ansible.posix.sysctl"]["value"] == "1048576"
    assert by_set["es"]["values"]["expected"] == ">=262144 and >=1048576"


def test_nsg003_severity_of_the_failed_expectation_only():
    host = {"keys": {"vm.max_map_count": "262144"}, "modes": {"vm.max_map_count": "0644"}}
    found = lint({"host": host, "namespace_sets": sets_es_and_sonar()[:1]}, {"vm.max_map_count": "global"},
                 PROFILES, rule="NSG003")
    assert [(f["severity"], f["values"]["expected"]) for f in found] == [("warning", ">=1048576")]


def test_nsg003_conflicting_workloads_get_no_host_task():
    redis = {"id": "r", "identity": {"runtime": "podman", "name": "cache", "image": "docker.io/library/redis:7"}}
    pg = {"id": "p", "identity": {"runtime": "podman", "name": "pg-main", "image": "postgres:16"}}
    site = user({"profile": "pg-strict", "match": {"name": "pg-*"}, "expect": {"vm.overcommit_memory": "==2"}})
    found = lint({"host": {"keys": {"vm.overcommit_memory": "0"}, "modes": {"vm.overcommit_memory": "0644"}},
                  "namespace_sets": [redis, pg]}, {"vm.overcommit_memory": "global"}, PROFILES + site, rule="NSG003")
    assert len(found) == 2
    for finding in found:
        assert finding["remediation"]["tasks"] == [] and finding["details"]["conflict"] is True
        assert "no single value satisfies every workload" in finding["remediation"]["note"]


def test_nsg003_user_expectation_on_an_unidentified_process():
    site = user({"profile": "search", "match": {"cmdline": r"search-node\s+--serve"},
                 "expect": [{"key": "vm.max_map_count", "min": 262144, "severity": "warning", "why": "ours"}]})
    found = lint({"host": HOST_65530, "namespace_sets": [
        {"init": {"pid": 77, "comm": "java", "cmdline": "java -jar search-node --serve"}}]},
        {"vm.max_map_count": "global"}, site, rule="NSG003")
    assert [(f["severity"], f["container"]["label"]) for f in found] == [("warning", "java[77]")]
    assert "ours" in found[0]["message"]


# --------------------------------------------------------------------------- NSG004
SOMAXCONN_TUNED = {"keys": {"net.core.somaxconn": "8192"}, "modes": {"net.core.somaxconn": "0644"}}
NS_SOMAX = {"net.core.somaxconn": {"class": "isolated", "namespace": "net"}}


def test_nsg004_not_for_sets_sharing_the_hosts_netns_or_only_probe_through_a_userns():
    shared = {"identity": {"runtime": "docker", "name": "hostnet"}, "differs_from_host": ["ipc", "uts", "pid"],
              "host_network": True, "view": {"differs": {}}}
    rootless = {"identity": {"runtime": "podman", "name": "rl"}, "differs_from_host": ["net", "user"],
                "view": {"differs": {"net.core.somaxconn": {"host": "8192", "container": "4096"}}}}
    found = lint({"host": SOMAXCONN_TUNED, "probe": {"value_differs": ["net.core.somaxconn"]},
                  "namespace_sets": [shared, rootless]}, NS_SOMAX, rule="NSG004")
    assert found == []
    # persisted tuning counts for the rootless set too
    persisted = dict(SOMAXCONN_TUNED, persisted={"keys": {"net.core.somaxconn": {
        "value": "8192", "file": "/etc/sysctl.d/1.conf", "line": 2}}})
    found = lint({"host": persisted, "namespace_sets": [rootless]}, NS_SOMAX, rule="NSG004")
    assert len(found) == 1 and found[0]["details"]["tuned_by"] == ["persisted in /etc/sysctl.d/1.conf:2"]
    assert found[0]["remediation"]["tasks"][0]["containers.podman.podman_container"]["sysctl"] == {
        "net.core.somaxconn": "8192"}


def test_nsg004_inherited_keys_are_info_and_engine_keys_ignored():
    host = {"keys": {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.ping_group_range": "0 10"},
            "modes": {"net.ipv4.tcp_rmem": "0644", "net.ipv4.ping_group_range": "0644"},
            "persisted": {"keys": {"net.ipv4.tcp_rmem": {"value": "4096 131072 6291456", "file": "/etc/sysctl.conf",
                                                         "line": 1},
                                   "net.ipv4.ping_group_range": {"value": "0 10", "file": "/etc/sysctl.conf",
                                                                 "line": 2}}}}
    nset = {"identity": {"runtime": "docker", "name": "old"},
            "view": {"differs": {"net.ipv4.tcp_rmem": {"host": "4096 131072 6291456", "container": "4096 87380 6291456"},
                                 "net.ipv4.ping_group_range": {"host": "0 10", "container": "0 2147483647"}}}}
    found = lint({"host": host, "namespace_sets": [nset]},
                 {"net.ipv4.tcp_rmem": {"class": "isolated-inherited", "namespace": "net"},
                  "net.ipv4.ping_group_range": {"class": "isolated", "namespace": "net"}}, rule="NSG004")
    assert [(f["key"], f["severity"]) for f in found] == [("net.ipv4.tcp_rmem", "info")]
    assert "copied from the host only when the namespace is created" in found[0]["message"]


# --------------------------------------------------------------------------- NSG005
def conntrack(max_, buckets, counts, cpus=2):
    per = [{"net": 100 + i, "count": c, "host": i == 0, "sets": ["s%d" % i] if i else []}
           for i, c in enumerate(counts)]
    sets = [{"id": "s%d" % i, "identity": {"runtime": "docker", "name": "c%d" % i}, "ns": {"net": 100 + i}}
            for i in range(1, len(counts))]
    return {"host": {"cpus": cpus}, "conntrack": {"loaded": True, "max": max_, "buckets": buckets,
                                                  "per_netns": per}, "namespace_sets": sets}


def test_nsg005_thresholds_top_list_and_the_sum_above_max():
    found = lint(conntrack(1000, 100, [10, 950, 760, 500, 400]), rule="NSG005", params={"NSG005": {"top": 3}})
    by_check = {}
    for finding in found:
        by_check.setdefault(finding["details"]["check"], []).append(finding)
    usage = {f["container"]["name"]: f["severity"] for f in by_check["netns-usage"]}
    assert usage == {"c1": "error", "c2": "warning"}
    shared = by_check["shared-table"][0]
    assert shared["severity"] == "error"  # 2620 entries in 100 buckets, 26 per bucket > 8
    assert "exceed nf_conntrack_max (1000)" in shared["message"]
    assert [t["label"] for t in shared["details"]["top"]] == ["c1", "c2", "c3"]
    sizing = by_check["sizing"][0]
    assert sizing["values"]["expected"] == ">=131072"
    assert sizing["remediation"]["tasks"][0]["ansible.posix.sysctl"]["value"] == "131072"


def test_nsg005_sizing_parameters_and_cap():
    found = lint(conntrack(200000, 65536, [5], cpus=8), rule="NSG005")
    assert found[0]["details"]["sizing"] == 262144  # max(32768 x 8, 131072)
    found = lint(conntrack(200000, 65536, [5], cpus=8), rule="NSG005", params={"NSG005": {"cap": 150000}})
    assert found == []
    assert lint({"conntrack": {"loaded": False}}, rule="NSG005") == []


# --------------------------------------------------------------------------- NSG006
def test_nsg006_net_admin_alone_is_a_warning_naming_leaking_keys():
    facts = {"host": {"keys": {"net.netfilter.nf_hooks_lwtunnel": "0", "vm.max_map_count": "65530"},
                      "modes": {"net.netfilter.nf_hooks_lwtunnel": "0644", "vm.max_map_count": "0644"}},
             "namespace_sets": [{"identity": {"runtime": "docker", "name": "cni"},
                                 "privileges": {"capabilities": ["CAP_NET_ADMIN"], "userns_is_host": True}}]}
    classes = {"net.netfilter.nf_hooks_lwtunnel": {"class": "leaking", "namespace": "net"},
               "vm.max_map_count": "global"}
    found = lint(facts, classes, rule="NSG006")
    assert found[0]["severity"] == "warning"
    assert found[0]["details"]["exposed_keys"] == ["net.netfilter.nf_hooks_lwtunnel"]
    assert "net.netfilter.nf_hooks_lwtunnel leaks from a container network namespace" in found[0]["message"]
    assert found[0]["remediation"]["tasks"][0]["community.docker.docker_container"]["cap_drop"] == ["NET_ADMIN"]
    assert lint(facts, classes, rule="NSG006", params={"NSG006": {"allow": ["cn?"]}}) == []


# --------------------------------------------------------------------------- NSG007
def test_nsg007_host_ipc_quotes_runc():
    found = lint({"host": {"keys": {"kernel.shmmax": "1"}, "modes": {"kernel.shmmax": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "docker", "name": "shm"}, "host_ipc": True, "differs_from_host": ["net", "uts", "pid"],
         "requested": {"kernel.shmmax": "1073741824"}}]},
        {"kernel.shmmax": {"class": "isolated", "namespace": "ipc"}}, rule="NSG007")
    assert len(found) == 1 and found[0]["namespace"] == "ipc"
    assert "is not allowed in the hosts ipc namespace" in found[0]["message"]


# --------------------------------------------------------------------------- NSG008
def test_nsg008_names_writers_and_skips_isolated_by_default():
    host = {"keys": {"vm.swappiness": "10", "net.core.somaxconn": "4096"},
            "modes": {"vm.swappiness": "0644", "net.core.somaxconn": "0644"},
            "persisted": {"keys": {"vm.swappiness": {"value": "60", "file": "/run/sysctl.d/a.conf", "line": 3},
                                   "net.core.somaxconn": {"value": "1024", "file": "/etc/sysctl.conf", "line": 1},
                                   "net.ipv4.conf.*.rp_filter": {"value": "2", "file": "/etc/sysctl.conf", "line": 2}}}}
    sets = [{"identity": {"runtime": "podman", "name": "priv"}, "privileges": {"privileged": True, "userns_is_host": True}},
            {"identity": {"runtime": "podman", "name": "plain"}}]
    classes = {"vm.swappiness": "global", "net.core.somaxconn": {"class": "isolated", "namespace": "net"}}
    found = lint({"host": host, "namespace_sets": sets}, classes, rule="NSG008")
    assert [f["key"] for f in found] == ["vm.swappiness"]
    assert found[0]["details"]["writers"] == ["priv"] and "Containers able to have changed it: priv." in found[0]["message"]
    task = found[0]["remediation"]["tasks"][0]["ansible.posix.sysctl"]
    # /run/sysctl.d is not ours to edit: a file of our own, named to sort after a.conf
    assert task["value"] == "60" and task["sysctl_file"] == "/etc/sysctl.d/a.zz-nsguard-vm.swappiness.conf"
    assert task["reload"] is False
    found = lint({"host": host, "namespace_sets": sets}, classes, rule="NSG008",
                 params={"NSG008": {"include_isolated": True}})
    assert sorted(f["key"] for f in found) == ["net.core.somaxconn", "vm.swappiness"]


# --------------------------------------------------------------------------- NSG009
@pytest.mark.parametrize("runtime,module,option", [
    ("docker", "community.docker.docker_container", "sysctls"),
    ("podman", "containers.podman.podman_container", "sysctl"),
])
def test_nsg009_sets_the_key_in_the_containers_spec(runtime, module, option):
    found = lint({"host": {"keys": {"net.core.somaxconn": "4096"}, "modes": {"net.core.somaxconn": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": runtime, "name": "cache", "image": "valkey/valkey:8"},
         "requested": {"net.ipv4.tcp_keepalive_time": "60"},
         "view": {"differs": {"net.core.somaxconn": {"host": "4096", "container": "128"}}}}]},
        NS_SOMAX, PROFILES, rule="NSG009")
    assert len(found) == 1
    args = found[0]["remediation"]["tasks"][0][module]
    # the spec keeps what the container already asks for
    assert args[option] == {"net.core.somaxconn": "511", "net.ipv4.tcp_keepalive_time": "60"}
    assert args["name"] == "cache" and args["image"] == "valkey/valkey:8"


def test_nsg009_on_the_hosts_network_says_to_set_it_on_the_host():
    """A container on the host's network: its somaxconn is the host's, so no spec task is given,
    and the note says so instead of blaming the runtime."""
    found = lint({"host": {"keys": {"net.core.somaxconn": "128"}, "modes": {"net.core.somaxconn": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "docker", "name": "cache", "image": "valkey/valkey:8"},
         "host_network": True, "differs_from_host": ["ipc", "uts", "pid"], "shares_host": ["net", "user"],
         "view": {"differs": {}}}]},
        NS_SOMAX, PROFILES, rule="NSG009")
    assert len(found) == 1
    remediation = found[0]["remediation"]
    assert remediation["tasks"] == []
    assert "shares with the host" in remediation["note"] and "set it on the host" in remediation["note"]
    assert "no Ansible module edits" not in remediation["note"]


# --------------------------------------------------------------------------- NSG010
def test_nsg010_and_the_static_judge_decide_a_name_alike():
    """The facts rule quotes the static judge's decision for the same key on the same path."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import static_judge as sj
    requested = {"net.ipv4.conf.eth0.100.rp_filter": "2", "net.ipv4.foo_bar": "1"}
    found = lint({"host": {"keys": {}}, "namespace_sets": [
        {"identity": {"runtime": "podman", "name": "gw"}, "requested": requested}]}, rule="NSG010")
    by_key = {f["key"]: f for f in found}
    assert set(by_key) == set(requested)
    for key, value in requested.items():
        [verdict] = sj.assess(KB, key, sj.SpecContext(runtimes=("podman",), where="the spec of gw"), value=value)
        assert verdict.message in by_key[key]["message"] and by_key[key]["severity"] == verdict.level
    assert by_key["net.ipv4.foo_bar"]["details"]["reason"] == "unknown"
    # podman, measured with runc and with crun: both failures quoted
    assert 'podman with crun 4.3.1 says "Error: crun: open /proc/sys/net/ipv4/foo_bar' in by_key["net.ipv4.foo_bar"]["message"]
    assert "no runtime can set this key" in by_key["net.ipv4.conf.eth0.100.rp_filter"]["message"]
    # the spec task drops the key no runtime can write
    [task] = by_key["net.ipv4.conf.eth0.100.rp_filter"]["remediation"]["tasks"]
    assert task["containers.podman.podman_container"]["sysctl"] == {"net.ipv4.foo_bar": "1"}


def test_a_slash_spelled_request_is_judged_by_its_dotted_name():
    """Bug (issue 13): net/ipv4/ip_forward, accepted by the Docker Engine API and runc, was
    classified as an unknown global key and reported as refused (NSG001)."""
    found = lint({"host": {"keys": {"net.ipv4.ip_forward": "1"}, "modes": {"net.ipv4.ip_forward": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "docker", "name": "vpn"}, "requested": {"net/ipv4/ip_forward": "1"}}]},
        {"net.ipv4.ip_forward": {"class": "isolated", "namespace": "net"}})
    assert [f["rule"] for f in found if f.get("key") in ("net/ipv4/ip_forward", "net.ipv4.ip_forward")] == []
    # podman refuses the '/' spelling itself: the facts rule says so, and the fix is the dotted name
    found = lint({"host": {"keys": {"net.ipv4.ip_forward": "1"}, "modes": {"net.ipv4.ip_forward": "0644"}}, "namespace_sets": [
        {"identity": {"runtime": "podman", "name": "vpn"}, "requested": {"net/ipv4/ip_forward": "1"}}]},
        {"net.ipv4.ip_forward": {"class": "isolated", "namespace": "net"}}, rule="NSG010")
    [finding] = found
    assert "Error: sysctl 'net/ipv4/ip_forward' is not allowed" in finding["message"]
    [task] = finding["remediation"]["tasks"]
    assert task["containers.podman.podman_container"]["sysctl"] == {"net.ipv4.ip_forward": "1"}


def test_both_judges_word_a_refused_global_key_alike():
    """One place for the runtime-consequence prose (plugin_utils/consequence.py)."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import static_judge as sj
    [finding] = lint({"host": HOST_65530, "namespace_sets": [
        {"identity": {"runtime": "docker", "name": "es"}, "requested": {"vm.max_map_count": "262144"}}]},
        {"vm.max_map_count": "global"}, rule="NSG001")
    [verdict] = sj.assess(KB, "vm.max_map_count", sj.SpecContext(runtimes=("docker-api",)), value="262144")
    phrase = "the runtime rejects it at deploy time: Docker Engine API 20.10.24 says"
    assert phrase in finding["message"] and phrase in verdict.message
