"""Fixtures for the ansible-lint rules: ansible-lint's own testing helpers plus the rules directory.

``pytest_plugins`` may only be declared in the root conftest, so the fixtures of
``ansiblelint.testing.fixtures`` (``app``, ``rule_runner``, ...) are imported here, which
registers them for this directory.
"""
from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from ansiblelint.config import Options
from ansiblelint.rules import RulesCollection
from ansiblelint.testing import RunFromText, run_ansible_lint
from ansiblelint.testing.fixtures import app, rule_runner  # noqa: F401  (fixtures)  # pylint: disable=unused-import

REPO = Path(__file__).resolve().parents[2]
RULESDIR = REPO / "rules" / "ansible_lint"
CORPUS = Path(__file__).resolve().parent / "corpus"
SARIF_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "sarif-schema-2.1.0.json"  # one copy (tests/schemas)
RULE_IDS = [
    "sysctl-global-in-container",
    "sysctl-absent-in-container",
    "sysctl-rejected-by-runtime",
    "sysctl-host-namespace",
    "sysctl-kernel-gated",
    "sysctl-k8s-unsafe",
    "sysctl-unknown-key",
    "sysctl-runtime-version-gated",
]
# The rule modules import their helper by bare name, as ansible-lint's loader does.
if str(RULESDIR) not in sys.path:
    sys.path.append(str(RULESDIR))


@pytest.fixture(scope="session")
def nsguard_rules(app) -> RulesCollection:  # noqa: F811
    """Only the nsguard.sysctl rules, loaded from the rules directory like ``-r`` does."""
    options = Options()
    options.enable_list = list(RULE_IDS)
    options.offline = True
    return RulesCollection(app=app, rulesdirs=[RULESDIR], options=options)


@pytest.fixture
def runner(nsguard_rules, app) -> RunFromText:  # noqa: F811
    return RunFromText(nsguard_rules, app)


def lint_env(**extra: str) -> Dict[str, str]:
    """Environment for the real CLI: no colour, our options, nothing inherited by accident."""
    env = {"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1"}
    env.update(extra)
    return env


def lint(*argv: str, cwd: Path, env: Optional[Dict[str, str]] = None):
    """The real ``ansible-lint`` (``python -m ansiblelint --offline``), through ansible-lint's helper."""
    return run_ansible_lint(*argv, cwd=cwd, env=lint_env(**(env or {})))


def copy_corpus(target: Path, names: Optional[List[str]] = None) -> Path:
    """A private copy of the corpus (or part of it): --fix and ansible-lint's caches write there."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(CORPUS.rglob("*")):
        rel = path.relative_to(CORPUS)
        if path.is_dir() or (names and str(rel) not in names):
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / rel)
    return target


def knowledge_file(area: str, entry_id: str, key: str, klass: str = "global", namespace: str = "none") -> str:
    """A one-entry knowledge file (docs/knowledge.md format) that decides ``key``."""
    return textwrap.dedent(f"""\
        schema_version: 1
        area: {area}
        entries:
          - id: {entry_id}
            match: [{key}]
            namespace: {namespace}
            class: {klass}
            sources:
              - {{kind: emp, ref: "test fixture"}}
        """)


@pytest.fixture
def clean_setup(monkeypatch):
    """Forget the rules' cached knowledge/options so a test can change the environment."""
    import nsguard_sysctl_lintlib as lib

    lib.setup.cache_clear()
    lib._verdicts.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    lib.setup.cache_clear()
    lib._verdicts.cache_clear()
    lib.SysctlRule._setup_reported = False


os.environ.setdefault("NO_COLOR", "1")
# ansible-lint runs ansible-config/ansible-playbook by name: the venv's, even when pytest was
# started as .venv/bin/python -m pytest without the venv on PATH.
if not shutil.which("ansible-config"):
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
