"""Per-kernel truth tables: how they are made, read, and checked against the classifier.

A table (``tests/kernels/truth/<series>.json``) is written by the harness only
(``scripts/kernel-truth.py``, ``make kernel-truth``), never by hand. It holds:

- ``kernel``: the release measured (``uname -r``) and ``package``: the Debian package (name,
  version, source, suite, where the .deb came from), or ``null`` for this machine's own kernel;
- ``harness``: how it was made (date, boot and measurement times, modules loaded, qemu command);
- ``keys``: per key, the measured class, namespace, category and the observations that decided
  (``groundtruth.measure.KeyTruth``), or the reason a key stayed untested;
- ``facts``: the part of the real facts module's output on that kernel that ``sysctl_classify``
  reads (kernel release, each key's mode, the probe). Values are left out: the classifier does
  not read them, and the table is smaller.

Checks: :func:`classifier_score` (``sysctl_classify`` on the table's facts against its keys,
scored with ``groundtruth.compare.score``) and :func:`judge_disagreements` (the static judge's
kernel-floor verdicts against the measured classes of a kernel at or above the floor).
"""
from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from tests.integration.groundtruth.measure import GroundTruth, HostLedger, KeyTruth

TRUTH_DIR = Path(__file__).resolve().parent / "truth"
FORMAT = 1
_BEGIN = re.compile(r"NSGUARD-TRUTH-BEGIN sha256=([0-9a-f]{64}) bytes=(\d+)")
NAMESPACED = ("isolated", "isolated-inherited")


class TableError(ValueError):
    pass


def _slim_facts(facts: Mapping[str, Any]) -> Dict[str, Any]:
    """What a table keeps of the guest's facts: what the classifier reads (kernel, every key's
    mode, the probe), no values. The table's own form, whatever the facts' schema_version: a
    key's mode is ``host.keys.<key>.mode``, as the tables made before facts version 2 have it."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.facts_schema import key_modes, upgrade_facts

    facts, problem = upgrade_facts(facts)
    if problem:
        raise TableError(f"the guest's facts: {problem}")
    host = facts.get("host") or {}
    return {
        "schema_version": facts.get("schema_version"),
        "host": {"kernel": host.get("kernel"),
                 "keys": {k: {"mode": mode} for k, mode in sorted(key_modes(host).items())},
                 "unreadable": {k: {"mode": r.get("mode"), "reason": r.get("reason")}
                                for k, r in sorted((host.get("unreadable") or {}).items())}},
        "probe": facts.get("probe"),
        "errors": facts.get("errors") or [],
    }


def build_table(gt: GroundTruth, facts: Mapping[str, Any], harness: Mapping[str, Any]) -> Dict[str, Any]:
    keys = {}
    for key, t in sorted(gt.keys.items()):
        record = {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.name != "key"}
        keys[key] = {k: v for k, v in record.items() if v not in (None, "")}
    return {
        "format": FORMAT,
        "kernel": gt.kernel,
        "package": harness.get("package"),
        "harness": {k: v for k, v in harness.items() if k != "package"},
        "measurement": {"keys": len(gt.keys), "established": len(gt.established()), "untested": len(gt.untested()),
                        "host_writes": gt.host_writes, "duration_s": round(gt.duration_s, 2),
                        "devices": gt.devices, "notes": gt.notes,
                        "devconf_crosscheck": gt.devconf.get("crosscheck")},
        "keys": keys,
        "facts": _slim_facts(facts),
    }


def series_of(release: str) -> str:
    match = re.match(r"^(\d+)\.(\d+)", release)
    if not match:
        raise TableError(f"not a kernel release: {release!r}")
    return f"{match.group(1)}.{match.group(2)}"


def series_key(release: str) -> Tuple[int, int]:
    """(major, minor) of a release, for ordering tables."""
    major, minor = series_of(release).split(".")
    return int(major), int(minor)


def write_table(table: Mapping[str, Any], folder: Path = TRUTH_DIR) -> Path:
    """``<folder>/<series>.json``, written atomically (sorted keys, one key per line)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{series_of(table['kernel'])}.json"
    # imported here: in a guest this module loads before guest.py has put the collection on sys.path
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.atomic import atomic_write
    atomic_write(path, json.dumps(table, indent=1, sort_keys=True) + "\n", perms=0o644)
    return path


def load_tables(folder: Path = TRUTH_DIR) -> List[Dict[str, Any]]:
    tables = []
    for path in sorted(folder.glob("*.json"), key=lambda p: series_key(p.stem)):
        try:
            table = json.loads(path.read_text())
        except ValueError as exc:
            raise TableError(f"{path}: not JSON: {exc}") from exc
        if table.get("format") != FORMAT or not isinstance(table.get("keys"), dict):
            raise TableError(f"{path}: not a truth table of format {FORMAT}")
        if series_of(table["kernel"]) != path.stem:
            raise TableError(f"{path}: holds kernel {table['kernel']}, not the {path.stem} series")
        table["_path"] = str(path)
        tables.append(table)
    return tables


def parse_output(text: str) -> Dict[str, Any]:
    """The table a guest wrote between the markers (base64 of gzip'd JSON, checked by sha256)."""
    match = _BEGIN.search(text)
    if not match:
        raise TableError("no NSGUARD-TRUTH-BEGIN marker in the guest's output")
    body = text[match.end():]
    end = body.find("NSGUARD-TRUTH-END")
    if end < 0:
        raise TableError("the guest's output stops before NSGUARD-TRUTH-END")
    blob = "".join(body[:end].split())
    raw = gzip.decompress(base64.b64decode(blob))
    if hashlib.sha256(raw).hexdigest() != match.group(1) or len(raw) != int(match.group(2)):
        raise TableError("the guest's table does not match its sha256")
    return json.loads(raw)


# --------------------------------------------------------------------------- checks

def as_ground_truth(table: Mapping[str, Any]) -> GroundTruth:
    names = {f.name for f in dataclasses.fields(KeyTruth)}
    keys = {k: KeyTruth(key=k, **{f: v for f, v in rec.items() if f in names}) for k, rec in table["keys"].items()}
    m = table.get("measurement") or {}
    return GroundTruth(kernel=table["kernel"], keys=keys, host_writes=m.get("host_writes", 0), ledger=HostLedger(),
                       duration_s=m.get("duration_s", 0.0), devices=list(m.get("devices") or []))


def classifier_score(kb: Any, table: Mapping[str, Any]):
    """``groundtruth.compare.score`` of ``sysctl_classify`` on the table's own facts."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host
    from tests.integration.groundtruth.compare import score

    return score(as_ground_truth(table), classify_host(kb, classifier_facts(table)))


def classifier_facts(table: Mapping[str, Any]) -> Dict[str, Any]:
    """The table's slim facts (:func:`_slim_facts`) as the classifier reads facts (docs/facts.md):
    the keys in ``host.keys``, each mode in ``host.modes`` (no ``default_mode``). The slim form has
    no values (the classifier never reads one: each is None here), so it is no facts document of
    any schema_version and is not read as one."""
    slim = table["facts"]
    host = slim.get("host") or {}
    table_keys = host.get("keys") or {}
    return dict(slim, host={"kernel": host.get("kernel"), "unreadable": host.get("unreadable") or {},
                            "keys": dict.fromkeys(table_keys),
                            "modes": {k: (r or {}).get("mode") for k, r in table_keys.items()}})


def knowledge_score(kb: Any, table: Mapping[str, Any]) -> Tuple[int, int, List[Tuple[str, str, str]]]:
    """The knowledge alone (``classify.scope`` at the table's kernel, no probe) against the table:
    (agree, compared, [(key, truth, knowledge)]). Informational: the probe decides on a host."""
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope

    agree, compared, misses = 0, 0, []
    for key, rec in sorted(table["keys"].items()):
        if rec.get("klass") is None:
            continue
        compared += 1
        got = scope(kb, key, kernel=table["kernel"])
        if (got["class"], got["namespace"]) == (rec["klass"], rec.get("namespace")):
            agree += 1
        else:
            misses.append((key, f"{rec['klass']}/{rec.get('namespace')}", f"{got['class']}/{got['namespace']}"))
    return agree, compared, misses


def judge_disagreements(kb: Any, table: Mapping[str, Any], floor: str,
                        keys: Optional[Iterable[str]] = None) -> List[Tuple[str, str, str]]:
    """Where the static judge at kernel floor ``floor`` contradicts this table's kernel (>= floor).

    The judge's claims about a key, for every kernel from the floor on: no verdict = namespaced
    there; an error for a global, mirror, host-only or leaking key = not namespaced on any of
    them (host-only: absent on every one); a kernel-gated warning = namespaced on one side of a
    gate only, and then the class it gives the table's kernel (``scope`` at that kernel) must be
    the measured one. Per-device keys are judged like any other (the judge sees the name only).
    Keys the measurement left untested are skipped.
    """
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils import static_judge
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions import parse_kernel

    if parse_kernel(table["kernel"]) < parse_kernel(floor):
        raise TableError(f"kernel {table['kernel']} is below the floor {floor}")
    out = []
    for key in sorted(keys if keys is not None else table["keys"]):
        rec = table["keys"].get(key) or {}
        measured = rec.get("klass")
        if measured is None:
            continue
        verdicts = {v.reason: v for v in static_judge.assess(kb, key, floor=floor)}
        ns = measured in NAMESPACED
        if not verdicts:
            if not ns:
                out.append((key, measured, "judge: fine (namespaced on every kernel since the floor)"))
        elif static_judge.ABSENT in verdicts:
            if measured != "host-only":
                out.append((key, measured, "judge: error, absent from a container on every kernel since the floor"))
        elif static_judge.GLOBAL in verdicts:
            if ns:
                out.append((key, measured, "judge: error, never the container's own since the floor"))
        elif static_judge.KERNEL_GATED in verdicts:
            here = scope(kb, key, kernel=table["kernel"])
            if (here["class"] in NAMESPACED) != ns:
                out.append((key, measured, f"judge: kernel-gated at {verdicts[static_judge.KERNEL_GATED].since}; "
                                           f"on {table['kernel']} the knowledge says {here['class']}"))
    return out


# --------------------------------------------------------------------------- what the tables cover

def measured_on(kb: Any, tables: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, int]]:
    """Knowledge entry id -> {series: how many keys that entry decides the series' table measured}.

    A key counts for the entry that decides it (``Knowledge.lookup``, the most specific match)
    when the table established its class; an untested key does not count.
    """
    out: Dict[str, Dict[str, int]] = {}
    for table in tables:
        series = series_of(table["kernel"])
        for key, rec in table["keys"].items():
            if rec.get("klass") is None:
                continue
            entry = kb.entry(key)
            if entry is not None:
                counts = out.setdefault(entry.id, {})
                counts[series] = counts.get(series, 0) + 1
    return out


def gate_coverage(kb: Any, tables: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Every kernel gate of the knowledge and the tables that measured each side of it.

    A table is on the ``before`` side of a gate when its kernel has not reached it (backports
    counted), else on the ``after`` side; it measured that side when it established the class of
    at least one key the gate's entry decides and the class is the one the knowledge gives that
    kernel (``scope``). ``contradicted`` lists the tables where a measured class differs from it.
    """
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions import gate_reached, parse_kernel

    tables = list(tables)
    out = []
    for entry in kb:
        for gate in entry.gates:
            row = {"entry": entry.id, "since": gate.since, "class_before": gate.class_before,
                   "unverified": gate.unverified, "before": [], "after": [], "contradicted": []}
            for table in tables:
                keys = [k for k, rec in table["keys"].items()
                        if rec.get("klass") is not None and kb.entry(k) is entry]
                if not keys:
                    continue
                series = series_of(table["kernel"])
                wrong = [k for k in keys if scope(kb, k, kernel=table["kernel"])["class"] != table["keys"][k]["klass"]]
                if wrong:
                    row["contradicted"].append(series)
                    continue
                side = "after" if gate_reached(parse_kernel(table["kernel"]), gate.since, gate.backports) else "before"
                row[side].append(series)
            out.append(row)
    return out
