"""The rules through the real ``ansible-lint`` CLI: corpus, exit codes, SARIF, profiles, --fix."""
from __future__ import annotations

import json
import re
import textwrap
from typing import Dict, List, Set, Tuple

import jsonschema
import yaml

from tests.ansible_lint.conftest import CORPUS, REPO, RULE_IDS, RULESDIR, SARIF_SCHEMA, copy_corpus, lint

Finding = Tuple[str, int, str, str]  # path, line, tag, level


def expected(floor: str = "4.18") -> Set[Finding]:
    """The findings listed beside the corpus (corpus/expected.yml) for a kernel floor."""
    data = yaml.safe_load((CORPUS / "expected.yml").read_text(encoding="utf-8"))
    out = set()
    for path, entries in data.items():
        for entry in entries:
            until = entry.get("until_floor")
            if until and tuple(map(int, floor.split("."))) >= tuple(map(int, until.split("."))):
                continue
            out.add((path, entry["line"], entry["tag"], entry["level"]))
    return out


def codeclimate(stdout: str) -> List[Dict]:
    return json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else []


def findings(stdout: str, ours_only: bool = True) -> Set[Finding]:
    out = set()
    for issue in codeclimate(stdout):
        loc = issue["location"]
        line = loc["lines"]["begin"] if "lines" in loc else loc["positions"]["begin"]["line"]
        level = "warning" if issue["severity"] == "minor" else "error"
        if not ours_only or issue["check_name"].split("[")[0] in RULE_IDS:
            out.add((loc["path"], line, issue["check_name"], level))
    return out


def test_corpus_with_the_default_rules(tmp_path):
    """rulesdir + use_default_rules on the whole corpus: exactly the expected findings, nothing else."""
    work = copy_corpus(tmp_path / "corpus")
    result = lint("-r", str(RULESDIR), "-R", "-f", "codeclimate", ".", cwd=work)
    assert result.returncode == 2, result.stderr
    every = findings(result.stdout, ours_only=False)
    assert every == expected(), (sorted(every - expected()), sorted(expected() - every))
    assert "Ignored exception" not in result.stderr
    # Every corpus file was linted (expected.yml lists the ones that must yield nothing too).
    listed = set(yaml.safe_load((CORPUS / "expected.yml").read_text()))
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.y*ml") if p.name != "expected.yml"}
    assert listed == on_disk


def test_corpus_at_a_higher_kernel_floor(tmp_path):
    work = copy_corpus(tmp_path / "corpus")
    result = lint("-r", str(RULESDIR), "-f", "codeclimate", ".", cwd=work,
                  env={"NSGUARD_SYSCTL_KERNEL_FLOOR": "6.14"})
    assert result.returncode == 2, result.stderr
    assert findings(result.stdout) == expected("6.14")
    assert expected("6.14") < expected()


def test_sarif_is_valid_and_links_to_our_docs(tmp_path):
    work = copy_corpus(tmp_path / "corpus")
    result = lint("-r", str(RULESDIR), "-f", "sarif", ".", cwd=work)
    assert result.returncode == 2, result.stderr
    sarif = json.loads(result.stdout)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(sarif)
    [run] = sarif["runs"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules and all(tag.split("[")[0] in RULE_IDS for tag in rules)
    for tag, rule in rules.items():
        rule_id = tag.split("[")[0]
        assert rule["helpUri"] == (REPO / "docs" / "rules" / f"{rule_id}.md").as_uri()
        assert (REPO / "docs" / "rules" / f"{rule_id}.md").is_file()  # the link target exists
        assert tag[len(rule_id) + 1:-1] in rule["shortDescription"]["text"]  # per-key message
    levels = {(r["ruleId"], r["level"]) for r in run["results"]}
    assert ("sysctl-k8s-unsafe[net.core.somaxconn]", "warning") in levels
    assert ("sysctl-global-in-container[vm.max_map_count]", "error") in levels
    assert {(f[2], f[1]) for f in expected()} == {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in run["results"]}
    # SARIF shows `details`: the remediation, with a task for the host.
    texts = [r["message"]["text"] for r in run["results"] if r["ruleId"].startswith("sysctl-global")]
    assert texts and all("ansible.posix.sysctl" in t for t in texts)


def test_sarif_base_url_is_configurable(tmp_path):
    work = copy_corpus(tmp_path / "c", ["compose/docker-compose.yml"])
    result = lint("-r", str(RULESDIR), "-f", "sarif", ".", cwd=work,
                  env={"NSGUARD_SYSCTL_DOCS_BASE_URL": "https://lint.example.org/nsguard/"})
    uris = {r["helpUri"] for r in json.loads(result.stdout)["runs"][0]["tool"]["driver"]["rules"]}
    assert uris == {"https://lint.example.org/nsguard/docs/rules/sysctl-global-in-container.md",
                    "https://lint.example.org/nsguard/docs/rules/sysctl-host-namespace.md"}


def test_exit_codes(tmp_path):
    work = copy_corpus(tmp_path / "c", ["k8s/safe-pod.yml"])
    (work / "warn.yml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: w}
        spec:
          securityContext:
            sysctls: [{name: net.core.somaxconn, value: "4096"}]
          containers: [{name: c, image: busybox:1.36}]
        """))
    assert lint("-r", str(RULESDIR), "k8s/safe-pod.yml", cwd=work).returncode == 0
    warn = lint("-r", str(RULESDIR), "warn.yml", cwd=work)
    assert warn.returncode == 0 and "sysctl-k8s-unsafe[net.core.somaxconn]" in warn.stdout
    assert lint("-r", str(RULESDIR), "--strict", "warn.yml", cwd=work).returncode == 2
    # Per-rule options are not allowed by ansible-lint's config schema: exit 3. Hence env vars.
    (work / "bad.yml").write_text("rules:\n  sysctl-kernel-gated:\n    floor: '5.4'\n")
    assert lint("-c", "bad.yml", "-r", str(RULESDIR), "warn.yml", cwd=work).returncode == 3


def test_skip_one_key_from_the_command_line(tmp_path):
    work = copy_corpus(tmp_path / "c", ["playbooks/elasticsearch.yml"])
    result = lint("-r", str(RULESDIR), "-f", "codeclimate", "-x", "sysctl-global-in-container[vm.max_map_count]",
                  "playbooks/elasticsearch.yml", cwd=work)
    tags = {f[2] for f in findings(result.stdout)}
    assert "sysctl-global-in-container[vm.max_map_count]" not in tags
    assert "sysctl-global-in-container[vm.overcommit_memory]" in tags


def test_bad_floor_fails_the_run_with_a_clear_message(tmp_path):
    work = copy_corpus(tmp_path / "c", ["k8s/safe-pod.yml"])
    result = lint("-r", str(RULESDIR), "-f", "pep8", "k8s/safe-pod.yml", cwd=work,
                  env={"NSGUARD_SYSCTL_KERNEL_FLOOR": "four"})
    assert result.returncode == 2
    assert "[setup]" in result.stdout and "NSGUARD_SYSCTL_KERNEL_FLOOR='four'" in result.stdout


def doc_snippet() -> str:
    """The `.ansible-lint` offered in docs/ansible-lint.md, pointed at this checkout's rules."""
    text = (REPO / "docs" / "ansible-lint.md").read_text(encoding="utf-8")
    block = re.search(r"A ready `\.ansible-lint`:\n\n```yaml\n(.*?)```", text, re.S).group(1)
    return block.replace("~/.ansible/collections/ansible_collections/nsguard/sysctl/rules/ansible_lint", str(RULESDIR))


def test_documented_config_survives_a_profile(tmp_path):
    """Profiles unload custom rules silently; the documented enable_list keeps ours."""
    work = copy_corpus(tmp_path / "c", ["playbooks/elasticsearch.yml"])
    snippet = doc_snippet()
    assert "enable_list" in snippet and "use_default_rules: true" in snippet and "mock_modules" in snippet
    (work / ".ansible-lint").write_text(snippet)
    kept = lint("-f", "codeclimate", "playbooks/elasticsearch.yml", cwd=work)
    assert kept.returncode == 2, kept.stderr
    assert {f[2] for f in findings(kept.stdout)} == {f[2] for f in expected() if f[0] == "playbooks/elasticsearch.yml"}
    config = yaml.safe_load(snippet)
    del config["enable_list"]
    (work / ".ansible-lint").write_text(yaml.safe_dump(config))
    dropped = lint("-f", "codeclimate", "playbooks/elasticsearch.yml", cwd=work)
    assert dropped.returncode == 0 and findings(dropped.stdout) == set()


def test_mock_modules_when_the_collections_are_missing(tmp_path):
    """Without community.docker, syntax-check fails unless the module is mocked; then our rule still sees it."""
    work = copy_corpus(tmp_path / "c", ["playbooks/elasticsearch.yml"])
    empty = tmp_path / "no-collections"
    (empty / "ansible_collections").mkdir(parents=True)
    env = {"ANSIBLE_COLLECTIONS_PATH": str(empty), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}
    config = {"rulesdir": [str(RULESDIR)], "use_default_rules": True}
    (work / "plain.yml").write_text(yaml.safe_dump(config))
    missing = lint("-c", "plain.yml", "-f", "codeclimate", "playbooks/elasticsearch.yml", cwd=work, env=env)
    assert missing.returncode == 2
    assert any(f[2].startswith("syntax-check") for f in findings(missing.stdout, ours_only=False))
    (work / "mocked.yml").write_text(yaml.safe_dump(dict(config, mock_modules=yaml.safe_load(doc_snippet())["mock_modules"])))
    mocked = lint("-c", "mocked.yml", "-f", "codeclimate", "playbooks/elasticsearch.yml", cwd=work, env=env)
    every = findings(mocked.stdout, ours_only=False)
    assert not any(f[2].startswith("syntax-check") for f in every), mocked.stdout
    assert {f for f in every if f[2].split("[")[0] in RULE_IDS} == {
        f for f in expected() if f[0] == "playbooks/elasticsearch.yml"}


FIX_PLAY = """\
---
- name: Search tier
  hosts: search
  tasks:
    - name: Elasticsearch
      community.docker.docker_container:
        name: es01
        image: elasticsearch:8.15.0
        sysctls:
          vm.max_map_count: 262144  # Elastic says 262144
          net.core.somaxconn: 1024
    - name: Pod from Ansible
      kubernetes.core.k8s:
        definition:
          apiVersion: v1
          kind: Pod
          metadata:
            name: p
          spec:
            securityContext:
              sysctls:
                - name: fs.file-max
                  value: "100000"
                - name: net.ipv4.ip_local_port_range
                  value: "20000 40000"
            containers:
              - name: c
                image: busybox:1.36
"""
FIX_COMPOSE = """\
---
# Compose file
services:
  es:
    image: elasticsearch:8.15.0
    sysctls:
      - vm.max_map_count=262144
      - net.core.netdev_max_backlog=4096
      - net.core.somaxconn=1024
"""


def test_fix_removes_global_keys_from_container_specs(tmp_path):
    work = tmp_path / "fix"
    work.mkdir()
    (work / "site.yml").write_text(FIX_PLAY)
    (work / "compose.yaml").write_text(FIX_COMPOSE)
    copy_corpus(work, ["roles/search/tasks/main.yml"])
    fixed = lint("-r", str(RULESDIR), "--fix=sysctl-global-in-container,sysctl-absent-in-container",
                 "site.yml", "compose.yaml", "roles/search/tasks/main.yml", cwd=work)
    assert fixed.returncode == 8, fixed.stdout + fixed.stderr
    play = (work / "site.yml").read_text()
    assert "vm.max_map_count" not in play and "fs.file-max" not in play
    assert "net.core.somaxconn: 1024" in play and "net.ipv4.ip_local_port_range" in play
    assert yaml.safe_load(play)[0]["tasks"][1]["kubernetes.core.k8s"]["definition"]["spec"]["securityContext"][
        "sysctls"] == [{"name": "net.ipv4.ip_local_port_range", "value": "20000 40000"}]
    compose = yaml.safe_load((work / "compose.yaml").read_text())
    assert compose["services"]["es"]["sysctls"] == ["net.core.somaxconn=1024"]
    assert "# Compose file" in (work / "compose.yaml").read_text()  # comments survive
    role = yaml.safe_load((work / "roles/search/tasks/main.yml").read_text())
    assert role[0]["community.docker.docker_container"]["sysctls"] == {}
    again = lint("-r", str(RULESDIR), "site.yml", "compose.yaml", "roles/search/tasks/main.yml", cwd=work)
    assert again.returncode == 0, again.stdout


def test_list_tags_accepts_our_tags(tmp_path):
    """`-T` exits 1 for a rule without one of ansible-lint's required tags."""
    result = lint("-r", str(RULESDIR), "-T", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # ansible-lint 26 lists only the last rule of each tag, so check the tags, not every id.
    for tag in ("nsguard-sysctl:", "idiom:", "security:", "unpredictability:", "experimental:"):
        assert tag in result.stdout


def test_messages_quote_what_each_path_prints(tmp_path):
    """Issue 13: each finding quotes the measured words of the path the task takes, with the
    runtime's version (rules/knowledge/runtime-acceptance, made by the acceptance harness)."""
    names = ["playbooks/runtime_paths.yml", "k8s/openshift.yaml"]
    work = copy_corpus(tmp_path / "corpus", names)
    result = lint("-r", str(RULESDIR), "-f", "codeclimate", *names, cwd=work)
    issues = {(i["location"]["path"], i["check_name"]): i["description"] for i in codeclimate(result.stdout)}
    paths = "playbooks/runtime_paths.yml"
    hostname = issues[(paths, "sysctl-rejected-by-runtime[kernel.hostname]")]
    assert ('Docker Engine API 20.10.24 says "failed to create shim task: OCI runtime create failed: runc create '
            'failed: sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field') in hostname
    cli = issues[(paths, "sysctl-rejected-by-runtime[kernel.domainname]")]
    assert ("docker CLI 28.2.2 says \"invalid argument \"kernel.domainname=ex.internal\" for \"--sysctl\" flag: "
            "sysctl 'kernel.domainname=ex.internal' is not allowed\"") in cli
    assert "docker CLI 20.10.24 says" in cli and "is not whitelisted" in cli and "`docker run`" in cli
    unknown = issues[(paths, "sysctl-unknown-key[net.ipv4.foo_bar]")]
    assert "not a sysctl of any kernel" in unknown and "allowed-unsafe" not in unknown
    assert "podman 4.3.1 says \"Error: sysctl 'vm.max_map_count' is not allowed\"" in issues[
        (paths, "sysctl-global-in-container[vm.max_map_count]")]
    dc = "k8s/openshift.yaml"
    assert "cannot help" in issues[(dc, "sysctl-rejected-by-runtime[kernel.shm_next_id]")]
    pod_unknown = issues[(dc, "sysctl-unknown-key[net.ipv4.foo_bar]")]
    assert "allowed-unsafe" not in pod_unknown and "runc 1.1.5 says" in pod_unknown
    # The domainname task of the Docker API path is not flagged at all.
    flagged_lines = {i["location"].get("lines", {}).get("begin") for i in codeclimate(result.stdout)
                     if i["location"]["path"] == paths}
    assert 11 not in flagged_lines
