"""The audit role's steps can be chosen with tags (issue 12): gather, lint and report.

``ansible-playbook --list-tags`` and ``--list-tasks`` walk only the ``block`` part of a block
(ansible-core 2.19, ``cli/playbook.py``), and the report is the role's ``always`` section (so it
covers the hosts that failed in the block), so the listings show gather and lint, and the
report's tag is read from the role itself. ``--tags report`` and ``--tags lint`` are run for
real in tests/reports/test_report_fail_on.py (``test_tags_choose_the_steps``).
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.ansible_run import run_playbook

ROLE_TASKS = Path(__file__).resolve().parent.parent / "roles" / "audit" / "tasks" / "main.yml"


def _listed(*args: str) -> list:
    proc = run_playbook("nsguard.sysctl.audit", "--list-tasks", *args, check=True)
    tasks = re.findall(r"^\s+nsguard\.sysctl\.audit : (.+?)\s+TAGS:", proc.stdout, flags=re.M)
    return [t for t in tasks if not t.startswith("Validating arguments")]   # tagged always by Ansible


def test_audit_playbook_lists_its_steps_as_tags():
    proc = run_playbook("nsguard.sysctl.audit", "--list-tags", check=True)
    tags = set(re.findall(r"TASK TAGS: \[([^\]]*)\]", proc.stdout)[0].replace(" ", "").split(","))
    assert {"gather", "lint"} <= tags, proc.stdout
    [block] = yaml.safe_load(ROLE_TASKS.read_text())
    assert [(t["name"], t["tags"]) for t in block["always"]] == [
        ("Write the fleet reports (once, for every host of the play)", ["report"])]
    assert {tag for task in block["block"] for tag in task["tags"]} == {"gather", "lint"}


def test_tags_choose_the_tasks():
    assert _listed("--tags", "gather") == ["Reach the host (Ansible's own connection error goes into the report)",
                                           "Gather the sysctl facts of the host and of every namespace set"]
    assert _listed("--tags", "lint") == [
        "Evaluate the lint rules over the facts (and fail on findings at or above nsguard_sysctl_fail_on)"]
    assert _listed("--tags", "report") == []   # the always section, which the listing does not walk
