# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller accepts from a target before any rule reads it.

A module result is the target's word: a host an attacker has taken over, or a tenant who names
containers and writes sysctl.d files, decides every byte of it (docs/reliability.md, threat
model). Two checks run on the controller, once per host, before classification and lint:

- :func:`read_facts` converts facts of an earlier ``schema_version`` to the current shape
  (:func:`upgrade_facts`, the one place that knows versions 1 and 2) and validates them against
  ``schemas/sysctl-facts.schema.json``, plus what the schema cannot say (``host.modes`` names
  only keys of ``host.keys``, and every one of them when there is no ``host.default_mode``).
  Facts that do not validate are never linted: the host is reported ``failed`` with the JSON
  path that is wrong, so ``{}`` or ``host.keys: []`` can no longer pass as a clean host.
- :func:`shadowing_facts` lists facts whose names belong to the audit's own variables
  (``nsguard_sysctl_*``). With ``INJECT_FACTS_AS_VARS`` (Ansible's default) a fact becomes a
  variable that outranks role defaults and inventory variables, so a forged
  ``nsguard_sysctl_skip_rules`` or ``nsguard_sysctl_lint_result`` would switch the audit off or
  stand in for its result.

The fast path is fastjsonschema (the schema compiled to Python once per process: a few ms for a
host with 9 sets, against ~80 ms for jsonschema); when it reports a failure, or is not
installed, jsonschema names the path (expectations.schema_errors, the one schema reporter).
Plain Python, no Ansible import.
"""
from __future__ import annotations

import copy
import functools
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .expectations import _json_path, load_json_schema, schema_errors

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "FACTS_VAR", "LINT_RESULT_VAR", "read_facts", "upgrade_facts",
           "key_mode", "key_modes", "shadowing_facts", "partial_gather"]

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "schemas", "sysctl-facts.schema.json")
FACTS_VAR = "nsguard_sysctl"
# The facts version the engine reads (docs/facts.md); versions 1 and 2 are converted (upgrade_facts).
SCHEMA_VERSION = 3
READ_VERSIONS = (1, 2, SCHEMA_VERSION)
# The audit role registers the lint action's result under this name; the report reads it only
# when no fact of the same name exists (a registered variable outranks a fact, but a host whose
# lint never ran would otherwise show the forged one).
LINT_RESULT_VAR = "nsguard_sysctl_lint_result"
# Facts an earlier version of the role cached with set_fact (never read any more).
_TOLERATED = frozenset({FACTS_VAR, "nsguard_sysctl_findings"})
_RESERVED_PREFIX = FACTS_VAR + "_"

@functools.lru_cache(maxsize=None)
def _fast_validator() -> Optional[Callable[[Any], Any]]:
    """The schema compiled to Python (once per process), or None without fastjsonschema."""
    try:
        import fastjsonschema
    except ImportError:
        return None
    # a copy: fastjsonschema rewrites the $refs of what it compiles, and the loaded schema is
    # shared (jsonschema names the path from it)
    return fastjsonschema.compile(copy.deepcopy(load_json_schema(SCHEMA_PATH)))


# --------------------------------------------------------------------------- earlier versions

_V1_ENTRY = "a schema_version 1 key entry ({value: string, mode: string or null})"


def _split_v1_table(table: Any, path: List[Any]) -> Tuple[Optional[Tuple[Dict[str, Any], Dict[str, Any]]], Optional[str]]:
    """A version 1 key table ``{key: {value, mode}}`` as ``({key: value}, {key: mode})``, or the
    problem of its first entry that is not what version 1's schema said (``value`` a string,
    ``mode`` a string, null or left out; other properties ignored, as they were)."""
    if not isinstance(table, Mapping):
        return None, "%s: %s is not of type 'object'" % (_json_path(path), _shown(table))
    values: Dict[str, Any] = {}
    modes: Dict[str, Any] = {}
    for key, entry in table.items():
        value = entry.get("value") if isinstance(entry, Mapping) else None
        mode = entry.get("mode") if isinstance(entry, Mapping) else None
        if not isinstance(value, str) or not (mode is None or isinstance(mode, str)):
            return None, "%s: %s is not %s" % (_json_path(path + [key]), _shown(entry), _V1_ENTRY)
        values[key] = value
        modes[key] = mode
    return (values, modes), None


def _shown(value: Any) -> str:
    return repr(value)[:120]


def upgrade_facts(facts: Any) -> Tuple[Any, Optional[str]]:
    """``(facts in the current shape, None)``, or ``(None, problem)`` for version 1 facts whose key
    tables are not version 1's. The one place an earlier ``schema_version`` is read (a fact cache
    written by an earlier module):

    - version 1 has one ``{value, mode}`` mapping per key in ``host.keys`` and a full view's
      ``view.keys``; they come back split (``keys: {key: value}`` and ``modes: {key: mode}``);
    - version 2 has those two tables with every key's mode and no ``default_mode``, which is
      version 3 with no default (:func:`key_modes`): only its number changes.

    New mappings where they differ, the given ones untouched. The current version, and anything
    without a version, come back as they are, for the schema to judge; an unknown version is the
    problem."""
    if not isinstance(facts, Mapping) or "schema_version" not in facts:
        return facts, None   # the schema names what is missing
    version = facts["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version not in READ_VERSIONS:
        # named first: the rest of a document of another version is wrong everywhere
        return None, "$.schema_version: %s is not a facts version this controller reads (%s)" % (
            _shown(version), ", ".join(str(v) for v in READ_VERSIONS))
    if version == SCHEMA_VERSION:
        return facts, None
    out = dict(facts, schema_version=SCHEMA_VERSION)
    if version == 2:
        return out, None
    host = facts.get("host")
    if isinstance(host, Mapping) and "keys" in host:
        split, problem = _split_v1_table(host["keys"], ["host", "keys"])
        if split is None:
            return None, problem
        out["host"] = dict(host, keys=split[0], modes=split[1])
    sets = facts.get("namespace_sets")
    if isinstance(sets, list):
        upgraded = []
        for index, nset in enumerate(sets):
            view = nset.get("view") if isinstance(nset, Mapping) else None
            if isinstance(view, Mapping) and "keys" in view:
                split, problem = _split_v1_table(view["keys"], ["namespace_sets", index, "view", "keys"])
                if split is None:
                    return None, problem
                nset = dict(nset, view=dict(view, keys=split[0], modes=split[1]))
            upgraded.append(nset)
        out["namespace_sets"] = upgraded
    return out, None


# --------------------------------------------------------------------------- validation

def _schema_problem(facts: Any) -> Optional[str]:
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


def _modes_problem(section: Mapping[str, Any], path: List[Any]) -> Optional[str]:
    """Whether a mode table names only keys of its value table, and all of them when there is no
    ``default_mode`` (JSON Schema cannot say it): every key has exactly one mode."""
    values, modes = section.get("keys") or {}, section.get("modes") or {}
    stray = [key for key in modes if key not in values]
    if stray:
        return "%s: %d mode(s) name no key of keys (%s)" % (_json_path(path), len(stray), ", ".join(sorted(stray)[:5]))
    if section.get("default_mode") is None:
        missing = [key for key in values if key not in modes]
        if missing:
            return "%s: %d key(s) of keys have no mode here (%s), and there is no default_mode" % (
                _json_path(path), len(missing), ", ".join(sorted(missing)[:5]))
    return None


def _tables_problem(facts: Mapping[str, Any]) -> Optional[str]:
    """The modes of valid facts: ``host.modes`` and ``host.default_mode`` give every key of
    ``host.keys`` one mode, and a view's its ``keys`` (a view's tables left out: none)."""
    problem = _modes_problem(facts["host"], ["host", "modes"])
    for index, nset in enumerate(facts["namespace_sets"]):
        view = nset.get("view")
        if problem is None and view and ("keys" in view or "modes" in view):
            problem = _modes_problem(view, ["namespace_sets", index, "view", "modes"])
    return problem


def key_mode(section: Mapping[str, Any], key: str) -> Optional[str]:
    """The mode of ``key`` of ``section`` (``host``, or a full ``view``, of facts :func:`read_facts`
    read): its entry in ``modes``, else ``default_mode`` when ``keys`` has it; None for a key the
    value table does not hold (an unreadable key's mode is in ``unreadable``)."""
    modes = section.get("modes") or {}
    if key in modes:
        return modes[key]
    return section.get("default_mode") if key in (section.get("keys") or {}) else None


def key_modes(section: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """``{key: mode}`` for every key of ``section``'s value table (:func:`key_mode` of each)."""
    default, modes = section.get("default_mode"), section.get("modes") or {}
    return {key: modes.get(key, default) for key in section.get("keys") or {}}


def read_facts(facts: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """What the controller's engine reads of a host: ``(facts, None)`` when they have the shape of
    docs/facts.md (an earlier version converted, :func:`upgrade_facts`), else ``(None, problem)``,
    one line naming the JSON path that is wrong
    (``$.namespace_sets[3].identity: [1] is not of type 'object', 'null'``)."""
    current, problem = upgrade_facts(facts)
    if problem is None:
        problem = _schema_problem(current) or _tables_problem(current)
    return (None, problem) if problem else (current, None)


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
