"""The audit playbook against real containers (the runtimes harness): a Podman container from
an image tagged like Elasticsearch, the harness's Docker container asking for a per-namespace
key, and an LXC container that shares the host's network namespace yet asks for a net key.
The container-spec remediation for Podman runs in ``--check`` against the real container."""
from __future__ import annotations

import subprocess

import pytest

from tests.integration.harness.fixtures import (  # noqa: F401  (pytest finds fixtures by name)  # pylint: disable=unused-import
    TAG, busybox_rootfs, docker_container, docker_engine, host_state, lxc_runtime, podman_runtime, runtime_workdir)
from tests.integration.test_audit_support import read_sysctl, run_playbook, write_playbook

pytestmark = [pytest.mark.root, pytest.mark.slow]

ES_IMAGE = "localhost/nsguard-test/elasticsearch:8.15.0"
LXC_KEY = "net.ipv4.tcp_fin_timeout"


@pytest.fixture(scope="module")
def es_podman(podman_runtime):
    name = TAG + "-es"
    podman_runtime.cli("tag", podman_runtime.IMAGE, ES_IMAGE)
    cid = podman_runtime.cli("run", "-d", "--name", name, "--label", "nsguard.test=audit", *podman_runtime.RUN_FLAGS,
                             ES_IMAGE, "sleep", "3600").stdout.strip().splitlines()[-1]
    try:
        yield {"name": name, "id": cid, "podman": podman_runtime}
    finally:
        podman_runtime.cli("rm", "-f", "-t", "0", cid, check=False)
        podman_runtime.cli("rmi", ES_IMAGE, check=False)  # the tag only: the harness image stays


@pytest.fixture(scope="module")
def lxc_hostnet(lxc_runtime, host_state):
    """An LXC container in the host's network namespace (lxc.net.0.type = none) asking for a
    net key with the host's own value: LXC does not check, and writes it (unchanged).
    ``{"skip": reason}`` when it cannot start here, so the other tests still run."""
    name = TAG + "-lxchost"
    host_state.own_names.append(name)  # its lxc.monitor cgroups are removed at session end
    value = read_sysctl(LXC_KEY)
    lxcpath = str(lxc_runtime.workdir)
    state = {"name": name, "value": value}
    try:
        lxc_runtime.create(name, {LXC_KEY: value}, extra_lines=["lxc.net.0.type = none"])
        lxc_runtime.start_container(name, timeout=30.0)
        pid = subprocess.run(["lxc-info", "-P", lxcpath, "-n", name, "-pH"], capture_output=True, text=True,
                             timeout=30, check=False).stdout.strip()
        if pid.isdigit():
            state["pid"] = int(pid)
        else:
            state["skip"] = "did not start: %s" % lxc_runtime.log_text(name)[-600:]
    except Exception as exc:  # a slow or failed start must not cost the other containers' tests
        state["skip"] = "did not start: %s: %s" % (type(exc).__name__, exc)
    try:
        yield state
    finally:
        subprocess.run(["lxc-stop", "-P", lxcpath, "-n", name, "-k"], capture_output=True, timeout=30, check=False)
        proc = lxc_runtime.procs.pop(name, None)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        subprocess.run(["lxc-destroy", "-P", lxcpath, "-n", name], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def audit(es_podman, docker_container, lxc_hostnet, tmp_path_factory):
    work = tmp_path_factory.mktemp("audit-containers")
    run = run_playbook("nsguard.sysctl.audit", {"nsguard_sysctl_fail_on": "never", "nsguard_sysctl_report": False,
                                                "nsguard_sysctl_remediation_sysctl_d_dir": str(work / "sysctl.d")},
                       workdir=work)
    assert run.rc == 0, run.stdout[-3000:]
    return run, work


def of_container(findings, name):
    return [f for f in findings if (f["container"] or {}).get("name") == name]


def test_podman_container_imaged_like_elasticsearch(audit, es_podman):
    run, dummy = audit
    mine = of_container(run.findings, es_podman["name"])
    [nsg003] = [f for f in mine if f["rule"] == "NSG003"]
    assert nsg003["container"]["runtime"] == "podman" and nsg003["container"]["image"] == ES_IMAGE
    assert nsg003["container"]["id"] == es_podman["id"]
    host_value = int(read_sysctl("vm.max_map_count"))
    assert int(nsg003["values"]["host"]) == host_value
    assert nsg003["severity"] == ("error" if host_value < 262144 else "warning")
    assert "vm.max_map_count is global" in nsg003["message"]
    assert nsg003["remediation"]["tasks"][0]["ansible.posix.sysctl"]["value"] == "1048576"
    # tcp_retries2 is per network namespace: the fix goes into the container's spec
    [nsg009] = [f for f in mine if f["rule"] == "NSG009"]
    assert (nsg009["key"], nsg009["severity"], nsg009["values"]["container"]) == ("net.ipv4.tcp_retries2", "info", "15")
    [task] = nsg009["remediation"]["tasks"]
    spec = task["containers.podman.podman_container"]["sysctl"]
    assert spec["net.ipv4.tcp_retries2"] == "5"
    # the rest is what podman already asks for (its own defaults unless the facts tell them apart)
    facts = run.task_result("Gather the sysctl facts")["ansible_facts"]["nsguard_sysctl"]
    [nset] = [s for s in facts["namespace_sets"] if s["identity"].get("name") == es_podman["name"]]
    assert {k: v for k, v in spec.items() if k != "net.ipv4.tcp_retries2"}.items() <= {
        k: " ".join(v.split()) for k, v in nset["requested"].items()}.items()


def test_podman_spec_task_runs_in_check_mode_against_the_real_container(audit, es_podman):
    run, work = audit
    [nsg009] = [f for f in of_container(run.findings, es_podman["name"]) if f["rule"] == "NSG009"]
    [task] = nsg009["remediation"]["tasks"]
    task = dict(task)
    # the harness keeps podman's storage private: tell the module where (test set-up only)
    # (and its image-exists check ignores cmd_args: the image is local, never pull it)
    task["containers.podman.podman_container"] = dict(task["containers.podman.podman_container"],
                                                      cmd_args=es_podman["podman"].global_args()[1:], pull="never")
    playbook = write_playbook(work / "podman-check.yml", [{"hosts": "localhost", "gather_facts": False,
                                                          "tasks": [task]}])
    skipped = run_playbook(str(playbook), workdir=work, args=["--check"])
    assert skipped.task_result(task["name"]).get("skipped") is True  # guarded: recreating needs consent
    result = run_playbook(str(playbook), {"nsguard_sysctl_container_spec_apply": True}, workdir=work,
                          args=["--check", "--diff"])
    assert result.rc == 0, result.stdout[-3000:]
    res = result.task_result(task["name"])
    assert res["changed"] is True and not res.get("failed")
    # check mode: the container still runs, unchanged
    state = es_podman["podman"].cli("inspect", "-f", "{{.State.Running}} {{.Id}}", es_podman["name"]).stdout.split()
    assert state == ["true", es_podman["id"]]


def test_docker_container_with_a_namespaced_request_is_clean(audit, docker_container):
    run, dummy = audit
    mine = of_container(run.findings, docker_container.name)
    assert {f["rule"] for f in mine} & {"NSG001", "NSG002", "NSG007"} == set()
    facts = run.task_result("Gather the sysctl facts")["ansible_facts"]["nsguard_sysctl"]
    [nset] = [s for s in facts["namespace_sets"] if s["identity"].get("name") == docker_container.name]
    assert nset["requested"]["net.core.somaxconn"] == "1024" and nset["identity"]["runtime"] == "docker"


def test_lxc_sharing_the_hosts_network_namespace_asks_for_a_net_key(audit, lxc_hostnet):
    if lxc_hostnet.get("skip"):
        pytest.skip("LXC container with the host's network: %s" % lxc_hostnet["skip"])
    run, dummy = audit
    [finding] = [f for f in of_container(run.findings, lxc_hostnet["name"]) if f["rule"] == "NSG007"]
    assert finding["severity"] == "error" and finding["key"] == LXC_KEY and finding["namespace"] == "net"
    assert finding["details"]["shared_namespaces"][:1] == ["net"]
    assert finding["values"]["requested"] == lxc_hostnet["value"]
    tasks = finding["remediation"]["tasks"]
    # the host already has the value: only the LXC config line goes
    assert [t["ansible.builtin.lineinfile"]["state"] for t in tasks] == ["absent"]
    assert tasks[0]["ansible.builtin.lineinfile"]["path"].endswith("/%s/config" % lxc_hostnet["name"])


def test_docker_spec_task_runs_in_check_mode_against_the_real_container(audit, docker_container):
    """community.docker needs the ``requests`` library on the target's Python."""
    pytest.importorskip("requests", reason="community.docker.docker_container needs python requests "
                                           "(not in test-requirements.txt yet)")
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import container_sysctl_tasks

    run, work = audit
    facts = run.task_result("Gather the sysctl facts")["ansible_facts"]["nsguard_sysctl"]
    [nset] = [s for s in facts["namespace_sets"] if s["identity"].get("name") == docker_container.name]
    [task] = container_sysctl_tasks("NSG004", nset["identity"], {"net.core.somaxconn": "2048"},
                                    requested=nset["requested"])
    args = dict(task["community.docker.docker_container"],
                docker_host="unix://%s" % docker_container.extra["socket"], network_mode="none")
    task = dict(task, **{"community.docker.docker_container": args})
    playbook = write_playbook(work / "docker-check.yml", [{"hosts": "localhost", "gather_facts": False,
                                                          "tasks": [task]}])
    result = run_playbook(str(playbook), {"nsguard_sysctl_container_spec_apply": True}, workdir=work,
                          args=["--check", "--diff"])
    assert result.rc == 0, result.stdout[-3000:]
    assert result.task_result(task["name"])["changed"] is True
