"""The nsguard.sysctl rules in process, through ansible-lint's own testing helpers."""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import yaml

import nsguard_sysctl_lintlib as lib
from tests.ansible_lint.conftest import RULE_IDS, knowledge_file
from nsguard_sysctl_global import SysctlGlobalInContainerRule


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def found(matches):
    return sorted((m.tag, m.lineno) for m in matches)


ES_PLAY = dedent("""
    ---
    - name: Search
      hosts: all
      tasks:
        - name: Elasticsearch
          community.docker.docker_container:
            name: es
            image: elasticsearch:8.15.0
            sysctls:
              vm.max_map_count: 262144
              net.core.somaxconn: 1024
    """)


@pytest.mark.parametrize("rule_runner", (SysctlGlobalInContainerRule,), indirect=["rule_runner"])
def test_rule_runner_reports_one_key_with_remediation(rule_runner):
    [match] = rule_runner.run_playbook(ES_PLAY)
    assert match.tag == "sysctl-global-in-container[vm.max_map_count]"
    assert match.rule.id == "sysctl-global-in-container"
    assert match.lineno == 10  # the key's own line, not the task's
    assert "vm.max_map_count is global" in match.message and "the docker_container 'es' task" in match.message
    assert match.level == "error"
    lead, dummy, body = match.details.partition("\n")
    assert "Remove it from the container spec" in lead
    [task] = yaml.safe_load(body)
    assert (task["ansible.posix.sysctl"]["name"], task["ansible.posix.sysctl"]["value"]) == ("vm.max_map_count", "262144")
    # the collection's one docs base (report.docs_base_url): by default its own docs, as a file URL
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import report
    assert match.rule.url == report.rule_help_uri("sysctl-global-in-container", report.DEFAULT_DOCS_BASE_URL)
    assert match.rule.url == (lib.collection_root() / "docs" / "rules" / "sysctl-global-in-container.md").as_uri()


def test_rules_have_valid_metadata(nsguard_rules):
    ours = {r.id: r for r in nsguard_rules if r.id in RULE_IDS}
    assert sorted(ours) == sorted(RULE_IDS)
    required = {"command-shell", "core", "deprecations", "experimental", "formatting", "idempotency", "idiom",
                "metadata", "opt-in", "security", "syntax", "unpredictability", "unskippable", "yaml"}
    docs = Path(lib.collection_root()) / "docs" / "rules"
    for rule in ours.values():
        assert set(rule.tags) & required, rule.id
        assert "nsguard-sysctl" in rule.tags
        assert rule.description and rule.shortdesc and rule.severity
        assert (docs / f"{rule.id}.md").is_file(), f"docs page for {rule.id}"
        assert rule.url.endswith(f"/docs/rules/{rule.id}.md")
    # Warning-only rules are exactly those that depend on what a linter cannot see (the kernel,
    # the kubelet's flags, the kernels not listed, the Docker Engine version).
    assert {r.id for r in ours.values() if "experimental" in r.tags} == {
        "sysctl-kernel-gated", "sysctl-k8s-unsafe", "sysctl-unknown-key", "sysctl-runtime-version-gated"}


def test_docs_url_is_configurable(monkeypatch):
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import report
    monkeypatch.setenv(report.DOCS_BASE_ENV, "https://docs.example.org/nsguard")
    assert lib.docs_url("sysctl-k8s-unsafe") == "https://docs.example.org/nsguard/docs/rules/sysctl-k8s-unsafe.md"
    # one setting: the reports' default base follows the same variable
    assert report.docs_base_url() == "https://docs.example.org/nsguard/"


def test_every_task_target(runner):
    play = dedent("""
        ---
        - name: Targets
          hosts: all
          tasks:
            - name: Short name  # noqa: fqcn[action]
              docker_container:
                name: a
                image: busybox:1.36
                sysctls: {kernel.msgmax: 65536, vm.swappiness: 1}
            - name: Podman uses `sysctl`
              containers.podman.podman_container:
                name: b
                image: busybox:1.36
                sysctl:
                  net.core.netdev_budget: 600
            - name: Swarm service
              community.docker.docker_swarm_service:
                name: c
                image: busybox:1.36
                networks: [host]
                sysctls:
                  net.ipv4.tcp_keepalive_time: 600
            - name: Compose v2 inline
              community.docker.docker_compose_v2:
                project_name: d
                definition:
                  services:
                    db:
                      image: postgres:16
                      ipc: host
                      sysctls: [kernel.shmmax=68719476736]
            - name: Kubernetes inline
              kubernetes.core.k8s:
                definition:
                  apiVersion: v1
                  kind: Pod
                  metadata: {name: p}
                  spec:
                    securityContext:
                      sysctls:
                        - {name: kernel.pid_max, value: "4194304"}
                        - {name: net.ipv4.tcp_syncookies, value: "1"}
                    containers: [{name: c, image: busybox:1.36}]
        """)
    assert found(runner.run_playbook(play)) == [
        ("sysctl-absent-in-container[net.core.netdev_budget]", 15),
        ("sysctl-global-in-container[vm.swappiness]", 9),
        ("sysctl-host-namespace[kernel.shmmax]", 31),
        ("sysctl-host-namespace[net.ipv4.tcp_keepalive_time]", 22),
        ("sysctl-rejected-by-runtime[kernel.pid_max]", 41),
    ]


def test_container_tasks_deep_in_blocks_and_action_forms(runner):
    # The rules skip ansible-lint's task normalization for files whose raw data holds no
    # container task anywhere; these forms are each the file's only container task.
    nested = dedent("""
        ---
        - name: Nested
          hosts: all
          tasks:
            - name: Plain
              ansible.builtin.debug: {msg: x}
            - name: Outer
              block:
                - name: Inner
                  block:
                    - name: Deep container
                      community.docker.docker_container:
                        name: a
                        image: busybox:1.36
                        sysctls: {vm.swappiness: 1}
              rescue:
                - name: Nothing here
                  ansible.builtin.debug: {msg: y}
        """)
    assert found(runner.run_playbook(nested)) == [("sysctl-global-in-container[vm.swappiness]", 15)]
    action = dedent("""
        ---
        - name: Action form
          hosts: all
          tasks:
            - name: Old style  # noqa: fqcn[action]
              action:
                module: community.docker.docker_container
                name: a
                image: busybox:1.36
                sysctls: {vm.swappiness: 1}
        """)
    assert found(runner.run_playbook(action)) == [("sysctl-global-in-container[vm.swappiness]", 10)]
    shell = dedent("""
        ---
        - name: Command line
          hosts: all
          tasks:
            - name: Docker CLI
              ansible.builtin.command: docker run --sysctl vm.swappiness=1 busybox:1.36 true
              changed_when: false
        """)
    assert [rule for rule, _line in found(runner.run_playbook(shell))] == ["sysctl-global-in-container[vm.swappiness]"]
    none = dedent("""
        ---
        - name: No container
          hosts: all
          tasks:
            - name: Plain
              ansible.builtin.debug: {msg: "--sysctl vm.swappiness=1"}
        """)
    assert runner.run_playbook(none) == []


def test_noqa_targets_one_key(runner):
    play = ES_PLAY.replace("vm.max_map_count: 262144", "vm.max_map_count: 262144\n          vm.swappiness: 1") \
        .replace("- name: Elasticsearch", "- name: Elasticsearch  # noqa: sysctl-global-in-container[vm.max_map_count]")
    assert found(runner.run_playbook(play)) == [("sysctl-global-in-container[vm.swappiness]", 11)]
    whole = ES_PLAY.replace("- name: Elasticsearch", "- name: Elasticsearch  # noqa: sysctl-global-in-container")
    assert runner.run_playbook(whole) == []


def test_container_connections(runner):
    play = dedent("""
        ---
        - name: Inside containers
          hosts: ctrs
          connection: containers.podman.podman
          gather_facts: false
          tasks:
            - name: Global from inside
              ansible.posix.sysctl: {name: vm.swappiness, value: "10"}
            - name: Free form, short name  # noqa: fqcn[action]
              sysctl: name=fs.inotify.max_user_watches value=524288
            - name: Per netns, fine
              ansible.posix.sysctl: {name: net.ipv4.ip_forward, value: "1"}
            - name: Removing is fine
              ansible.posix.sysctl: {name: vm.swappiness, state: absent}
            - name: On the host
              vars: {ansible_connection: local}
              ansible.posix.sysctl: {name: vm.dirty_ratio, value: "10"}
            - name: Nested block, own connection
              connection: kubectl  # noqa: fqcn[action]
              block:
                - name: Deep
                  ansible.posix.sysctl: {name: kernel.threads-max, value: "100000"}
        - name: Ordinary host play
          hosts: hosts
          tasks:
            - name: Host tuning is what we recommend
              ansible.posix.sysctl: {name: vm.swappiness, value: "10"}
        """)
    assert found(runner.run_playbook(play)) == [
        ("sysctl-global-in-container[fs.inotify.max_user_watches]", 9),
        ("sysctl-global-in-container[kernel.threads-max]", 21),
        ("sysctl-global-in-container[vm.swappiness]", 7),
    ]


def test_templated_input_never_crashes(runner, caplog):
    play = dedent("""
        ---
        - name: Templated
          hosts: all
          connection: "{{ conn }}"
          tasks:
            - name: Mapping from a variable
              community.docker.docker_container: {name: a, image: b, sysctls: "{{ s }}"}
            - name: Templated key, literal key with templated value
              community.docker.docker_container:
                name: a
                image: b
                sysctls:
                  "{{ k }}": "{{ v }}"
                  vm.swappiness: "{{ v }}"
            - name: Odd shapes
              community.docker.docker_container:
                name: a
                image: b
                sysctls: [42, {value: 1}, "no-equals-sign", {name: "{{ n }}", value: 1}]
            - name: Definition as a string
              kubernetes.core.k8s: {definition: "{{ lookup('file', 'x.yml') }}"}
            - name: Definition odd
              kubernetes.core.k8s: {definition: [1, "x", {kind: Pod, apiVersion: v1, spec: "{{ s }}"}]}
            - name: Sysctl with a template
              ansible.posix.sysctl: {name: "{{ item }}", value: "1"}
              loop: [vm.swappiness]
        """)
    with caplog.at_level(logging.WARNING):
        matches = runner.run_playbook(play)
    # Only the literal key can be judged; its templated value ends up in the remediation.
    assert found(matches) == [("sysctl-global-in-container[vm.swappiness]", 14)]
    assert "{{ v }}" in matches[0].details
    assert not [r for r in caplog.records if "Ignored exception" in r.getMessage()]


def test_compose_and_manifest_files(runner, tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(dedent("""
        services:
          es:
            image: elasticsearch:8.15.0
            sysctls:
              vm.max_map_count: 262144  # noqa: sysctl-global-in-container
              kernel.pid_max: 99999  # noqa: sysctl-rejected-by-runtime[kernel.pid_max]
              fs.file-max: 100000
              net.core.somaxconn: 1024
        """))
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(dedent("""
        apiVersion: v1
        kind: List
        items:
          - apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: rs}
            spec:
              template:
                spec:
                  hostIPC: true
                  securityContext:
                    sysctls:
                      - {name: fs.mqueue.msg_max, value: "100"}
                  containers: [{name: c, image: busybox:1.36}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: not-a-pod}
        data: {sysctls: "vm.swappiness=1"}
        """))
    assert found(runner.run(compose)) == [("sysctl-global-in-container[fs.file-max]", 7)]
    assert found(runner.run(manifest)) == [("sysctl-host-namespace[fs.mqueue.msg_max]", 13)]


def test_bad_floor_is_reported_once_and_names_the_variable(runner, clean_setup):
    clean_setup.setenv("NSGUARD_SYSCTL_KERNEL_FLOOR", "latest")
    matches = runner.run_playbook(ES_PLAY)
    assert [m.tag.endswith("[setup]") for m in matches] == [True]
    assert "NSGUARD_SYSCTL_KERNEL_FLOOR='latest'" in matches[0].message
    assert runner.run_playbook(ES_PLAY) == []  # once per process, not once per file


def test_floor_changes_the_verdict(runner, clean_setup):
    play = ES_PLAY.replace("net.core.somaxconn: 1024", "net.ipv4.tcp_congestion_control: bbr")
    clean_setup.setenv("NSGUARD_SYSCTL_KERNEL_FLOOR", "4.9")
    assert ("sysctl-kernel-gated[net.ipv4.tcp_congestion_control]", 11) in found(runner.run_playbook(play))
    lib.setup.cache_clear()
    lib._verdicts.cache_clear()
    clean_setup.setenv("NSGUARD_SYSCTL_KERNEL_FLOOR", "5.4")
    assert found(runner.run_playbook(play)) == [("sysctl-global-in-container[vm.max_map_count]", 10)]


def test_site_knowledge_dir_overrides_an_entry(runner, clean_setup, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    # A site entry with the collection's id replaces it.
    (site / "local.yml").write_text(knowledge_file("site", "net-core-somaxconn", "net.core.somaxconn"))
    clean_setup.setenv("NSGUARD_SYSCTL_KNOWLEDGE_DIRS", str(site))
    assert ("sysctl-global-in-container[net.core.somaxconn]", 11) in found(runner.run_playbook(ES_PLAY))


def test_broken_site_knowledge_names_the_file(runner, clean_setup, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "bad.yml").write_text("schema_version: 1\narea: site\nentries:\n  - id: x\n    class: weird\n")
    clean_setup.setenv("NSGUARD_SYSCTL_KNOWLEDGE_DIRS", str(site))
    [match] = runner.run_playbook(ES_PLAY)
    assert match.tag.endswith("[setup]") and str(site / "bad.yml") in match.message


@pytest.mark.parametrize("container, key, left", [
    ({"vm.swappiness": 1, "net.core.somaxconn": 2}, "vm.swappiness", {"net.core.somaxconn": 2}),
    (["vm.swappiness=1", "net.core.somaxconn=2"], "vm.swappiness", ["net.core.somaxconn=2"]),
    ([{"name": "a.b", "value": 1}, 7, {"name": "vm.swappiness", "value": 1}], "vm.swappiness", [{"name": "a.b", "value": 1}, 7]),
    ([{"name": "net/core/somaxconn", "value": 1}], "net.core.somaxconn", []),
    ({"a.b": 1}, "vm.swappiness", {"a.b": 1}),
])
def test_remove_sysctl(container, key, left):
    changes = container != left
    assert lib.remove_sysctl(container, key) is changes
    assert container == left
