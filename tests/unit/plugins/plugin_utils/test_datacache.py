"""The compiled data cache (plugin_utils/datacache.py, issue 15): knowledge, rule and profile
files are parsed and validated once, then read back from JSON entries keyed by the file's bytes
and the code; a change rebuilds, a broken entry is ignored, a bad file fails as it did without
the cache. Real files, real loaders, a private cache directory per test; one real playbook run."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import datacache
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import knowledge as kb
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from tests.ansible_run import run_playbook, write_playbook
from tests.reliability.test_loader_fuzz import HOSTILE, LOADERS, _run
from tests.reports.synthetic import make_host

KNOWLEDGE_FILE = Path(kb.KNOWLEDGE_DIR) / "uts.yml"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv(datacache.ENV, str(directory))
    datacache.clear_memo()  # catalog and profiles loaded by earlier tests of this process
    yield directory
    datacache.clear_memo()


def _entries(directory: Path) -> list:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def _everything():
    """What a lint run loads, as comparable plain data."""
    knowledge = kb.build_knowledge([kb.KNOWLEDGE_DIR])
    catalog = rule_catalog.load_catalog()
    found, errors = ex.load_profiles()
    return ([(e.id, e.match, e.klass, e.gates, e.sources) for e in knowledge], knowledge.runtimes,
            {k: vars(v) for k, v in catalog.rules.items()}, catalog.errors, found, errors)


def test_a_second_load_comes_from_the_cache_and_equals_a_parse(cache, monkeypatch):
    cold = _everything()
    files = len(list(Path(kb.KNOWLEDGE_DIR).glob("*.yml")) + list(Path(rule_catalog.CATALOG_DIR).glob("*.yml"))
                + list(Path(ex.PROFILES_DIR).glob("*.yml")))
    assert len(_entries(cache)) == files
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in _entries(cache))
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached
    assert _everything() == cold
    monkeypatch.setenv(datacache.ENV, "off")
    assert not datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached
    assert _everything() == cold


def test_a_cached_file_keeps_the_order_of_its_mappings(cache):
    """Dicts compare equal in any order, but order is shown: a rule page lists message_vars in
    the file's order, and a catalog read back from the cache printed them sorted."""
    cold = [list(r.message_vars) for r in rule_catalog.load_catalog()]
    datacache.clear_memo()
    assert datacache.load_data(next(Path(rule_catalog.CATALOG_DIR).glob("NSG001*.yml")), "rule-builtin").cached
    assert [list(r.message_vars) for r in rule_catalog.load_catalog()] == cold
    assert cold[0] == ["requested", "host_value", "consequence"]  # NSG001's, not sorted


def test_a_changed_file_is_parsed_again(cache, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(KNOWLEDGE_FILE, site / "uts.yml")
    first = kb.build_knowledge([site])
    assert datacache.load_data(site / "uts.yml", "knowledge").cached
    text = (site / "uts.yml").read_text()
    assert "kernel.hostname" in text
    (site / "uts.yml").write_text(text.replace("kernel.hostname", "kernel.hostname_edited"))
    assert not datacache.load_data(site / "uts.yml", "knowledge").cached
    second = kb.build_knowledge([site])
    assert second.entry("kernel.hostname_edited") is not None and first.entry("kernel.hostname_edited") is None
    assert second.entry("kernel.hostname") is None or second.entry("kernel.hostname").match != ("kernel.hostname",)
    assert datacache.load_data(site / "uts.yml", "knowledge").cached  # the entry was rewritten
    assert len(_entries(cache)) == 1  # one entry per file path, replaced


def test_another_code_version_or_kind_is_a_miss(cache, monkeypatch):
    kb.load_file(KNOWLEDGE_FILE)
    assert datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached
    assert not datacache.load_data(KNOWLEDGE_FILE, "profile").cached  # another loader's checks
    monkeypatch.setattr(datacache, "_CODE_VERSION", "a-different-collection")
    assert not datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(3000)),
    "not UTF-8": lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes()),
    "body edited, header kept": lambda p: p.write_text(p.read_text().replace("kernel.hostname", "kernel.hostnamX")),
    "header only": lambda p: p.write_text(p.read_text().split("\n", 1)[0]),
    "header not a mapping": lambda p: p.write_text("[1, 2]\n{}"),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
    "a FIFO": lambda p: (p.unlink(), os.mkfifo(p)),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_entry_is_ignored_and_rebuilt(cache, case):
    expected = kb.load_file(KNOWLEDGE_FILE)
    (entry,) = _entries(cache)
    CORRUPTIONS[case](entry)
    assert not datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached
    assert kb.load_file(KNOWLEDGE_FILE) == expected
    if case != "a directory":  # a directory in its place is not replaced by a file; still ignored
        assert datacache.load_data(KNOWLEDGE_FILE, "knowledge").cached
        assert json.loads(entry.read_text().split("\n", 1)[1]) == expected


def _errors(kind: str, tmp_path: Path, data: bytes):
    result = _run(tmp_path, kind, data)
    if kind == "knowledge":
        return None if result is None else str(result)
    if kind == "rules":
        return result.errors
    return result[1]


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("case", ["alias bomb under entries", "alias bomb under references", "deep nesting",
                                  "python tag", "not UTF-8", "huge integer", "tabs for indentation"])
def test_a_hostile_file_fails_as_without_the_cache(cache, monkeypatch, tmp_path, kind, case):
    """Cold, warm, and after a valid version of the same file was cached: the same error."""
    monkeypatch.setenv(datacache.ENV, "off")
    without = _errors(kind, tmp_path, HOSTILE[case])
    assert without, "the hostile case loads cleanly: nothing to compare"
    monkeypatch.setenv(datacache.ENV, str(cache))
    if kind != "rules":  # (every catalog rule is a builtin one, refused in a site directory)
        valid = {"knowledge": KNOWLEDGE_FILE, "expectations": Path(ex.PROFILES_DIR) / "redis.yml"}[kind]
        assert not _errors(kind, tmp_path, valid.read_bytes())
        assert len(_entries(cache)) == 1  # the same path, valid: cached
    assert _errors(kind, tmp_path, HOSTILE[case]) == without
    assert _errors(kind, tmp_path, HOSTILE[case]) == without
    for entry in _entries(cache):
        assert HOSTILE[case][:200].decode("utf-8", "replace") not in entry.read_text(errors="replace")


def test_an_unsafe_cache_directory_is_not_used(cache):
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    assert datacache.cache_dir() is None
    kb.load_file(KNOWLEDGE_FILE)
    assert not _entries(cache)
    cache.chmod(0o700)
    assert datacache.cache_dir() == cache


def test_a_document_json_cannot_carry_is_not_cached(cache, tmp_path):
    for name, text in (("stamp.yml", "when: 2026-12-02 10:00:00\n"), ("intkey.yml", "1: one\n"),
                       ("binary.yml", "b: !!binary aGk=\n")):
        (tmp_path / name).write_text(text)
        loaded = datacache.load_data(tmp_path / name, "test")
        loaded.remember()
        assert not datacache.load_data(tmp_path / name, "test").cached
    assert not _entries(cache)


def test_entries_are_bounded(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(datacache, "MAX_ENTRIES", 5)
    for index in range(12):
        (tmp_path / ("%d.yml" % index)).write_text("a: %d\n" % index)
        datacache.load_data(tmp_path / ("%d.yml" % index), "test").remember()
    assert len(_entries(cache)) == 5
    assert datacache.load_data(tmp_path / "11.yml", "test").cached


def test_a_real_playbook_fills_the_cache_and_lints_the_same(cache, tmp_path):
    """sysctl_lint through ansible-playbook: the first run writes the entries, the second reads
    them (their mtimes stay), and the findings are those of a run without the cache."""
    facts = make_host("web1.example", containers=3)[0]
    (tmp_path / "facts.json").write_text(json.dumps(facts))
    out = tmp_path / "findings.json"
    book = write_playbook(tmp_path / "lint.yml", [
        {"name": "lint", "nsguard.sysctl.sysctl_lint": {"facts": "{{ lookup('file', '%s') | from_json }}"
                                                        % (tmp_path / "facts.json")},
         "register": "lint"},
        {"name": "save", "ansible.builtin.copy": {"content": "{{ lint.findings | to_json }}", "dest": str(out)}},
    ])
    results = []
    for env in ({datacache.ENV: str(cache)}, {datacache.ENV: str(cache)}, {datacache.ENV: "off"}):
        run_playbook(book, env=env, check=True)
        results.append(json.loads(out.read_text()))
        if len(results) == 1:
            written = {p.name: p.stat().st_mtime_ns for p in _entries(cache)}
            assert len(written) >= 20
    assert {p.name: p.stat().st_mtime_ns for p in _entries(cache)} == written
    assert results[0] == results[1] == results[2]
    assert results[0], "the synthetic host has findings"


def test_the_process_memo_follows_the_files(cache, tmp_path):
    """load_catalog and load_profiles build once per process, again when a file changes, and
    hand out copies (the action extends the lists it gets)."""
    site = tmp_path / "profiles"
    site.mkdir()
    shutil.copy(Path(ex.PROFILES_DIR) / "redis.yml", site / "redis.yml")
    first, dummy = ex.load_profiles("all", directory=site)
    first.append("changed by a caller")
    again, dummy = ex.load_profiles("all", directory=site)
    assert "changed by a caller" not in again and again
    text = (site / "redis.yml").read_text()
    (site / "redis.yml").write_text(text.replace("profile: redis", "profile: redis-edited"))
    edited, dummy = ex.load_profiles("all", directory=site)
    assert {e.profile for e in edited} == {"redis-edited"}
    catalog = rule_catalog.load_catalog()
    catalog.rules.clear()
    assert len(rule_catalog.load_catalog()) == len(list(Path(rule_catalog.CATALOG_DIR).glob("NSG*.yml")))


def test_preload_fills_the_memo_a_fork_inherits(cache):
    """evaluator.preload() in the parent: a forked child (as Ansible's worker) loads the catalog,
    the profiles and the knowledge without reading a file: the cache entries are removed before
    the fork, and a load from disk would have written them again."""
    kb.clear_cache()
    evaluator.preload()
    assert _entries(cache)
    for entry in _entries(cache):
        entry.unlink()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        catalog = rule_catalog.load_catalog()
        found, errors = ex.load_profiles()
        knowledge = kb.load_knowledge()
        os.write(write, json.dumps([len(catalog), len(found), len(knowledge)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as handle:
        rules, expectations, entries = json.loads(handle.read())
    os.waitpid(pid, 0)
    assert rules >= 9 and expectations > 0 and entries > 50
    assert not _entries(cache)
