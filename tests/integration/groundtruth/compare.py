"""Score the classifier, and the runtimes' prefix rule, against the measured ground truth."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

from .measure import GroundTruth

PER_NS = ("isolated", "isolated-inherited")
DEVICE = "per-device"
SOURCE = "source-decided"  # observations checked, class from groundtruth/sources.py: counted apart

# runc's validator and the kubelet's NamespacedBy(): what they accept as "namespaced".
PREFIX_EXACT = ("kernel.sem",)
PREFIXES = ("net.", "kernel.shm", "kernel.msg", "fs.mqueue.")


def prefix_says_namespaced(key: str) -> bool:
    return key in PREFIX_EXACT or key.startswith(PREFIXES)


@dataclass
class Score:
    compared: int = 0
    classifier_agree: int = 0
    prefix_agree: int = 0
    by_category: Counter = field(default_factory=Counter)
    classifier_by_category: Counter = field(default_factory=Counter)
    prefix_by_category: Counter = field(default_factory=Counter)
    disagreements: List[Tuple[str, str, str, str]] = field(default_factory=list)
    prefix_misses: List[Tuple[str, str]] = field(default_factory=list)
    not_in_facts: List[str] = field(default_factory=list)
    untested: Dict[str, str] = field(default_factory=dict)

    @staticmethod
    def pct(part: int, whole: int) -> str:
        return f"{100.0 * part / whole:.1f}%" if whole else "n/a"

    def table(self) -> str:
        lines = [f"{'category':<14} {'keys':>5} {'classifier':>16} {'prefix rule':>16}"]
        for cat in sorted(self.by_category):
            n = self.by_category[cat]
            c, p = self.classifier_by_category[cat], self.prefix_by_category[cat]
            lines.append(f"{cat:<14} {n:>5} {c:>5} {self.pct(c, n):>10} {p:>5} {self.pct(p, n):>10}")

        def row(name: str, drop: Tuple[str, ...]) -> str:
            n = self.compared - sum(self.by_category[d] for d in drop)
            c = self.classifier_agree - sum(self.classifier_by_category[d] for d in drop)
            p = self.prefix_agree - sum(self.prefix_by_category[d] for d in drop)
            return f"{name:<14} {n:>5} {c:>5} {self.pct(c, n):>10} {p:>5} {self.pct(p, n):>10}"

        lines.append(row("all but device", (DEVICE, SOURCE)))
        lines.append(row("all measured", (SOURCE,)))
        lines.append(row("all", ()))
        return "\n".join(lines)


def score(truth: GroundTruth, classes: Mapping[str, Mapping[str, object]]) -> Score:
    """Agreement on every key the ground truth established and the facts have.

    The classifier agrees when class and namespace both match. The prefix rule agrees when it
    calls a key namespaced exactly when the truth says per-namespace (isolated or
    isolated-inherited); it says nothing about mirrors, leaks or inheritance.
    """
    result = Score()
    for key, t in sorted(truth.keys.items()):
        if t.klass is None:
            result.untested[key] = t.reason or ""
            continue
        got = classes.get(key)
        if got is None:
            result.not_in_facts.append(key)
            continue
        result.compared += 1
        result.by_category[t.category] += 1
        if (got["class"], got["namespace"]) == (t.klass, t.namespace):
            result.classifier_agree += 1
            result.classifier_by_category[t.category] += 1
        else:
            result.disagreements.append((key, f"{t.klass}/{t.namespace}", f"{got['class']}/{got['namespace']}",
                                         f"truth: {t.how} | classifier: {got['evidence']}"))
        if prefix_says_namespaced(key) == (t.klass in PER_NS):
            result.prefix_agree += 1
            result.prefix_by_category[t.category] += 1
        else:
            result.prefix_misses.append((key, t.klass))
    return result
