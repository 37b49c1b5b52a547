"""Pod-template patches for every workload kind, from the facts engine through the real renderer.

A pod is immutable: its fix goes into its owner's pod template, which sits at a different path
per kind (plugin_utils/container_specs.POD_SPEC_PATHS: a CronJob's under
``spec.jobTemplate.spec.template.spec``, an OpenShift DeploymentConfig's under
``spec.template.spec`` with apiVersion ``apps.openshift.io/v1``). Findings come from
``evaluator.evaluate`` over facts, the playbook from ``renderers.write_reports``, and the playbook is
checked by the real ``ansible-playbook --syntax-check`` and ``--check`` (the container-spec
tasks are opt-in, so check mode touches no cluster).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import container_specs as specs
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from tests.ansible_run import run_playbook

# Pods as the kubelet names them, with the labels their owners give them.
PODS = {
    # CronJob "report" -> Job "report-29418240" (scheduled minute) -> pod "report-29418240-x7k2p"
    "cronjob": ({"pod_name": "report-29418240-x7k2p",
                 "labels": {"batch.kubernetes.io/job-name": "report-29418240"}},
                ("batch/v1", "CronJob", "report"), ("spec", "jobTemplate", "spec", "template", "spec")),
    # DeploymentConfig "shop" revision 3 -> pod "shop-3-q8zvt"
    "deploymentconfig": ({"pod_name": "shop-3-q8zvt",
                          "labels": {"openshift.io/deployment-config.name": "shop", "deploymentconfig": "shop"}},
                         ("apps.openshift.io/v1", "DeploymentConfig", "shop"), ("spec", "template", "spec")),
    "deployment": ({"pod_name": "web-7c9d8b5f4-xk2lp", "labels": {}},
                   ("apps/v1", "Deployment", "web"), ("spec", "template", "spec")),
}


def _facts():
    sets = []
    for index, (kind, (identity, dummy, dummy2)) in enumerate(PODS.items()):
        sets.append({"id": "net:%d/%s" % (4026532900 + index, kind),
                     "identity": dict(identity, runtime="containerd", name="main", pod_namespace="apps"),
                     "requested": {"vm.max_map_count": "262144", "net.core.somaxconn": "4096"}})
    return rule_catalog.example_facts({"host": {"keys": {"vm.max_map_count": "65530", "net.core.somaxconn": "4096"},
                                                "modes": {"vm.max_map_count": "0644", "net.core.somaxconn": "0644"}},
                            "namespace_sets": sets})


def _dig(node, path):
    for part in path:
        node = node[part]
    return node


@pytest.fixture(scope="module")
def findings():
    errors = []
    found = evaluator.evaluate(_facts(), rule_catalog.example_classification({"vm.max_map_count": "global"}), rule_catalog.load_catalog(), [],
                       host="node1", kb=load_knowledge(), errors=errors)
    assert errors == []
    return [f for f in found if f["rule"] == "NSG001"]


@pytest.mark.parametrize("kind", sorted(PODS))
def test_the_facts_engine_patches_the_owner_s_pod_template(findings, kind):
    identity, (api, owner_kind, name), path = PODS[kind]
    [finding] = [f for f in findings if f["set_id"].endswith("/" + kind)]
    [patch] = [t for t in finding["remediation"]["tasks"] if specs.K8S_MODULE in t]
    args = patch[specs.K8S_MODULE]
    assert (args["api_version"], args["kind"], args["name"], args["namespace"]) == (api, owner_kind, name, "apps")
    pod = _dig(args["definition"], path)
    # the global key leaves the template; the container's other request stays
    assert pod == {"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "4096"}]}}
    assert specs.pod_spec_in(args["definition"], owner_kind) == pod


def test_owner_guess_without_labels_still_knows_cronjob_pods():
    """The scheduled-minute run of a CronJob's pod name (8+ digits with a 0, 1 or 3) is no
    pod-template hash (Kubernetes' safe alphabet has no 0, 1 or 3)."""
    assert specs.pod_owner("report-29418240-x7k2p")["kind"] == "CronJob"
    assert specs.pod_owner("web-7c9d8b5f4-xk2lp") == {"api_version": "apps/v1", "kind": "Deployment", "name": "web"}
    # without the deployer's labels a DeploymentConfig's pod is not told from a DaemonSet's
    assert specs.pod_owner("shop-3-q8zvt")["kind"] == "DaemonSet"
    assert specs.pod_owner("shop-3-q8zvt", {"deploymentconfig": "shop"})["kind"] == "DeploymentConfig"


def _load(path: Path):
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_constructor("!unsafe", lambda ld, node: ld.construct_scalar(node))
    return yaml.load(path.read_text(), Loader=loader)


@pytest.fixture(scope="module")
def playbook(findings, tmp_path_factory):
    dest = tmp_path_factory.mktemp("workloads")
    fleet = {"node1": {"status": "ok", "facts": _facts(), "findings": findings}}
    written, errors = renderers.write_reports(report.build_fleet(fleet), str(dest), ["remediation"])
    assert not errors
    return Path(written["remediation"])


def test_the_renderer_keeps_each_kind_s_pod_template_path(playbook):
    k8s = _load(playbook)[-1]
    assert k8s["hosts"] == "localhost"
    patches = {t[specs.K8S_MODULE]["kind"]: t[specs.K8S_MODULE] for top in k8s["tasks"]
               for t in top.get("block", [top]) if specs.K8S_MODULE in t}
    assert set(patches) == {owner for dummy, (dummy2, owner, dummy3), dummy4 in PODS.values()}
    for identity, (api, kind, name), path in PODS.values():
        args = patches[kind]
        assert (args["api_version"], args["name"]) == (api, name)
        sysctls = _dig(args["definition"], path)["securityContext"]["sysctls"]
        assert sysctls == [{"name": "net.core.somaxconn", "value": "4096"}], kind


@pytest.mark.slow
def test_ansible_playbook_accepts_the_patches(playbook):
    run_playbook(playbook, "--syntax-check", check=True)
    out = run_playbook(playbook, "--check", "--tags", "NSG001", check=True).stdout
    # opt-in: the patch tasks are listed and skipped (no cluster is contacted)
    for dummy, (dummy2, kind, name), dummy3 in PODS.values():
        assert "in the pod template of %s apps/%s" % (kind, name) in out
