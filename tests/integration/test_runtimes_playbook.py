"""The facts module through a real ``ansible-playbook`` run while real containers of every
runtime run: each is found, named by runtime, name and image, with its requested sysctls and
the value its own network namespace shows."""
from __future__ import annotations

import pytest

from tests.ansible_run import gather_facts_via_playbook
# pytest finds fixtures by name: importing them is using them.
from tests.integration.harness.fixtures import (  # noqa: F401 pylint: disable=unused-import
    all_containers, busybox_rootfs, docker_container, docker_engine, host_state, k8s_pod, lxc_container,
    lxc_runtime, podman_container, podman_runtime, runc_container, runc_runtime, runtime_workdir,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def facts(all_containers, k8s_pod, tmp_path_factory):
    return gather_facts_via_playbook(tmp_path_factory.mktemp("runtimes-play"), {"probe": False})


def _set_for(facts, container):
    for ns_set in facts["namespace_sets"]:
        if ns_set["representative_pid"] == container.pid or container.pid in ns_set["pids"]:
            return ns_set
    raise AssertionError("no set for %s %s (pid %d) among %s" % (
        container.runtime, container.name, container.pid,
        [(s["identity"]["runtime"], s["identity"].get("name")) for s in facts["namespace_sets"]]))


@pytest.mark.parametrize("runtime", ("docker", "podman", "runc", "lxc"))
def test_playbook_identifies_container(runtime, all_containers, facts):
    container = all_containers[runtime]
    ns_set = _set_for(facts, container)
    ident = ns_set["identity"]
    assert (ident["runtime"], ident["id"], ident["name"], ident["image"]) == (
        runtime, container.id, container.name, container.image)
    assert ns_set["requested"]["net.core.somaxconn"] == "1024"
    assert ns_set["host_network"] is False
    assert ns_set["view"]["requested_values"]["net.core.somaxconn"] == "1024"
    assert ns_set["view"]["differs"]["net.core.somaxconn"]["container"] == "1024"
    assert ns_set["privileges"]["proc_sys_rw"] is False
    assert ns_set["privileges"]["privileged"] is False
    assert not [e for e in ns_set["errors"] if e.get("stage") == "identify"]


def test_playbook_identifies_kubernetes_pod(k8s_pod, facts):
    ns_set = _set_for(facts, k8s_pod.app)
    ident = ns_set["identity"]
    assert (ident["runtime"], ident["name"], ident["pod_name"], ident["pod_namespace"]) == (
        "containerd", "app", k8s_pod.pod_name, k8s_pod.pod_namespace)
    assert ns_set["requested"] == {"net.core.somaxconn": "1024"}
    assert ns_set["view"]["requested_values"]["net.core.somaxconn"] == "1024"
