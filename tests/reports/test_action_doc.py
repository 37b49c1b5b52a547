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
