"""RuntimeIndex against real containers: Docker, Podman, runc and LXC, each started by the
harness with ``net.core.somaxconn=1024`` requested.

The namespace sets come from the real scan (``nsscan.scan``), exactly as the facts module finds
them; identity, requested sysctls and privileges come from the host's metadata only.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.integration.harness import containers as ct
# pytest finds fixtures by name: importing them is using them.
from tests.integration.harness.fixtures import (  # noqa: F401 pylint: disable=unused-import
    TIMINGS, all_containers, busybox_rootfs, docker_container, docker_engine, host_state, k8s_pod,
    lxc_container, lxc_runtime, podman_container, podman_runtime, runc_container, runc_runtime, runtime_workdir,
)

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan, procinfo
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_cli import docker_api_get
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtimes import RuntimeIndex

pytestmark = [pytest.mark.root, pytest.mark.slow]

RUNTIMES = ("docker", "podman", "runc", "lxc")


def host_ns():
    return nsscan.read_ns("self")


def set_of(pid):
    """The namespace set the scan finds for a container's init."""
    sets, _errors = nsscan.scan(host_ns())
    for ns_set in sets:
        if ns_set["representative_pid"] == pid or pid in ns_set["pids"]:
            return ns_set
    raise AssertionError("no namespace set holds pid %d" % pid)


def identify(index, container):
    ns_set = set_of(container.pid)
    return index.identify(pids=ns_set["pids"], init_pid=ns_set["representative_pid"], ns=ns_set["ns"])


@pytest.fixture(scope="module")
def index(all_containers):
    """One index for the module, as the facts module builds one per gather."""
    return RuntimeIndex(use_cli=True, timeout=10.0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_identify_real_container(runtime, all_containers, index):
    container = all_containers[runtime]
    result = identify(index, container)
    ident = result["identity"]
    assert ident["runtime"] == runtime, ident
    assert ident["id"] == container.id
    assert ident["name"] == container.name
    assert ident["image"] == container.image
    assert result["requested"]["net.core.somaxconn"] == "1024"
    assert result["requested_source"] and os.path.exists(result["requested_source"])
    assert result["host_network"] is False
    assert result["host_ipc"] is False
    assert result["host_uts"] is False
    assert result["errors"] == []
    for key, value in container.extra.get("labels", {}).items():
        assert ident["labels"].get(key) == value
    # The evidence names the container's init and a file of its runtime.
    assert "pid:%d" % container.pid in ident["sources"] or any(s.startswith("cgroup:") for s in ident["sources"])
    assert any(s.startswith("file:") for s in ident["sources"])


def test_runtime_defaults_told_apart(all_containers, index):
    """Docker and podman add sysctls of their own; only the user's somaxconn was asked for."""
    docker = identify(index, all_containers["docker"])
    assert "net.core.somaxconn" not in docker["requested_defaults"]
    assert set(docker["requested_defaults"]) <= set(docker["requested"])
    podman = identify(index, all_containers["podman"])
    assert podman["requested_defaults"] is not None
    assert "net.core.somaxconn" not in podman["requested_defaults"]
    for runtime in ("runc", "lxc"):
        assert identify(index, all_containers[runtime])["requested_defaults"] == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_requested_value_is_live_inside(runtime, all_containers):
    """The harness really started each container with somaxconn=1024 (read in its netns with
    the host's own cat: only the network namespace is entered)."""
    pid = all_containers[runtime].pid
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "cat", "/proc/sys/net/core/somaxconn"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "1024"


def test_identify_from_files_only(all_containers):
    """Without any CLI or API call, the host's files alone identify all four."""
    index = RuntimeIndex(use_cli=False)
    for runtime, container in all_containers.items():
        result = identify(index, container)
        assert (result["identity"]["runtime"], result["identity"]["name"]) == (runtime, container.name)
        assert result["requested"]["net.core.somaxconn"] == "1024"
    assert index.cli_calls == []


def test_docker_api_when_files_are_unknown(docker_container):
    """A dockerd whose data-root we do not know: the cgroup names the container, the unix
    socket's HTTP API describes it."""
    index = RuntimeIndex(paths={"docker_roots": [], "docker_exec_roots": [], "containerd_task_dirs": [],
                                "runc_roots": [], "docker_sockets": [docker_container.extra["socket"]]},
                         discover=False)
    result = identify(index, docker_container)
    ident = result["identity"]
    assert (ident["runtime"], ident["id"], ident["name"], ident["image"]) == (
        "docker", docker_container.id, docker_container.name, docker_container.image)
    assert result["requested"] == {"net.core.somaxconn": "1024"}
    assert result["requested_source"].startswith("api:")
    assert any(s.startswith("api:") for s in ident["sources"])
    assert result["host_network"] is False


def test_identify_kubernetes_pod_on_containerd(k8s_pod):
    """containerd's CRI annotations name the pod; the pod's sysctls live on the sandbox and
    the app container, which joins the sandbox's netns by path, gets them from there."""
    index = RuntimeIndex()
    app = identify(index, k8s_pod.app)
    ident = app["identity"]
    assert (ident["runtime"], ident["id"], ident["name"], ident["image"]) == (
        "containerd", k8s_pod.app.id, "app", k8s_pod.app.image)
    assert (ident["pod_name"], ident["pod_namespace"]) == (k8s_pod.pod_name, k8s_pod.pod_namespace)
    assert ident["labels"]["io.containerd.namespace"] == "k8s.io"
    assert app["requested"] == {"net.core.somaxconn": "1024"}
    assert k8s_pod.sandbox.id in app["requested_source"]
    assert app["host_network"] is False and app["host_ipc"] is False
    assert any(s.startswith("cgroup:/kubepods/besteffort/pod") for s in ident["sources"])
    sandbox = identify(index, k8s_pod.sandbox)
    assert (sandbox["identity"]["name"], sandbox["identity"]["pod_name"]) == ("POD", k8s_pod.pod_name)
    assert sandbox["requested"] == {"net.core.somaxconn": "1024"}


def test_docker_api_get_version(docker_engine):
    version = docker_api_get(str(docker_engine.socket), "/version", timeout=5.0)
    assert version["Version"].startswith("20.10")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileges_of_real_container(runtime, all_containers):
    priv = procinfo.read_privileges(all_containers[runtime].pid, host_ns())
    assert priv["errors"] == []
    assert priv["privileged"] is False
    assert priv["userns_is_host"] is True
    assert priv["proc_sys_rw"] is False, "every runtime mounts /proc/sys read-only by default"
    assert "CAP_SYS_MODULE" not in priv["capabilities"]
    if runtime == "lxc":
        # proc:mixed leaves the container's own network sysctls writable.
        assert priv["proc_sys_rw_subtrees"] == ["/proc/sys/net"]
    else:
        assert priv["proc_sys_rw_subtrees"] == []


def test_host_privileges_for_contrast():
    priv = procinfo.read_privileges(os.getpid(), host_ns())
    assert priv["privileged"] is True and priv["proc_sys_rw"] is True and priv["userns_is_host"] is True


# ---------------------------------------------------------------------------------------------
# A global key is rejected by docker, podman and runc (texts as in the runtimes reference);
# LXC does not validate and fails only because /proc/sys is read-only in the container.
# The value asked for is the host's own, so even a leak would change nothing.

def _max_map_count():
    with open("/proc/sys/vm/max_map_count") as handle:
        return handle.read().strip()


def test_docker_rejects_global_sysctl(docker_engine):
    value = _max_map_count()
    proc = docker_engine.try_run("--sysctl", "vm.max_map_count=%s" % value)
    assert proc.returncode == 125
    assert "sysctl 'vm.max_map_count=%s' is not whitelisted" % value in proc.stderr
    assert _max_map_count() == value


def test_podman_rejects_global_sysctl(podman_runtime):
    value = _max_map_count()
    proc = podman_runtime.try_run("--sysctl", "vm.max_map_count=%s" % value)
    assert proc.returncode == 125
    assert "Error: sysctl 'vm.max_map_count' is not allowed" in proc.stderr
    assert _max_map_count() == value


def test_runc_rejects_global_sysctl(runc_runtime, busybox_rootfs, host_state):
    value = _max_map_count()
    name = "%s-runc-global" % os.getpid()
    host_state.own_names.append(name)
    proc = runc_runtime.try_run(name, busybox_rootfs.dir, {"vm.max_map_count": value})
    assert proc.returncode != 0
    # runc logs through logrus: without a terminal the message is quoted, its quotes escaped.
    assert 'runc run failed: sysctl "vm.max_map_count" is not in a separate kernel namespace' in proc.stderr.replace('\\"', '"')
    assert _max_map_count() == value


def test_lxc_does_not_validate_global_sysctl(lxc_runtime, host_state):
    value = _max_map_count()
    name = "%s-lxc-global" % os.getpid()
    host_state.own_names.append(name)
    lxc_runtime.create(name, {"vm.max_map_count": value})
    proc = lxc_runtime.start_container(name)
    assert proc.returncode not in (None, 0)
    log = lxc_runtime.log_text(name)
    assert "Failed to setup sysctl parameters vm.max_map_count to %s" % value in log
    assert "Read-only file system" in log
    assert _max_map_count() == value


# ---------------------------------------------------------------------------------------------

def test_vanished_container_is_an_error_not_a_crash(runc_runtime, busybox_rootfs, host_state):
    """A container killed between the scan and identify: the result says so, nothing raises."""
    name = "%s-runc-gone" % os.getpid()
    host_state.own_names.append(name)
    container = runc_runtime.run(name, busybox_rootfs.dir)
    ns_set = set_of(container.pid)
    index = RuntimeIndex()
    index.scan()
    subprocess.run(["runc", "kill", name, "KILL"], check=True)
    assert ct._wait_pid_gone(container.pid, 10, zombie_ok=False)
    result = index.identify(pids=ns_set["pids"], init_pid=container.pid, ns=ns_set["ns"])
    assert any("pid %d" % container.pid in e["message"] and "exited" in e["message"] for e in result["errors"])
    # runc's state.json still names it (with the recorded init start time).
    assert result["identity"]["id"] == name
    priv = procinfo.read_privileges(container.pid, host_ns())
    assert priv["cap_eff"] is None and "exited" in priv["errors"][0]["message"]


def test_runtimes_changed_no_host_setting(all_containers, host_state):
    """With the harness's flags no runtime touched a host sysctl, link or nft table (cgroups
    of running containers are expected and removed at teardown)."""
    changes = [c for c in host_state.state.changes(host_state.own_names) if not c.startswith("cgroup ")]
    assert changes == []


def test_one_index_identifies_all(all_containers):
    """One index, as one gather builds it, names all four. Prints (pytest -s) what it cost and
    the harness's step timings, for the record; nothing here asserts a duration."""
    start = time.monotonic()
    index = RuntimeIndex()
    for container in all_containers.values():
        assert identify(index, container)["identity"]["runtime"] == container.runtime
    elapsed = time.monotonic() - start
    print("\nRuntimeIndex: 4 containers identified in %.3f s (cli calls: %s); harness steps: %s"
          % (elapsed, index.cli_calls, json.dumps(TIMINGS, sort_keys=True)))
