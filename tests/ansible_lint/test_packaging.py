"""The two ways to enable the rules, for real: a collection installed by ansible-galaxy, and the pip package."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.ansible_lint.conftest import REPO, copy_corpus, knowledge_file, lint

PLAY = textwrap.dedent("""\
    ---
    - name: Probe
      hosts: all
      tasks:
        - name: Container
          community.docker.docker_container:
            name: a
            image: busybox:1.36
            sysctls:
              vm.max_map_count: 262144
              net.unix.max_dgram_qlen: 512
    """)
# A knowledge file that exists only in the installed copy: if the rules report
# net.unix.max_dgram_qlen (per netns in the collection's knowledge), they read that copy.
TELL_TALE = knowledge_file("tell-tale", "tell-tale-unix", "net.unix.max_dgram_qlen")


def tags(stdout: str) -> set:
    return {issue["check_name"] for issue in json.loads(stdout.strip().splitlines()[-1] or "[]")}


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def minimal_checkout(target: Path) -> Path:
    """The parts of the collection the rules and the package build need, in a directory that is
    not named ansible_collections/nsguard/sysctl (like a git checkout)."""
    for part in ("rules/ansible_lint", "rules/knowledge", "plugins/plugin_utils", "lint-package", "docs/rules"):
        shutil.copytree(REPO / part, target / part, ignore=shutil.ignore_patterns(
            "__pycache__", "_staged", "build", "dist", "*.egg-info"))
    # the engine's package and the two import-free target readers it imports (docs/architecture.md)
    for part in ("plugins/__init__.py", "plugins/module_utils/sysctl_names.py", "plugins/module_utils/probe_facts.py"):
        (target / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / part, target / part)
    shutil.copy2(REPO / "galaxy.yml", target / "galaxy.yml")
    return target


def test_rules_from_a_collection_installed_with_ansible_galaxy(tmp_path):
    checkout = minimal_checkout(tmp_path / "src")
    bin_dir = Path(sys.executable).parent
    built = run(str(bin_dir / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                str(tmp_path / "dist"), str(checkout), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    [tarball] = (tmp_path / "dist").glob("nsguard-sysctl-*.tar.gz")
    installed = run(str(bin_dir / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p",
                    str(tmp_path / "collections"), str(tarball), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    root = tmp_path / "collections" / "ansible_collections" / "nsguard" / "sysctl"
    (root / "rules" / "knowledge" / "zz-tell-tale.yml").write_text(TELL_TALE)
    work = tmp_path / "work"
    work.mkdir()
    (work / "site.yml").write_text(PLAY)
    result = lint("-r", str(root / "rules" / "ansible_lint"), "-f", "codeclimate", "site.yml", cwd=work)
    assert result.returncode == 2, result.stderr
    assert tags(result.stdout) == {"sysctl-global-in-container[vm.max_map_count]",
                                   "sysctl-global-in-container[net.unix.max_dgram_qlen]"}
    # The checkout's own rules still read the checkout's knowledge (no tell-tale there).
    ours = lint("-r", str(REPO / "rules" / "ansible_lint"), "-f", "codeclimate", "site.yml", cwd=work)
    assert tags(ours.stdout) == {"sysctl-global-in-container[vm.max_map_count]"}


def _wheel(checkout: Path, out: Path) -> Path:
    """``pip wheel`` of lint-package: non-editable, as users install it."""
    isolation = [] if importlib.util.find_spec("wheel") is None else ["--no-build-isolation"]
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out),
                str(checkout / "lint-package"), cwd=checkout)
    assert built.returncode == 0, built.stderr
    [wheel] = out.glob("nsguard_sysctl_ansible_lint-*.whl")
    return wheel


def test_pip_package_loads_without_rulesdir(tmp_path):
    checkout = minimal_checkout(tmp_path / "src")
    (checkout / "rules" / "knowledge" / "zz-tell-tale.yml").write_text(TELL_TALE)  # the snapshot's marker
    wheel = _wheel(checkout, tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    package = "ansiblelint/rules/custom/nsguard_sysctl/"
    assert f"{package}nsguard_sysctl_global.py" in names
    assert f"{package}_collection/plugins/plugin_utils/static_judge.py" in names
    assert f"{package}_collection/rules/knowledge/knowledge.schema.json" in names
    assert f"{package}_collection/rules/knowledge/zz-tell-tale.yml" in names
    # Only our package: the wheel must not overwrite ansible-lint's own files.
    assert all(n.startswith(package) or ".dist-info/" in n for n in names)

    # Install it (pip, non-editable) next to a private copy of ansible-lint, so that the shared
    # venv is left alone, and run ansible-lint from there without any rulesdir.
    site = tmp_path / "site"
    installed = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel),
                    cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    ansiblelint_dir = Path(importlib.util.find_spec("ansiblelint").origin).parent
    shutil.copytree(ansiblelint_dir, site / "ansiblelint", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "site.yml").write_text(PLAY)
    env = {"PYTHONPATH": str(site), "PATH": os.environ["PATH"]}
    result = lint("-f", "codeclimate", "site.yml", cwd=work, env=env)
    assert result.returncode == 2, result.stderr
    assert {t for t in tags(result.stdout) if t.startswith("sysctl-")} == {
        "sysctl-global-in-container[vm.max_map_count]", "sysctl-global-in-container[net.unix.max_dgram_qlen]"}
    # The SARIF help links of the installed rules point at the collection's docs too.
    sarif = lint("-f", "sarif", "site.yml", cwd=work, env=env)
    uris = {r["helpUri"] for r in json.loads(sarif.stdout)["runs"][0]["tool"]["driver"]["rules"]
            if r["id"].startswith("sysctl-")}
    page = site / "ansiblelint" / "rules" / "custom" / "nsguard_sysctl" / "_collection" / "docs" / "rules"
    assert uris == {(page / "sysctl-global-in-container.md").as_uri()}
    assert (page / "sysctl-global-in-container.md").is_file()  # the default docs base resolves
    # And the corpus gives the same findings through the package as through rulesdir.
    corpus = copy_corpus(tmp_path / "corpus", ["compose/docker-compose.yml", "k8s/workloads.yaml"])
    via_pip = lint("-f", "codeclimate", ".", cwd=corpus, env=env)
    via_dir = lint("-r", str(REPO / "rules" / "ansible_lint"), "-f", "codeclimate", ".", cwd=corpus)
    assert {t for t in tags(via_pip.stdout) if t.startswith("sysctl-")} == tags(via_dir.stdout)


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")
def test_package_sources_are_the_collection_files():
    """lint-package holds no copy of the rules: they are staged from the collection at build time."""
    tracked = subprocess.run(["git", "ls-files", "lint-package"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(tracked) == ["lint-package/.gitignore", "lint-package/MANIFEST.in", "lint-package/README.md",
                               "lint-package/pyproject.toml", "lint-package/setup.py"]


def test_engine_survives_a_late_ansible_collection_finder(tmp_path):
    """Package imported from sys.path first, ansible's collection finder installed afterwards (as
    ansible-lint's app does inside a test process): that finder refuses the remaining submodules
    ("collection metadata was not loaded"); the rules must still load their engine."""
    link = tmp_path / "ansible_collections" / "nsguard" / "sysctl"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO)
    script = textwrap.dedent(f"""\
        import importlib, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
        _AnsibleCollectionFinder(paths=[{str(tmp_path)!r}])._install()
        try:
            importlib.import_module("ansible_collections.nsguard.sysctl.plugins.plugin_utils.static_judge")
            print("plain import worked")
        except ValueError as exc:
            print("plain import failed:", exc)
        sys.path.append({str(REPO / "rules" / "ansible_lint")!r})
        import nsguard_sysctl_lintlib as lib
        state = lib.setup()
        print("error:", state.error, "entries:", len(state.kb))
        print(lib.engine().assess(state.kb, "vm.max_map_count", floor="4.18")[0].reason)
        """)
    done = run(sys.executable, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "plain import failed: collection metadata was not loaded" in done.stdout  # the trap is real
    assert "error: None" in done.stdout and done.stdout.strip().endswith("global")


def test_pip_package_from_an_installed_collection_leaves_it_intact(tmp_path):
    """pip install of lint-package/ inside an installed collection: the collection's version (from
    MANIFEST.json: an installed collection has no galaxy.yml), and nothing written into the
    collection, so that ``ansible-galaxy collection verify`` still passes."""
    bin_dir = Path(sys.executable).parent
    built = run(str(bin_dir / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                str(tmp_path / "dist"), str(REPO), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    [tarball] = (tmp_path / "dist").glob("nsguard-sysctl-*.tar.gz")
    coll = tmp_path / "collections"
    installed = run(str(bin_dir / "ansible-galaxy"), "collection", "install", "--force", "--no-deps", "--offline", "-p", str(coll),
                    str(tarball), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    root = coll / "ansible_collections" / "nsguard" / "sysctl"
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    info = json.loads((root / "MANIFEST.json").read_text())["collection_info"]
    version = info["version"]
    assert info["repository"] and info["documentation"] and info["issues"]  # galaxy.yml declares them
    assert "ansible.posix" in info["dependencies"]
    wheel = _wheel(root, tmp_path / "wheels")
    assert wheel.name.startswith("nsguard_sysctl_ansible_lint-%s-" % version), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "ansiblelint/rules/custom/nsguard_sysctl/_collection/plugins/plugin_utils/static_judge.py" in names
    after = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)
    assert after == [p for p in before if "__pycache__" not in p]
    verify = run(str(bin_dir / "ansible-galaxy"), "collection", "verify", "--offline", "-p", str(coll), "nsguard.sysctl",
                 cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
