"""Ground truth through the real kernel: the classifier must agree on every key it can be checked on.

``groundtruth.measure`` establishes, in throwaway namespaces, what this machine's kernel does
with every key under /proc/sys (see its docstring for the method and ``groundtruth.policy`` for
which writes it allows). The facts come from the real module through a real ``ansible-playbook``
run; the classifier's answer for every key must equal the measured class and namespace.

Counting: every host key is in exactly one category - host-only (absent in a fresh namespace
set), per-namespace, mirror, global, leaking, per-device (net.ipv4/ipv6.conf|neigh.<dev>.*:
absent in a fresh netns only because the device is; measured on veth devices of the same names
created there, and on lo which every netns has) - or untested, printed with its reason. The
agreement figure is over the established keys; the prefix rule (runc/kubelet: net.*, kernel.shm*,
kernel.msg*, kernel.sem, fs.mqueue.* are namespaced) is scored on the same keys.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import procsys
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.versions import parse_kernel
from tests.ansible_run import gather_facts_via_playbook
from tests.integration.groundtruth import policy
from tests.integration.groundtruth.compare import SOURCE, score
from tests.integration.groundtruth.measure import GroundTruth, HostLedger, host_lock, measure

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root and real namespaces")]

REPORT = Path(__file__).resolve().parents[1] / "output" / "ground_truth.txt"


@pytest.fixture(scope="module")
def ledger():
    """Every host value the measurement changes, restored and verified at teardown.

    The whole of /proc/sys is snapshotted before; after, every key the ledger touched must be
    back at its original value. Keys that changed without us (other engineers' tests run on this
    machine at the same time) are only reported, never touched.
    """
    before, dummy = procsys.read_tree()
    book = HostLedger()
    yield book
    with host_lock():
        book.restore()
    after, dummy = procsys.read_tree()
    not_restored = [f"{k}: {after.get(k, {}).get('value')!r} != {v!r}" for k, v in book.touched.items()
                    if k in after and after[k]["value"].split() != v.split()]
    others = sorted(k for k in before if k in after and k not in book.touched
                    and k not in procsys.VOLATILE_KEYS and before[k]["value"] != after[k]["value"])
    if others:
        print(f"\nhost keys changed during the run, not by this test (left alone): {others[:20]}")
    assert not book.restore_problems and not not_restored, (book.restore_problems, not_restored)


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    """The real module's facts (probe included) through ansible-playbook, before any host write."""
    return gather_facts_via_playbook(tmp_path_factory.mktemp("gt-facts"))


@pytest.fixture(scope="module")
def truth(facts, ledger) -> GroundTruth:
    # Every host write of the measurement (and its restore) under the lock other tests share.
    with host_lock():
        return measure(ledger)


def _report(truth: GroundTruth, result) -> str:
    untested = result.untested
    lines = [
        f"ground truth on {truth.kernel}: {len(truth.keys)} keys under /proc/sys, measured in {truth.duration_s:.2f} s, "
        f"{truth.host_writes} host values changed and restored",
        f"established: {result.compared}; untested (listed below): {len(untested)}; "
        f"host devices recreated as veth in a fresh netns: {', '.join(truth.devices)}",
        "",
        "agreement with the measured class (classifier: class and namespace; prefix rule: namespaced or not)",
        result.table(),
        "",
        f"classifier {result.classifier_agree}/{result.compared} = {result.pct(result.classifier_agree, result.compared)}"
        f"   prefix rule {result.prefix_agree}/{result.compared} = {result.pct(result.prefix_agree, result.compared)}",
        "",
        "prefix rule wrong on:",
    ]
    lines += [f"  {k}: {c}" for k, c in result.prefix_misses]
    cross = truth.devconf.get("crosscheck") or {}
    lines += ["", f"conf inheritance through net.core.devconf_inherit_init_net (host's mode "
              f"{truth.devconf.get('host_mode')!r}, back to {truth.devconf.get('host_mode_after')!r} after; runs "
              f"{sorted(truth.devconf.get('runs') or {})}, refused {truth.devconf.get('errors') or {}}):"]
    lines += [f"  {fam}: {info}" for fam, info in sorted(cross.items())]
    decided = sorted((k, t) for k, t in truth.keys.items() if t.basis == "source")
    lines += ["", f"decided by the kernel source after their observations were checked ({len(decided)}, "
              f"counted as '{SOURCE}'):"]
    lines += [f"  {k}: {t.klass}/{t.namespace}: {t.how}" for k, t in decided]
    lines += ["", f"untested keys ({len(untested)}):"]
    lines += [f"  {k}: {why}" for k, why in sorted(untested.items())]
    if result.disagreements:
        lines += ["", "CLASSIFIER DISAGREES:"] + [f"  {k}: truth {t}, classifier {c}; {how}"
                                                  for k, t, c, how in result.disagreements]
    return "\n".join(lines) + "\n"


def test_classifier_agrees_with_the_kernel(truth, facts, capsys):
    classes = classify_host(load_knowledge(), facts)
    result = score(truth, classes)
    text = _report(truth, result)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    with capsys.disabled():
        print("\n" + text)

    # Nothing is dropped silently: every key is established or carries its reason.
    assert all(t.klass is not None or t.reason for t in truth.keys.values())
    assert result.compared + len(result.untested) + len(result.not_in_facts) == len(truth.keys)
    # Keys that vanished between the facts and the measurement (another test's interface) only.
    assert all(k.startswith(("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh."))
               for k in result.not_in_facts), result.not_in_facts
    # The measurement covers the machine: every category present, most keys established.
    assert {"host-only", "per-namespace", "mirror", "global", "per-device"} <= set(result.by_category)
    assert result.compared >= 0.9 * len(truth.keys)
    assert result.disagreements == [], text
    # The devconf method agrees with the host-write method wherever both were made.
    cross = truth.devconf["crosscheck"]
    assert cross["IPv4"]["copies_from_host"] is not None and cross["IPv6"]["copies_from_host"] is not None, cross
    assert all(info["measured_both_ways"] > 0 and not info["mismatch"] for info in cross.values()), cross
    # The prefix rule is what this project exists to beat on this kernel.
    assert result.prefix_agree < result.classifier_agree


def test_known_facts_of_this_kernel(truth):
    """The measurement itself finds what the reference documents for 6.x kernels."""
    k = truth.keys
    assert (k["net.core.netdev_max_backlog"].klass, k["net.core.netdev_max_backlog"].namespace) == ("host-only", "none")
    assert k["net.netfilter.nf_conntrack_max"].klass == "mirror"
    assert k["vm.max_map_count"].klass == "global" and k["vm.max_map_count"].host_changed
    assert (k["net.core.somaxconn"].klass, k["net.core.somaxconn"].namespace) == ("isolated", "net")
    assert k["net.ipv4.tcp_rmem"].klass == "isolated-inherited"
    assert (k["kernel.shmmax"].klass, k["kernel.shmmax"].namespace) == ("isolated", "ipc")
    assert (k["kernel.hostname"].klass, k["kernel.hostname"].namespace) == ("isolated-inherited", "uts")
    assert (k["user.max_user_namespaces"].klass, k["user.max_user_namespaces"].namespace) == ("isolated", "user")
    if parse_kernel(os.uname().release) >= (6, 14, 0):
        assert (k["kernel.pid_max"].klass, k["kernel.pid_max"].namespace) == ("isolated", "pid")
    if parse_kernel(os.uname().release) >= (6, 11, 0):
        assert k["net.core.rmem_max"].klass == "mirror"
    # The conf keys no host write may touch, measured through devconf_inherit_init_net.
    assert (k["net.ipv4.ip_forward"].klass, k["net.ipv4.ip_forward"].basis) == ("isolated-inherited", "measured")
    assert k["net.ipv4.conf.all.rp_filter"].klass == "isolated-inherited"
    assert k["net.ipv6.conf.all.forwarding"].klass == "isolated"
    assert k["net.ipv6.conf.default.stable_secret"].klass == "isolated"
    assert k["net.netfilter.nf_hooks_lwtunnel"].basis == "source"


def test_devconf_mechanism(truth):
    """Mode 3 copies from the creating netns, mode 2 does not; IPv6 default.autoconf is reset even
    by mode 3 (addrconf_init_net sets it from ipv6_defaults after the copy)."""
    runs = truth.devconf["runs"]
    assert truth.devconf["host_mode_after"] == truth.devconf["host_mode"]
    three, two = runs["3"], runs["2"]
    for key in ("net.ipv4.conf.all.forwarding", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        assert three["final"][key] != two["fresh"][key], key
        assert three["b"][key] == three["final"][key], key
        assert two["b"][key] == two["fresh"][key], key
    autoconf = "net.ipv6.conf.default.autoconf"
    assert three["final"][autoconf] != three["b"][autoconf] == two["fresh"][autoconf]
    secret = "net.ipv6.conf.default.stable_secret"
    assert three["final"][secret] is not None and three["b"][secret] is None
    assert policy.DEVCONF_KEY in truth.ledger.touched
