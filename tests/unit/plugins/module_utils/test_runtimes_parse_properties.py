"""Property tests: the runtime metadata parsers never raise on arbitrary input (the files and
command lines they read are written by other programs, and may be anything)."""
from __future__ import annotations

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.given(st.lists(st.text(max_size=40), max_size=12))
def test_cmdline_parsers_never_raise(args):
    rp.cli_options(args, {"-a": "a", "--b": "b"}, repeated=("b",))
    rp.parse_dockerd_cmdline(["dockerd"] + args)
    rp.parse_conmon_cmdline(["conmon"] + args)
    rp.parse_nspawn_cmdline(["systemd-nspawn"] + args)
    rp.parse_lxc_monitor_cmdline(args)


@hypothesis.given(st.lists(st.text(max_size=80), max_size=6))
def test_cgroup_hints_never_raise(paths):
    for hint in rp.cgroup_hints(paths):
        assert hint["runtime"] in rp.RUNTIMES or hint["runtime"] is None


@hypothesis.given(st.text(max_size=400))
def test_text_parsers_never_raise(text):
    rp.parse_lxc_config(text)
    rp.parse_machine_file(text)
    rp.parse_containerd_toml_paths(text)
