"""Build the pip package ``ansiblelint.rules.custom.nsguard_sysctl`` from the collection.

The package is the collection's ``rules/ansible_lint/*.py`` plus a ``_collection/`` snapshot of
what they need from the collection: ``plugins/plugin_utils/*.py`` (the judge, the classifier,
the knowledge loader; with ``plugins/__init__.py`` and the two module_utils readers they import)
and ``rules/knowledge/`` (the knowledge base and its schema). The rules
find that snapshot by themselves (``nsguard_sysctl_lintlib.collection_root``), so the package
works without the collection installed, and always with the knowledge it was built with.

Staging happens here, at build time, into ``_staged/`` of a private build directory (a
temporary copy of this directory), and setuptools runs there: ``build/``, ``*.egg-info`` and
``_staged/`` never land in the source tree, which may be an installed collection whose files
``ansible-galaxy collection verify`` checks. Building from an sdist uses the staged copy the sdist
carries. The version is the collection's: ``galaxy.yml`` in a checkout, ``MANIFEST.json`` in an
installed collection.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGE = "ansiblelint.rules.custom.nsguard_sysctl"
# The private build directory; setuptools resolves its relative paths from the working directory.
WORK = Path(tempfile.mkdtemp(prefix="nsguard-sysctl-lint-build."))
atexit.register(shutil.rmtree, WORK, True)
STAGE = WORK / "_staged" / "nsguard_sysctl"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def _copy_files(source: Path, target: Path, patterns: tuple) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for path in sorted(source.glob(pattern)):
            if path.is_file():
                shutil.copy2(path, target / path.name)


def stage() -> None:
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "setup.py"):
        if (HERE / name).is_file():
            shutil.copy2(HERE / name, WORK / name)
    rules = REPO / "rules" / "ansible_lint"
    if not (rules / "nsguard_sysctl_lintlib.py").is_file():
        if (HERE / "_staged" / "nsguard_sysctl" / "nsguard_sysctl_lintlib.py").is_file():
            shutil.copytree(HERE / "_staged", WORK / "_staged")  # an sdist: staged when it was made
            return
        raise SystemExit(f"cannot find the collection's rules next to {HERE} (expected {rules})")
    _copy_files(rules, STAGE, ("*.py",))
    (STAGE / "__init__.py").write_text(
        '"""nsguard.sysctl ansible-lint rules, installed as ansiblelint.rules.custom.nsguard_sysctl."""\n',
        encoding="utf-8")
    snapshot = STAGE / "_collection"
    _copy_files(REPO / "plugins" / "plugin_utils", snapshot / "plugins" / "plugin_utils", ("*.py",))
    # the facts rules' checks, one module per rule (the engine's rule catalog names them)
    _copy_files(REPO / "plugins" / "plugin_utils" / "checks", snapshot / "plugins" / "plugin_utils" / "checks",
                ("*.py",))
    # plugins/ is the engine's package (the rules load it by its __init__.py); of module_utils only
    # the two import-free readers the engine shares with the target: key <-> path, probe facts
    _copy_files(REPO / "plugins", snapshot / "plugins", ("__init__.py",))
    _copy_files(REPO / "plugins" / "module_utils", snapshot / "plugins" / "module_utils",
                ("sysctl_names.py", "probe_facts.py"))
    _copy_files(REPO / "rules" / "knowledge", snapshot / "rules" / "knowledge", ("*.yml", "*.yaml", "*.json"))
    # The measured runtime acceptance tables the runtime rules quote.
    _copy_files(REPO / "rules" / "knowledge" / "runtime-acceptance",
                snapshot / "rules" / "knowledge" / "runtime-acceptance", ("*.json",))
    _copy_files(REPO, snapshot, ("galaxy.yml",))
    # the rule pages: the default docs base (report.docs_base_url) is this snapshot's root
    _copy_files(REPO / "docs" / "rules", snapshot / "docs" / "rules", ("*.md",))


def version() -> str:
    for galaxy in (REPO / "galaxy.yml", STAGE / "_collection" / "galaxy.yml"):
        if galaxy.is_file():
            found = re.search(r"^version:\s*['\"]?([0-9][^'\"\s]*)", galaxy.read_text(encoding="utf-8"), re.M)
            if found:
                return found.group(1)
    manifest = REPO / "MANIFEST.json"  # an installed collection
    if manifest.is_file():
        found = json.loads(manifest.read_text(encoding="utf-8")).get("collection_info", {}).get("version")
        if found:
            return str(found)
    raise SystemExit(f"no collection version: neither {REPO / 'galaxy.yml'} nor {manifest} names one")


stage()
if (REPO / "MANIFEST.json").is_file() and not (STAGE / "_collection" / "galaxy.yml").is_file():
    (STAGE / "_collection" / "galaxy.yml").write_text("version: %s\n" % version(), encoding="utf-8")
os.chdir(WORK)
setup(
    version=version(),
    packages=[PACKAGE],
    package_dir={PACKAGE: "_staged/nsguard_sysctl"},
    package_data={PACKAGE: ["_collection/*.yml", "_collection/plugins/*.py", "_collection/plugins/plugin_utils/*.py",
                            "_collection/plugins/plugin_utils/checks/*.py",
                            "_collection/plugins/module_utils/*.py",
                            "_collection/rules/knowledge/*", "_collection/rules/knowledge/runtime-acceptance/*",
                            "_collection/docs/rules/*.md"]},
    include_package_data=False,
)
