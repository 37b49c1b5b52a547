"""The ways into a pipeline, for real: the pre-commit hook (.pre-commit-hooks.yaml) run by the real
``pre-commit`` in a throwaway git repository, and the GitHub Actions and GitLab CI recipes of
docs/ansible-lint.md, whose YAML is parsed from the doc and whose commands are run as written.

Offline: the hook is ``language: script``, so pre-commit builds no environment; it clones the hook
repository from a local path. Install steps of the recipes (pip, git clone, ansible-galaxy from
the network) are not run: the collection they would fetch is this working tree.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.ansible_lint.conftest import REPO

BIN = Path(sys.executable).parent
DOC = REPO / "docs" / "ansible-lint.md"
pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (BIN / "pre-commit").exists(),
                                reason="needs git and pre-commit (make test-venv installs test-requirements.txt)")

BAD_PLAY = textwrap.dedent("""\
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
    """)
COMPOSE = textwrap.dedent("""\
    services:
      cache:
        image: redis:7.4
        sysctls:
          net.core.netdev_max_backlog: 4096
    """)
MANIFEST = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      name: tuned
    spec:
      securityContext:
        sysctls:
          - name: kernel.pid_max
            value: "65536"
      containers:
        - name: app
          image: busybox:1.36
    """)
OUR_IDS = {"sysctl-global-in-container[vm.max_map_count]", "sysctl-absent-in-container[net.core.netdev_max_backlog]",
           "sysctl-rejected-by-runtime[kernel.pid_max]"}


def yaml_blocks(text: str) -> list:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def doc_block(predicate) -> dict:
    found = [b for b in yaml_blocks(DOC.read_text()) if isinstance(b, dict) and predicate(b)]
    assert len(found) == 1, "expected one such YAML block in %s" % DOC
    return found[0]


def git(*argv: str, cwd: Path, env: dict) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def user_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update({"PATH": "%s%s%s" % (BIN, os.pathsep, env.get("PATH", "")), "PRE_COMMIT_HOME": str(tmp / "pre-commit-home"),
                "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1",
                "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    (tmp / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n[safe]\n\tdirectory = *\n")
    return env


def copy_tree(target: Path) -> Path:
    """The working tree's files (tracked and untracked, not ignored): what a clone would hold."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target / rel)
    return target


def user_repo(root: Path, env: dict) -> Path:
    root.mkdir()
    git("init", "-q", cwd=root, env=env)
    (root / "site.yml").write_text(BAD_PLAY)
    (root / "docker-compose.yml").write_text(COMPOSE)
    (root / "k8s").mkdir()
    (root / "k8s" / "pod.yaml").write_text(MANIFEST)
    return root


def rule_ids(text: str) -> set:
    return set(re.findall(r"sysctl-[a-z-]+\[[^\]\s]+\]", text))


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hookrepo")
    env = user_env(tmp)
    repo = copy_tree(tmp / "nsguard-sysctl")
    git("init", "-q", cwd=repo, env=env)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-q", "-m", "snapshot", cwd=repo, env=env)
    return repo, git("rev-parse", "HEAD", cwd=repo, env=env).strip()


def test_pre_commit_hook_fails_a_commit_with_our_rule_ids(hook_repo, tmp_path):
    repo, rev = hook_repo
    env = user_env(tmp_path)
    work = user_repo(tmp_path / "work", env)
    # The .pre-commit-config.yaml of the docs, pointed at the local snapshot of this tree.
    config = doc_block(lambda b: "repos" in b)
    [entry] = config["repos"]
    assert [h["id"] for h in entry["hooks"]] == ["nsguard-sysctl-ansible-lint"]
    [text] = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if b.startswith("repos:")]
    text = re.sub(r"(?m)^(\s+- repo:) \S+$", r"\1 " + str(repo), text)
    text = re.sub(r"(?m)^(\s+rev:) \S+", r"\1 " + rev, text)
    (work / ".pre-commit-config.yaml").write_text("---\n" + text)
    assert yaml.safe_load(text)["repos"][0] == dict(entry, repo=str(repo), rev=rev)
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["nsguard-sysctl-ansible-lint"]

    installed = subprocess.run([str(BIN / "pre-commit"), "install"], cwd=work, env=env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    git("add", "-A", cwd=work, env=env)
    commit = subprocess.run(["git", "commit", "-m", "add search"], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    out = commit.stdout + commit.stderr
    assert commit.returncode != 0, out
    assert "ansible-lint with the nsguard.sysctl rules" in out and "Failed" in out, out
    assert OUR_IDS <= rule_ids(out), out
    assert not git("log", "--oneline", "--all", cwd=work, env=env).strip()

    # Fixed files pass: the commit goes through.
    (work / "site.yml").write_text(BAD_PLAY.replace("vm.max_map_count: 262144", "net.ipv4.ip_local_port_range: 10000 65000"))
    (work / "docker-compose.yml").write_text(COMPOSE.replace("net.core.netdev_max_backlog: 4096", "net.core.somaxconn: 1024"))
    (work / "k8s" / "pod.yaml").write_text(MANIFEST.replace("kernel.pid_max", "net.ipv4.ping_group_range")
                                           .replace('"65536"', '"0 2147483647"'))
    git("add", "-A", cwd=work, env=env)
    ok = subprocess.run(["git", "commit", "-m", "fixed"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Passed" in ok.stdout + ok.stderr


def _run_step(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _pipeline_repo(hook_repo, tmp_path: Path, variables: dict) -> tuple:
    repo, dummy = hook_repo
    env = user_env(tmp_path)
    work = user_repo(tmp_path / "work", env)
    shutil.copytree(repo, work / ".nsguard-sysctl", ignore=shutil.ignore_patterns(".git"))
    env.update({k: str(v) for k, v in variables.items()})
    (work / "inventory.ini").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return work, env


def _check_audit(work: Path, done: subprocess.CompletedProcess) -> None:
    assert done.returncode in (0, 2), done.stdout[-4000:] + done.stderr[-2000:]
    from tests.reports.test_sarif_code_scanning import code_scanning_problems
    raw = (work / "reports" / "fleet.sarif").read_bytes()
    doc = json.loads(raw)
    assert code_scanning_problems(doc, raw) == []
    for res in doc["runs"][0]["results"]:
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "reports/fleet.md"
    assert ET.parse(work / "reports" / "fleet.junit.xml").getroot().tag == "testsuites"


def test_github_actions_recipe(hook_repo, tmp_path):
    workflow = doc_block(lambda b: "jobs" in b)
    assert set(workflow["jobs"]) == {"lint", "audit"}
    assert workflow["permissions"]["security-events"] == "write"
    work, env = _pipeline_repo(hook_repo, tmp_path, workflow["env"])
    steps = {job: {s.get("name") or s["uses"]: s for s in spec["steps"]} for job, spec in workflow["jobs"].items()}

    lint = _run_step(steps["lint"]["Lint"]["run"], work, env)
    assert lint.returncode == 2, lint.stdout + lint.stderr
    assert OUR_IDS <= rule_ids(lint.stdout), lint.stdout
    upload = steps["lint"]["Upload"]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@") and upload["if"] == "always()"
    sarif = json.loads((work / upload["with"]["sarif_file"]).read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= OUR_IDS
    from tests.reports.helpers import errors_of, sarif_validator
    assert not errors_of(sarif_validator(), sarif)

    audit = _run_step(steps["audit"]["Audit"]["run"], work, env)
    _check_audit(work, audit)
    assert steps["audit"]["Upload"]["with"]["sarif_file"] == "reports/fleet.sarif"


def test_gitlab_ci_recipe(hook_repo, tmp_path):
    pipeline = doc_block(lambda b: "sysctl-lint" in b)
    work, env = _pipeline_repo(hook_repo, tmp_path, pipeline["variables"])
    [command] = pipeline["sysctl-lint"]["script"]
    lint = _run_step(command, work, env)
    assert lint.returncode == 2, lint.stdout + lint.stderr
    report = pipeline["sysctl-lint"]["artifacts"]["reports"]["codequality"]
    issues = json.loads((work / report).read_text())
    assert {i["check_name"] for i in issues} >= OUR_IDS
    for issue in issues:  # the fields GitLab's code quality widget needs
        assert issue["description"] and issue["fingerprint"] and issue["severity"]
        assert issue["location"]["path"] and ("lines" in issue["location"] or "positions" in issue["location"])

    [command] = pipeline["sysctl-audit"]["script"]
    _check_audit(work, _run_step(command, work, env))
    junit = pipeline["sysctl-audit"]["artifacts"]["reports"]["junit"]
    assert (work / junit).is_file()
