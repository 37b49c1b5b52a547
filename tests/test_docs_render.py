"""Every module, filter and role of the collection renders with the real ``ansible-doc``.

The plugins are found in the tree (not listed here), so a new module, filter or role is checked
without editing this file. For each one the rendered text must carry every documented option
(with its type, default, choices and the words of its first description line), every
sub-option, every return value of a module, and ``ansible-doc -l`` must list it. Options are
taken from ``ansible-doc --json`` (doc fragments merged) and cross-checked against the source.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible_run import BIN, ansible_env

REPO = Path(__file__).resolve().parent.parent
NS = "nsguard.sysctl"

# Ansible markup: C(x), V(x), O(x), I(x), B(x), M(x), U(x), L(text,url), P(fqcn#type), E(x), RV(x).
# P() renders without its ``#type`` part, L() as its text.
MARKUP = re.compile(r"\bP\(([^()#]*)#[^()]*\)|\b(?:[BCEIMOPUV]|RV)\(([^()]*)\)|\bL\(([^,()]*),[^()]*\)")
WORD = re.compile(r"[A-Za-z]{4,}")


def module_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted((REPO / "plugins" / "modules").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        strings = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                   for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)}
        assert "DOCUMENTATION" in strings, f"{path}: no DOCUMENTATION"
        doc = yaml.safe_load(strings["DOCUMENTATION"])
        doc["__return__"] = yaml.safe_load(strings.get("RETURN") or "") or {}
        docs[f"{NS}.{path.stem}"] = doc
    return docs


def filter_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted((REPO / "plugins" / "filter").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())["DOCUMENTATION"]
        docs[f"{NS}.{doc['name']}"] = doc
    return docs


def role_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        docs[f"{NS}.{path.parent.parent.name}"] = yaml.safe_load(path.read_text())["argument_specs"]
    return docs


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    env = ansible_env({"ANSIBLE_NOCOLOR": "1", "COLUMNS": "100"})
    proc = subprocess.run([str(BIN / "ansible-doc"), *args], env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert proc.returncode == 0, f"ansible-doc {' '.join(args)}: rc={proc.returncode}\n{proc.stderr[-3000:]}"
    problems = [line for line in proc.stderr.splitlines() if ("[WARNING]" in line or "[ERROR]" in line) and NS in line]
    assert not problems, problems
    return proc


def rendered_sections(text: str) -> dict[str, str]:
    """Split a multi-plugin ``ansible-doc`` text into ``{fqcn: text}``."""
    header = re.compile(r"^> (?:MODULE|FILTER|ROLE:) \*?(\S+?)\*? \(", re.M)
    starts = list(header.finditer(text))
    return {m.group(1): text[m.start():(starts[i + 1].start() if i + 1 < len(starts) else len(text))]
            for i, m in enumerate(starts)}


def words(text) -> set[str]:
    if isinstance(text, list):
        text = " ".join(text)
    text = MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), str(text or ""))
    return set(WORD.findall(text))


def option_block(text: str, name: str) -> tuple[str, str]:
    """The option's first line and its block: the following lines indented deeper than it."""
    start = re.compile(r"^([ \t]*)([-=][ \t]+)?" + re.escape(name) + r"(?:\s|:|$)", re.M)
    match = start.search(text)
    assert match, f"option {name!r} is not rendered"
    indent = len(match.group(1))
    lines = text[match.start():].splitlines()
    block = [lines[0]]
    for line in lines[1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    return lines[0], "\n".join(block)


def check_options(where: str, text: str, options: dict) -> int:
    """Assert every option of ``options`` (recursively) is rendered in ``text``; return how many."""
    checked = 0
    for name, spec in sorted((options or {}).items()):
        spec = spec or {}
        first, block = option_block(text, name)
        what = f"{where}: option {name}"
        if spec.get("required"):
            assert first.lstrip().startswith("="), f"{what} is required but not marked '='"
        if spec.get("type"):
            assert re.search(r"\btype: " + re.escape(spec["type"]) + r"\b", block), f"{what}: type not rendered\n{block}"
        if spec.get("default") is not None:
            assert "default:" in block, f"{what}: default not rendered\n{block}"
        if spec.get("choices"):
            shown = re.search(r"\bchoices: \[(.*)\]", block)
            assert shown, f"{what}: choices not rendered\n{block}"
            assert [c.strip() for c in shown.group(1).split(",")] == [str(c) for c in spec["choices"]], what
        description = spec.get("description")
        first_line = description[0] if isinstance(description, list) else description
        missing = words(first_line) - words(block)
        assert not missing, f"{what}: description words {sorted(missing)} not rendered\n{block}"
        checked += 1
        for key in ("suboptions", "options", "contains"):
            if spec.get(key):
                checked += check_options(f"{what}", block, spec[key])
    return checked


SOURCES = {"module": module_docs, "filter": filter_docs, "role": role_docs}


@pytest.mark.parametrize("plugin_type", sorted(SOURCES))
def test_every_plugin_renders_with_all_options(plugin_type):
    source = SOURCES[plugin_type]()
    assert source, f"no {plugin_type} found in the tree"
    listed = json.loads(ansible_doc("-t", plugin_type, "-l", NS, "--json").stdout)
    assert set(listed) == set(source), f"ansible-doc -l {plugin_type}: {sorted(listed)} != tree {sorted(source)}"

    names = sorted(source)
    merged = json.loads(ansible_doc("-t", plugin_type, "--json", *names).stdout)
    sections = rendered_sections(ansible_doc("-t", plugin_type, *names).stdout)
    assert set(sections) == set(names), sorted(sections)

    for fqcn in names:
        text = sections[fqcn]
        if plugin_type == "role":
            entry_points = merged[fqcn]["entry_points"]
            assert set(entry_points) == set(source[fqcn])
            for entry, spec in source[fqcn].items():
                assert re.search(r"^ENTRY POINT: \*?" + re.escape(entry) + r"\b", text, re.M), f"{fqcn}: {entry}"
                assert words(spec.get("short_description")) <= words(text)
                options = entry_points[entry].get("options") or {}
                assert set(options) == set(spec.get("options") or {})
                assert check_options(f"{fqcn} ({entry})", text, options) >= len(options)
            continue
        doc = merged[fqcn]["doc"]
        assert set(source[fqcn].get("options") or {}) <= set(doc.get("options") or {}), fqcn
        # the text page starts with the description; the short one is what `-l` lists
        assert listed[fqcn] == doc["short_description"], fqcn
        assert words(doc["description"]) <= words(text), f"{fqcn}: description"
        options_part = text.split("OPTIONS", 1)[1].split("\nATTRIBUTES", 1)[0].split("\nNOTES", 1)[0]
        assert check_options(fqcn, options_part, doc.get("options") or {}) >= len(doc.get("options") or {})
        if plugin_type == "module":
            returns = merged[fqcn].get("return") or {}
            assert set(source[fqcn]["__return__"]) <= set(returns), fqcn
            if returns:
                return_part = text.split("RETURN VALUES:", 1)[1]
                check_options(f"{fqcn} return", return_part, returns)


def test_sysctl_facts_page_names_each_option_it_accepts():
    """The page users read first: every argument_spec key of the module shows up on it."""
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts  # noqa: F401 (importable)
    text = ansible_doc("-t", "module", f"{NS}.sysctl_facts").stdout
    source = (REPO / "plugins" / "modules" / "sysctl_facts.py").read_text()
    spec_keys = re.findall(r"^\s{8}(\w+)=dict\(", source.split("def main", 1)[1], re.M)
    assert len(spec_keys) >= 10, spec_keys
    options_part = text.split("OPTIONS", 1)[1].split("\nATTRIBUTES", 1)[0]
    for key in spec_keys:
        option_block(options_part, key)
