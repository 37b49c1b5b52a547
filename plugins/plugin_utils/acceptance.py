"""The measured runtime acceptance tables (``rules/knowledge/runtime-acceptance/*.json``).

The tables are written by the acceptance harness (``make runtime-acceptance``, code in
``tests/integration/runtime_acceptance/``), never by hand: one per runtime path and version,
each row one key asked for in one namespace mode (``private``, ``host-net``, ``host-ipc``,
``host-uts``) with what happened (accepted, or refused at which stage) and the exact message
as a template (``{key}``, ``{value}``, ``{path}``; ``{name}``/``{id}`` stand for the container).

The knowledge base's runtime rules point at a row (``measured: <key>``); this module finds the
rows, and :func:`quotes` turns them into the sentence a judge prints for another key of the
same kind, naming the runtime, its version and the date of the measurement.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .datafile import MAX_BYTES, read_bounded
from .vocabulary import key_to_path

SUBDIR = "runtime-acceptance"
MODES = ("private", "host-net", "host-ipc", "host-uts", "host-net-path")
STAGES = ("accepted", "client", "daemon", "runtime-validator", "container-init", "unrelated")
# How a stage reads in a message.
STAGE_WORDS = {
    "client": "the client refuses it",
    "daemon": "the daemon refuses it",
    "runtime-validator": "the OCI runtime's validator refuses it",
    "container-init": "the container fails to start when the runtime writes it",
    "accepted": "accepted",
}
# What the table's runtime is called in a message.
LABELS = {"docker-api": "Docker Engine API", "docker-cli": "docker CLI", "podman-cli": "podman",
          "podman-api": "podman API", "runc": "runc", "crun": "crun", "containerd": "containerd",
          "lxc": "LXC", "podman-crun": "podman with crun"}


class AcceptanceError(ValueError):
    """A table that cannot be read; ``file`` names it."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


@dataclass(frozen=True)
class Row:
    runtime: str
    version: str          # the table's short version (the component the path is named after)
    versions: Mapping[str, str]
    measured: str         # date
    kernel: str
    file: str
    key: str
    mode: str
    accepted: bool
    stage: str
    message: str
    template: str

    def text(self, key: str, value: Optional[str]) -> str:
        """The message as it would read for ``key`` (the container's name left generic)."""
        path = key_to_path(key) if "/" not in key else key
        return (self.template.replace("{key}", key).replace("{path}", path)
                .replace("{value}", value if value is not None else "VALUE")
                .replace("{name}", "<container>").replace("{id}", "<id>").replace("{workdir}", "<dir>"))

    def citation(self) -> str:
        return f"{LABELS.get(self.runtime, self.runtime)} {self.version}, measured {self.measured}"


class Tables:
    """Every table of one directory, by runtime."""

    def __init__(self, rows: Sequence[Row], files: Sequence[str]) -> None:
        self.files = list(files)
        self._by: Dict[Tuple[str, str, str], List[Row]] = {}
        for row in rows:
            self._by.setdefault((row.runtime, row.key, row.mode), []).append(row)
        for found in self._by.values():
            found.sort(key=lambda r: _version_tuple(r.version), reverse=True)  # newest first

    @classmethod
    def merged(cls, many: Sequence["Tables"]) -> "Tables":
        rows = [row for tables in many for found in tables._by.values() for row in found]
        return cls(rows, [f for tables in many for f in tables.files])

    def rows(self, runtime: str, key: str, mode: str = "private") -> List[Row]:
        """The measured rows of ``key`` for ``runtime`` (every version, newest first)."""
        return list(self._by.get((runtime, key, mode), ()))

    def runtimes(self) -> List[str]:
        return sorted({r for r, dummy, dummy2 in self._by})

    def versions(self, runtime: str) -> List[str]:
        found = {row.version for (r, dummy, dummy2), rows in self._by.items() if r == runtime for row in rows}
        return sorted(found, key=_version_tuple, reverse=True)


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def _row(table: Mapping[str, Any], raw: Mapping[str, Any], file: str) -> Row:
    if raw.get("mode") not in MODES or raw.get("stage") not in STAGES:
        raise AcceptanceError(file, f"row {raw.get('key')!r}: unknown mode {raw.get('mode')!r} or stage {raw.get('stage')!r}")
    return Row(runtime=str(table["runtime"]), version=str(table["version_short"]),
               versions=dict(table.get("version") or {}), measured=str(table["measured"]),
               kernel=str(table.get("kernel", "")), file=file, key=str(raw["key"]), mode=str(raw["mode"]),
               accepted=bool(raw["accepted"]), stage=str(raw["stage"]), message=str(raw.get("message", "")),
               template=str(raw.get("template", "")))


def load_table(path: Path) -> List[Row]:
    try:
        table = json.loads(read_bounded(str(path), MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise AcceptanceError(str(path), f"not a JSON table: {exc}") from exc
    if not isinstance(table, Mapping) or not isinstance(table.get("results"), list):
        raise AcceptanceError(str(path), "no 'results' list")
    for field in ("runtime", "version_short", "measured"):
        if not isinstance(table.get(field), str):
            raise AcceptanceError(str(path), f"missing {field!r}")
    return [_row(table, raw, path.name) for raw in table["results"] if isinstance(raw, Mapping)]


def load_tables(directory: Path) -> Tables:
    """The tables in ``directory`` (empty when it does not exist: an installation without them)."""
    rows: List[Row] = []
    files: List[str] = []
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            rows.extend(load_table(path))
            files.append(str(path))
    return Tables(rows, files)


def quote(rows: Sequence[Row], key: str, value: Optional[str]) -> str:
    """``'docker CLI 28.2.2 says "<text>" (measured …); docker CLI 20.10.24 says "<other text>" (…)'``:
    every version's words, newest first; versions (and runtimes: podman and podman with crun)
    that said the same are named together."""
    groups: List[Tuple[str, List[Row]]] = []
    for row in rows:
        text = row.text(key, value)
        for said, members in groups:
            if said == text:
                members.append(row)
                break
        else:
            groups.append((text, [row]))
    parts = []
    for text, members in groups:
        by_runtime: Dict[str, List[str]] = {}
        for member in members:  # one path measured with several OCI runtimes: name each
            by_runtime.setdefault(member.runtime, []).append(member.version)
        names = [f'{LABELS.get(runtime, runtime)} {" and ".join(versions)}' for runtime, versions in by_runtime.items()]
        also = f"; {' and '.join(names[1:])} the same" if len(names) > 1 else ""
        parts.append(f'{names[0]} says "{text}" (measured {members[0].measured}{also})')
    return "; ".join(parts)
