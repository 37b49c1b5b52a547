"""facts_schema.read_facts: facts of schema_version 3 validated (with the check JSON Schema cannot
make: every key has exactly one mode, its own or the default), facts of versions 1 and 2 converted
at this one boundary, and the path of anything wrong named, whichever version it is."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import procsys
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import facts_schema, lint
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.expectations import load_json_schema, schema_errors
from tests.reports.synthetic import make_host

V1_REAL = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "facts" / "v1-full-view.json"


def _facts():
    facts = json.loads(json.dumps(make_host("web1", 2)[0]))
    view = facts["namespace_sets"][0]["view"]
    view.update(mode="full", keys={"net.core.somaxconn": "1024"}, modes={"net.core.somaxconn": "0644"})
    return facts


def _jsonschema_says(facts):
    return schema_errors(facts, load_json_schema(facts_schema.SCHEMA_PATH), "facts")


def _v1():
    return json.loads(V1_REAL.read_text())


def test_current_facts_are_read_as_they_are():
    facts = _facts()
    assert facts_schema.read_facts(facts) == (facts, None)
    assert facts_schema.read_facts(facts)[1] is None and not _jsonschema_says(facts)


@pytest.mark.parametrize("where, keys, modes, words", [
    ("host", [], None, "$.host.keys"), ("host", {"k": None}, {"k": "0644"}, "$.host.keys.k"),
    ("host", {"k": {"value": "1"}}, {"k": "0644"}, "$.host.keys.k"), ("host", {"k": 1}, {"k": "0644"}, "$.host.keys.k"),
    ("host", {"k": "1"}, {"k": 420}, "$.host.modes.k"), ("host", {"k": "1"}, [], "$.host.modes"),
    ("view", {"k": True}, {"k": "0644"}, "$.namespace_sets[1].view.keys.k"),
    ("view", {"k": "1"}, {"k": ["0644"]}, "$.namespace_sets[1].view.modes.k"),
])
def test_a_bad_table_is_refused_with_its_path(where, keys, modes, words):
    facts = _facts()
    if where == "host":
        facts["host"].update(keys=keys, modes=modes)
    else:
        facts["namespace_sets"][1]["view"] = {"mode": "full", "keys": keys, "modes": modes}
    got, problem = facts_schema.read_facts(facts)
    assert _jsonschema_says(facts), "the schema itself refuses it"
    assert got is None and problem is not None and problem.startswith(words), problem


@pytest.mark.parametrize("change, words", [
    (lambda f: [f["host"].pop("default_mode"), f["host"]["modes"].update({"net.core.somaxconn": "0644", "vm.max_map_count": "0644"}),
                f["host"]["keys"].update(k="1")],
     "$.host.modes: 1 key(s) of keys have no mode here (k), and there is no default_mode"),
    (lambda f: f["host"].update(default_mode=None), "$.host.modes: 2 key(s) of keys have no mode here "
                                                    "(net.core.somaxconn, vm.max_map_count), and there is no default_mode"),
    (lambda f: f["host"]["modes"].update(k="0644"), "$.host.modes: 1 mode(s) name no key of keys (k)"),
    (lambda f: f["host"].pop("modes"), "$.host: 'modes' is a required property"),
    (lambda f: f["namespace_sets"][0]["view"].pop("modes"),
     "$.namespace_sets[0].view.modes: 1 key(s) of keys have no mode here (net.core.somaxconn), "
     "and there is no default_mode"),
])
def test_every_key_has_exactly_its_mode(change, words):
    """What JSON Schema cannot say: every key of the value table has one mode, its own in the mode
    table or else the default_mode (without one, the mode table names every key), and the mode
    table names no other key."""
    facts = _facts()
    change(facts)
    assert facts_schema.read_facts(facts)[1] == words


@pytest.mark.parametrize("change", [
    lambda f: f["host"]["keys"].update(k="1"),   # the default mode's
    lambda f: f["host"]["modes"].update({"vm.max_map_count": "0444"}),   # another
    lambda f: [f["host"].pop("default_mode"), f["host"]["modes"].update({"net.core.somaxconn": "0644",
                                                                           "vm.max_map_count": None})],   # version 2's form; None: a version 1 mode left out
    lambda f: f["namespace_sets"][0]["view"].update(keys={"a": "1", "b": "2"}, default_mode="0644", modes={"b": "0444"}),
    lambda f: f["namespace_sets"][0].update(view=None),
    lambda f: f["namespace_sets"][0]["view"].update(keys={}, modes={}),
    lambda f: [f["namespace_sets"][0]["view"].pop(k) for k in ("keys", "modes")],
])
def test_good_tables_pass(change):
    facts = _facts()
    change(facts)
    assert not _jsonschema_says(facts)
    assert facts_schema.read_facts(facts)[1] is None


def test_real_version_1_facts_are_converted_at_the_boundary():
    """A real version 1 document (tests/unit/fixtures/facts/README.md): the same values and modes,
    host and full views, in the current shape; the given document is left as it was."""
    v1 = _v1()
    given = copy.deepcopy(v1)
    assert v1["schema_version"] == 1 and len(v1["host"]["keys"]) > 200
    facts, problem = facts_schema.read_facts(v1)
    assert problem is None and v1 == given
    assert facts["schema_version"] == facts_schema.SCHEMA_VERSION == 3
    assert facts["host"]["keys"] == {k: r["value"] for k, r in v1["host"]["keys"].items()}
    # every key's mode in the table, no default (version 3 without one is version 2's form)
    assert facts["host"]["modes"] == {k: r["mode"] for k, r in v1["host"]["keys"].items()}
    assert "default_mode" not in facts["host"]
    assert facts["host"]["unreadable"] == v1["host"]["unreadable"]
    views = [s["view"] for s in facts["namespace_sets"]]
    assert len(views) == 3 and all(v["mode"] == "full" and len(v["keys"]) > 200 for v in views)
    for view, old in zip(views, (s["view"] for s in v1["namespace_sets"])):
        assert view["keys"] == {k: r["value"] for k, r in old["keys"].items()}
        assert view["modes"] == {k: r["mode"] for k, r in old["keys"].items()}
        assert {k: v for k, v in view.items() if k not in ("keys", "modes")} == {
            k: v for k, v in old.items() if k != "keys"}
    assert {k: v for k, v in facts.items() if k not in ("schema_version", "host", "namespace_sets")} == {
        k: v for k, v in v1.items() if k not in ("schema_version", "host", "namespace_sets")}


def test_version_1_lints_like_its_conversion():
    """The lint reads versions 1 and 2 through the boundary: the findings of the real document are
    those of the same document written as version 2 and as version 3 (a default mode, the other
    modes listed, as the module writes it), and the host is not refused."""
    config = lint.load_config({})
    v1 = _v1()
    v2 = copy.deepcopy(v1)
    v2["schema_version"] = 2
    v2["host"]["modes"] = {k: r["mode"] for k, r in v1["host"]["keys"].items()}
    v2["host"]["keys"] = {k: r["value"] for k, r in v1["host"]["keys"].items()}
    for nset in v2["namespace_sets"]:
        old = nset["view"]["keys"]
        nset["view"].update(keys={k: r["value"] for k, r in old.items()}, modes={k: r["mode"] for k, r in old.items()})
    v3 = copy.deepcopy(v2)
    v3["schema_version"] = 3
    for section in [v3["host"]] + [nset["view"] for nset in v3["namespace_sets"]]:
        tables = procsys.key_tables({k: {"value": v, "mode": section["modes"][k]} for k, v in section["keys"].items()})
        assert len(tables["modes"]) < len(section["modes"]) / 4   # most keys have the default mode
        section.update(tables)
    old_result = lint.lint_host(v1, "h", config)
    assert not old_result.get("unlintable") and old_result["findings"]
    assert old_result["findings"] == lint.lint_host(v2, "h", config)["findings"]
    assert old_result["findings"] == lint.lint_host(v3, "h", config)["findings"]
    assert facts_schema.read_facts(v3)[1] is None


@pytest.mark.parametrize("change, words", [
    (lambda f: f["host"].update(keys=[]), "$.host.keys: [] is not of type 'object'"),
    (lambda f: f["host"]["keys"].update(k="1"), "$.host.keys.k: '1' is not a schema_version 1 key entry"),
    (lambda f: f["host"]["keys"].update(k={"value": 1}), "$.host.keys.k: {'value': 1} is not a schema_version 1"),
    (lambda f: f["host"]["keys"].update(k={"mode": "0644"}), "$.host.keys.k: {'mode': '0644'} is not"),
    (lambda f: f["host"]["keys"].update(k={"value": "1", "mode": 420}), "$.host.keys.k: "),
    (lambda f: f["namespace_sets"][2]["view"]["keys"].update({"a b": None}),
     '$.namespace_sets[2].view.keys["a b"]: None is not a schema_version 1 key entry'),
    (lambda f: f["host"].pop("keys"), "$.host: 'keys' is a required property"),
    (lambda f: f.update(schema_version=4), "$.schema_version: 4 is not a facts version this controller reads (1, 2, 3)"),
    (lambda f: f.update(schema_version=True), "$.schema_version: True is not a facts version"),
    (lambda f: f.update(schema_version="1"), "$.schema_version: '1' is not a facts version"),
    (lambda f: f.pop("schema_version"), "$: 'schema_version' is a required property"),
])
def test_malformed_version_1_facts_are_refused_with_the_path(change, words):
    v1 = _v1()
    change(v1)
    facts, problem = facts_schema.read_facts(v1)
    assert facts is None and problem is not None and problem.startswith(words), problem
    refused = lint.lint_host(v1, "h", lint.load_config({}))
    assert refused["failed"] and refused["unlintable"].endswith(problem)


def test_version_1_entries_as_version_1_read_them():
    """Version 1 took a mode left out or null (the classifier: unknown) and ignored other properties."""
    v1 = _v1()
    v1["host"]["keys"]["vm.swappiness"] = {"value": "60"}
    v1["host"]["keys"]["vm.dirty_ratio"] = {"value": "20", "mode": None, "note": [1]}
    facts, problem = facts_schema.read_facts(v1)
    assert problem is None
    assert (facts["host"]["keys"]["vm.swappiness"], facts["host"]["modes"]["vm.swappiness"]) == ("60", None)
    assert (facts["host"]["keys"]["vm.dirty_ratio"], facts["host"]["modes"]["vm.dirty_ratio"]) == ("20", None)


def test_version_2_is_read_as_version_3_without_a_default():
    """Version 2 listed every key's mode and had no default_mode: read as version 3 with no
    default, the tables untouched, and every key's mode found (facts_schema.key_mode)."""
    v2 = _facts()
    v2["schema_version"] = 2
    v2["host"].pop("default_mode")
    v2["host"]["modes"] = {"net.core.somaxconn": "0644", "vm.max_map_count": "0444"}
    facts, problem = facts_schema.read_facts(v2)
    assert problem is None and facts["schema_version"] == 3 and v2["schema_version"] == 2
    assert facts["host"] == v2["host"] and facts["namespace_sets"] == v2["namespace_sets"]
    assert facts_schema.key_modes(facts["host"]) == {"net.core.somaxconn": "0644", "vm.max_map_count": "0444"}
    v2["host"]["modes"].pop("vm.max_map_count")   # version 2 without a key's mode is still refused
    assert facts_schema.read_facts(v2)[1].startswith("$.host.modes: 1 key(s) of keys have no mode here (vm.max_map_count)")


def test_a_key_mode_is_its_own_or_the_default():
    host = {"keys": {"a": "1", "b": "2"}, "default_mode": "0644", "modes": {"b": "0444"},
            "unreadable": {"c": {"mode": "0200", "reason": "write-only", "message": "x"}}}
    assert [facts_schema.key_mode(host, k) for k in ("a", "b", "c", "d")] == ["0644", "0444", None, None]
    assert facts_schema.key_modes(host) == {"a": "0644", "b": "0444"}
