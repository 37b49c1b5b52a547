# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``sysctl_classify`` and ``sysctl_scope``: the knowledge base and classifier in Jinja.

Documentation lives next to this file in ``sysctl_classify.yml`` and ``sysctl_scope.yml``.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

from ansible.errors import AnsibleFilterError

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host, scope
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.facts_schema import upgrade_facts
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import KnowledgeError, load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions import KernelVersionError, parse_kernel


def _knowledge(extra_dirs: Optional[Union[str, Sequence[str]]]):
    if isinstance(extra_dirs, str):
        extra_dirs = [extra_dirs]
    try:
        return load_knowledge(extra_dirs=list(extra_dirs or ()))
    except KnowledgeError as exc:
        raise AnsibleFilterError(f"nsguard.sysctl knowledge: {exc}") from exc


def sysctl_classify(facts: Mapping[str, Any], extra_dirs: Optional[Union[str, Sequence[str]]] = None) -> Dict[str, Any]:
    """``ansible_facts.nsguard_sysctl | nsguard.sysctl.sysctl_classify`` -> {key: {class, namespace, ...}}."""
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError(f"sysctl_classify expects the nsguard_sysctl facts (a mapping), got {type(facts).__name__}")
    if "nsguard_sysctl" in facts and "host" not in facts:  # the whole ansible_facts was passed
        facts = facts["nsguard_sysctl"]
    if not isinstance(facts.get("host"), Mapping):
        raise AnsibleFilterError("sysctl_classify: the facts have no 'host' mapping; pass ansible_facts.nsguard_sysctl "
                                 "as returned by nsguard.sysctl.sysctl_facts")
    facts, problem = upgrade_facts(facts)   # facts of an earlier schema_version (a fact cache) read as well
    if problem:
        raise AnsibleFilterError(f"sysctl_classify: the facts do not have the shape of docs/facts.md: {problem}")
    return classify_host(_knowledge(extra_dirs), facts)


def sysctl_scope(key: Union[str, Sequence[str]], kernel: Optional[str] = None,
                 extra_dirs: Optional[Union[str, Sequence[str]]] = None) -> Dict[str, Any]:
    """``'net.core.somaxconn' | nsguard.sysctl.sysctl_scope(kernel='6.18.44')`` -> the knowledge's answer."""
    if kernel is not None:
        try:
            parse_kernel(str(kernel))
        except KernelVersionError as exc:
            raise AnsibleFilterError(f"sysctl_scope: option 'kernel': {exc}") from exc
        kernel = str(kernel)
    kb = _knowledge(extra_dirs)
    if isinstance(key, str):
        return scope(kb, key.strip(), kernel)
    if isinstance(key, Sequence):
        return {str(k): scope(kb, str(k).strip(), kernel) for k in key}
    raise AnsibleFilterError(f"sysctl_scope expects a sysctl name or a list of names, got {type(key).__name__}")


class FilterModule:
    """nsguard.sysctl knowledge filters."""

    def filters(self) -> Dict[str, Any]:
        return {"sysctl_classify": sysctl_classify, "sysctl_scope": sysctl_scope}
