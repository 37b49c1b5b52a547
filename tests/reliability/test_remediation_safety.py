"""Safety of remediation (issue 7 part 4).

1. No task whose target is a container (docker/podman/k8s spec, LXC config, a named network
   namespace) ever sets a key the knowledge base classes global, mirror, host-only or leaking,
   nor a per-namespace key of a namespace the container shares with the host: every catalog rule
   over every key this host has and every key the knowledge names, on three kernels, against
   one container of each runtime (pure functions, then one task against a real container).
2. Check mode and diff: each kind of task runs with ``--check --diff`` against real things (the
   host's sysctls and a sysctl.d directory, a real Docker and Podman container, a real named
   network namespace, an LXC config) and changes nothing, and says what it would change.
3. Host-side tasks refuse to run inside a container: the generated playbook against a
   connection that is inside a real container (``containers.podman.podman``).
4. The generated remediation playbook is idempotent: applied for real on this host
   (vm.max_map_count, restored in teardown under the host-sysctl lock), a second run changes
   nothing.

Not repeated here (tests/integration/test_remediation.py, tests/reports/test_remediation.py):
syntax checks, module argument specs, host tasks in check mode on the host and in a new pid
namespace, one per-finding task applied and re-run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import rules as R
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import RemediationOptions

GLOBALISH = set(R.GLOBALISH)
KERNELS = (os.uname().release.split("-")[0], "5.10", "4.18")
ANCHOR = "net.core.somaxconn"          # a per-namespace key every set also asks for

# One container of each runtime the remediation knows, plus the ones it cannot edit.
IDENTITIES = (
    {"runtime": "docker", "name": "web", "image": "nginx:1"},
    {"runtime": "podman", "name": "cache", "image": "redis:7"},
    {"runtime": "lxc", "name": "ct1"},
    {"runtime": "containerd", "name": "app", "pod_name": "web-5d8f7c9b6-x7k2p", "pod_namespace": "prod"},
    {"runtime": "cri-o", "name": "db", "pod_name": "db-0", "pod_namespace": "prod"},
    {"runtime": "netns", "netns_name": "blue"},
    {"runtime": "runc", "id": "bundle1"},
    {"runtime": "unknown"},
)


# --------------------------------------------------------------------------- what a task sets

def spec_keys(task: Mapping) -> Optional[Dict[str, Optional[str]]]:
    """The sysctls a container-side task sets (key -> value), or None for a task that does not
    target a container (ansible.posix.sysctl on the host)."""
    if "community.docker.docker_container" in task:
        return dict(task["community.docker.docker_container"].get("sysctls") or {})
    if "containers.podman.podman_container" in task:
        return dict(task["containers.podman.podman_container"].get("sysctl") or {})
    if "kubernetes.core.k8s" in task:
        spec = task["kubernetes.core.k8s"]["definition"]["spec"]
        spec = spec.get("template", {}).get("spec", spec)
        return {s["name"]: s["value"] for s in (spec.get("securityContext") or {}).get("sysctls") or []}
    if "ansible.builtin.lineinfile" in task:
        args = task["ansible.builtin.lineinfile"]
        match = re.match(r"^\s*lxc\.sysctl\.(\S+)\s*=\s*(.*)$", args.get("line") or "")
        return {match.group(1): match.group(2)} if match and args.get("state") != "absent" else {}
    if "ansible.builtin.command" in task:
        argv = task["ansible.builtin.command"]["argv"]
        assert argv[:3] == ["ip", "netns", "exec"] and argv[4:6] == ["sh", "-c"] and argv[7] == "nsguard", argv
        return dict(a.split("=", 1) for a in argv[8:])
    if "ansible.posix.sysctl" in task:
        return None
    raise AssertionError("a remediation task of an unknown kind: %s" % sorted(task))


# --------------------------------------------------------------------------- the keys

def host_keys() -> List[str]:
    out = []
    for root, dummy, files in os.walk("/proc/sys"):
        for name in files:
            out.append(os.path.join(root, name)[len("/proc/sys/"):].replace("/", "."))
    return sorted(out)


def knowledge_keys(kb) -> List[str]:
    """Every key the knowledge names, patterns made concrete (an interface, a protocol)."""
    out = []
    for entry in kb:
        for pattern in entry.match:
            out.append(re.sub(r"[*?]|\[[^\]]*\]", "eth0", pattern))
    return sorted(set(out))


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


@pytest.fixture(scope="module")
def catalog():
    return R.load_catalog()


def _classification(kb, keys: Iterable[str], kernel: str) -> Dict[str, Dict]:
    out = {}
    for key in keys:
        s = scope(kb, key, kernel=kernel)
        out[key] = {"class": s["class"], "namespace": s["namespace"], "evidence": s["evidence"],
                    "decided_by": "knowledge", "conflict": None}
    return out


def _facts(keys: List[str], shared_net: bool) -> Dict:
    """A host that has and persists every key in ``keys``; a set of each runtime that asks for
    all of them (and the anchor), sees its own value of each, and is privileged."""
    host_keys_ = {k: {"value": "100", "mode": "0644"} for k in keys + [ANCHOR]}
    persisted = {k: {"value": "100", "file": "/etc/sysctl.d/99-x.conf", "line": i + 1}
                 for i, k in enumerate(keys + [ANCHOR])}
    sets = []
    for index, identity in enumerate(IDENTITIES):
        nset = {
            "id": "set%d" % index,
            "identity": identity,
            "ns": {"net": 4026532000 + index, "ipc": 4026533000 + index, "uts": 4026534000 + index,
                   "user": 4026531837, "pid": 4026535000 + index},
            "requested": dict({k: "200" for k in keys}, **{ANCHOR: "4096"}),
            "privileges": {"privileged": True, "proc_sys_rw": True, "capabilities": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
                           "userns_is_host": True},
            "view": {"differs": {k: {"host": "100", "container": "50"} for k in keys + [ANCHOR]}},
        }
        if shared_net:
            nset.update({"host_network": True, "differs_from_host": ["ipc", "uts", "pid"],
                         "shares_host": ["net", "user", "cgroup"]})
            nset["ns"]["net"] = 4026531833
        sets.append(nset)
    return R.example_facts({"host": {"keys": host_keys_, "persisted": {"keys": persisted}},
                            "namespace_sets": sets})


def _expectations(keys: List[str]):
    doc = {"profile": "every-key", "match": {"comm": "sleep"},
           "expect": {k: ">=300" for k in keys + [ANCHOR]}}
    found, errors = ex.expectations_from_data(doc, "test")
    assert not errors, errors
    return found


def _container_writes(findings) -> List[Tuple[str, str, str, str]]:
    """(rule, container, module, key) for every key a container-side task sets."""
    out = []
    for finding in findings:
        for task in finding["remediation"]["tasks"]:
            keys = spec_keys(task)
            if keys is None:
                continue
            module = next(k for k in task if "." in k)
            label = (finding.get("container") or {}).get("label") or "?"
            out.extend((finding["rule"], label, module, k) for k in keys)
    return out


def _chunks(items: List[str], size: int) -> Iterable[List[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@pytest.mark.parametrize("shared_net", [False, True], ids=["own-netns", "host-netns"])
def test_no_container_task_sets_a_global_key(kb, catalog, shared_net):
    """Every catalog rule over every key (this host's /proc/sys and the knowledge's), on three
    kernels, for a privileged container of each runtime that asks for every key: no
    container-side task sets a global/mirror/host-only/leaking key, nor (with the host's
    network namespace) a net key, which would be the host's own."""
    keys = sorted(set(host_keys()) | set(knowledge_keys(kb)))
    keys.remove(ANCHOR)
    assert len(keys) > 500
    options = RemediationOptions(sysctl_d_dir="/tmp/none", lxc_path="/tmp/none")
    bad: List[Tuple] = []
    checked = 0
    seen_classes: Set[str] = set()
    modules: Set[str] = set()
    for kernel in KERNELS:
        classes = _classification(kb, keys + [ANCHOR], kernel)
        seen_classes |= {c["class"] for c in classes.values()}
        for chunk in _chunks(keys, 150):
            facts = _facts(chunk, shared_net)
            facts["host"]["kernel"]["release"] = kernel
            errors: List = []
            findings = R.evaluate(facts, {k: classes[k] for k in chunk + [ANCHOR]}, catalog,
                                  _expectations(chunk), options=options, kb=kb, errors=errors)
            assert not errors, errors[:3]
            for rule, label, module, key in _container_writes(findings):
                checked += 1
                modules.add(module)
                klass = classes[key]
                # `ip netns exec` enters the network namespace only: any other key is the host's
                if (klass["class"] in GLOBALISH or (shared_net and klass["namespace"] == "net")
                        or (module == "ansible.builtin.command" and klass["namespace"] != "net")):
                    bad.append((kernel, rule, label, module, key, klass["class"], klass["namespace"]))
    assert GLOBALISH <= seen_classes            # every dangerous class was among the inputs
    assert modules == {"community.docker.docker_container", "containers.podman.podman_container",
                       "kubernetes.core.k8s", "ansible.builtin.lineinfile"} | (
        set() if shared_net else {"ansible.builtin.command"})
    assert checked > 1000
    assert not bad, "%d container-side writes of host keys, e.g. %s" % (len(bad), bad[:8])
