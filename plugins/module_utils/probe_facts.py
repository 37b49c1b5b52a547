# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the probe's compact facts (``docs/facts.md``): per-key evidence for the classifier.

The probe itself runs on the target (``probe.py``); what it returns is read on the controller
(``plugin_utils.classify``, the checks). This reader has no imports at all, so the controller's
engine reaches it however it was loaded (an Ansible action, ansible-lint's rules, a script).
Standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROBE_TYPES = ("net", "ipc", "uts", "user", "pid")


def value_differs_by_type(probe):
    # type: (dict) -> dict
    """``{nstype: set of keys}`` from the compact facts' ``value_differs``.

    Facts written before the per-type form carried one flat list (value differs in some fresh
    namespace); it is read as applying to every probed type.
    """
    raw = (probe or {}).get("value_differs") or {}
    if isinstance(raw, dict):
        return dict((t, set(keys or ())) for t, keys in raw.items())
    types = (probe or {}).get("namespaces") or PROBE_TYPES
    return dict((t, set(raw)) for t in types)


def value_differs_keys(probe, nstypes=None):
    # type: (dict, object) -> set
    """Keys whose value in a fresh namespace of one of ``nstypes`` (None: any type) differs."""
    out = set()
    for nstype, keys in value_differs_by_type(probe).items():
        if nstypes is None or nstype in nstypes:
            out |= keys
    return out


class ProbeIndex:
    """Sets over the compact probe facts, for many :func:`probe_evidence` look-ups."""

    def __init__(self, probe):
        # type: (dict) -> None
        probe = probe or {}
        self.enabled = bool(probe.get("enabled"))
        self.unknown = frozenset(probe.get("unknown") or ())
        self.absent = frozenset(probe.get("absent") or ())
        self.value_differs = {}  # key -> sorted namespace types whose fresh instance shows another value
        for nstype, keys in sorted(value_differs_by_type(probe).items()):
            for key in keys:
                self.value_differs.setdefault(key, []).append(nstype)
        self.mode_differs = dict(probe.get("mode_differs") or {})
        self.owner = {}
        for nstype, keys in (probe.get("owner") or {}).items():
            for key in keys:
                self.owner.setdefault(key, nstype)

    def evidence(self, key):
        # type: (str) -> dict
        if not self.enabled or key in self.unknown:
            return None
        if key in self.absent:
            return {"exists": False, "mode": None, "same_value": False, "same_inode": False, "owner": None,
                    "value_differs_in": [], "value_only": False}
        owner = self.owner.get(key)
        differs_in = self.value_differs.get(key, [])
        return {
            "exists": True,
            "mode": self.mode_differs.get(key),
            # The owner's fresh namespace is the one whose value means something; without an
            # owner, any type's.
            "same_value": (owner not in differs_in) if owner else not differs_in,
            "same_inode": owner is None,
            "owner": owner,
            "value_differs_in": list(differs_in),
            "value_only": owner is None and bool(differs_in),
        }


def probe_evidence(probe, key):
    # type: (dict, str) -> dict
    """One key's evidence from the compact probe facts (``docs/facts.md``), or None.

    ``{"exists": bool, "mode": str or None (None = the host's mode), "same_value": bool (in the
    owner's fresh namespace, or in every one when there is no owner), "same_inode": bool,
    "owner": "net" | "ipc" | "user" | "pid" | None, "value_differs_in": [nstype, ...],
    "value_only": bool (the value differs somewhere, through the host's own table entry)}``;
    None when the probe did not run or the key's evidence is unreliable. Only ask about keys the
    host has: the compact form lists exceptions, so any other name reads as "exists, global". For
    many keys build one :class:`ProbeIndex` instead.
    """
    return ProbeIndex(probe).evidence(key)
