"""Synthetic facts and findings in the shapes of docs/facts.md and docs/findings.md.

Used by the report unit tests, the end-to-end playbook tests (as distinct per-host facts for
localhost aliases) and bench/bench_reports.py. Deterministic for a given seed.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import remediation as rem

HOSTILE_CMDLINE = "<script>document.title='pwned'</script> --flag"
HOSTILE_LABEL = {"team": "| a | b |\n|---|---|\n| **x** | [y](http://evil.example/) |", "owner": "<img src=x onerror=alert(1)>"}
HOSTILE_NAME = "web{{ lookup('pipe','id') }}<b>1</b>"

IMAGES = ["docker.elastic.co/elasticsearch/elasticsearch:8.15.0", "redis:7.2", "nginx:1.27", "postgres:16",
          "registry.example/app/api:2024.11.3", "busybox:1.36"]
RUNTIMES = ["docker", "podman", "containerd", "cri-o", "lxc"]
NET_KEYS = ["net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_keepalive_time"]


def _ns(rng: random.Random) -> int:
    return 4026532000 + rng.randrange(1, 10_000_000)


def host_sysctl_task(rule: str, key: str, value: str) -> Dict[str, Any]:
    """The engine's own host task (the renderer accepts only tasks the engine builds)."""
    return rem.host_sysctl_task(rule, key, value)


def make_host(name: str, containers: int = 5, seed: int = 0, hostile: bool = False,
              conntrack: bool = True) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    rng = random.Random("%s/%d" % (name, seed))
    host_net = 4026531840
    sets: List[Dict[str, Any]] = []
    findings: List[Dict[str, Any]] = []
    per_netns = [{"net": host_net, "count": rng.randrange(0, 5000), "host": True, "sets": []}]
    ct_max = 262144
    for i in range(containers):
        runtime = RUNTIMES[i % len(RUNTIMES)]
        image = IMAGES[0] if i == 0 else IMAGES[rng.randrange(len(IMAGES))]  # at least one error per host
        cname = "%s-c%02d" % (name.split(".")[0], i)
        labels = {"app": image.split("/")[-1].split(":")[0], "tier": rng.choice(["web", "db", "cache"])}
        cmdline = "%s --port %d" % (image.split("/")[-1].split(":")[0], 1000 + i)
        if hostile and i == 0:
            cname, cmdline, labels = HOSTILE_NAME, HOSTILE_CMDLINE, dict(HOSTILE_LABEL)
        net = _ns(rng)
        set_id = "net:%d/ipc:%d/uts:%d/user:host/pid:%d" % (net, net + 1, net + 2, net + 3)
        identity = {"runtime": runtime, "id": "%064x" % rng.getrandbits(256), "name": cname, "image": image,
                    "pod_name": ("pod-%d" % i) if runtime in ("containerd", "cri-o") else None,
                    "pod_namespace": "default" if runtime in ("containerd", "cri-o") else None,
                    "netns_name": None, "labels": labels,
                    "sources": ["cgroup:/system.slice/%s-%d.scope" % (runtime, i)]}
        requested = {}
        differs = {}
        count = rng.randrange(0, int(ct_max * (0.95 if i % 17 == 3 else 0.2)))
        if "elasticsearch" in image:
            requested["vm.max_map_count"] = "262144"
        if i % 3 == 0:
            key = NET_KEYS[i % len(NET_KEYS)]
            requested[key] = "1024"
            differs[key] = {"host": "4096", "container": "1024"}
        pid = 1000 + i * 10
        sets.append({
            "id": set_id,
            "ns": {"net": net, "ipc": net + 1, "uts": net + 2, "user": 4026531837, "pid": net + 3, "mnt": net + 4, "cgroup": 4026531835},
            "differs_from_host": ["net", "ipc", "uts", "pid"], "shares_host": ["user", "cgroup"],
            "pids": [pid], "pid_count": 1, "representative_pid": pid,
            "init": {"pid": pid, "comm": cmdline.split(" ")[0][:15], "cmdline": cmdline, "ppid": 1},
            "identity": identity, "requested": requested, "requested_source": None,
            "host_network": False, "host_ipc": False, "host_uts": False,
            "privileges": {"cap_eff": "00000000a80425fb", "capabilities": ["CAP_CHOWN"], "privileged": False,
                           "proc_sys_rw": False, "userns_is_host": True},
            "view": {"mode": "diff", "key_count": 842, "absent": ["net.core.netdev_max_backlog"], "extra": [],
                     "mode_differs": {}, "differs": differs, "requested_values": requested, "keys": {}, "unreadable": {}},
            "conntrack_count": count if conntrack else None, "errors": [],
        })
        per_netns.append({"net": net, "count": count, "host": False, "sets": [set_id]})
        container = {k: identity[k] for k in ("runtime", "id", "name", "image", "pod_name", "pod_namespace")}
        if "vm.max_map_count" in requested:
            findings.append(_finding(name, "NSG001", "global-key-requested", "error", set_id, container, "vm.max_map_count",
                                     {"host": "65530", "container": "65530", "requested": "262144", "expected": ">=262144",
                                      "persisted": None}, "global", "none",
                                     "vm.max_map_count is global: the container cannot have its own value. Set it on the host.",
                                     "host", [host_sysctl_task("NSG001", "vm.max_map_count", "262144")]))
        for key in differs:
            findings.append(_finding(name, "NSG004", "host-tuning-not-inherited", "warning", set_id, container, key,
                                     {"host": "4096", "container": "1024", "requested": "1024", "expected": None, "persisted": None},
                                     "isolated", "net",
                                     "%s is per network namespace; the host value does not reach %s." % (key, cname),
                                     "container-spec",
                                     # the engine's spec task (an LXC config line needs a real file: docker's)
                                     rem.container_sysctl_tasks(
                                         "NSG004", dict(identity, runtime="docker" if runtime == "lxc" else runtime),
                                         {key: "4096"}, requested=requested)))
        if count > ct_max * 0.8:
            findings.append(_finding(name, "NSG007", "conntrack-near-limit", "warning", set_id, container,
                                     "net.netfilter.nf_conntrack_max",
                                     {"host": str(ct_max), "container": str(ct_max), "requested": None, "expected": None,
                                      "persisted": None}, "mirror", "none",
                                     "%d of %d conntrack entries used in %s" % (count, ct_max, cname), "none", []))
        findings.append(_finding(name, "NSG009", "absent-key", "info", set_id, container, "net.core.netdev_max_backlog",
                                 {"host": "1000", "container": None, "requested": None, "expected": None, "persisted": None},
                                 "host-only", "none", "net.core.netdev_max_backlog does not exist in the container's netns",
                                 "none", []))
    facts = {
        "schema_version": 3, "gathered_at": "2026-11-29T01:50:03Z", "duration_ms": 412, "options": {},
        "host": {"kernel": {"release": "6.18.%d-synthetic" % rng.randrange(1, 50), "version": "#1 SMP", "machine": "x86_64"},
                 "hostname": name, "cpus": 2,
                 "ns": {"net": host_net, "ipc": 4026531839, "uts": 4026531838, "user": 4026531837, "pid": 4026531836,
                        "mnt": 4026531841, "cgroup": 4026531835},
                 "keys": {"net.core.somaxconn": "4096", "vm.max_map_count": "65530"},
                 "default_mode": "0644", "modes": {},
                 "unreadable": {}, "persisted": {"files": [], "keys": {}, "errors": []}},
        "namespace_sets": sets,
        "conntrack": ({"loaded": True, "max": ct_max, "buckets": 65536, "expect_max": 1024, "per_netns": per_netns}
                      if conntrack else {"loaded": False}),
        "probe": {"enabled": True, "namespaces": ["net", "ipc", "uts", "pid", "user"], "keys": {}, "errors": []},
        "errors": [],
    }
    # one host-level finding (no container)
    findings.append(_finding(name, "NSG002", "host-value-drift", "info", None, None, "net.core.somaxconn",
                             {"host": "4096", "container": None, "requested": None, "expected": None, "persisted": "1024"},
                             "isolated", "net", "net.core.somaxconn runs at 4096 but sysctl.d persists 1024", "host",
                             [host_sysctl_task("NSG002", "net.core.somaxconn", "4096")]))
    return facts, findings


def _finding(host: str, rule: str, rule_name: str, severity: str, set_id: Optional[str], container: Optional[Dict[str, Any]],
             key: str, values: Dict[str, Any], klass: str, namespace: str, message: str, where: str,
             tasks: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"rule": rule, "rule_name": rule_name, "severity": severity, "host": host, "set_id": set_id,
            "container": container, "key": key, "values": values, "class": klass, "namespace": namespace,
            "evidence": "knowledge: synthetic", "message": message,
            "remediation": {"where": where, "tasks": tasks}, "details": {}}


def make_fleet(hosts: int, containers: int, seed: int = 0, unreachable: int = 0, failed: int = 0,
               hostile: bool = False) -> Dict[str, Dict[str, Any]]:
    fleet: Dict[str, Dict[str, Any]] = {}
    for i in range(hosts):
        name = "node%04d.example" % i
        facts, findings = make_host(name, containers, seed, hostile=hostile and i == 0)
        fleet[name] = {"status": "ok", "facts": facts, "findings": findings}
    for i in range(unreachable):
        fleet["gone%02d.example" % i] = {"status": "unreachable", "message": "ssh: connect to host port 22: Connection refused"}
    for i in range(failed):
        fleet["broken%02d.example" % i] = {"status": "failed", "message": "sysctl_facts failed"}
    return fleet
