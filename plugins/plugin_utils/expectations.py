# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What workloads expect from the kernel: built-in profiles and user expectations.

An *expectation* says "a namespace set that looks like X needs key K to satisfy C": for
example Elasticsearch needs ``vm.max_map_count >= 262144``. The built-in profiles live in
``rules/profiles/*.yml`` (one workload per file, each value with its source); users add their
own through the ``expectations`` option (a list, same shape) or files. Every document is
validated against ``rules/profiles/profile.schema.json``; a bad one is reported with its file
and JSON path and skipped, the others still load.

Matching (:class:`Selector`): a profile's ``match`` is a selector or a list of selectors (any
may match); a selector's fields must all match; a field's patterns are alternatives. Glob
patterns (case-insensitive) for ``image``, ``name``, ``comm``, ``runtime``, ``pod_namespace``
and label values; a ``re:`` prefix makes any of them a regular expression. ``cmdline`` is always
a regular expression (searched). ``name`` is tried against the container name, the pod name,
the ``ip netns`` name and, for an unidentified set, its init process's command name, so a bare
``unshare``'d process can be matched too. ``image`` is tried against the full reference and its
repository's last path component (``docker.elastic.co/elasticsearch/elasticsearch:8.15.0`` ->
``elasticsearch``).

Constraints (:class:`Constraint`): ``min``, ``max``, ``equals``, ``one_of``, ``not_equals``,
optionally on one whitespace-separated ``field`` (0-based) of a multi-field value; the string
shorthands ``">=262144"``, ``"<=10"``, ``">0"``, ``"<5"``, ``"==1"``, ``"!=0"`` and a bare
value (equals) are accepted where a constraint is.

Plain Python (PyYAML, jsonschema), no Ansible import.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .datacache import load_data, memoized
from .datafile import DataFileError
from .vocabulary import as_number, data_dir, squash

__all__ = [
    "Constraint",
    "ConstraintError",
    "Expectation",
    "Selector",
    "PROFILES_DIR",
    "parse_constraint",
    "parse_constraints",
    "schema_errors",
    "load_json_schema",
    "load_profiles",
    "load_expectation_files",
    "expectations_from_data",
    "matching",
]

PROFILES_DIR = data_dir("rules", "profiles")
SCHEMA_FILE = PROFILES_DIR / "profile.schema.json"
_OPS = ("min", "max", "equals", "one_of", "not_equals")


class ConstraintError(ValueError):
    """A constraint that cannot be parsed."""


def _fmt_number(value: Union[int, float]) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Constraint:
    """One condition on a sysctl value (as ``sysctl -n`` prints it)."""

    op: str
    value: Any
    field: Optional[int] = None

    def _observed(self, observed: Any) -> Optional[str]:
        if observed is None:
            return None
        parts = str(observed).split()
        if self.field is None:
            return " ".join(parts)
        return parts[self.field] if self.field < len(parts) else None

    def check(self, observed: Any) -> Optional[bool]:
        """True/False, or None when the value cannot be compared (absent, not a number)."""
        got = self._observed(observed)
        if got is None:
            return None
        if self.op in ("min", "max"):
            number = as_number(got)
            if number is None:
                return None
            return number >= self.value if self.op == "min" else number <= self.value
        if self.op == "equals":
            return got == squash(self.value)
        if self.op == "not_equals":
            return got != squash(self.value)
        return got in [squash(v) for v in self.value]  # one_of

    def describe(self) -> str:
        where = "" if self.field is None else "field %d " % self.field
        if self.op == "min":
            return "%s>=%s" % (where, _fmt_number(self.value))
        if self.op == "max":
            return "%s<=%s" % (where, _fmt_number(self.value))
        if self.op == "equals":
            return "%s==%s" % (where, squash(self.value))
        if self.op == "not_equals":
            return "%s!=%s" % (where, squash(self.value))
        return "%sone of %s" % (where, ", ".join(squash(v) for v in self.value))

    def target(self, current: Any = None) -> Optional[str]:
        """A value that satisfies the constraint, starting from ``current`` for multi-field values."""
        if self.op in ("min", "max"):
            wanted = _fmt_number(self.value)
        elif self.op == "equals":
            wanted = squash(self.value)
        elif self.op == "one_of":
            wanted = squash(self.value[0])
        else:
            return None
        if self.field is None:
            return wanted
        parts = str(current).split() if current is not None else []
        if self.field >= len(parts):
            return None
        parts[self.field] = wanted
        return " ".join(parts)


_SHORTHAND = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


def parse_constraint(spec: Any) -> List[Constraint]:
    """A constraint from its string shorthand or mapping form (may give several)."""
    if isinstance(spec, Mapping):
        field_index = spec.get("field")
        if field_index is not None and (not isinstance(field_index, int) or isinstance(field_index, bool)
                                        or field_index < 0):
            raise ConstraintError("field must be a non-negative integer, not %r" % (field_index,))
        out = []
        for op in _OPS:
            if op not in spec:
                continue
            value = spec[op]
            if op in ("min", "max"):
                number = as_number(value)
                if number is None or isinstance(value, bool):
                    raise ConstraintError("%s must be a number, not %r" % (op, value))
                value = number
            elif op == "one_of":
                if not isinstance(value, (list, tuple)) or not value:
                    raise ConstraintError("one_of must be a non-empty list")
                value = tuple(str(v) for v in value)
            else:
                value = str(value)
            out.append(Constraint(op, value, field_index))
        if not out:
            raise ConstraintError("a constraint needs one of %s" % ", ".join(_OPS))
        return out
    if isinstance(spec, bool) or spec is None:
        raise ConstraintError("a constraint cannot be %r" % (spec,))
    text = str(spec)
    match = _SHORTHAND.match(text)
    if not match:
        return [Constraint("equals", squash(text))]
    op, operand = match.groups()
    if op in ("==", "!="):
        return [Constraint("equals" if op == "==" else "not_equals", squash(operand))]
    number = as_number(operand)
    if number is None:
        raise ConstraintError("%r: %s needs a number" % (text, op))
    if op == ">":
        return [Constraint("min", number + 1 if number.is_integer() else number)]
    if op == "<":
        return [Constraint("max", number - 1 if number.is_integer() else number)]
    return [Constraint("min" if op == ">=" else "max", number)]


def parse_constraints(specs: Iterable[Any]) -> List[Constraint]:
    out: List[Constraint] = []
    for spec in specs:
        out.extend(parse_constraint(spec))
    return out


# --------------------------------------------------------------------------- matching

def _compile(pattern: str, regex: bool) -> "re.Pattern[str]":
    if pattern.startswith("re:"):
        return re.compile(pattern[3:], re.IGNORECASE)
    if regex:
        return re.compile(pattern, re.IGNORECASE)
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


_FIELDS = ("image", "name", "comm", "cmdline", "runtime", "pod_namespace")


@dataclass(frozen=True)
class Selector:
    """All fields must match; any pattern of a field may match."""

    fields: Tuple[Tuple[str, Tuple["re.Pattern[str]", ...]], ...]
    labels: Tuple[Tuple[str, "re.Pattern[str]"], ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "Selector":
        fields = []
        for name in _FIELDS:
            if name not in raw:
                continue
            patterns = raw[name]
            if isinstance(patterns, str):
                patterns = [patterns]
            fields.append((name, tuple(_compile(str(p), name == "cmdline") for p in patterns)))
        labels = tuple((str(k), _compile(str(v), False)) for k, v in (raw.get("labels") or {}).items())
        return cls(tuple(fields), labels)

    def matches(self, nset: Mapping[str, Any]) -> bool:
        identity = nset.get("identity") or {}
        init = nset.get("init") or {}
        for name, patterns in self.fields:
            candidates = _candidates(name, identity, init)
            if not any(p.search(c) if name == "cmdline" else p.fullmatch(c)
                       for p in patterns for c in candidates):
                return False
        labels = identity.get("labels") or {}
        for key, pattern in self.labels:
            if key not in labels or not pattern.fullmatch(str(labels[key])):
                return False
        return bool(self.fields or self.labels)


def _candidates(name: str, identity: Mapping[str, Any], init: Mapping[str, Any]) -> List[str]:
    if name == "image":
        image = identity.get("image")
        if not image:
            return []
        ref = str(image)
        repo = ref.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        if ":" in last:
            last = last.split(":", 1)[0]
        return [ref, repo, last]
    if name == "name":
        out = [str(identity[f]) for f in ("name", "pod_name", "netns_name") if identity.get(f)]
        if not out and init.get("comm"):
            out.append(str(init["comm"]))
        return out
    if name == "comm":
        return [str(init["comm"])] if init.get("comm") else []
    if name == "cmdline":
        return [str(init["cmdline"])] if init.get("cmdline") else []
    value = identity.get(name)
    return [str(value)] if value else []


# --------------------------------------------------------------------------- expectations

@dataclass(frozen=True)
class Expectation:
    """One key a workload needs, with the constraints on it."""

    profile: str
    title: str
    key: str
    constraints: Tuple[Constraint, ...]
    severity: str
    why: str
    selectors: Tuple[Selector, ...]
    source: str                      # file or "vars"
    references: Tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def matches(self, nset: Mapping[str, Any]) -> bool:
        return any(s.matches(nset) for s in self.selectors)

    def failing(self, observed: Any) -> List[Constraint]:
        return [c for c in self.constraints if c.check(observed) is not True]

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.constraints)


@functools.lru_cache(maxsize=None)
def load_json_schema(path: str) -> Dict[str, Any]:
    """A JSON Schema file shipped with the collection (read once per process)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += "[%d]" % part
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(part)):
            out += ".%s" % part
        else:
            out += "[%s]" % json.dumps(str(part))
    return out


def schema_errors(document: Any, schema: Mapping[str, Any], source: str) -> List[Dict[str, str]]:
    """Every schema violation of ``document`` as ``{file, path, message}``. For a failed
    ``oneOf``/``anyOf`` the most relevant branch error is reported (the one the author most
    likely meant), not "is not valid under any of the given schemas"."""
    import jsonschema  # controller-side dependency, imported where it is used

    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        while error.context:
            depth = len(error.absolute_path)
            # the branches whose type matched the value are the ones the author meant
            meant = [e for e in error.context if not (e.validator == "type" and len(e.absolute_path) == depth)]
            error = max(meant or list(error.context), key=lambda e: len(e.absolute_path))
        errors.append({"file": source, "path": _json_path(error.absolute_path), "message": error.message})
    return errors


def _validate(document: Any, source: str) -> List[Dict[str, str]]:
    return schema_errors(document, load_json_schema(str(SCHEMA_FILE)), source)


def _expect_entries(raw: Any) -> List[Tuple[str, Mapping[str, Any]]]:
    """``expect`` as (key, entry) pairs, written either as a list of entries with ``key`` or as
    a key -> constraint map (a shorthand string/number, or a mapping of operators and options)."""
    if isinstance(raw, Mapping):
        return [(str(key), spec if isinstance(spec, Mapping) else {"constraint": spec}) for key, spec in raw.items()]
    return [(str(entry.get("key")), entry) for entry in raw or [] if isinstance(entry, Mapping)]


def _entry_constraints(entry: Mapping[str, Any]) -> List[Constraint]:
    if "constraint" in entry:
        spec = entry["constraint"]
        return parse_constraints(spec if isinstance(spec, list) else [spec])
    return parse_constraint({k: entry[k] for k in (*_OPS, "field") if k in entry})


def expectations_from_data(document: Any, source: str,
                           validated: bool = False) -> Tuple[List[Expectation], List[Dict[str, str]]]:
    """Expectations from one profile document (or a list of them). Never raises on bad input:
    the errors name the source and the JSON path, the valid profiles still load. ``validated``:
    the document passed the schema before (it came from the compiled cache)."""
    documents = document if isinstance(document, list) else [document]
    out: List[Expectation] = []
    errors: List[Dict[str, str]] = []
    for index, doc in enumerate(documents):
        where = source if len(documents) == 1 else "%s[%d]" % (source, index)
        problems = [] if validated else _validate(doc, where)
        if problems:
            errors.extend(problems)
            continue
        name = str(doc["profile"])
        title = str(doc.get("title") or name)
        default_severity = doc.get("severity", "error")
        matches = doc["match"] if isinstance(doc["match"], list) else [doc["match"]]
        try:
            selectors = tuple(Selector.parse(m) for m in matches)
        except re.error as exc:
            errors.append({"file": where, "path": "$.match", "message": "bad regular expression: %s" % exc})
            continue
        for position, (key, entry) in enumerate(_expect_entries(doc["expect"])):
            try:
                constraints = tuple(_entry_constraints(entry))
            except ConstraintError as exc:
                index = key if isinstance(doc["expect"], Mapping) else position
                errors.append({"file": where, "path": _json_path(["expect", index]), "message": str(exc)})
                continue
            out.append(Expectation(
                profile=name, title=title, key=key, constraints=constraints,
                severity=str(entry.get("severity", default_severity)),
                why=str(entry.get("why") or doc.get("description") or "").strip(),
                selectors=selectors, source=where,
                references=tuple(entry.get("references") or doc.get("references") or ()),
            ))
    return out, errors


def _yaml_files(path: Path) -> List[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    return [path]


def load_expectation_files(paths: Sequence[Union[str, os.PathLike]]) -> Tuple[List[Expectation], List[Dict[str, str]]]:
    """Expectations from files and directories of YAML profile documents."""
    out: List[Expectation] = []
    errors: List[Dict[str, str]] = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.exists():
            errors.append({"file": str(path), "path": "$", "message": "no such file or directory"})
            continue
        for file in _yaml_files(path):
            try:
                # From the compiled cache when this file loaded without a problem before.
                loaded = load_data(file, "profile")
            except DataFileError as exc:
                errors.append(exc.as_dict())
                continue
            document = loaded.document
            if document is None:
                continue
            if isinstance(document, Mapping) and "expectations" in document and "profile" not in document:
                document = document["expectations"]
            found, problems = expectations_from_data(document, str(file), validated=loaded.cached)
            out.extend(found)
            errors.extend(problems)
            if not problems:
                loaded.remember()
    return out, errors


def load_profiles(names: Union[str, Sequence[str], None] = "all",
                  directory: Path = PROFILES_DIR) -> Tuple[List[Expectation], List[Dict[str, str]]]:
    """The built-in profiles: ``"all"`` (default), a list of profile names, or none (``[]``/None)."""
    if not names:
        return [], []
    # once per process while the files stay the same (datacache.memoized); fresh lists each call
    found, errors = memoized(("profiles", str(directory)), [directory],
                             lambda: load_expectation_files(list(_yaml_files(directory))))
    found, errors = list(found), list(errors)
    if names == "all" or names == ["all"]:
        return found, errors
    wanted = [names] if isinstance(names, str) else list(names)
    known = {e.profile for e in found}
    for name in wanted:
        if name not in known:
            errors.append({"file": str(directory), "path": "$", "message":
                           "unknown built-in profile %r (known: %s)" % (name, ", ".join(sorted(known)))})
    return [e for e in found if e.profile in wanted], errors


def matching(expectations: Sequence[Expectation], nset: Mapping[str, Any]) -> List[Expectation]:
    return [e for e in expectations if e.matches(nset)]
