"""The rule catalog: every file valid, every rule's catalog examples evaluated (positive and
negative), user rule directories, parameters, overrides and error isolation."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import rules_builtin
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.vocabulary import SEVERITY_RANK

CATALOG = rule_catalog.load_catalog()
KB = load_knowledge()
PROFILES, PROFILE_ERRORS = ex.load_profiles()
ISSUE_RULES = ["NSG%03d" % i for i in range(1, 11)]  # NSG010: issue 13 (request names no runtime can write)


def run_example(rule, example):
    facts = rule_catalog.example_facts(example["facts"])
    classes = rule_catalog.example_classification(example.get("classes"))
    extra = []
    for document in example.get("expectations") or []:
        found, errors = ex.expectations_from_data(document, "example")
        assert errors == []
        extra.extend(found)
    errors = []
    findings = evaluator.evaluate(facts, classes, CATALOG, PROFILES + extra, host="h1",
                          params={rule.id: example["params"]} if example.get("params") else None,
                          kb=KB, errors=errors)
    assert errors == []
    return facts, [f for f in findings if f["rule"] == rule.id]


def test_catalog_loads_without_errors():
    assert CATALOG.errors == []
    assert PROFILE_ERRORS == []
    assert [r.id for r in CATALOG] == ISSUE_RULES
    assert len({r.name for r in CATALOG}) == len(CATALOG)
    for rule in CATALOG:
        assert rule.builtin and Path(rule.file).name.startswith(rule.id + "-" + rule.name)
        assert rule.check["builtin"] in rules_builtin.BUILTIN_CHECKS
        assert rule.examples["positive"] and rule.examples["negative"]
        assert all(ref["url"] for ref in rule.references)


@pytest.mark.parametrize("rule", list(CATALOG), ids=lambda r: r.id)
def test_positive_examples_find(rule):
    for example in rule.examples["positive"]:
        facts, found = run_example(rule, example)
        assert found, example["description"]
        for want in example.get("expect") or []:
            matching = [f for f in found if ("key" not in want or f["key"] == want["key"])
                        and ("severity" not in want or f["severity"] == want["severity"])
                        and ("where" not in want or f["remediation"]["where"] == want["where"])]
            assert matching, (example["description"], want, found)
            if "set" in want:
                assert any(f["set_id"] == want["set"] for f in matching)
        for finding in found:
            assert finding["host"] == "h1"
            assert finding["message"] and "$" not in finding["message"], finding["message"]
            assert finding["rule_name"] == rule.name


@pytest.mark.parametrize("rule", list(CATALOG), ids=lambda r: r.id)
def test_negative_examples_do_not_find(rule):
    for example in rule.examples["negative"]:
        dummy, found = run_example(rule, example)
        assert found == [], (example["description"], found)


def test_finding_shape_matches_the_contract():
    """docs/findings.md: every field present, values has its five keys, tasks are dicts."""
    rule = CATALOG["NSG001"]
    dummy, found = run_example(rule, rule.examples["positive"][0])
    finding = found[0]
    assert set(finding) == {"rule", "rule_name", "severity", "host", "set_id", "container", "key", "values", "class",
                            "namespace", "evidence", "message", "remediation", "details"}
    assert set(finding["values"]) == {"host", "container", "requested", "expected", "persisted"}
    assert finding["values"]["requested"] == "262144" and finding["values"]["host"] == "65530"
    assert finding["container"]["name"] == "es1" and finding["container"]["runtime"] == "lxc"
    assert finding["class"] == "global" and finding["evidence"] == "example"
    assert finding["remediation"]["where"] == "host"
    tasks = finding["remediation"]["tasks"]
    assert tasks[0]["ansible.posix.sysctl"]["name"] == "vm.max_map_count"
    assert tasks[1]["ansible.builtin.lineinfile"]["state"] == "absent"
    yaml.safe_dump(found)  # plain data, nothing a report renderer could choke on


def write_rule(directory: Path, name: str, document: dict) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document))
    return path


USER_RULE = {
    "id": "SITE001", "name": "swappiness-low", "title": "Hosts keep vm.swappiness at 10 or less",
    "severity": "warning", "rationale": "Our database hosts must not swap eagerly (site policy).",
    "references": [{"title": "site runbook", "url": "https://wiki.example/swap"}],
    "check": {"kind": "host-value", "key": "vm.swappiness", "expect": "<=10"},
    "message": "vm.swappiness is $observed, site policy wants $expected.",
    "remediation": {"where": "host", "summary": "set it on the host"},
    "examples": {"positive": [{"description": "60", "facts": {}}], "negative": [{"description": "1", "facts": {}}]},
}


def test_user_rules_dir_declarative_rule(tmp_path):
    write_rule(tmp_path, "SITE001-swappiness-low.yml", USER_RULE)
    catalog = rule_catalog.load_catalog([tmp_path])
    assert catalog.errors == [] and "SITE001" in catalog and not catalog["SITE001"].builtin
    facts = rule_catalog.example_facts({"host": {"keys": {"vm.swappiness": "60"}, "modes": {"vm.swappiness": "0644"}}})
    findings = evaluator.evaluate(facts, rule_catalog.example_classification({"vm.swappiness": "global"}), catalog, host="db1")
    site = [f for f in findings if f["rule"] == "SITE001"]
    assert len(site) == 1 and site[0]["message"] == "vm.swappiness is 60, site policy wants <=10."
    task = site[0]["remediation"]["tasks"][0]
    assert task["ansible.posix.sysctl"]["value"] == "10"
    facts["host"]["keys"]["vm.swappiness"] = "1"
    assert [f for f in evaluator.evaluate(facts, {}, catalog) if f["rule"] == "SITE001"] == []


def test_broken_user_rules_are_reported_and_skipped(tmp_path):
    write_rule(tmp_path, "SITE001-swappiness-low.yml", USER_RULE)
    write_rule(tmp_path, "SITE002-bad.yml", dict(USER_RULE, id="SITE002", severity="fatal"))
    write_rule(tmp_path, "SITE003-builtin.yml", dict(USER_RULE, id="SITE003", check={"builtin": "persisted-drift"}))
    write_rule(tmp_path, "NSG001-again.yml", dict(USER_RULE, id="NSG001"))
    write_rule(tmp_path, "WRONG-name.yml", dict(USER_RULE, id="SITE004"))
    (tmp_path / "SITE005-broken.yml").write_text("id: [unclosed\n")
    catalog = rule_catalog.load_catalog([tmp_path])
    assert "SITE001" in catalog and "NSG001" in catalog and catalog["NSG001"].builtin
    by_file = {Path(e["file"]).name: e for e in catalog.errors}
    assert by_file["SITE002-bad.yml"]["path"] == "$.severity"
    assert "reserved" in by_file["SITE003-builtin.yml"]["message"]
    assert "already defined" in by_file["NSG001-again.yml"]["message"]
    assert "must start with the rule id" in by_file["WRONG-name.yml"]["message"]
    assert "not valid YAML" in by_file["SITE005-broken.yml"]["message"]
    assert by_file["SITE005-broken.yml"]["path"] == "line 2 column 1"
    assert len(catalog) == len(ISSUE_RULES) + 1  # the built-ins and SITE001


def test_missing_user_dir_is_an_error_not_a_crash(tmp_path):
    catalog = rule_catalog.load_catalog([tmp_path / "nope"])
    assert len(catalog) == len(ISSUE_RULES) and catalog.errors[0]["message"] == "not a directory"


FACTS_CONNTRACK = rule_catalog.example_facts({
    "host": {"cpus": 2},
    "conntrack": {"loaded": True, "max": 1000, "buckets": 1000,
                  "per_netns": [{"net": 1, "count": 800, "host": True, "sets": []}]},
})


def test_params_overrides_and_skip():
    errors = []
    found = evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, params={"NSG005": {"count_warning_ratio": 0.9,
                                                                        "count_error_ratio": 0.95,
                                                                        "max_per_core": 0}}, errors=errors)
    assert errors == [] and [f for f in found if f["rule"] == "NSG005"] == []
    found = evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, params={"NSG005": {"max_per_core": 0}})
    assert [(f["rule"], f["severity"]) for f in found] == [("NSG005", "warning")]
    found = evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, overrides={"NSG005": {"severity": "info"}},
                       params={"NSG005": {"max_per_core": 0}})
    assert [f["severity"] for f in found] == ["info"]
    assert evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, overrides={"NSG005": {"enabled": False}}) == []
    assert evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, skip=["conntrack-capacity"]) == []


def test_bad_params_are_reported_and_defaults_kept():
    errors = []
    found = evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, params={"NSG005": {"count_warning_ratio": "lots", "nope": 1},
                                                             "NSG999": {}},
                       overrides={"NSG004": {"severity": "fatal"}}, errors=errors)
    messages = " | ".join(e["message"] for e in errors)
    assert "'lots' is not a valid number; the default 0.75 is used" in messages
    assert "NSG005 has no parameter 'nope'" in messages
    assert "no rule NSG999 in the catalog" in messages
    assert "'fatal' is not one of" in messages
    assert any(f["rule"] == "NSG005" and f["severity"] == "warning" for f in found)  # default 0.75 applied


def test_a_failing_check_does_not_cost_the_other_rules(monkeypatch):
    def broken(ctx, rule, params):
        raise KeyError("boom")
    monkeypatch.setitem(rules_builtin.BUILTIN_CHECKS, "persisted-drift", broken)
    errors = []
    found = evaluator.evaluate(FACTS_CONNTRACK, {}, CATALOG, params={"NSG005": {"max_per_core": 0}}, errors=errors)
    assert [f["rule"] for f in found] == ["NSG005"]
    assert errors and errors[0]["rule"] == "NSG008" and "KeyError" in errors[0]["message"]


def test_findings_sorted_worst_first_and_counted():
    facts = rule_catalog.example_facts({
        "host": {"cpus": 2, "keys": {"vm.max_map_count": "65530"}, "modes": {"vm.max_map_count": "0644"}},
        "conntrack": {"loaded": True, "max": 1000, "buckets": 1000,
                      "per_netns": [{"net": 1, "count": 800, "host": True, "sets": []}]},
        "namespace_sets": [{"identity": {"runtime": "lxc", "name": "x"}, "requested": {"vm.max_map_count": "262144"}}],
    })
    found = evaluator.evaluate(facts, rule_catalog.example_classification({"vm.max_map_count": "global"}), CATALOG,
                       params={"NSG005": {"max_per_core": 0}})
    severities = [f["severity"] for f in found]
    assert severities == sorted(severities, key=lambda s: SEVERITY_RANK[s])
    assert evaluator.count_by_severity(found)["error"] >= 1 and evaluator.worst_severity(found) == "error"
    assert evaluator.worst_severity([]) is None


def test_rule_pages_are_generated_from_the_catalog():
    """docs/rules/<ID>.md match the catalog; docs/rules.md lists every rule and profile."""
    docs = Path(rule_catalog.CATALOG_DIR).parents[1] / "docs"
    overview = (docs / "rules.md").read_text()
    for rule in CATALOG:
        page = docs / "rules" / ("%s.md" % rule.id)
        assert page.read_text() == rule_catalog.rule_markdown(rule), "regenerate %s with rule_catalog.rule_markdown()" % page
        assert "[%s](rules/%s.md) | %s |" % (rule.id, rule.id, rule.name) in overview
    for expectation in PROFILES:
        assert "`%s` | `%s` | %s" % (expectation.key, expectation.describe(), expectation.severity) in overview
