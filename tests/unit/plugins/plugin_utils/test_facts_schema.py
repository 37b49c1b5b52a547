"""facts_schema.facts_problem: the key tables checked by hand (the fast path) say exactly what
the schema says, and the path of a bad one is still named."""
from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import facts_schema
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.expectations import load_json_schema, schema_errors
from tests.reports.synthetic import make_host


def _facts():
    facts = json.loads(json.dumps(make_host("web1", 2)[0]))
    facts["namespace_sets"][0]["view"]["keys"] = {"net.core.somaxconn": {"value": "1024", "mode": "0644"}}
    return facts


def _jsonschema_says(facts):
    return schema_errors(facts, load_json_schema(facts_schema.SCHEMA_PATH), "facts")


def test_the_shipped_schema_takes_the_fast_path():
    assert facts_schema._without_key_tables(load_json_schema(facts_schema.SCHEMA_PATH)) is not None


def test_a_changed_key_entry_validates_the_whole_schema():
    schema = copy.deepcopy(load_json_schema(facts_schema.SCHEMA_PATH))
    schema["definitions"]["key_entry"]["properties"]["value"]["maxLength"] = 10
    assert facts_schema._without_key_tables(schema) is None
    schema = copy.deepcopy(load_json_schema(facts_schema.SCHEMA_PATH))
    schema["definitions"]["probe"]["properties"]["keys"] = {"$ref": "#/definitions/key_table"}
    assert facts_schema._without_key_tables(schema) is None   # a third place: not checked by hand


@pytest.mark.parametrize("where, bad", [
    ("host", []), ("host", {"k": None}), ("host", {"k": {}}), ("host", {"k": {"value": 1}}),
    ("host", {"k": {"value": "1", "mode": 420}}), ("host", {"k": "1"}), ("host", {"k": {"value": None}}),
    ("view", []), ("view", {"k": {"mode": "0644"}}), ("view", {"k": {"value": True}}),
])
def test_a_bad_key_table_is_refused_with_its_path(where, bad):
    facts = _facts()
    if where == "host":
        facts["host"]["keys"] = bad
    else:
        facts["namespace_sets"][1]["view"] = {"mode": "diff", "keys": bad}
    problem = facts_schema.facts_problem(facts)
    assert _jsonschema_says(facts), "the schema itself refuses it"
    assert problem is not None and (".host.keys" in problem if where == "host" else ".namespace_sets[1].view.keys" in problem), problem


@pytest.mark.parametrize("change", [
    lambda f: f["host"]["keys"].update(k={"value": "1", "mode": None}),
    lambda f: f["host"]["keys"].update(k={"value": "", "extra": [1]}),
    lambda f: f["namespace_sets"][0].update(view=None),
    lambda f: f["namespace_sets"][0]["view"].pop("keys"),
    lambda f: f["namespace_sets"][0]["view"].update(keys={}),
])
def test_good_key_tables_pass(change):
    facts = _facts()
    change(facts)
    assert not _jsonschema_says(facts)
    assert facts_schema.facts_problem(facts) is None
