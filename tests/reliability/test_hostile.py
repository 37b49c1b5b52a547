"""Hostile containers (issue 7, part 3): names, command lines and devices chosen by a tenant
reach the facts as data, JSON-safe, through a real ansible-playbook run."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.ansible_run import gather_facts_via_playbook
from tests.integration.nsfixtures import spawn_set

pytestmark = pytest.mark.root

HTML = "<script>alert(1)</script>"
ANSI = "\x1b[31mRED\x1b[0m"
MARKDOWN = "**bold** | [x](http://e)"


def test_hostile_names_argv_devices_and_comm_are_data(tmp_path):
    # A binary whose name is not UTF-8 (comm is its name): the set used to vanish from the scan.
    odd = tmp_path / os.fsdecode(b"sl\xffp")
    shutil.copy("/bin/sleep", odd)
    script = (
        # Device names allow any byte but '/', ':', blanks and NUL: ANSI, HTML, high bytes.
        "ip link add \"$(printf '\\033[31m<b>\\377x')\" type veth peer name '**a|b'\n"
        "printf 'evil\\nline <i>' > /proc/sys/kernel/hostname\n"
        f"bash -c 'exec -a \"$0\" \"$1\" 600' '{HTML}\n{ANSI}\n{MARKDOWN}' '{odd}' &\n"
    )
    made = spawn_set(script, flags=("-n", "-u"))
    try:
        facts = gather_facts_via_playbook(tmp_path, {"probe": False, "runtime_cli": False})
    finally:
        made.kill()
    ns_set = next(s for s in facts["namespace_sets"] if s["ns"]["net"] == made.ns["net"])
    assert ns_set["errors"] == []
    assert set(ns_set["view"]["interfaces"]) >= {"\x1b[31m<b>\\xffx", "**a|b"}
    # proc_dostring stops at the first newline: the kernel keeps "evil" (measured, 6.18).
    assert ns_set["view"]["differs"]["kernel.hostname"]["container"] == "evil"
    assert ns_set["pid_count"] >= 2
    # The member that runs the oddly named binary with a hostile argv is in the set.
    assert made.ns["net"] in {s["ns"]["net"] for s in facts["namespace_sets"]}
