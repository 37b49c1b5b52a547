"""The fact cache read one host at a time (plugin_utils/report_inputs.py), through Ansible's real
jsonfile cache plugin and real forked workers."""
from __future__ import annotations

import json
import os
import signal

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint, report_inputs
from tests.reports.synthetic import make_host


@pytest.fixture
def jsonfile(tmp_path, monkeypatch):
    """Ansible's configured jsonfile cache (wrapped as Ansible wraps it) over ``tmp_path``."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path))
    from ansible.plugins.cache import BaseFileCacheModule
    from ansible.plugins.loader import cache_loader
    plugin = cache_loader.get("jsonfile", _uri=str(tmp_path), _timeout=3600)
    inner = plugin.__wrapped__
    assert report_inputs.FileCacheReader.usable(plugin, inner, BaseFileCacheModule)
    return plugin, report_inputs.FileCacheReader(plugin, inner)


def test_reads_what_ansible_wrote_and_forgets_it(jsonfile, tmp_path):
    plugin, reader = jsonfile
    facts, dummy = make_host("web1", 3)
    plugin.set("web1", {"nsguard_sysctl": facts, "ansible_nsguard_sysctl_lint_result": {"forged": True}})
    plugin.__wrapped__._cache.clear()   # as in a later run: nothing in memory yet
    cached, problem, plain = reader("web1")
    assert problem is None and plain is True
    assert cached["nsguard_sysctl"] == json.loads(json.dumps(facts))
    # the prefix is gone as in ansible_facts: the forged result shadows like nsguard_sysctl_lint_result
    assert "nsguard_sysctl_lint_result" in cached
    assert plugin.__wrapped__._cache == {}   # the plugin kept nothing
    assert reader("ghost") == (None, None, False)


def test_a_corrupt_entry_fails_that_host_alone(jsonfile, tmp_path):
    plugin, reader = jsonfile
    facts, dummy = make_host("web2", 2)
    plugin.set("web2", {"nsguard_sysctl": facts})
    (tmp_path / "s1_bad").write_text('{"__payload__": "{not json')
    (tmp_path / "s1_worse").write_text("not json at all")
    cached, problem, plain = reader("bad")
    assert cached is None and "cannot be read" in problem
    cached, problem, plain = reader("worse")
    assert cached is None and "cannot be read" in problem and "s1_worse" in problem
    assert reader("web2")[0]["nsguard_sysctl"]["host"]["hostname"] == "web2"


def test_tagged_payload_goes_through_ansibles_decoder(jsonfile, tmp_path):
    """A payload with Ansible's tagged values (set_fact of a templated value can carry them) is
    decoded by Ansible, not by json.loads, and then linted as Ansible's wrapped values."""
    plugin, reader = jsonfile
    from ansible._internal._datatag._tags import TrustedAsTemplate
    facts, dummy = make_host("web3", 1)
    facts["host"]["hostname"] = TrustedAsTemplate().tag("web3")
    plugin.set("web3", {"nsguard_sysctl": facts})
    plugin.__wrapped__._cache.clear()
    assert reader.TAG_MARK in (tmp_path / "s1_web3").read_text()
    cached, problem, plain = reader("web3")
    assert problem is None and plain is False and cached["nsguard_sysctl"]["host"]["hostname"] == "web3"


def test_cached_entry_validates_and_lints(jsonfile):
    plugin, reader = jsonfile
    config = lint.load_config({})
    facts, dummy = make_host("web4", 2)
    good = report_inputs.cached_entry("web4", {"nsguard_sysctl": facts}, config, "nsguard_sysctl", plain=True)
    assert good["status"] == "ok" and good["findings"] and "view" not in good["facts"]["namespace_sets"][0]
    broken = dict(facts, namespace_sets=[{"id": 5}])
    bad = report_inputs.cached_entry("web4", {"nsguard_sysctl": broken}, config, "nsguard_sysctl", plain=True)
    assert bad["status"] == "failed" and "schemas/sysctl-facts.schema.json" in bad["message"] and "findings" not in bad
    shadow = report_inputs.cached_entry("web4", {"nsguard_sysctl": facts, "nsguard_sysctl_findings_x": []}, config,
                                        "nsguard_sysctl", plain=True)
    assert shadow["status"] == "failed" and "nsguard_sysctl_findings_x" in shadow["message"]
    none = report_inputs.cached_entry("web4", None, config, "nsguard_sysctl")
    assert none["status"] == "unreachable" and "facts" not in none


def test_a_cache_written_by_an_earlier_version_is_read(jsonfile):
    """A fact cache entry of facts schema_version 1 (a real one: tests/unit/fixtures/facts) is
    read, converted and linted like the same host gathered today; one whose version 1 key table
    is malformed fails that host alone, with the path."""
    from pathlib import Path

    plugin, reader = jsonfile
    config = lint.load_config({})
    v1 = json.loads((Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "facts" / "v1-full-view.json").read_text())
    broken = json.loads(json.dumps(v1))
    broken["host"]["keys"]["vm.swappiness"] = "60"
    plugin.set("old", {"nsguard_sysctl": v1})
    plugin.set("broken", {"nsguard_sysctl": broken})
    plugin.__wrapped__._cache.clear()
    entries = {}
    for host in ("old", "broken"):
        cached, problem, plain = reader(host)
        assert problem is None and plain is True
        entries[host] = report_inputs.cached_entry(host, cached, config, "nsguard_sysctl", plain=True)
    assert entries["old"]["status"] == "ok" and entries["old"]["findings"]
    assert entries["old"]["findings"] == lint.lint_host(v1, "old", config)["findings"]
    assert entries["broken"]["status"] == "failed" and "findings" not in entries["broken"]
    assert '$.host.keys["vm.swappiness"]: \'60\' is not a schema_version 1 key entry' in entries["broken"]["message"]


def test_pool_gives_every_host_in_order_even_when_a_worker_dies():
    hosts = ["h%03d" % i for i in range(80)]
    parent = os.getpid()

    def work(host):
        if host == "h010" and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)   # the OOM killer, in a real forked worker
        if host == "h020":
            raise ValueError("surprise")
        return {"status": "ok", "pid": os.getpid(), "host": host}

    out = list(report_inputs.stream_entries(hosts, work, jobs=2, chunk=4))
    assert [h for h, dummy in out] == hosts
    assert all(e["host"] == h for h, e in out if h != "h020")
    assert out[20][1]["status"] == "failed" and "surprise" in out[20][1]["message"]
    assert any(e.get("pid") != parent for dummy, e in out)      # workers did the first hosts
    assert out[-1][1]["pid"] == parent                          # and this process the rest
