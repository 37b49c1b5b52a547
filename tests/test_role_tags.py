"""The audit role's steps can be chosen with tags (issue 12): ``--list-tags`` of the real
playbook shows gather, lint and report, and ``--tags report`` runs only the report step."""
from __future__ import annotations

import re

from tests.ansible_run import run_playbook


def test_audit_playbook_lists_its_steps_as_tags():
    proc = run_playbook("nsguard.sysctl.audit", "--list-tags", check=True)
    tags = set(re.findall(r"TASK TAGS: \[([^\]]*)\]", proc.stdout)[0].replace(" ", "").split(","))
    assert {"gather", "lint", "report"} <= tags, proc.stdout


def test_tags_choose_the_tasks():
    proc = run_playbook("nsguard.sysctl.audit", "--list-tasks", "--tags", "report", check=True)
    tasks = re.findall(r"^\s+nsguard\.sysctl\.audit : (.+?)\s+TAGS:", proc.stdout, flags=re.M)
    chosen = [t for t in tasks if not t.startswith("Validating arguments")]   # tagged always by Ansible
    assert chosen == ["Write the fleet reports (once, for every host of the play)"], proc.stdout
