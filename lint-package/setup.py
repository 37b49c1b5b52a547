"""Build the pip package ``ansiblelint.rules.custom.nsguard_sysctl`` from the collection.

The package is the collection's ``rules/ansible_lint/*.py`` plus a ``_collection/`` snapshot of
what they need from the collection: ``plugins/plugin_utils/*.py`` (the judge, the classifier,
the knowledge loader) and ``rules/knowledge/`` (the knowledge base and its schema). The rules
find that snapshot by themselves (``nsguard_sysctl_lintlib.collection_root``), so the package
works without the collection installed, and always with the knowledge it was built with.

Staging happens here, at build time, into ``_staged/`` (generated; not in git). Building from
an sdist uses the staged copy the sdist carries.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGE = "ansiblelint.rules.custom.nsguard_sysctl"
STAGE = HERE / "_staged" / "nsguard_sysctl"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def _copy_files(source: Path, target: Path, patterns: tuple) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for path in sorted(source.glob(pattern)):
            if path.is_file():
                shutil.copy2(path, target / path.name)


def stage() -> None:
    rules = REPO / "rules" / "ansible_lint"
    if not (rules / "nsguard_sysctl_lintlib.py").is_file():
        if (STAGE / "nsguard_sysctl_lintlib.py").is_file():
            return  # an sdist: staged when it was made
        raise SystemExit(f"cannot find the collection's rules next to {HERE} (expected {rules})")
    shutil.rmtree(STAGE, ignore_errors=True)
    _copy_files(rules, STAGE, ("*.py",))
    (STAGE / "__init__.py").write_text(
        '"""nsguard.sysctl ansible-lint rules, installed as ansiblelint.rules.custom.nsguard_sysctl."""\n',
        encoding="utf-8")
    snapshot = STAGE / "_collection"
    _copy_files(REPO / "plugins" / "plugin_utils", snapshot / "plugins" / "plugin_utils", ("*.py",))
    _copy_files(REPO / "rules" / "knowledge", snapshot / "rules" / "knowledge", ("*.yml", "*.yaml", "*.json"))
    # The measured runtime acceptance tables the runtime rules quote.
    _copy_files(REPO / "rules" / "knowledge" / "runtime-acceptance",
                snapshot / "rules" / "knowledge" / "runtime-acceptance", ("*.json",))
    _copy_files(REPO, snapshot, ("galaxy.yml",))


def version() -> str:
    for galaxy in (REPO / "galaxy.yml", STAGE / "_collection" / "galaxy.yml"):
        if galaxy.is_file():
            found = re.search(r"^version:\s*['\"]?([0-9][^'\"\s]*)", galaxy.read_text(encoding="utf-8"), re.M)
            if found:
                return found.group(1)
    return "0.0.0"


stage()
setup(
    version=version(),
    packages=[PACKAGE],
    package_dir={PACKAGE: "_staged/nsguard_sysctl"},
    package_data={PACKAGE: ["_collection/*.yml", "_collection/plugins/plugin_utils/*.py",
                            "_collection/rules/knowledge/*", "_collection/rules/knowledge/runtime-acceptance/*"]},
    include_package_data=False,
)
