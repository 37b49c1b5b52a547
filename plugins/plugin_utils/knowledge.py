"""Load, validate and query the namespacing knowledge base (``rules/knowledge/*.yml``).

Controller-side, plain Python (PyYAML + jsonschema); no ``ansible`` import, so ansible-lint
rules, scripts and tests use it directly. The format is described in ``docs/knowledge.md`` and
fixed by ``rules/knowledge/knowledge.schema.json``.

Matching: an entry lists exact keys and fnmatch patterns (``net.ipv4.conf.*.forwarding``;
``*`` also crosses dots). For one key the most specific match wins: an exact key beats every
pattern; among patterns the longest literal prefix (the text before the first wildcard) wins,
then the most literal characters, then the fewest wildcards; a remaining tie goes to the entry
loaded last, so a site directory passed in ``extra_dirs`` overrides the collection.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import acceptance
from .datacache import load_data
from .datafile import DataFileError, load_yaml
from .vocabulary import data_dir


CLASSES = ("isolated", "isolated-inherited", "mirror", "host-only", "global", "leaking")
NAMESPACES = ("net", "ipc", "uts", "user", "pid", "none")
# A runtime here is a *path* a request takes: the Docker Engine API (docker_container, Compose)
# and the docker CLI (docker run --sysctl) check different things, so they are two runtimes.
RUNTIMES = ("runc", "crun", "docker-api", "docker-cli", "podman", "podman-api", "containerd", "kubelet", "lxc")

KNOWLEDGE_DIR = data_dir("rules", "knowledge")
SCHEMA_FILE = KNOWLEDGE_DIR / "knowledge.schema.json"

_WILDCARDS = re.compile(r"[*?\[]")


class KnowledgeError(Exception):
    """A knowledge file that cannot be read, parsed or validated.

    ``file`` is the path of the offending file and ``path`` the JSON path inside it
    (``$.entries[3].class``), or ``None`` when the file as a whole is at fault.
    """

    def __init__(self, file: str, path: Optional[str], message: str) -> None:
        self.file = str(file)
        self.path = path
        self.message = message
        where = f"{self.file}: {path}" if path else self.file
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Source:
    kind: str
    ref: str
    url: Optional[str] = None
    note: Optional[str] = None
    unverified: bool = False

    def as_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": self.kind, "ref": self.ref}
        if self.url:
            out["url"] = self.url
        if self.note:
            out["note"] = self.note
        if self.unverified:
            out["unverified"] = True
        return out


@dataclass(frozen=True)
class Gate:
    """A kernel change: before ``since`` (and its backports) the key had ``class_before``."""

    since: str
    class_before: str
    namespace_before: Optional[str] = None
    backports: Tuple[str, ...] = ()
    commit: Optional[str] = None
    title: Optional[str] = None
    unverified: bool = False
    note: Optional[str] = None


@dataclass(frozen=True)
class Entry:
    id: str
    match: Tuple[str, ...]
    namespace: str
    klass: str
    sources: Tuple[Source, ...]
    file: str
    per_device: bool = False
    shared_table: bool = False
    read_only: bool = False
    volatile: bool = False
    default: Optional[str] = None
    notes: str = ""
    gates: Tuple[Gate, ...] = ()
    kubelet_safe: Optional[Mapping[str, Any]] = None
    runtimes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeRule:
    match: Tuple[str, ...]
    accepts: bool
    requires: Optional[str] = None
    error: Optional[str] = None
    error_host_namespace: Optional[str] = None
    note: Optional[str] = None
    source: Optional[str] = None        # upstream file + commit the rule was read from
    unverified: bool = False            # neither measured nor read from the source
    rows: Tuple[Any, ...] = ()          # acceptance.Row of ``measured`` (every version, newest first)
    rows_host: Tuple[Any, ...] = ()     # acceptance.Row of ``measured_host``
    # False where the runtime does not notice the host's namespace joined by path (crun).
    refuses_host_by_path: bool = True

    @property
    def verified_by(self) -> str:
        """How the rule is known: the measurement, the upstream source, or "unverified"."""
        rows = self.rows or self.rows_host
        if rows:
            return "measured: " + "; ".join(r.citation() for r in rows)
        if self.source:
            return "source: " + self.source
        return "unverified"


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    rules: Tuple[RuntimeRule, ...]
    sources: Tuple[Source, ...]
    file: str
    versions: Optional[str] = None
    note: Optional[str] = None
    apply_errors: Mapping[str, Optional[str]] = field(default_factory=dict)
    measured_as: Optional[str] = None   # the acceptance tables' name of this path
    apply_rows: Mapping[str, Tuple[Any, ...]] = field(default_factory=dict)
    # The same path with another OCI runtime underneath (podman with crun, a kubelet's runc or
    # crun): their measured rows are quoted beside measured_as's.
    measured_with: Tuple[str, ...] = ()

    @property
    def measured_tables(self) -> Tuple[str, ...]:
        """Every acceptance-table name whose rows speak for this path, measured_as first."""
        return ((self.measured_as,) if self.measured_as else ()) + self.measured_with

    def rule_for(self, key: str) -> Optional[RuntimeRule]:
        """The first rule whose ``match`` covers ``key`` (rules are ordered, first wins)."""
        for rule in self.rules:
            if any(_pattern(p).match(key) for p in rule.match):
                return rule
        return None


def is_pattern(text: str) -> bool:
    return bool(_WILDCARDS.search(text))


def specificity(pattern: str) -> Tuple[int, int, int, int]:
    """Sort key: higher is more specific. Exact keys rank above every pattern."""
    wild = _WILDCARDS.search(pattern)
    if not wild:
        return (1, len(pattern), len(pattern), 0)
    literal = len(_WILDCARDS.sub("", re.sub(r"\[[^\]]*\]", "", pattern)))
    wildcards = len(_WILDCARDS.findall(pattern))
    return (0, wild.start(), literal, -wildcards)


_PATTERN_CACHE: Dict[str, "re.Pattern[str]"] = {}


def _pattern(pattern: str) -> "re.Pattern[str]":
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is None:
        compiled = _PATTERN_CACHE[pattern] = re.compile(translate(pattern))
    return compiled


class Knowledge:
    """The loaded knowledge base: entries, runtime rules and a key -> entry matcher."""

    def __init__(self, entries: Sequence[Entry], runtimes: Mapping[str, RuntimeSpec], files: Sequence[str]) -> None:
        self.entries: Tuple[Entry, ...] = tuple(entries)
        self.runtimes: Dict[str, RuntimeSpec] = dict(runtimes)
        self.tables = acceptance.Tables([], [])  # the measured acceptance tables (set by build_knowledge)
        self.files: Tuple[str, ...] = tuple(files)
        self.by_id: Dict[str, Entry] = {e.id: e for e in self.entries}
        self._exact: Dict[str, Entry] = {}
        patterns: List[Tuple[Tuple[int, int, int, int], int, str, Entry]] = []
        for order, entry in enumerate(self.entries):
            for item in entry.match:
                if is_pattern(item):
                    patterns.append((specificity(item), order, item, entry))
                else:
                    self._exact[item] = entry  # later entries (site dirs) override
        # Most specific first; on a tie the later-loaded entry first.
        patterns.sort(key=lambda t: (t[0], t[1]), reverse=True)
        self._patterns: List[Tuple[str, Entry]] = [(p, e) for dummy1, dummy2, p, e in patterns]
        # A fresh worker fork classifies ~1,300 host keys with an empty memo, and trying the
        # patterns one regex at a time (ten on average) was half of it. So the patterns a key
        # can match at all (by its first dotted component: "net.ipv4.conf.*" only goes with
        # net keys) are one alternation, most specific first: the regex engine returns the
        # first alternative that matches, which is the rule above, in one C call.
        heads = {self._head(p) for p, dummy in self._patterns}
        self._by_head: Dict[Optional[str], Tuple["re.Pattern[str]", List[Tuple[str, Entry]]]] = {}
        for head in heads | {None}:
            chosen = [(p, e) for p, e in self._patterns if self._head(p) in (head, None)]
            joined = "|".join("(%s)" % translate(p) for p, dummy in chosen) or "(?!)"
            self._by_head[head] = (re.compile(joined), chosen)
        self._memo: Dict[str, Optional[Tuple[Entry, str]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _head(pattern: str) -> Optional[str]:
        """The first dotted component when the literal prefix holds all of it, else None."""
        wild = _WILDCARDS.search(pattern)
        literal = pattern[:wild.start()] if wild else pattern
        return literal.split(".", 1)[0] if "." in literal else None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def lookup(self, key: str) -> Optional[Tuple[Entry, str]]:
        """The entry that decides ``key`` and the exact key or pattern that matched it."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        found: Optional[Tuple[Entry, str]] = None
        entry = self._exact.get(key)
        if entry is not None:
            found = (entry, key)
        else:
            regex, chosen = self._by_head.get(key.split(".", 1)[0]) or self._by_head[None]
            hit = regex.match(key)
            if hit is not None:
                text, candidate = chosen[hit.lastindex - 1]
                found = (candidate, text)
        with self._lock:
            self._memo[key] = found
        return found

    def entry(self, key: str) -> Optional[Entry]:
        found = self.lookup(key)
        return found[0] if found else None


# --------------------------------------------------------------------------- loading

def _load_schema() -> Dict[str, Any]:
    try:
        with open(SCHEMA_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise KnowledgeError(str(SCHEMA_FILE), None, f"cannot read the knowledge schema: {exc}") from exc


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_document(document: Any, file: str, schema: Optional[Mapping[str, Any]] = None) -> None:
    """Raise :class:`KnowledgeError` for the first (deepest) schema violation in ``document``."""
    schema = schema or _schema()
    try:  # imported here so that importing this module never needs it (ansible-test import sanity)
        import jsonschema
    except ImportError as exc:  # pragma: no cover - a controller without requirements.txt
        raise KnowledgeError(file, None, "cannot validate: the controller needs the 'jsonschema' Python "
                             "package (pip install -r requirements.txt)") from exc
    validator = jsonschema.Draft202012Validator(schema)
    # The deepest error names the exact field (jsonschema's best_match prefers shallow ones);
    # ties go to the first path in document order, so the message is stable.
    errors = sorted(validator.iter_errors(document),
                    key=lambda e: (-len(e.absolute_path), [str(p) for p in e.absolute_path]))
    if errors:
        raise KnowledgeError(file, _json_path(errors[0].absolute_path), errors[0].message)


def _sources(raw: Iterable[Mapping[str, Any]]) -> Tuple[Source, ...]:
    return tuple(Source(kind=s["kind"], ref=s["ref"], url=s.get("url"), note=s.get("note"),
                        unverified=bool(s.get("unverified", False))) for s in raw)


def _entry(raw: Mapping[str, Any], file: str) -> Entry:
    gates = tuple(
        Gate(since=g["since"], class_before=g["class_before"], namespace_before=g.get("namespace_before"),
             backports=tuple(g.get("backports", ())), commit=g.get("commit"), title=g.get("title"),
             unverified=bool(g.get("unverified", False)), note=g.get("note"))
        for g in raw.get("gates", ())
    )
    # Gates apply oldest first; the schema does not force an order, sorting here does.
    from .versions import parse_kernel
    gates = tuple(sorted(gates, key=lambda g: parse_kernel(g.since)))
    return Entry(
        id=raw["id"], match=tuple(raw["match"]), namespace=raw["namespace"], klass=raw["class"],
        sources=_sources(raw["sources"]), file=file, per_device=bool(raw.get("per_device", False)),
        shared_table=bool(raw.get("shared_table", False)),
        read_only=bool(raw.get("read_only", False)), volatile=bool(raw.get("volatile", False)),
        default=raw.get("default"), notes=(raw.get("notes") or "").strip(), gates=gates,
        kubelet_safe=raw.get("kubelet_safe"), runtimes=raw.get("runtimes") or {},
    )


def _measured_rows(tables: "acceptance.Tables", runtimes: Tuple[str, ...], key: Optional[str], mode: str,
                   file: str, where: str) -> Tuple[Any, ...]:
    """The measured rows a rule points at (of every table name in ``runtimes``, in that order);
    a pointer without a row is an error naming the rule."""
    if key is None:
        return ()
    if not runtimes:
        raise KnowledgeError(file, where, "'measured' needs the runtime's 'measured_as' (its acceptance tables' name)")
    rows = tuple(row for runtime in runtimes for row in tables.rows(runtime, key, mode))
    if not rows:
        raise KnowledgeError(file, where, f"no measured row for {key!r} ({mode}) in the {', '.join(runtimes)} acceptance "
                                          f"tables (rules/knowledge/{acceptance.SUBDIR}/; make runtime-acceptance)")
    return rows


def _measured_text(rows: Tuple[Any, ...], fallback: Optional[str]) -> Optional[str]:
    """The newest measured message as a template ({key}/{value}/{path}), else ``fallback``."""
    if not rows:
        return fallback
    return (rows[0].template.replace("{name}", "<container>").replace("{id}", "<id>")
            .replace("{workdir}", "<dir>"))


_HOST_MODE = {"net": "host-net", "ipc": "host-ipc", "uts": "host-uts"}


def _runtime(name: str, raw: Mapping[str, Any], file: str,
             tables: Optional["acceptance.Tables"] = None) -> RuntimeSpec:
    tables = tables or acceptance.Tables([], [])
    measured_as = raw.get("measured_as")
    measured_with = tuple(raw.get("measured_with") or ())
    names = ((measured_as,) if measured_as else ()) + measured_with
    rules = []
    for position, r in enumerate(raw["rules"]):
        where = f"$.runtimes.{name}.rules[{position}]"
        rows = _measured_rows(tables, names, r.get("measured"), "private", file, where + ".measured")
        host_mode = _HOST_MODE.get(r.get("requires") or "", "host-net")
        rows_host = _measured_rows(tables, names, r.get("measured_host"), host_mode, file, where + ".measured_host")
        rules.append(RuntimeRule(
            match=tuple(r["match"]), accepts=r["accepts"], requires=r.get("requires"),
            error=None if r["accepts"] else _measured_text(rows, r.get("error")),
            error_host_namespace=_measured_text(rows_host, r.get("error_host_namespace")),
            note=r.get("note"), source=r.get("source"), unverified=bool(r.get("unverified", False)),
            rows=rows, rows_host=rows_host,
            refuses_host_by_path=r.get("host_joined_by_path", "refused") == "refused"))
    apply_rows = {kind: _measured_rows(tables, names, key, "private", file, f"$.runtimes.{name}.measured_apply.{kind}")
                  for kind, key in (raw.get("measured_apply") or {}).items()}
    apply_errors = dict(raw.get("apply_errors") or {})
    for kind, rows in apply_rows.items():
        apply_errors[kind] = _measured_text(rows, apply_errors.get(kind))
    return RuntimeSpec(name=name, rules=tuple(rules), sources=_sources(raw["sources"]), file=file,
                       versions=raw.get("versions"), note=raw.get("note"), apply_errors=apply_errors,
                       measured_as=measured_as, apply_rows=apply_rows, measured_with=measured_with)


def _tables(directory: Path) -> "acceptance.Tables":
    try:
        return acceptance.load_tables(directory / acceptance.SUBDIR)
    except acceptance.AcceptanceError as exc:
        raise KnowledgeError(exc.file, None, exc.message) from exc


def _files(directory: Path) -> List[Path]:
    if not directory.is_dir():
        raise KnowledgeError(str(directory), None, "knowledge directory does not exist")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_file(path: Path, schema: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Read and validate one knowledge file; the raw document on success."""
    try:
        # The shared bounded reader: undecodable bytes, deep nesting, alias bombs and huge
        # numbers are errors naming the file and position, never a traceback or a hang. A file
        # that passed validation before is taken from the compiled cache (datacache); only a
        # valid one is ever stored, so a bad file fails here with the same error every time.
        loaded = load_data(path, "knowledge") if schema is None else None
        document = loaded.document if loaded is not None else load_yaml(path)
    except DataFileError as exc:
        raise KnowledgeError(exc.file, None if exc.path == "$" else exc.path, exc.message) from exc
    if loaded is None or not loaded.cached:
        validate_document(document, str(path), schema)
        if loaded is not None:
            loaded.remember()
    return document


def build_knowledge(directories: Sequence[Path]) -> Knowledge:
    """Load every ``*.yml`` of ``directories`` (in order) without the process cache."""
    entries: Dict[str, Entry] = {}
    runtimes: Dict[str, RuntimeSpec] = {}
    files: List[str] = []
    all_tables: List["acceptance.Tables"] = []
    for index, directory in enumerate(directories):
        site = index > 0
        seen_here: Dict[str, str] = {}
        exact_here: Dict[str, Tuple[str, str]] = {}
        paths = _files(Path(directory))
        tables = _tables(Path(directory))
        all_tables.append(tables)
        for path in paths:
            document = load_file(path)
            files.append(str(path))
            for position, raw in enumerate(document.get("entries", ())):
                where = f"$.entries[{position}]"
                if raw["id"] in seen_here:
                    raise KnowledgeError(str(path), f"{where}.id",
                                         f"duplicate entry id {raw['id']!r} (also in {seen_here[raw['id']]})")
                seen_here[raw["id"]] = str(path)
                for item_pos, item in enumerate(raw["match"]):
                    if is_pattern(item):
                        continue
                    if item in exact_here and exact_here[item][0] != raw["id"]:
                        other_id, other_file = exact_here[item]
                        raise KnowledgeError(str(path), f"{where}.match[{item_pos}]",
                                             f"key {item!r} is also listed by entry {other_id!r} in {other_file}")
                    exact_here[item] = (raw["id"], str(path))
                entry = _entry(raw, str(path))
                if raw["id"] in entries and not site:
                    raise KnowledgeError(str(path), f"{where}.id", f"duplicate entry id {raw['id']!r}")
                entries.pop(raw["id"], None)  # a site entry with the same id replaces the collection's
                entries[raw["id"]] = entry
            for name, raw in (document.get("runtimes") or {}).items():
                if name in runtimes and not site:
                    raise KnowledgeError(str(path), f"$.runtimes.{name}",
                                         f"runtime {name!r} is already described in {runtimes[name].file}")
                runtimes[name] = _runtime(name, raw, str(path), tables)
    knowledge = Knowledge(list(entries.values()), runtimes, files)
    knowledge.tables = acceptance.Tables.merged(all_tables)
    return knowledge


_SCHEMA: Optional[Dict[str, Any]] = None
_CACHE: Dict[Tuple[str, ...], Knowledge] = {}
_CACHE_LOCK = threading.Lock()


def _schema() -> Dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = _load_schema()
    return _SCHEMA


def load_knowledge(extra_dirs: Optional[Sequence[os.PathLike]] = None) -> Knowledge:
    """The collection's knowledge base plus ``extra_dirs``, validated, loaded once per process.

    Raises :class:`KnowledgeError` naming the file (and the JSON path inside it) at fault.
    """
    directories = [KNOWLEDGE_DIR] + [Path(d).resolve() for d in (extra_dirs or ())]
    cache_key = tuple(str(d) for d in directories)
    with _CACHE_LOCK:
        cached = _CACHE.get(cache_key)
        if cached is None:
            cached = _CACHE[cache_key] = build_knowledge(directories)
        return cached


def clear_cache() -> None:
    """Forget loaded knowledge (tests that edit files between loads)."""
    with _CACHE_LOCK:
        _CACHE.clear()
