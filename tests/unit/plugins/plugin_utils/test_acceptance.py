"""The measured runtime acceptance tables (rules/knowledge/runtime-acceptance) and the knowledge
base's runtime rules that cite them: loaded, quoted, and consistent with each other."""
from __future__ import annotations

import json

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import acceptance
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import (
    KNOWLEDGE_DIR, KnowledgeError, build_knowledge, load_knowledge)
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.static_judge import vlan_dotted

TABLES = KNOWLEDGE_DIR / acceptance.SUBDIR
VALIDATOR_STAGES = ("client", "daemon", "runtime-validator")


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def test_every_table_is_the_harness_output():
    files = sorted(TABLES.glob("*.json"))
    assert {f.name.rsplit("-", 1)[0] for f in files} >= {
        "docker-api", "docker-cli", "podman-cli", "podman-api", "runc", "containerd", "lxc"}
    for path in files:
        table = json.loads(path.read_text())
        assert table["generator"] == "tests/integration/runtime_acceptance/measure.py", path
        assert path.name == "%s-%s.json" % (table["runtime"], table["version_short"])
        assert table["results"] and all("template" in r and "stage" in r for r in table["results"])
        assert not [r for r in table["results"] if r.get("host_changed")], path  # no case changed the host


def test_both_docker_clients_are_measured_against_one_daemon():
    versions = {json.loads(p.read_text())["version"]["client"]: json.loads(p.read_text())
                for p in TABLES.glob("docker-cli-*.json")}
    assert set(versions) >= {"20.10.24+dfsg1", "28.2.2"}
    old = next(r for r in versions["20.10.24+dfsg1"]["results"] if r["key"] == "vm.max_map_count")
    new = next(r for r in versions["28.2.2"]["results"] if r["key"] == "vm.max_map_count")
    assert old["stage"] == new["stage"] == "client"
    assert old["template"].endswith("is not whitelisted") and new["template"].endswith("is not allowed")


def _rows(kb):
    for name, spec in kb.runtimes.items():
        if not spec.measured_as:
            continue
        for runtime, key, mode in list(kb.tables._by):
            if runtime == spec.measured_as:
                for row in kb.tables.rows(runtime, key, mode):
                    yield name, spec, row


def test_the_rules_predict_every_measured_validation(kb):
    """Each runtime rule (read from the runtime's source) agrees with what the harness saw."""
    checked = 0
    for name, spec, row in _rows(kb):
        if "/" in row.key or row.stage == "unrelated":
            continue  # spellings are judged apart (static_judge); LXC's host ipc/uts cannot start at all
        rule = spec.rule_for(row.key)
        validator_refused = row.stage in VALIDATOR_STAGES
        if row.mode == "private":
            if name == "lxc":  # no validator: the refusal is the write at start
                assert rule.accepts == row.accepted or row.stage == "container-init", (name, row.key)
            else:
                assert rule.accepts == (not validator_refused), (name, row.key, row.stage, row.message)
        elif row.mode == "host-net-path" and rule.accepts and rule.requires == "net":
            # The host's netns joined by path: runc compares it with its own, crun does not look.
            assert validator_refused == rule.refuses_host_by_path, (name, row.key, row.mode, row.message)
        elif rule.accepts and rule.requires == row.mode.split("-")[1] and name != "lxc":
            assert validator_refused, (name, row.key, row.mode, row.message)
        checked += 1
    assert checked > 100


def test_container_init_failures_are_the_keys_the_knowledge_says_cannot_be_written(kb):
    """A key the validator accepts but the container's init fails to write is, by the knowledge,
    absent or read-only in a container (or unknown, or unsettable): the class and the runtime agree."""
    for name, spec, row in _rows(kb):
        if row.mode != "private" or row.stage != "container-init" or name == "lxc":
            continue
        klass = scope(kb, row.key, kernel="6.18")["class"]
        assert klass in ("host-only", "mirror") or row.key == "net.ipv4.foo_bar" or vlan_dotted(row.key), (
            name, row.key, klass)


def test_quotes_name_runtime_version_and_date(kb):
    rule = kb.runtimes["docker-cli"].rule_for("kernel.pid_max")
    text = acceptance.quote(rule.rows, "kernel.pid_max", "99999")
    assert text.startswith('docker CLI 28.2.2 says "invalid argument "kernel.pid_max=99999"')
    assert "; docker CLI 20.10.24 says" in text and "(measured 20" in text
    # Two versions that said the same thing are named together.
    same = acceptance.quote(rule.rows[:1] * 2, "kernel.pid_max", "1")
    assert same.count("says") == 1


def test_every_runtime_rule_says_how_it_is_known(kb):
    for name, spec in kb.runtimes.items():
        for rule in spec.rules:
            assert rule.verified_by.startswith(("measured: ", "source: ", "unverified")), (name, rule.match)
            if spec.measured_as and not rule.accepts:
                assert rule.rows, (name, rule.match)  # a measured runtime's refusals quote the table


def test_a_rule_pointing_at_no_measured_row_names_the_file(tmp_path):
    knowledge = tmp_path / "k"
    (knowledge / acceptance.SUBDIR).mkdir(parents=True)
    for path in KNOWLEDGE_DIR.glob("*.yml"):
        (knowledge / path.name).write_text(path.read_text())
    (knowledge / "knowledge.schema.json").write_text((KNOWLEDGE_DIR / "knowledge.schema.json").read_text())
    with pytest.raises(KnowledgeError, match=r"runtimes\.yml.*no measured row for 'kernel.hostname'"):
        build_knowledge([knowledge])
    (knowledge / acceptance.SUBDIR / "runc-9.9.json").write_text("{not json")
    with pytest.raises(KnowledgeError, match=r"runc-9.9.json.*not a JSON table"):
        build_knowledge([knowledge])
