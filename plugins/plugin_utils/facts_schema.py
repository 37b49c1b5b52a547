# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller accepts from a target before any rule reads it.

A module result is the target's word: a host an attacker has taken over, or a tenant who names
containers and writes sysctl.d files, decides every byte of it (docs/reliability.md, threat
model). Two checks run on the controller, once per host, before classification and lint:

- :func:`facts_problem` validates ``ansible_facts.nsguard_sysctl`` against
  ``schemas/sysctl-facts.schema.json``. Facts that do not validate are never linted: the host is
  reported ``failed`` with the JSON path that is wrong, so ``{}`` or ``host.keys: []`` can no
  longer pass as a clean host.
- :func:`shadowing_facts` lists facts whose names belong to the audit's own variables
  (``nsguard_sysctl_*``). With ``INJECT_FACTS_AS_VARS`` (Ansible's default) a fact becomes a
  variable that outranks role defaults and inventory variables, so a forged
  ``nsguard_sysctl_skip_rules`` or ``nsguard_sysctl_lint_result`` would switch the audit off or
  stand in for its result.

The fast path is fastjsonschema (the schema compiled to Python once per process: ~3 ms for a
host with 9 sets, against ~80 ms for jsonschema); when it reports a failure, or is not
installed, jsonschema names the path (expectations.schema_errors, the one schema reporter).
Plain Python, no Ansible import.
"""
from __future__ import annotations

import copy
import functools
import os
from typing import Any, Callable, List, Mapping, Optional

from .expectations import load_json_schema, schema_errors

__all__ = ["SCHEMA_PATH", "FACTS_VAR", "LINT_RESULT_VAR", "facts_problem", "shadowing_facts", "partial_gather"]

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "schemas", "sysctl-facts.schema.json")
FACTS_VAR = "nsguard_sysctl"
# The audit role registers the lint action's result under this name; the report reads it only
# when no fact of the same name exists (a registered variable outranks a fact, but a host whose
# lint never ran would otherwise show the forged one).
LINT_RESULT_VAR = "nsguard_sysctl_lint_result"
# Facts an earlier version of the role cached with set_fact (never read any more).
_TOLERATED = frozenset({FACTS_VAR, "nsguard_sysctl_findings"})
_RESERVED_PREFIX = FACTS_VAR + "_"

@functools.lru_cache(maxsize=None)
def _fast_validator() -> Optional[Callable[[Any], Any]]:
    """The schema compiled to Python (once per process), or None without fastjsonschema.

    The key tables (``host.keys``, each set's ``view.keys``: ~1,300 entries a host, most of the
    validation's time through the compiled schema) are checked by :func:`_key_tables_problem`
    instead, exactly as the schema's ``key_table`` says, when the schema has them only there."""
    try:
        import fastjsonschema
    except ImportError:
        return None
    # a copy: fastjsonschema rewrites the $refs of what it compiles, and the loaded schema is
    # shared (jsonschema names the path from it)
    schema = copy.deepcopy(load_json_schema(SCHEMA_PATH))
    lenient = _without_key_tables(schema)
    if lenient is None:
        return fastjsonschema.compile(schema)
    compiled = fastjsonschema.compile(lenient)

    def validate(facts: Any) -> None:
        compiled(facts)
        if _key_tables_problem(facts):
            raise ValueError("a key table does not match the schema")  # the caller names the path
    return validate


# What _key_tables_problem checks, as the schema says it: where key tables are, and their shape.
_KEY_TABLE = {"type": "object", "additionalProperties": {"$ref": "#/definitions/key_entry"}}
_KEY_ENTRY = {"type": "object", "required": ["value"],
              "properties": {"value": {"type": "string"}, "mode": {"type": ["string", "null"]}}}
_KEY_TABLE_REFS = {"definitions/host/properties/keys", "definitions/view/properties/keys"}
_PLACES = {"#/definitions/host": {"properties/host"}, "#/definitions/view": {"definitions/namespace_set/properties/view"},
           "#/definitions/namespace_set": {"properties/namespace_sets/items"}}


def _refs(node: Any, path: str, found: dict) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.setdefault(value, set()).add(path)
            else:
                _refs(value, "%s/%s" % (path, key) if path else key, found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refs(value, "%s/%d" % (path, index), found)


def _without_key_tables(schema: Mapping[str, Any]) -> Optional[dict]:
    """The schema with ``key_table`` relaxed to "an object", or None when the schema's key
    tables are not exactly where and what :func:`_key_tables_problem` checks (a changed schema
    is then validated whole, never less)."""
    definitions = schema.get("definitions") or {}
    if definitions.get("key_table") != _KEY_TABLE or definitions.get("key_entry") != _KEY_ENTRY:
        return None
    found: dict = {}
    _refs(schema, "", found)
    if found.get("#/definitions/key_table") != _KEY_TABLE_REFS or found.get("#/definitions/key_entry") != {
            "definitions/key_table/additionalProperties"}:
        return None
    if any(found.get(ref) != places for ref, places in _PLACES.items()):
        return None
    if (definitions.get("namespace_set") or {}).get("type") != "object":
        return None
    lenient = dict(schema, definitions=dict(definitions, key_table={"type": "object"}))
    return lenient


def _key_table_problem(table: Any) -> bool:
    if not isinstance(table, dict):
        return True
    for entry in table.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("value", None), str):
            return True   # "value" is required and a string
        mode = entry.get("mode")
        if mode is not None and not isinstance(mode, str):
            return True
    return False


def _key_tables_problem(facts: Mapping[str, Any]) -> bool:
    """Whether a key table of facts that passed the rest of the schema breaks ``key_table``."""
    host = facts.get("host")
    if isinstance(host, dict) and "keys" in host and _key_table_problem(host["keys"]):
        return True
    for nset in facts.get("namespace_sets") or []:
        view = nset.get("view") if isinstance(nset, dict) else None
        if isinstance(view, dict) and "keys" in view and _key_table_problem(view["keys"]):
            return True
    return False


def facts_problem(facts: Any) -> Optional[str]:
    """``None`` when ``facts`` have the shape of docs/facts.md, else one line naming the JSON
    path that is wrong (``$.namespace_sets[3].identity: [1] is not of type 'object', 'null'``)."""
    validate = _fast_validator()
    if validate is not None:
        try:
            validate(facts)
            return None
        except Exception:  # fastjsonschema's JsonSchemaException; jsonschema below names the path
            pass
    errors = schema_errors(facts, load_json_schema(SCHEMA_PATH), "facts")
    if not errors:
        return None
    first = errors[0]
    more = " (and %d more)" % (len(errors) - 1) if len(errors) > 1 else ""
    return "%s: %s%s" % (first["path"], first["message"][:300], more)


def shadowing_facts(ansible_facts: Any) -> List[str]:
    """Names of facts that would shadow the audit's own variables (``nsguard_sysctl_*`` other
    than the facts themselves), sorted; ``[]`` for a host without any."""
    if not isinstance(ansible_facts, Mapping):
        return []
    return sorted(str(name) for name in ansible_facts
                  if str(name).startswith(_RESERVED_PREFIX) and str(name) not in _TOLERATED)


def partial_gather(facts: Mapping[str, Any]) -> Optional[str]:
    """Why this gather saw less than the whole host, or ``None``: the module ran without root
    (it cannot enter other users' namespaces, so most containers are missing), or namespace
    sets could not be entered. Call on validated facts only."""
    reasons = []
    euid = facts["host"].get("euid")
    if isinstance(euid, int) and euid != 0:
        reasons.append("the module ran as uid %d, not root: namespace sets of other users are missing" % euid)
    unread = [s for s in facts.get("namespace_sets") or []
              if any(isinstance(e, Mapping) and e.get("stage") == "enter" for e in s.get("errors") or [])]
    if unread:
        reasons.append("%d of %d namespace sets could not be entered" % (len(unread), len(facts["namespace_sets"])))
    return "; ".join(reasons) or None
