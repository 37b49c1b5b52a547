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
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.vocabulary import GLOBAL_CLASSES
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import RemediationOptions

GLOBALISH = set(GLOBAL_CLASSES)
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
    return rule_catalog.load_catalog()


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
    host_keys_ = {k: "100" for k in keys + [ANCHOR]}
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
    return rule_catalog.example_facts({"host": {"keys": host_keys_, "modes": {k: "0644" for k in host_keys_},
                                                "persisted": {"keys": persisted}},
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
        for chunk in _chunks(keys, 30):
            facts = _facts(chunk, shared_net)
            facts["host"]["kernel"]["release"] = kernel
            errors: List = []
            findings = evaluator.evaluate(facts, {k: classes[k] for k in chunk + [ANCHOR]}, catalog,
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


# =========================================================================== real runs
#
# One scene, made here: a real Podman container (private storage) asking for
# net.core.somaxconn=1024, a real named network namespace, an LXC config file, and this host.
# Its facts say the container also asks for vm.max_map_count (Podman itself refuses that key, but
# LXC does not, and a leaking key passes every runtime), so the rules produce, for one container,
# a removal (NSG001) and a change (NSG009), plus host tasks (NSG003, NSG001). The generated
# fleet playbook (render_remediation) and the findings' own tasks run through ansible-playbook.

import fcntl  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import yaml  # noqa: E402

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import HOST_GUARD as TASK_GUARD  # noqa: E402
from tests.ansible_run import ansible_env  # noqa: E402
from tests.integration.harness import containers as ct  # noqa: E402
# The runtimes the integration tests start (once per session, host state guarded and restored).
from tests.integration.harness.fixtures import (  # noqa: E402,F401 (pytest finds fixtures by name)  # pylint: disable=unused-import
    busybox_rootfs, docker_engine, host_state, podman_runtime, runtime_workdir)
from tests.integration.test_audit_support import HostSysctls, named_netns, read_sysctl  # noqa: E402

PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
SYSCTL_D = Path("/etc/sysctl.d")
HOST_KEY = "vm.max_map_count"
NET_TARGET = "8192"
LOCK = "/run/nsguard-host-sysctl.lock"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (containers, namespaces, host sysctls)")


@contextmanager
def host_lock():
    """The advisory lock every test that changes a host sysctl takes (tests/integration)."""
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_json(playbook: Path, *args: str, inventory: str = "localhost,", extra_env: Optional[Dict] = None,
             workdir: Optional[Path] = None) -> Tuple[int, Dict, str]:
    """ansible-playbook with the JSON callback: (rc, result, stdout+stderr)."""
    argv = [PLAYBOOK, "-i", inventory]
    if inventory == "localhost,":
        argv += ["-c", "local"]
    argv += [str(playbook), *args]
    env = ansible_env(dict({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, **(extra_env or {})))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False,
                          cwd=str(workdir) if workdir else None)
    start = proc.stdout.find("{")
    result = json.loads(proc.stdout[start:]) if start >= 0 else {}
    return proc.returncode, result, proc.stdout[-4000:] + proc.stderr[-3000:]


def task_results(result: Dict, host: str = "localhost") -> List[Tuple[str, Dict]]:
    out = []
    for play in result.get("plays", []):
        for task in play.get("tasks", []):
            if host in task.get("hosts", {}):
                out.append((task["task"]["name"], task["hosts"][host]))
    return out


def one(result: Dict, name_part: str, host: str = "localhost") -> Dict:
    found = [r for n, r in task_results(result, host) if name_part in n]
    assert len(found) == 1, (name_part, [n for n, dummy in task_results(result, host)])
    return found[0]


class Scene:
    """The real things the tasks act on, and their state for before/after comparisons."""

    def __init__(self, workdir: Path, podman: ct.Podman, container: ct.Container, netns, lxc_config: Path):
        self.workdir, self.podman, self.container, self.netns, self.lxc_config = workdir, podman, container, netns, lxc_config

    def podman_state(self) -> Dict:
        [info] = json.loads(self.podman.cli("inspect", self.container.name).stdout)
        return {"id": info["Id"], "started": info["State"]["StartedAt"], "pid": info["State"]["Pid"],
                "sysctls": {k: v for k, v in (info["HostConfig"].get("Sysctls") or {}).items()
                            if k == ANCHOR or k in GLOBALISH_KEYS}}

    def netns_value(self) -> str:
        return subprocess.run(["ip", "netns", "exec", self.netns.name, "sysctl", "-n", ANCHOR], capture_output=True,
                              text=True, check=True).stdout.strip()

    def state(self) -> Dict:
        return {"host": read_sysctl(HOST_KEY), "sysctl.d": sorted(os.listdir(SYSCTL_D)),
                "podman": self.podman_state(), "netns": self.netns_value(), "lxc": self.lxc_config.read_text()}


GLOBALISH_KEYS = (HOST_KEY,)


def scene_findings(scene: Scene, kb, catalog, host: str = "localhost", engines: Iterable[ct.Container] = ()) -> List[Dict]:
    """What the rules say about the scene (facts as the module gives them, for the parts read);
    ``engines``: the containers (Podman's by default) whose facts ask for the host key too."""
    current = int(read_sysctl(HOST_KEY))
    engines = list(engines) or [scene.container]
    identities = [{"runtime": c.runtime, "id": c.id, "name": c.name, "image": c.image} for c in engines] + [
        {"runtime": "netns", "netns_name": scene.netns.name},
        {"runtime": "lxc", "name": scene.lxc_config.parent.name},
    ]
    sets = []
    for index, identity in enumerate(identities):
        engine = identity["runtime"] in ("podman", "docker")
        requested = {ANCHOR: "1024", HOST_KEY: str(current + 1)} if engine else {}
        value = "1024" if engine else "4096"
        sets.append({"id": "set%d" % index, "identity": identity, "requested": requested,
                     "ns": {"net": 4026532100 + index, "ipc": 4026533100 + index, "uts": 4026534100 + index,
                            "user": 4026531837, "pid": 4026535100 + index},
                     "view": {"differs": {ANCHOR: {"host": read_sysctl(ANCHOR), "container": value}}}})
    facts = rule_catalog.example_facts({"host": {"keys": {HOST_KEY: str(current), ANCHOR: read_sysctl(ANCHOR)},
                                                "modes": {HOST_KEY: "0644", ANCHOR: "0644"}},
                             "namespace_sets": sets})
    facts["host"]["kernel"]["release"] = os.uname().release
    classes = _classification(kb, [HOST_KEY, ANCHOR], os.uname().release.split("-")[0])
    expectations, errors = ex.expectations_from_data(
        [{"profile": "scene", "match": {"name": [s["identity"].get("name") or s["identity"].get("netns_name")
                                                 for s in sets]},
          "expect": {ANCHOR: ">=%s" % NET_TARGET, HOST_KEY: ">=%d" % (current + 1)}}], "scene")
    assert not errors
    options = RemediationOptions(lxc_path=str(scene.lxc_config.parent.parent))
    errors = []
    findings = evaluator.evaluate(facts, classes, catalog, expectations, host=host, options=options, kb=kb, errors=errors)
    assert not errors, errors
    return findings


def render(findings: List[Dict], path: Path, host: str = "localhost") -> Path:
    facts = {"host": {"hostname": host, "kernel": {"release": os.uname().release}}, "namespace_sets": []}
    model = report.build_fleet({host: {"status": "ok", "facts": facts, "findings": findings}})
    written, errors = renderers.write_reports(model, str(path.parent), ["remediation"])
    assert not errors, errors
    return Path(written["remediation"])


@pytest.fixture
def scene(podman_runtime, tmp_path):
    name = "nsg-rs-%s" % uuid.uuid4().hex[:6]
    container = podman_runtime.run(name, {ANCHOR: "1024"})
    netns = named_netns("nsg-rs")
    lxc_config = tmp_path / "lxc" / ("ct-%s" % name[-6:]) / "config"
    lxc_config.parent.mkdir(parents=True)
    lxc_config.write_text("lxc.uts.name = ct\nlxc.sysctl.%s = 1024\n" % ANCHOR)
    try:
        yield Scene(tmp_path, podman_runtime, container, netns, lxc_config)
    finally:
        netns.close()
        podman_runtime.cli("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def host_restored():
    """vm.max_map_count and /etc/sysctl.d as they were, whatever the test did (under the lock)."""
    before_files = set(os.listdir(SYSCTL_D))
    host = HostSysctls()
    host.track(HOST_KEY)
    yield host
    problems = host.restore()
    with host_lock():
        for name in set(os.listdir(SYSCTL_D)) - before_files:
            if name.startswith("90-nsguard-"):
                (SYSCTL_D / name).unlink()
    assert not problems, problems
    assert set(os.listdir(SYSCTL_D)) == before_files


SPEC_ON = ("-e", "nsguard_sysctl_container_spec_apply=true")
PODMAN_ENV = None  # set per scene: a PATH where `podman` is the private-storage one


def podman_env(scene: Scene) -> Dict[str, str]:
    """containers.podman.podman_container calls `podman`: a wrapper that adds the scene's private
    storage options comes first in PATH."""
    wrapper = scene.workdir / "bin" / "podman"
    if not wrapper.exists():
        wrapper.parent.mkdir(exist_ok=True)
        real = shutil.which("podman")
        wrapper.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (
            real, " ".join(a for a in scene.podman.global_args()[1:])))
        wrapper.chmod(0o755)
    return {"PATH": "%s:%s" % (wrapper.parent, ansible_env()["PATH"])}


@root_only
@pytest.mark.slow
def test_generated_playbook_check_diff_changes_nothing(scene, kb, catalog, host_restored):
    """The fleet playbook with every task enabled (host block, container-spec tags, the spec
    guard on) in --check --diff: nothing changes on the host, in the container, the network
    namespace or the LXC config; each task says what it would change."""
    findings = scene_findings(scene, kb, catalog)
    playbook = render(findings, scene.workdir / "out" / "remediation.yml")
    before = scene.state()
    with host_lock():
        rc, result, out = run_json(playbook, "--check", "--diff", "--tags", "nsguard,container-spec", *SPEC_ON,
                                   extra_env=podman_env(scene))
        after = scene.state()
    assert rc == 0, out
    assert after == before
    results = dict(task_results(result))
    # host: ansible.posix.sysctl reports the change and the sysctl.d file it would write
    [host] = [r for n, r in results.items() if "%s=" % HOST_KEY in n and "on the host" in n]
    assert host["nsguard_sysctl_host_result" if "nsguard_sysctl_host_result" in host else "changed"] is not None
    assert not host.get("skipped")
    # ansible.posix.sysctl has no diff of its own: the playbook's check-mode preview gives it, and
    # the change is counted once, by the preview that shows it (issue 12: "changed=8 for 4")
    [preview] = [r for n, r in results.items() if n.startswith("Diff of ") and HOST_KEY in n]
    assert preview["changed"] is True and host["changed"] is False
    assert any("%s=%d" % (HOST_KEY, int(before["host"]) + 1) in (d.get("after") or "") for d in _diffs(preview)), preview
    # podman: one task for the container (NSG001's removal and NSG009's change merged)
    [(name, spec)] = [(n, r) for n, r in results.items() if "podman_container" in n]
    assert "NSG001" in name and "NSG009" in name
    assert spec["changed"] is True, spec
    # the real container's own diff: the sysctl map it would get holds no key that is the host's
    [after] = [d["after"] for d in _diffs(spec) if "sysctl - " in (d.get("after") or "")]
    assert "sysctl - %s=%s\n" % (ANCHOR, NET_TARGET) in after and HOST_KEY not in after, after
    # LXC: the line it would write, as a diff
    [lxc] = [r for n, r in results.items() if "lxc.sysctl" in n]
    assert lxc["changed"] is True
    assert any("lxc.sysctl.%s = %s" % (ANCHOR, NET_TARGET) in (d.get("after") or "") for d in _diffs(lxc)), lxc
    # netns: the command module does not run in check mode (no diff to give)
    [netns] = [r for n, r in results.items() if "network namespace" in n]
    assert netns.get("skipped") is True and "check mode" in netns.get("msg", "")


def _diffs(res: Dict) -> List[Dict]:
    diff = res.get("diff") or []
    return diff if isinstance(diff, list) else [diff]


def _changed(result: Dict, host: str = "localhost") -> List[str]:
    return [n for n, r in task_results(result, host) if r.get("changed")]


@root_only
@pytest.mark.slow
def test_generated_playbook_is_idempotent(scene, kb, catalog, host_restored):
    """Applied for real (the host's vm.max_map_count and its sysctl.d file, the named network
    namespace, the LXC config; the Podman task stays off: recreating the container from the
    task alone would give it Podman's default network), then again with --diff: every task
    reports no change. Restored in teardown."""
    findings = scene_findings(scene, kb, catalog)
    playbook = render(findings, scene.workdir / "out" / "remediation.yml")
    target = int(read_sysctl(HOST_KEY)) + 1
    podman_before = scene.podman_state()
    with host_lock():
        rc, first, out = run_json(playbook, "--tags", "nsguard,container-spec")
        host_restored.claim(HOST_KEY)
        assert rc == 0, out
        assert read_sysctl(HOST_KEY) == str(target)
        again_rc, again, again_out = run_json(playbook, "--tags", "nsguard,container-spec", "--diff")
    assert again_rc == 0, again_out
    changed = _changed(first)
    assert any("on the host" in n for n in changed) and any("network namespace" in n for n in changed), changed
    assert any("lxc.sysctl" in n for n in changed), changed
    assert (SYSCTL_D / ("90-nsguard-%s.conf" % HOST_KEY)).read_text().strip() == "%s=%d" % (HOST_KEY, target)
    assert scene.netns_value() == NET_TARGET
    assert "lxc.sysctl.%s = %s" % (ANCHOR, NET_TARGET) in scene.lxc_config.read_text()
    assert scene.podman_state() == podman_before       # its task is guarded off: untouched
    ran = [n for n, r in task_results(again) if not r.get("skipped")]
    # the preview looked and found the value in the file, so it shows no diff: no whitespace churn
    assert any("on the host" in n for n in ran) and any(n.startswith("Is %s already in" % HOST_KEY) for n in ran), ran
    assert not any(n.startswith("Diff of ") for n in ran), ran
    assert _changed(again) == [], _changed(again)
    assert re.search(r"changed=0", again_out) or again["stats"]["localhost"]["changed"] == 0


@pytest.fixture
def inside(podman_runtime, tmp_path):
    """A running Podman container that Ansible can reach with the containers.podman.podman
    connection: the host's /usr (Python, its libraries) bind-mounted read-only, nothing else."""
    name = "nsg-rs-in-%s" % uuid.uuid4().hex[:6]
    proc = podman_runtime.cli("run", "-d", "--name", name, *podman_runtime.RUN_FLAGS, "-v", "/usr:/usr:ro",
                              "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro", podman_runtime.IMAGE,
                              "/bin/sleep", "3600", check=False)
    if proc.returncode != 0:
        pytest.skip("podman run with the host's /usr failed: %s" % proc.stderr[-500:])
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"inside": {
        "ansible_connection": "containers.podman.podman", "ansible_host": name,
        "ansible_podman_extra_args": " ".join(podman_runtime.global_args()[1:]),
        "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    try:
        yield name, str(inventory)
    finally:
        podman_runtime.cli("rm", "-f", "-t", "0", name, check=False)


@root_only
@pytest.mark.slow
def test_host_tasks_refuse_to_run_through_a_container_connection(
        inside, scene, kb, catalog, podman_runtime, host_restored):
    """The generated playbook, for real (no --check), against a host that is a real container
    reached with containers.podman.podman: the guard reads the container's pid namespace, the
    host-side block is skipped and a message says why; nothing changes on the host or inside.
    The findings' own host task, with Ansible's facts and with the nsguard facts gathered inside
    the container, is skipped too."""
    name, inventory = inside
    findings = scene_findings(scene, kb, catalog, host="inside")
    host_tasks = [t for f in findings for t in f["remediation"]["tasks"] if "ansible.posix.sysctl" in t]
    assert host_tasks
    playbook = render(findings, scene.workdir / "out" / "remediation.yml", host="inside")
    before = (read_sysctl(HOST_KEY), sorted(os.listdir(SYSCTL_D)))
    with host_lock():
        rc, result, out = run_json(playbook, inventory=inventory)
        after = (read_sysctl(HOST_KEY), sorted(os.listdir(SYSCTL_D)))
    assert rc == 0, out
    assert after == before
    ns = one(result, "Namespaces of the target", "inside")
    inodes = [r["stat"]["inode"] for r in ns["results"]]
    assert inodes[0] != 4026531836, inodes                  # the container's own pid namespace
    refusal = one(result, "Refuse host-side sysctl changes", "inside")
    assert "NOT applied to inside" in refusal["msg"] and "is a container or runs in one" in refusal["msg"]
    assert str(inodes[0]) in refusal["msg"]
    for task_name, res in task_results(result, "inside"):
        if "on the host" in task_name:
            assert res.get("skipped") is True, (task_name, res)
        assert not res.get("changed"), (task_name, res)
    listing = podman_runtime.cli("exec", name, "ls", "/etc/sysctl.d", check=False)
    assert listing.returncode != 0 or "nsguard" not in listing.stdout     # nothing written inside either

    # the findings' own task (remediation.HOST_GUARD): Ansible's virtual facts, then the nsguard facts
    gather = {"name": "nsguard facts", "nsguard.sysctl.sysctl_facts": {"containers": False, "probe": False,
                                                                       "include": ["vm.*"]}}
    for gather_facts, pre in ((True, []), (False, [gather])):
        book = scene.workdir / ("own-%s.yml" % gather_facts)
        book.write_text(yaml.safe_dump([{"name": "own", "hosts": "inside", "gather_facts": gather_facts,
                                         "tasks": pre + host_tasks[:1]}], sort_keys=False))
        with host_lock():
            rc, result, out = run_json(book, inventory=inventory)
            assert (read_sysctl(HOST_KEY), sorted(os.listdir(SYSCTL_D))) == before
        assert rc == 0, out
        res = one(result, host_tasks[0]["name"], "inside")
        assert res.get("skipped") is True and not res.get("changed"), res
        if not gather_facts:
            facts = one(result, "nsguard facts", "inside")["ansible_facts"]["nsguard_sysctl"]
            assert facts["host"]["ns"]["pid"] == inodes[0]
    assert TASK_GUARD in host_tasks[0]["when"]


@root_only
@pytest.mark.slow
def test_docker_spec_task_check_diff_changes_nothing(docker_engine, scene, kb, catalog):
    """community.docker.docker_container, the generated (merged) task for a real container,
    in --check --diff: the container is not recreated, its sysctls stay, and the diff it
    reports holds the new per-namespace value and no key that is the host's."""
    container = docker_engine.run("nsg-rs-d-%s" % uuid.uuid4().hex[:6], {ANCHOR: "1024"})
    findings = scene_findings(scene, kb, catalog, engines=[container])
    playbook = render(findings, scene.workdir / "out" / "remediation.yml")

    def state():
        [info] = json.loads(docker_engine.cli("inspect", container.id).stdout)
        return info["Id"], info["State"]["StartedAt"], info["State"]["Pid"], info["HostConfig"]["Sysctls"]
    before = state()
    rc, result, out = run_json(playbook, "--check", "--diff", "--tags", "container-spec", *SPEC_ON,
                               extra_env={"DOCKER_HOST": "unix://%s" % docker_engine.socket})
    assert rc == 0, out
    assert state() == before
    [(name, spec)] = [(n, r) for n, r in task_results(result) if "docker_container" in n]
    assert "NSG001" in name and "NSG009" in name and spec["changed"] is True, (name, spec)
    [diff] = _diffs(spec)
    assert diff["before"] == {"sysctls": {ANCHOR: "1024"}} and diff["after"] == {"sysctls": {ANCHOR: NET_TARGET}}, diff


@pytest.mark.parametrize("identity,module", [
    ({"runtime": "docker", "name": "web", "image": "nginx:1"}, "community.docker.docker_container"),
    ({"runtime": "podman", "name": "web", "image": "nginx:1"}, "containers.podman.podman_container"),
    ({"runtime": "containerd", "name": "app", "pod_name": "web-5d8f7c9b6-x7k2p", "pod_namespace": "prod",
      "labels": {"io.kubernetes.container.name": "app"}}, "kubernetes.core.k8s"),
])
def test_spec_tasks_for_one_container_are_merged(identity, module):
    """Three findings about one container (a change, another change, a removal) and NSG006's
    privileges: the generated playbook has one task for it, with every change, so it neither
    undoes one fix with the next nor recreates the container on every run."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import remediation as rem
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_remediation import build_plays
    requested = {"net.core.somaxconn": "1024", "net.ipv4.tcp_fin_timeout": "5", "net.ipv4.tcp_keepalive_time": "60"}
    changes = [("NSG004", "net.core.somaxconn", "4096"), ("NSG009", "net.ipv4.tcp_fin_timeout", "30"),
               ("NSG007", "net.ipv4.tcp_keepalive_time", None)]
    findings = [{"rule": rule, "severity": "warning", "host": "h1", "set_id": "s1", "key": key,
                 "container": {"label": "web"}, "message": "m",
                 "remediation": rem.remediation("container-spec", rem.container_sysctl_tasks(
                     rule, identity, {key: value}, requested=requested))} for rule, key, value in changes]
    findings.append({"rule": "NSG006", "severity": "error", "host": "h1", "set_id": "s1", "key": None,
                     "container": {"label": "web"}, "message": "m",
                     "remediation": rem.remediation("container-spec", rem.container_privilege_tasks(
                         "NSG006", identity, privileged=True, proc_sys_rw=False, caps=["CAP_SYS_ADMIN"]))})
    model = report.build_fleet({"h1": {"status": "ok", "facts": {"host": {"hostname": "h1"}, "namespace_sets": []},
                                       "findings": findings}})
    plays, problems = build_plays(model)
    assert not problems
    tasks = [t for play in plays[1:] for block in play["tasks"] for t in block.get("block", [block])
             if module in t]
    assert len(tasks) == 1, [t["name"] for t in tasks]
    [task] = tasks
    assert {"NSG004", "NSG009", "NSG007", "NSG006", "never", "container-spec"} <= set(task["tags"])
    args = task[module]
    if module == "kubernetes.core.k8s":
        pod = args["definition"]["spec"]["template"]["spec"]
        got = {s["name"]: s["value"] for s in pod["securityContext"]["sysctls"]}
        assert pod["containers"][0]["securityContext"]["privileged"] is False
    else:
        got = args["sysctls" if "docker" in module else "sysctl"]
        assert args["privileged"] is False and args["cap_drop"] == ["SYS_ADMIN"]
    assert got == {"net.core.somaxconn": "4096", "net.ipv4.tcp_fin_timeout": "30"}


@pytest.mark.parametrize("privileges_first", [True, False])
def test_pod_spec_tasks_keep_every_containers_fix(privileges_first):
    """NSG006 for two containers of one pod and a sysctl change for the pod: one patch of the
    pod template, with both containers' securityContext (a pod's ``containers`` merge by name,
    as Kubernetes' strategic merge does) and the whole sysctl map, whichever finding comes first."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import remediation as rem
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_remediation import build_plays
    pod = {"runtime": "containerd", "pod_name": "web-5d8f7c9b6-x7k2p", "pod_namespace": "prod"}
    requested = {"net.core.somaxconn": "1024", "net.ipv4.tcp_fin_timeout": "5"}

    def finding(rule, key, tasks, container):
        return {"rule": rule, "severity": "warning", "host": "h1", "set_id": "s1", "key": key,
                "container": {"label": container}, "message": "m",
                "remediation": rem.remediation("container-spec", tasks)}
    privileges = [finding("NSG006", None, rem.container_privilege_tasks(
        "NSG006", dict(pod, name=name, labels={"io.kubernetes.container.name": name}),
        privileged=True, proc_sys_rw=False, caps=["CAP_SYS_ADMIN"]), name) for name in ("app", "sidecar")]
    sysctl = [finding("NSG004", "net.core.somaxconn", rem.container_sysctl_tasks(
        "NSG004", dict(pod, name="app", labels={"io.kubernetes.container.name": "app"}),
        {"net.core.somaxconn": "4096"}, requested=requested), "app")]
    findings = privileges + sysctl if privileges_first else sysctl + privileges
    model = report.build_fleet({"h1": {"status": "ok", "facts": {"host": {"hostname": "h1"}, "namespace_sets": []},
                                       "findings": findings}})
    plays, problems = build_plays(model)
    assert not problems
    tasks = [t for play in plays[1:] for block in play["tasks"] for t in block.get("block", [block])
             if "kubernetes.core.k8s" in t]
    assert len(tasks) == 1, [t["name"] for t in tasks]
    [task] = tasks
    spec = task["kubernetes.core.k8s"]["definition"]["spec"]["template"]["spec"]
    contexts = {c["name"]: c["securityContext"] for c in spec["containers"]}
    assert sorted(contexts) == ["app", "sidecar"], spec["containers"]
    assert all(c["privileged"] is False and c["capabilities"] == {"drop": ["SYS_ADMIN"]} for c in contexts.values())
    assert {s["name"]: s["value"] for s in spec["securityContext"]["sysctls"]} == {
        "net.core.somaxconn": "4096", "net.ipv4.tcp_fin_timeout": "5"}
    assert task["name"].count("privileges") == 1, task["name"]
    assert {"NSG004", "NSG006"} <= set(task["tags"])
