#!/usr/bin/env python
"""Generate docs/knowledge-table.md from rules/knowledge/*.yml.

    python scripts/gen_knowledge_doc.py           # rewrite docs/knowledge-table.md (atomically)
    python scripts/gen_knowledge_doc.py --check   # exit 1 if the committed page is out of date

The page is a table a person reads: one row per knowledge entry, grouped by file, with the
class on the latest kernel, the kernel gates, what runtimes do, the notes and the sources
linked. A unit test (tests/unit/plugins/plugin_utils/test_knowledge_doc.py) keeps it up to date.
"""
from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "knowledge-table.md"


def _importable() -> None:
    """Make ``ansible_collections.nsguard.sysctl`` importable from this checkout."""
    try:
        import ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge  # noqa: F401
        return
    except ImportError:
        pass
    root = Path(tempfile.mkdtemp(prefix="nsguard-doc-"))
    link = root / "ansible_collections" / "nsguard" / "sysctl"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO)
    atexit.register(shutil.rmtree, root, True)  # the link only; rmtree does not follow it
    sys.path.insert(0, str(root))


_importable()
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))   # tests.kernels.truth: the committed per-kernel truth tables

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.atomic import atomic_write  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import runtime_verdicts  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import (  # noqa: E402
    Entry, Knowledge, Source, load_knowledge)
from tests.kernels import truth  # noqa: E402

CLASS_TEXT = [
    ("isolated", "per namespace; a new namespace starts at the kernel default"),
    ("isolated-inherited", "per namespace; copied from the host (the creating namespace for UTS) when the namespace is created"),
    ("mirror", "global; visible read-only in a container with the host's live value"),
    ("host-only", "global; absent in a container's namespace"),
    ("global", "the same setting in every namespace; a privileged container that writes it changes the host"),
    ("leaking", "writable inside a container's namespace, and the write changes the host"),
]
RUNTIME_ORDER = ("runc", "crun", "docker-api", "docker-cli", "podman", "podman-api", "containerd", "kubelet", "lxc")


def cell(text: str) -> str:
    """Markdown table cell: no pipes, no line breaks."""
    return " ".join(str(text).replace("|", "\\|").split())


def code_list(items: Iterable[str]) -> str:
    return "<br>".join(f"`{cell(i)}`" for i in items)


def source_link(source: Source) -> str:
    label = f"[{source.kind}] {cell(source.ref)}"
    if source.unverified:
        label += " (unverified)"
    return f"[{label}]({source.url})" if source.url else label


def gates_text(entry: Entry) -> str:
    parts = []
    for gate in entry.gates:
        since = gate.since + (f" (backports {', '.join(gate.backports)})" if gate.backports else "")
        text = f"before {since}: {gate.class_before}"
        if gate.commit:
            text += f" ({gate.commit})"
        if gate.unverified:
            text += ", release unverified"
        parts.append(text)
    return "<br>".join(cell(p) for p in parts) or "-"


def runtimes_text(kb: Knowledge, entry: Entry) -> str:
    """Which runtimes accept the entry's first key, and whether the write then works."""
    key = entry.match[0].replace("*", "x")
    verdicts = runtime_verdicts(kb, key, entry.klass, entry, None)
    out = []
    for name in RUNTIME_ORDER:
        v = verdicts.get(name)
        if v is None:
            continue
        if not v["accepts"]:
            mark = "rejects"
        elif v.get("applies") is False:
            mark = "accepts, then fails"
        else:
            mark = "accepts" + (f" (needs {v['requires']} ns)" if v.get("requires") else "")
        if name == "kubelet" and v.get("safe"):
            mark += ", safe set"
        out.append(f"{name}: {mark}")
    return "<br>".join(out)


def measured_text(counts: Mapping[str, int], entry: Entry) -> str:
    """The kernels whose truth table measured keys of this entry (how many, for a pattern)."""
    if not counts:
        return "-"
    order = sorted(counts, key=truth.series_key)
    exact = all("*" not in m for m in entry.match) and len(entry.match) == 1
    return "<br>".join(s if exact else f"{s} ({counts[s]})" for s in order)


def entry_row(kb: Knowledge, entry: Entry, measured: Optional[Mapping[str, int]] = None) -> str:
    flags = []
    if entry.per_device:
        flags.append("per device")
    if entry.shared_table:
        flags.append("one table entry, handler reads the caller's namespace")
    if entry.read_only:
        flags.append("read-only everywhere")
    if entry.kubelet_safe:
        ks = entry.kubelet_safe
        flags.append(f"kubelet safe since {ks['since_k8s']}" + (f", kernel >= {ks['kernel']}" if ks.get("kernel") else "")
                     + (" (unverified)" if ks.get("unverified") else ""))
    notes = cell(entry.notes) + (f" _({'; '.join(flags)})_" if flags else "")
    sources = "<br>".join(source_link(s) for s in entry.sources)
    return (f"| `{entry.id}` | {code_list(entry.match)} | {entry.namespace} | **{entry.klass}** | "
            f"{gates_text(entry)} | {measured_text(measured or {}, entry)} | {runtimes_text(kb, entry)} | "
            f"{notes} | {sources} |")


def tables_section(kb: Knowledge, tables: Sequence[Mapping[str, Any]]) -> List[str]:
    """Which kernels were measured, and which gates the measurements cover on which side."""
    lines = ["## Measured kernels", "",
             "The truth tables in tests/kernels/truth are made by `make kernel-truth` only "
             "([kernel-truth.md](kernel-truth.md)): this machine's kernel measured on it, Debian's kernels "
             "booted in qemu. `make test` checks the classifier and the static judge against every one of them.", "",
             "| table | kernel | package | keys measured | untested |", "|---|---|---|---|---|"]
    for t in tables:
        pkg = t.get("package") or {}
        name = f"{pkg['package']} {pkg['version']}" if pkg else "this machine's kernel"
        m = t.get("measurement") or {}
        lines.append(f"| {truth.series_of(t['kernel'])} | `{cell(t['kernel'])}` | {cell(name)} | "
                     f"{m.get('established', '-')} | {m.get('untested', '-')} |")
    lines += ["", "### Kernel gates against the tables", "",
              "A gate is measured on a side when a table of a kernel on that side established the class of a "
              "key of its entry, and that class is the one the gate gives. A side no table reaches rests on the "
              "sources alone.", "",
              "| entry | gate | class before | measured before | measured from | status |", "|---|---|---|---|---|---|"]
    for row in truth.gate_coverage(kb, tables):
        if row["contradicted"]:
            status = "CONTRADICTED on " + ", ".join(row["contradicted"])
        elif row["before"] and row["after"]:
            status = "measured on both sides"
        elif row["after"]:
            status = "after measured; before source-only"
        elif row["before"]:
            status = "before measured; after source-only"
        else:
            status = "source-only"
        if row["unverified"]:
            status += " (release unverified)"
        lines.append(f"| `{row['entry']}` | {row['since']} | {row['class_before']} | {', '.join(row['before']) or '-'} | "
                     f"{', '.join(row['after']) or '-'} | {status} |")
    lines.append("")
    return lines


def runtime_section(kb: Knowledge) -> List[str]:
    lines = ["## What the runtimes do", "",
             "Rules are applied in order; the first that matches decides. `{key}` and `{value}` are "
             "filled in, `{path}` is the key as a path under /proc/sys.", ""]
    for name in RUNTIME_ORDER:
        spec = kb.runtimes.get(name)
        if spec is None:
            continue
        lines.append(f"### {name}" + (f" ({cell(spec.versions)})" if spec.versions else ""))
        lines.append("")
        if spec.note:
            lines += [cell(spec.note), ""]
        lines += ["| keys | accepted | needs | error | known from |", "|---|---|---|---|---|"]
        for rule in spec.rules:
            error = rule.error if not rule.accepts else rule.error_host_namespace
            when = "" if not rule.accepts else "with the host's namespace: "
            lines.append(f"| {code_list(rule.match)} | {'yes' if rule.accepts else 'no'} | {rule.requires or '-'} | "
                         + (f"{when}`{cell(error)}`" if error else "-") + f" | {cell(rule.verified_by)} |")
        if spec.apply_errors:
            lines.append("")
            for what, text in sorted(spec.apply_errors.items()):
                if text:
                    label = "absent key (host-only)" if what == "absent" else "read-only key (mirror)"
                    lines.append(f"- accepted but {label}: `{cell(text)}`")
        lines += ["", "Sources: " + "; ".join(source_link(s) for s in spec.sources), ""]
    return lines


def render(kb: Knowledge, tables: Optional[Sequence[Mapping[str, Any]]] = None) -> str:
    """The page; ``tables`` defaults to the committed truth tables (tests/kernels/truth)."""
    tables = truth.load_tables() if tables is None else tables
    measured: Dict[str, Dict[str, int]] = truth.measured_on(kb, tables)
    lines = [
        "<!-- Generated by scripts/gen_knowledge_doc.py from rules/knowledge/*.yml. Do not edit by hand. -->",
        "# The knowledge base, entry by entry",
        "",
        "Which sysctls are really per-namespace, on which kernel, and what container runtimes do with "
        "them. The format and the classifier are described in [knowledge.md](knowledge.md). For one key the "
        "most specific entry wins (an exact key, then the longest literal prefix). The class column is the "
        "class on the latest kernel the knowledge base knows; the gates column gives the class on older "
        "kernels. On a host, the probe of throwaway namespaces overrules this table and reports the conflict.",
        "",
        "| class | meaning |",
        "|---|---|",
    ]
    lines += [f"| **{name}** | {text} |" for name, text in CLASS_TEXT]
    lines.append("")
    by_file = {}
    for entry in kb:
        by_file.setdefault(Path(entry.file).name, []).append(entry)
    lines.append(f"{len(kb)} entries in {len(by_file)} files. Source tags: [code] source file, [commit] kernel "
                 "commit, [doc] documentation, [mail] mailing list, [issue] issue or PR thread, [pages] web page, "
                 "[emp] measured (on Linux 6.18.44 unless it names a truth table; tests/integration/test_ground_truth.py "
                 "re-measures every key on this machine). The measured-on column names the kernels whose truth table "
                 "established the class of keys this entry decides (with how many keys, for a pattern).")
    lines.append("")
    for name in sorted(by_file):
        lines += [f"## {name}", "",
                  "| id | keys | namespace | class | kernel gates | measured on | runtimes | notes | sources |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [entry_row(kb, e, measured.get(e.id)) for e in sorted(by_file[name], key=lambda e: e.id)]
        lines.append("")
    lines += tables_section(kb, tables)
    lines += runtime_section(kb)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed page differs")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(load_knowledge())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python scripts/gen_knowledge_doc.py", file=sys.stderr)
            return 1
        return 0
    atomic_write(args.output, text, perms=0o644)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
