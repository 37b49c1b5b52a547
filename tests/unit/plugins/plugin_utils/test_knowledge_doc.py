"""docs/knowledge-table.md is generated from the knowledge base and must be up to date."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge

REPO = Path(__file__).resolve().parents[4]
SCRIPT = REPO / "scripts" / "gen_knowledge_doc.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_knowledge_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_page_is_up_to_date():
    expected = _generator().render(load_knowledge())
    committed = (REPO / "docs" / "knowledge-table.md").read_text(encoding="utf-8")
    assert committed == expected, "run: python scripts/gen_knowledge_doc.py"


def test_page_lists_every_entry_with_linked_sources():
    text = (REPO / "docs" / "knowledge-table.md").read_text(encoding="utf-8")
    kb = load_knowledge()
    for entry in kb:
        assert f"| `{entry.id}` |" in text
    assert "](https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=2671fa4dc0109d3fb581bc3078fdf17b5d9080f6)" in text
    assert 'sysctl "{key}" is not in a separate kernel namespace' in text


def test_check_mode_as_a_script(tmp_path):
    stale = tmp_path / "page.md"
    stale.write_text("old\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--output", str(stale)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "out of date" in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), "--output", str(stale)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--output", str(stale)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
