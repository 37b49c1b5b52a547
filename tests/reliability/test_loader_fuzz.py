"""Fuzzing the controller's data loaders (issue 7, part 1): knowledge files, rule files and
expectation (profile) files.

Three loaders, one promise: malformed input gives the project's error naming the file (and the
JSON path inside it, ``$...``), never a traceback. Inputs: arbitrary YAML documents, the real
files of the collection with one node replaced (wrong type, unknown key, removed key, bad
pattern, bad version), raw bytes, valid text cut or spliced at any byte, fixed hostile
documents (alias bombs, deep nesting, Python tags, non-UTF-8, NUL bytes), and names that are no
regular file (a FIFO, a link to /dev/zero, a directory).
"""
from __future__ import annotations

import contextlib
import copy
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import knowledge as kb
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import rule_catalog

ROOT = Path(kb.KNOWLEDGE_DIR).parents[1]
KNOWLEDGE_FILES = sorted(p for p in Path(kb.KNOWLEDGE_DIR).glob("*.yml"))
RULE_FILES = sorted(Path(rule_catalog.CATALOG_DIR).glob("NSG*.yml"))
PROFILE_FILES = sorted(Path(ex.PROFILES_DIR).glob("*.yml"))
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
           | st.sampled_from(["", "*", "[", "net.*.[", "(", "6.x", "4.18.0-rc", "99999999999999999999.1", "$", "${",
                              "global", "net", "none", "error", "NSG006", ">=", ">=abc", "..", "net..core", "\x00"]))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=12) | st.sampled_from(["id", "match", "class", "entries",
                                                                                   "check", "expect", "profile"]),
                                           inner, max_size=4), max_leaves=20)


# --------------------------------------------------------------------------- the three loaders

def load_knowledge(directory: Path, file: Path):
    """None, or the KnowledgeError; anything else raised is the failure this file hunts."""
    try:
        kb.build_knowledge([directory])
    except kb.KnowledgeError as exc:
        assert exc.file in (str(file), str(directory)), (exc.file, str(exc))
        assert exc.path is None or exc.path.startswith(("$", "line ", "byte ")), exc.path
        assert str(file) in str(exc) or str(directory) in str(exc)
        return exc
    return None


def load_rules(directory: Path, file: Path):
    catalog = rule_catalog.load_catalog([directory], include_builtin=False)
    for error in catalog.errors:
        assert error["file"] in (str(file), str(directory)), error
        assert str(error["path"]).startswith(("$", "line ", "byte ")), error
        assert isinstance(error["message"], str) and error["message"]
    return catalog


def load_expectations(directory: Path, file: Path):
    found, errors = ex.load_expectation_files([directory])
    for error in errors:
        assert error["file"] == str(file) or error["file"].startswith(str(file) + "["), error
        assert str(error["path"]).startswith(("$", "line ", "byte ")), error
        assert isinstance(error["message"], str) and error["message"]
    return found, errors


LOADERS = {"knowledge": load_knowledge, "rules": load_rules, "expectations": load_expectations}
BYTE_LEVEL = ["expectations", "rules", "knowledge"]


def _one_file(tmp_path: Path, kind: str, data: bytes, name: str = None) -> tuple:
    directory = tmp_path / kind
    if directory.exists():
        for old in directory.iterdir():
            old.unlink()
    directory.mkdir(exist_ok=True)
    file = directory / (name or {"rules": "NSG900-fuzz.yml"}.get(kind, "fuzz.yml"))
    file.write_bytes(data)
    return directory, file


def _run(tmp_path: Path, kind: str, data: bytes, name: str = None):
    directory, file = _one_file(tmp_path, kind, data, name)
    return LOADERS[kind](directory, file)


# --------------------------------------------------------------------------- mutations

def _paths(node, prefix=()):
    """Every path into a document (dict keys and list indexes)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _mutate(document, path, action, garbage):
    doc = copy.deepcopy(document)
    if not path:
        return garbage
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = garbage
    elif action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent["unknown_%s" % last] = garbage
    elif action == "add":
        parent.append(garbage)
    return doc


def _real(kind: str):
    files = {"knowledge": KNOWLEDGE_FILES, "rules": RULE_FILES, "expectations": PROFILE_FILES}[kind]
    return [(f, yaml.safe_load(f.read_text())) for f in files]


REAL = {kind: _real(kind) for kind in LOADERS}


# --------------------------------------------------------------------------- properties

@pytest.mark.parametrize("kind", sorted(LOADERS))
@SETTINGS
@given(document=documents)
def test_arbitrary_documents(tmp_path, kind, document):
    _run(tmp_path, kind, yaml.safe_dump(document, allow_unicode=True).encode("utf-8"))


@pytest.mark.parametrize("kind", sorted(LOADERS))
@SETTINGS
@given(data=st.data(), garbage=documents, action=st.sampled_from(["replace", "delete", "add"]))
def test_real_files_with_one_node_changed(tmp_path, kind, data, garbage, action):
    file, document = data.draw(st.sampled_from(REAL[kind]))
    path = data.draw(st.sampled_from(list(_paths(document))))
    mutated = _mutate(document, path, action, garbage)
    _run(tmp_path, kind, yaml.safe_dump(mutated, allow_unicode=True).encode("utf-8"), name=file.name)


@pytest.mark.parametrize("kind", BYTE_LEVEL)
@SETTINGS
@given(data=st.data(), noise=st.binary(max_size=40))
def test_real_text_cut_or_spliced(tmp_path, kind, data, noise):
    file, dummy = data.draw(st.sampled_from(REAL[kind]))
    raw = file.read_bytes()
    cut = data.draw(st.integers(0, len(raw)))
    spliced = raw[:cut] + noise + (raw[cut:] if data.draw(st.booleans()) else b"")
    _run(tmp_path, kind, spliced, name=file.name)


@pytest.mark.parametrize("kind", BYTE_LEVEL)
@SETTINGS
@given(raw=st.binary(max_size=200))
def test_raw_bytes(tmp_path, kind, raw):
    _run(tmp_path, kind, raw)


BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    b"%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((chr(98 + i).encode(),) * 2 + (chr(97 + i).encode(),) * 9)
    for i in range(8))
HOSTILE = {
    "alias bomb (9^9 nodes by reference)": BOMB,
    # ... placed where each loader's validation walks into it
    "alias bomb under entries": BOMB + b"entries: *i\n",
    "alias bomb under references": BOMB + b"id: NSG900\nreferences: *i\nexamples: *i\n",
    "alias bomb under expect": BOMB + b"profile: p\nmatch: {name: x}\nexpect: *i\n",
    "alias bomb under match": BOMB + b"profile: p\nmatch: *i\nexpect: {a.b: '1'}\n",
    "deep nesting": b"[" * 50000 + b"]" * 50000,
    "deep mapping nesting": b"".join(b"  " * i + b"a:\n" for i in range(3000)),
    "python tag": b"!!python/object/apply:os.system ['echo owned']\n",
    "not UTF-8": b"id: \xff\xfe\x00bad\n",
    "NUL bytes": b"id: a\x00b\n",
    "UTF-16 BOM": "id: x\n".encode("utf-16"),
    "huge integer": b"id: " + b"9" * 5000 + b"\n",
    "tabs for indentation": b"entries:\n\t- id: x\n",
    "empty": b"",
    "only a comment": b"# nothing\n",
    "a list of nothing": b"- \n- \n",
    "two documents": b"id: a\n---\nid: b\n",
}


def _hostile_params():
    for case in sorted(HOSTILE):
        for kind in sorted(LOADERS):
            yield pytest.param(kind, case, id="%s-%s" % (case, kind))


@pytest.mark.parametrize("kind,case", list(_hostile_params()))
def test_hostile_documents(tmp_path, kind, case):
    started = time.monotonic()
    _run(tmp_path, kind, HOSTILE[case])
    assert time.monotonic() - started < 10, "a few hundred bytes kept the loader busy"
    assert not Path("owned").exists()


@contextlib.contextmanager
def _time_bound(seconds: float):
    """Fails the test instead of hanging it: an ``open`` blocked on a FIFO is interrupted by
    SIGALRM, and the handler's exception ends the call (PEP 475 retries only when it returns)."""
    def expired(signum, frame):
        raise TimeoutError("still reading after %s seconds" % seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


NOT_REGULAR = {
    "a FIFO": (os.mkfifo, "FIFO"),
    "a link to /dev/zero": (lambda path: path.symlink_to("/dev/zero"), "character device"),
    "a directory": (lambda path: path.mkdir(), "directory"),
}


def _load_one(kind: str, file: Path) -> list:
    """The errors of the loader's own entry point for one file, as (file, message) pairs."""
    if kind == "knowledge":
        try:
            kb.load_file(file)
        except kb.KnowledgeError as exc:
            return [(exc.file, str(exc))]
        return []
    if kind == "rules":
        rule, errors = rule_catalog.load_rule_file(file)
        assert rule is None
        return [(e["file"], e["message"]) for e in errors]
    found, errors = ex.load_expectation_files([file])
    assert not found
    return [(e["file"], e["message"]) for e in errors]


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(NOT_REGULAR))
def test_a_name_that_is_no_regular_file(tmp_path, kind, case):
    """A FIFO named NSG900.yml blocked the rule loader's open() forever and a link to /dev/zero
    was read up to the size cap: the loaders list them out of a directory, and given the file
    itself, say what it is, naming it."""
    make, what = NOT_REGULAR[case]
    directory = tmp_path / kind
    directory.mkdir()
    file = directory / ("NSG900.yml" if kind == "rules" else "x.yml")
    make(file)
    with _time_bound(10):
        LOADERS[kind](directory, file)
        errors = _load_one(kind, file)
    if kind == "expectations" and case == "a directory":
        assert errors == []   # a directory of profiles, here an empty one
    else:
        assert len(errors) == 1 and errors[0][0] == str(file), errors
        assert what in errors[0][1] and "not a regular file" in errors[0][1], errors


@pytest.mark.parametrize("field,value,path", [
    ("match", ["net core"], "$.entries[0].match[0]"),
    ("match", [], "$.entries[0].match"),
    ("gates", [{"since": "6.x", "class_before": "global"}], "$.entries[0].gates[0].since"),
    ("gates", [{"since": "", "class_before": "global"}], "$.entries[0].gates[0].since"),
    ("class", 7, "$.entries[0].class"),
])
def test_knowledge_bad_patterns_and_versions_are_pinpointed(tmp_path, field, value, path):
    document = {"schema_version": 1, "area": "fuzz", "description": "fuzz", "entries": [{
        "id": "fuzz", "match": ["net.fuzz.key"], "namespace": "net", "class": "isolated",
        "sources": [{"kind": "doc", "ref": "fuzz"}]}]}
    assert _run(tmp_path, "knowledge", yaml.safe_dump(document).encode()) is None  # the base is valid
    document["entries"][0][field] = value
    error = _run(tmp_path, "knowledge", yaml.safe_dump(document).encode())
    assert error is not None and error.path == path, error


def test_knowledge_unclosed_bracket_is_a_literal_pattern(tmp_path):
    """``net.core.[x`` passes the schema: fnmatch reads an unclosed ``[`` as a literal, so the
    entry loads and matches only that literal text (no crash, no surprise match)."""
    document = {"schema_version": 1, "area": "fuzz", "description": "fuzz", "entries": [{
        "id": "fuzz", "match": ["net.core.[x"], "namespace": "net", "class": "isolated",
        "sources": [{"kind": "doc", "ref": "fuzz"}]}]}
    directory, dummy = _one_file(tmp_path, "knowledge", yaml.safe_dump(document).encode())
    loaded = kb.build_knowledge([directory])
    assert loaded.entry("net.core.[x") is not None and loaded.entry("net.core.x") is None


def test_a_bad_site_knowledge_file_through_a_real_playbook(tmp_path):
    """sysctl_lint with a broken site knowledge directory, a broken rule directory and a broken
    expectation file: the play finishes, each error names its file and path, the rules run."""
    import json

    from tests.ansible_run import run_playbook, write_playbook
    site = tmp_path / "site"
    site.mkdir()
    (site / "bad.yml").write_text("schema_version: 1\narea: x\ndescription: x\nentries: [{id: x, class: 7}]\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "NSG901-bad.yml").write_bytes(HOSTILE["alias bomb under references"])
    (rules / "NSG902-bad.yml").write_bytes(b"id: NSG902\xff\ncheck: [\n")
    expect = tmp_path / "expect.yml"
    expect.write_bytes(HOSTILE["deep nesting"])
    facts = {"schema_version": 2, "host": {"kernel": {"release": "6.18.0"}, "hostname": "h", "cpus": 2,
                                           "keys": {"vm.max_map_count": "65530"}, "modes": {"vm.max_map_count": "0644"}},
             "namespace_sets": [], "probe": {"enabled": False}}
    out = tmp_path / "lint.json"
    book = write_playbook(tmp_path / "lint.yml", [
        {"name": "lint", "register": "lint", "nsguard.sysctl.sysctl_lint": {
            "facts": facts, "knowledge_dirs": [str(site)], "rules_dirs": [str(rules)],
            "expectation_files": [str(expect)], "fail_on": "never"}},
        {"name": "save", "ansible.builtin.copy": {"content": "{{ lint | to_json }}", "dest": str(out)}},
    ])
    run = run_playbook(book)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "Traceback" not in run.stdout + run.stderr
    result = json.loads(out.read_text())
    errors = result.get("errors") or result.get("load_errors") or []
    text = json.dumps(errors)
    for path in (site / "bad.yml", rules / "NSG901-bad.yml", rules / "NSG902-bad.yml", expect):
        assert str(path) in text, (path, errors)
    by_file = {e["file"]: e for e in errors}
    assert "aliases are expanded" in by_file[str(rules / "NSG901-bad.yml")]["message"]
    assert by_file[str(rules / "NSG902-bad.yml")]["path"].startswith(("byte ", "line "))
    assert "nested" in by_file[str(expect)]["message"]
    # The collection's own rules still ran over the facts.
    assert isinstance(result["findings"], list) and result["counts"]
