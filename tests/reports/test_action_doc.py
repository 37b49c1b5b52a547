"""The doc stub of nsguard.sysctl.sysctl_report matches the action's argument spec, and
ansible-doc reads it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.nsguard.sysctl.plugins.action import sysctl_report as action
from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_report as stub
from tests.ansible_run import ansible_env


def test_documented_options_are_the_argument_spec():
    doc = yaml.safe_load(stub.DOCUMENTATION)
    assert set(doc["options"]) == set(action._ARGSPEC)
    for name, spec in action._ARGSPEC.items():
        documented = doc["options"][name]
        assert documented["type"] == spec["type"], name
        if "choices" in spec:
            assert documented["choices"] == spec["choices"], name
        if "default" in spec:
            assert documented["default"] == spec["default"], name
    yaml.safe_load(stub.EXAMPLES)
    assert {"counts", "per_host", "summary_line", "files"} <= set(yaml.safe_load(stub.RETURN))


def test_ansible_doc_reads_it():
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "nsguard.sysctl.sysctl_report"],
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=True)
    doc = json.loads(proc.stdout)["nsguard.sysctl.sysctl_report"]["doc"]
    assert doc["has_action"] is True and "fail_on" in doc["options"]


def test_installed_collection_ships_the_schema_and_reports(tmp_path):
    """Build and install the collection as `make audit` does; the report action works from the
    installed copy and fleet.json validates against the schema that copy ships."""
    from tests.reports.helpers import REPO, errors_of
    from tests.ansible_run import run_playbook
    import jsonschema
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"),
                    str(REPO)], env=ansible_env(), check=True, capture_output=True, timeout=300)
    tarball = next((tmp_path / "dist").glob("nsguard-sysctl-*.tar.gz"))
    subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(tmp_path / "coll"), str(tarball)],
                   env=ansible_env(), check=True, capture_output=True, timeout=300)
    installed = tmp_path / "coll" / "ansible_collections" / "nsguard" / "sysctl"
    schema = installed / "schemas" / "fleet-report.schema.json"
    assert schema.is_file()
    from tests.reports.synthetic import make_host
    facts, findings = make_host("solo", 2)
    book = tmp_path / "report.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.set_fact": {"nsguard_sysctl": facts, "nsguard_sysctl_findings": findings}},
        {"nsguard.sysctl.sysctl_report": {"dest": str(tmp_path / "out"), "formats": ["json"]}}]}]))
    run_playbook(book, env={"ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "coll")}, check=True)
    doc = json.loads((tmp_path / "out" / "fleet.json").read_text())
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert doc["generator"] == {"name": "nsguard.sysctl", "version": version}
    assert not errors_of(jsonschema.Draft202012Validator(json.loads(schema.read_text())), doc)


def test_every_rule_has_the_doc_its_help_uri_points_at():
    """SARIF helpUri (and the HTML/Markdown links) are <base>docs/rules/<id>.md: each must exist."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import report
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.rule_catalog import load_catalog
    from tests.reports.helpers import REPO
    catalog = list(load_catalog())
    assert catalog
    for rule in catalog:
        uri = report.rule_help_uri(rule.id)
        assert uri.startswith(report.DEFAULT_DOCS_BASE_URL)
        assert (REPO / uri[len(report.DEFAULT_DOCS_BASE_URL):]).is_file(), uri
