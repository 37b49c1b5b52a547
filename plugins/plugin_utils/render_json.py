# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.json: the fleet model as JSON (schema: schemas/fleet-report.schema.json).

Streamed: the large arrays are written one item per line, each item with the C encoder
(``json.dumps`` without indent), so a 2,000-host fleet neither builds one giant string nor
pays for the pure-Python indenting encoder. The result is still one JSON document.
"""
from __future__ import annotations

import json
import os
from typing import IO, Any, Mapping

__all__ = ["render_json", "SCHEMA_PATH"]

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "schemas", "fleet-report.schema.json")
_STREAMED = ("rules", "hosts", "containers", "conntrack", "findings", "problems")


def _dumps(value: Any) -> str:
    # default=str: a value Ansible wrapped (AnsibleUnsafeText, a date from YAML) still serialises
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)


def render_json(model: Mapping[str, Any], out: IO[str]) -> None:
    out.write("{\n")
    keys = list(model)
    for index, key in enumerate(keys):
        value = model[key]
        out.write(" %s: " % _dumps(key))
        if key in _STREAMED and isinstance(value, list):
            if not value:
                out.write("[]")
            else:
                out.write("[\n")
                last = len(value) - 1
                for i, item in enumerate(value):
                    out.write("  ")
                    out.write(_dumps(item))
                    out.write(",\n" if i < last else "\n")
                out.write(" ]")
        else:
            out.write(_dumps(value))
        out.write(",\n" if index < len(keys) - 1 else "\n")
    out.write("}\n")
