"""plugin_utils.lint: the result of a host that fails on its findings (the audit role's fail-on
decision, made in the sysctl_lint action), and the fingerprint of the lint options that lets the
report tell whether it lints such a host as its own lint task did."""
from __future__ import annotations

import json

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint
from tests.reports.synthetic import make_host


@pytest.fixture(scope="module")
def config():
    return lint.load_config({})


@pytest.fixture(scope="module")
def facts():
    return json.loads(json.dumps(make_host("web1", 3)[0]))


def test_fingerprint_ignores_defaults_and_names_every_option():
    assert lint.config_fingerprint({}) == lint.config_fingerprint(
        {"profiles": "all", "skip_rules": [], "remediation": {}, "knowledge_dirs": None})
    assert lint.config_fingerprint({"skip_rules": ["NSG008"]}) != lint.config_fingerprint({})
    assert lint.config_fingerprint({"profiles": ["redis"]}) != lint.config_fingerprint({})
    assert lint.config_fingerprint({"remediation": {"file_prefix": "80"}}) != lint.config_fingerprint({})
    # options that do not shape findings are not part of it
    assert lint.config_fingerprint({"fail_on": "error", "summary_lines": 50}) == lint.config_fingerprint({})


def test_a_result_records_the_options_it_was_computed_with(config, facts):
    outcome = lint.lint_host(facts, "web1", config, fail_on="error")
    assert outcome[lint.RESULT_MARK]["config"] == lint.config_fingerprint({}) == config.fingerprint
    assert lint.result_is_current(outcome, facts) == (True, "")


def test_failed_at_threshold_keeps_the_counts_and_leaves_the_findings_out(config, facts):
    outcome = lint.lint_host(facts, "web1", config, fail_on="error")
    assert outcome["threshold_reached"] and outcome["counts"]["error"] > 0
    failed = lint.failed_at_threshold(outcome, "web1", "error")
    assert failed["failed"] is True and failed["findings_left_out"] == len(outcome["findings"])
    assert "findings" not in failed and "summary" not in failed
    assert failed["msg"] == "web1 has %d error and %d warning findings (nsguard_sysctl_fail_on=error)" % (
        outcome["counts"]["error"], outcome["counts"]["warning"])
    assert failed["counts"] == outcome["counts"] and failed[lint.RESULT_MARK] == outcome[lint.RESULT_MARK]
    # the report lints the host again (the result has no findings to report) ...
    current, why = lint.result_is_current(failed, facts)
    assert not current and "leaves the findings out" in why
    # ... and knows it failed on its findings, not on an error
    assert lint.failed_on_findings(failed, facts)
    assert not lint.failed_on_findings(outcome, facts)
    assert not lint.failed_on_findings(failed, dict(facts, gathered_at="2000-01-01T00:00:00Z"))


def test_a_partial_gather_is_named_in_the_message(config, facts):
    partial = dict(facts, errors=[{"stage": "deadline", "message": "the gather ran out of time"}])
    outcome = dict(lint.lint_host(partial, "web1", config, fail_on="warning"), partial="2 sets not read")
    assert lint.failed_at_threshold(outcome, "web1", "warning")["msg"].endswith(
        "findings; the audit is partial: 2 sets not read (nsguard_sysctl_fail_on=warning)")


def test_an_unlintable_host_did_not_fail_on_findings(config, facts):
    refused = lint.lint_host(dict(facts, namespace_sets="x"), "web1", config, fail_on="error")
    assert refused["unlintable"] and refused["failed"] is True
    assert not lint.failed_on_findings(refused, facts)
