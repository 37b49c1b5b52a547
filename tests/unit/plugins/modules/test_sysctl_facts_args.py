"""Argument handling of ``nsguard.sysctl.sysctl_facts`` through the real ``main()``.

Runs under ``ansible-test units`` (which sets up the collection loader) and under plain pytest
(``tests/conftest.py`` puts the checkout on ``sys.path`` as ``ansible_collections.nsguard.sysctl``).
Arguments reach ``AnsibleModule`` the way Ansible sends them, through
``ansible.module_utils.testing.patch_module_args``; the module's JSON answer is read from stdout.
Bad values must fail before any gathering with a ``msg`` that names the option.
"""
from __future__ import annotations

import json
import os
import socket

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts


def run_module(capsys, args):
    """Run main() with ``args``; return the parsed result (``failed`` is set when it failed)."""
    capsys.readouterr()  # drop anything printed before
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            sysctl_facts.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed")), result
    return result


def fails_with(capsys, args, *fragments):
    result = run_module(capsys, args)
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], (fragment, result["msg"])
    assert "ansible_facts" not in result
    return result["msg"]


# Options the module checks itself (AnsibleModule cannot express "positive" or "0 or more");
# timeouts are floats, so the value is echoed as the module saw it.
@pytest.mark.parametrize("name, value, expected", [
    ("timeout", 0, "option timeout must be a positive number of seconds, got 0.0"),
    ("timeout", -1.5, "option timeout must be a positive number of seconds, got -1.5"),
    ("gather_timeout", 0, "option gather_timeout must be a positive number of seconds, got 0.0"),
    # NaN compared false with "<= 0" and passed; inf crashed the gather ("time_t out of range")
    ("timeout", float("nan"), "option timeout must be a finite number of seconds up to 86400, got nan"),
    ("gather_timeout", float("inf"), "option gather_timeout must be a finite number of seconds up to 86400, got inf"),
    ("timeout", 86401, "option timeout must be a finite number of seconds up to 86400, got 86401.0"),
    ("gather_timeout", -3, "option gather_timeout must be a positive number of seconds, got -3.0"),
    ("parallel", -1, "option parallel must be 0 or more, got -1"),
    ("max_pids_per_set", -20, "option max_pids_per_set must be 0 or more, got -20"),
])
def test_out_of_range_values_name_the_option(capsys, name, value, expected):
    assert fails_with(capsys, {name: value}, expected) == expected


# Values AnsibleModule rejects by type or choice: its message must still name the option.
@pytest.mark.parametrize("name, value, fragments", [
    ("view", "everything", ["view", "diff", "full", "everything"]),
    ("timeout", "soon", ["timeout", "float"]),
    ("gather_timeout", [1, 2], ["gather_timeout", "float"]),
    ("parallel", "many", ["parallel", "int", "many"]),
    ("max_pids_per_set", 2.5, ["max_pids_per_set", "int"]),
    ("containers", "perhaps", ["containers", "bool", "perhaps"]),
    ("probe", "sometimes", ["probe", "bool", "sometimes"]),
    ("runtime_cli", "ask", ["runtime_cli", "bool", "ask"]),
    ("include", {"net": "core"}, ["include", "list"]),
    ("sysctl_d_dirs", {"etc": 1}, ["sysctl_d_dirs", "list"]),
])
def test_wrong_types_and_choices_name_the_option(capsys, name, value, fragments):
    fails_with(capsys, {name: value}, *fragments)


def test_unknown_option_is_named_with_the_supported_ones(capsys):
    msg = fails_with(capsys, {"containrs": False}, "Unsupported parameters", "containrs")
    # the message lists what would have been accepted, so the typo is easy to spot
    assert "containers" in msg.split("containrs", 1)[1]


def test_first_bad_option_fails_before_any_gather(capsys):
    # view is checked by AnsibleModule before the module's own range checks run
    fails_with(capsys, {"view": "all", "timeout": -1}, "view")


def test_good_arguments_gather_the_host_in_check_mode(capsys):
    """A real, small gather: host only, one key, no probe; check mode changes nothing."""
    result = run_module(capsys, {
        "containers": False, "probe": False, "include": ["kernel.hostname", "kernel.osrelease"],
        "exclude": ["kernel.osrelease"], "timeout": "2", "parallel": "1", "_ansible_check_mode": True,
    })
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    facts = result["ansible_facts"]["nsguard_sysctl"]
    # string values were converted by the argument spec and are echoed back typed
    assert facts["options"]["timeout"] == 2.0
    assert facts["options"]["parallel"] == 1
    assert facts["options"]["view"] == "diff"
    # include then exclude: only kernel.hostname is left, with the kernel's own answer
    assert list(facts["host"]["keys"]) == ["kernel.hostname"]
    assert facts["host"]["keys"]["kernel.hostname"] == socket.gethostname()
    assert facts["host"]["default_mode"] == "0644" and facts["host"]["modes"] == {}
    assert facts["host"]["kernel"]["release"] == os.uname().release
    assert facts["namespace_sets"] == []
    assert facts["probe"] == {"enabled": False}
