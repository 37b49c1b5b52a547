"""Workload expectations: constraints, selectors, the built-in profiles and user documents."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.rules_builtin import combined_target
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.vocabulary import set_label


@pytest.mark.parametrize("spec,value,ok,text", [
    (">=262144", "65530", False, ">=262144"),
    (">=262144", "262144", True, ">=262144"),
    (">511", "511", False, ">=512"),
    ("<=5", "15", False, "<=5"),
    ("==1", "1", True, "==1"),
    ("!=0", "0", False, "!=0"),
    ("1024 65000", "1024\t65000", True, "==1024 65000"),   # sysctl prints tabs
    ({"one_of": [1, 2]}, "2", True, "one of 1, 2"),
    ({"min": 6291456, "field": 2}, "4096\t87380\t4194304", False, "field 2 >=6291456"),
    (">=10", "abc", None, ">=10"),          # not a number: cannot be compared
    (">=10", None, None, ">=10"),           # absent
])
def test_constraints(spec, value, ok, text):
    [constraint] = ex.parse_constraint(spec)
    assert constraint.check(value) is ok
    assert constraint.describe() == text


@pytest.mark.parametrize("spec", [">=abc", {"min": "x"}, {"field": -1, "min": 1}, {}, None, True, {"one_of": []}])
def test_bad_constraints(spec):
    with pytest.raises(ex.ConstraintError):
        ex.parse_constraint(spec)


@given(st.integers(min_value=0, max_value=2**40), st.sampled_from([">=", "<=", "=="]))
def test_target_satisfies_its_constraint(number, op):
    [constraint] = ex.parse_constraint("%s%d" % (op, number))
    assert constraint.check(constraint.target()) is True


@given(st.lists(st.tuples(st.sampled_from(["min", "max"]), st.integers(0, 10**7)), min_size=1, max_size=6),
       st.integers(0, 10**7))
def test_combined_target_meets_every_constraint_or_is_none(specs, current):
    constraints = [c for op, n in specs for c in ex.parse_constraint({op: n})]
    target = combined_target(constraints, str(current))
    mins = [n for op, n in specs if op == "min"]
    maxes = [n for op, n in specs if op == "max"]
    if target is None:
        assert mins and maxes and max(mins) > min(maxes)
    else:
        assert all(c.check(target) for c in constraints)


def nset(image=None, name=None, comm=None, cmdline=None, runtime="docker", labels=None, **identity):
    return {"identity": dict(identity, image=image, name=name, runtime=runtime, labels=labels or {}),
            "init": {"pid": 9, "comm": comm, "cmdline": cmdline}}


PROFILES, ERRORS = ex.load_profiles()


def profiles_for(ns):
    return sorted({e.profile for e in ex.matching(PROFILES, ns)})


@pytest.mark.parametrize("ns,expected", [
    (nset(image="docker.elastic.co/elasticsearch/elasticsearch:8.15.0"), ["elasticsearch"]),
    (nset(image="elasticsearch@sha256:0123"), ["elasticsearch"]),
    (nset(image="prometheuscommunity/elasticsearch-exporter:v1.7.0"), []),
    (nset(runtime="unknown", comm="java", cmdline="java -Xms1g org.elasticsearch.bootstrap.Elasticsearch"),
     ["elasticsearch"]),
    (nset(image="opensearchproject/opensearch:2"), ["opensearch"]),
    (nset(image="wazuh/wazuh-indexer:4.9"), ["opensearch"]),
    (nset(runtime="unknown", comm="redis-server", cmdline="redis-server *:6379"), ["redis"]),
    (nset(image="valkey/valkey:8"), ["redis"]),
    (nset(image="sonarqube:10-community"), ["sonarqube"]),
    (nset(image="cassandra:5"), ["cassandra"]),
    (nset(image="nginx:1"), []),
])
def test_builtin_profiles_match(ns, expected):
    assert ERRORS == []
    assert profiles_for(ns) == expected


def test_every_builtin_expectation_has_a_source():
    assert {e.profile for e in PROFILES} == {"elasticsearch", "opensearch", "redis", "sonarqube", "cassandra"}
    for expectation in PROFILES:
        assert expectation.references and all(r["url"].startswith("https://") for r in expectation.references)
        assert expectation.why
    es = {e.describe(): e.severity for e in PROFILES if e.profile == "elasticsearch" and e.key == "vm.max_map_count"}
    assert es == {">=262144": "error", ">=1048576": "warning"}


def test_selector_fields():
    [exp], errors = ex.expectations_from_data({
        "profile": "site", "match": [{"name": "search-*", "runtime": "podman"}, {"labels": {"tier": "re:search|index"}}],
        "expect": {"vm.max_map_count": ">=262144"}}, "vars")
    assert errors == []
    assert exp.matches(nset(name="search-1", runtime="podman"))
    assert not exp.matches(nset(name="search-1", runtime="docker"))   # both fields of a selector
    assert exp.matches(nset(name="x", labels={"tier": "index"}))      # any selector
    # an unidentified set is matched by its init's command name
    assert exp.matches(nset(runtime="podman", comm="search-node"))
    assert set_label(nset(runtime="unknown", comm="search-node")) == "search-node[9]"


def test_user_documents_report_file_and_path(tmp_path):
    (tmp_path / "good.yml").write_text(yaml.safe_dump({"expectations": [
        {"profile": "a", "match": {"name": "a"}, "expect": [{"key": "vm.swappiness", "max": 10, "severity": "info"}]},
        {"profile": "b", "match": {"nam": "b"}, "expect": {"vm.swappiness": "<=10"}},
    ]}))
    (tmp_path / "bad.yaml").write_text("profile: [\n")
    (tmp_path / "ignored.txt").write_text("not yaml")
    found, errors = ex.load_expectation_files([tmp_path, tmp_path / "missing.yml"])
    assert [(e.profile, e.key, e.severity) for e in found] == [("a", "vm.swappiness", "info")]
    problems = {(e["file"].rsplit("/", 1)[-1], e["path"]) for e in errors}
    assert ("good.yml[1]", "$.match") in problems
    assert ("bad.yaml", "line 2 column 1") in problems and ("missing.yml", "$") in problems  # where the YAML breaks
    dummy, errors = ex.expectations_from_data({"profile": "c", "match": {"cmdline": "("}, "expect": {"a.b": "1"}}, "v")
    assert "bad regular expression" in errors[0]["message"]
    dummy, errors = ex.expectations_from_data({"profile": "c", "match": {"name": "c"},
                                               "expect": {"net.ipv4.tcp_rmem": {"min": "big"}}}, "v")
    assert errors[0]["path"] == '$.expect["net.ipv4.tcp_rmem"].min'


def test_profile_selection():
    found, errors = ex.load_profiles(["redis"])
    assert errors == [] and {e.profile for e in found} == {"redis"}
    assert ex.load_profiles([]) == ([], [])
    dummy, errors = ex.load_profiles(["nope"])
    assert "unknown built-in profile 'nope'" in errors[0]["message"]
