#!/usr/bin/env python
"""How the lint engine scales with the number of namespace sets.

Builds one host's facts with N sets (each with requested keys, a view, privileges, a matching
profile) and times ``evaluator.evaluate`` for N = 10 and N = 400 in the same process, printing the
time per set at 400 as a ratio of the time per set at 10 (1.0 = linear). The classification is
the real classifier over the host's keys on this machine (read from /proc/sys).
Run: .venv/bin/python bench/bench_rules.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".venv" / "dev-collections"))

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge  # noqa: E402


def host_keys():
    """``(keys, modes)`` of this host as facts have them: ``{key: value}``, ``{key: mode}``."""
    keys, modes = {}, {}
    for root, dummy, files in os.walk("/proc/sys"):
        for name in files:
            path = os.path.join(root, name)
            key = path[len("/proc/sys/"):].replace(".", "/").replace("/", ".")
            try:
                with open(path) as handle:
                    keys[key] = handle.read().strip()
                modes[key] = "%04o" % (os.stat(path).st_mode & 0o777)
            except OSError:
                keys.pop(key, None)
    return keys, modes


def facts_with(n, keys, modes):
    sets = []
    images = ["elasticsearch:8", "redis:7", "nginx:1", "sonarqube:10"]
    for i in range(n):
        sets.append({"id": "s%d" % i, "identity": {"runtime": "docker", "name": "c%d" % i, "image": images[i % 4]},
                     "ns": {"net": 5000 + i}, "requested": {"net.core.somaxconn": "1024", "vm.max_map_count": "262144"},
                     "privileges": {"privileged": i % 10 == 0, "userns_is_host": True},
                     "view": {"differs": {"net.core.somaxconn": {"host": "4096", "container": "1024"}}}})
    return rule_catalog.example_facts({"host": {"keys": keys, "modes": modes, "cpus": 2}, "namespace_sets": sets,
                            "conntrack": {"loaded": True, "max": 262144, "buckets": 65536,
                                          "per_netns": [{"net": 5000 + i, "count": i * 10, "host": False,
                                                         "sets": ["s%d" % i]} for i in range(n)]}})


def timed(facts, classes, catalog, profiles, kb, repeat):
    start = time.perf_counter()
    for dummy in range(repeat):
        findings = evaluator.evaluate(facts, classes, catalog, profiles, kb=kb)
    return (time.perf_counter() - start) / repeat, len(findings)


def main():
    kb = load_knowledge()
    catalog = rule_catalog.load_catalog()
    profiles, dummy = ex.load_profiles()
    keys, modes = host_keys()
    classes = classify_host(kb, rule_catalog.example_facts({"host": {"keys": keys, "modes": modes}}))
    small, large = 10, 400
    t_small, n_small = timed(facts_with(small, keys, modes), classes, catalog, profiles, kb, 20)
    t_large, n_large = timed(facts_with(large, keys, modes), classes, catalog, profiles, kb, 2)
    print("keys on the host: %d" % len(keys))
    print("%4d sets: %7.1f ms, %5d findings, %.3f ms per set" % (small, t_small * 1e3, n_small, t_small * 1e3 / small))
    print("%4d sets: %7.1f ms, %5d findings, %.3f ms per set" % (large, t_large * 1e3, n_large, t_large * 1e3 / large))
    print("per-set cost at %d sets / at %d sets: %.2f (1.00 = linear)" % (large, small, (t_large / large) / (t_small / small)))


if __name__ == "__main__":
    main()
