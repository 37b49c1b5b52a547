"""The knowledge base: loading, validation errors that name file and path, matching precedence, coverage."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import (
    CLASSES, KNOWLEDGE_DIR, NAMESPACES, RUNTIMES, KnowledgeError, build_knowledge, clear_cache, load_knowledge,
    specificity)
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import scope

ENTRY = textwrap.dedent("""\
    schema_version: 1
    area: site
    entries:
      - id: {id}
        match: [{match}]
        namespace: {namespace}
        class: {klass}
        sources: [{{kind: emp, ref: "site measurement"}}]
    """)


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def site_entry(directory: Path, name="site.yml", id="site-x", match="vm.max_map_count", namespace="none",
               klass="global") -> Path:
    return write(directory, name, ENTRY.format(id=id, match=match, namespace=namespace, klass=klass))


# --------------------------------------------------------------------------- loading

def test_loads_once_per_process():
    assert load_knowledge() is load_knowledge()
    kb = load_knowledge()
    assert len(kb) > 50
    assert set(kb.runtimes) == set(RUNTIMES)
    assert {Path(f).name for f in kb.files} >= {"net-core.yml", "netfilter.yml", "ipv4.yml", "ipv6.yml", "ipc.yml",
                                                "uts.yml", "user.yml", "pid.yml", "vm-fs-kernel.yml", "runtimes.yml"}


def test_every_entry_is_sourced_and_valid():
    for entry in load_knowledge():
        assert entry.sources, entry.id
        assert entry.klass in CLASSES and entry.namespace in NAMESPACES
        for gate in entry.gates:
            assert gate.class_before in CLASSES
        # Global classes own no namespace; per-namespace classes name theirs.
        if entry.klass in ("mirror", "host-only", "global", "leaking"):
            assert entry.namespace == "none", entry.id
        else:
            assert entry.namespace != "none", entry.id


@pytest.mark.parametrize("field,value,path", [
    ("class", "isolatd", "$.entries[0].class"),
    ("namespace", "mnt", "$.entries[0].namespace"),
])
def test_invalid_value_names_file_and_json_path(tmp_path, field, value, path):
    kwargs = {"klass": value} if field == "class" else {"namespace": value}
    bad = site_entry(tmp_path, **kwargs)
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([KNOWLEDGE_DIR, tmp_path])
    assert info.value.file == str(bad)
    assert info.value.path == path
    assert str(bad) in str(info.value) and path in str(info.value) and value in str(info.value)


def test_missing_sources_and_unknown_field(tmp_path):
    write(tmp_path, "a.yml", textwrap.dedent("""\
        schema_version: 1
        area: site
        entries:
          - id: no-sources
            match: [vm.swappiness]
            namespace: none
            class: global
            sources: []
        """))
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert info.value.path == "$.entries[0].sources"
    write(tmp_path, "a.yml", ENTRY.format(id="x", match="vm.swappiness", namespace="none", klass="global")
          .replace("    class: global", "    class: global\n    colour: red"))
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert info.value.path == "$.entries[0]" and "colour" in info.value.message


def test_bad_gate_version_is_pinpointed(tmp_path):
    text = ENTRY.format(id="g", match="vm.swappiness", namespace="none", klass="global") + (
        "    gates:\n"
        "      - {since: '5.13', class_before: global}\n"
        "      - {since: five, class_before: global}\n")
    path = write(tmp_path, "g.yml", text)
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert (info.value.file, info.value.path) == (str(path), "$.entries[0].gates[1].since")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "broken.yml", "schema_version: 1\narea: x\nentries: [\n  - id: a\n")
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert info.value.file == str(path)
    assert info.value.path.startswith("line ")


def test_duplicates_are_errors(tmp_path):
    site_entry(tmp_path, "a.yml", id="dup", match="vm.swappiness")
    site_entry(tmp_path, "b.yml", id="dup", match="vm.page-cluster")
    with pytest.raises(KnowledgeError, match="duplicate entry id 'dup'"):
        build_knowledge([tmp_path])
    (tmp_path / "b.yml").unlink()
    site_entry(tmp_path, "b.yml", id="other", match="vm.swappiness")
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert info.value.path == "$.entries[0].match[0]" and "also listed by entry 'dup'" in info.value.message


def test_missing_extra_dir_is_an_error(tmp_path):
    clear_cache()
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_knowledge(extra_dirs=[tmp_path / "nope"])


def test_site_directory_overrides(tmp_path):
    # Same id replaces the collection's entry; a site pattern of equal specificity wins.
    site_entry(tmp_path, "a.yml", id="vm-global", match="'vm.*'", namespace="none", klass="mirror")
    site_entry(tmp_path, "b.yml", id="site-somaxconn", match="net.core.somaxconn", namespace="net",
               klass="isolated-inherited")
    kb = load_knowledge(extra_dirs=[tmp_path])
    assert kb is load_knowledge(extra_dirs=[tmp_path])
    assert kb is not load_knowledge()
    assert scope(kb, "vm.swappiness")["class"] == "mirror"
    assert scope(kb, "net.core.somaxconn")["entry"] == "site-somaxconn"
    assert scope(load_knowledge(), "vm.swappiness")["class"] == "global"


# --------------------------------------------------------------------------- matching

def test_specificity_order():
    assert specificity("net.ipv4.conf.all.forwarding") > specificity("net.ipv4.conf.all.*")
    assert specificity("net.ipv4.conf.all.*") > specificity("net.ipv4.conf.*.forwarding")
    assert specificity("net.ipv4.conf.*.forwarding") > specificity("net.ipv4.conf.*.*")
    assert specificity("net.ipv4.conf.*.*") > specificity("net.*")
    # Equal literal prefix: more literal characters win.
    assert specificity("net.ipv4.neigh.*.gc_stale_time") > specificity("net.ipv4.neigh.*.*")


@pytest.mark.parametrize("key,entry", [
    ("net.ipv4.conf.all.forwarding", "ipv4-conf-all-default"),
    ("net.ipv4.conf.default.rp_filter", "ipv4-conf-all-default"),
    ("net.ipv4.conf.eth0.forwarding", "ipv4-conf-device"),
    ("net.ipv4.conf.eth0/100.rp_filter", "ipv4-conf-device"),
    ("net.ipv4.conf.all.mc_forwarding", "ipv4-conf-mc-forwarding"),   # exact beats all.*
    ("net.ipv4.neigh.default.gc_thresh3", "ipv4-neigh-default"),
    ("net.ipv4.neigh.eth0.gc_stale_time", "ipv4-neigh-device"),
    ("net.ipv4.route.min_pmtu", "ipv4-route-per-netns"),               # exact beats route.*
    ("net.ipv4.route.gc_thresh", "ipv4-route-global"),
    ("net.netfilter.nf_conntrack_max", "nf-conntrack-max"),            # exact beats nf_conntrack_*
    ("net.netfilter.nf_conntrack_tcp_timeout_established", "nf-conntrack-per-netns"),
    ("net.nf_conntrack_max", "nf-conntrack-max-alias"),
    ("net.ipv4.tcp_notsent_lowat", "ipv4-tcp-notsent-lowat"),
    ("net.ipv4.tcp_sack", "net-fallback"),
    ("kernel.shmmax", "ipc-sysv"),                                     # exact beats kernel.*
    ("kernel.perf_event_paranoid", "kernel-global"),
    ("fs.mqueue.msg_max", "ipc-mqueue"),                               # fs.mqueue.* beats fs.*
    ("fs.inotify.max_user_watches", "fs-inotify-user-limits"),
    ("user.max_inotify_watches", "user-inotify"),
    ("user.max_net_namespaces", "user-ucounts"),
])
def test_most_specific_entry_wins(key, entry):
    assert load_knowledge().entry(key).id == entry


def test_unknown_key_has_no_entry():
    kb = load_knowledge()
    assert kb.lookup("nosuch.key") is None
    answer = scope(kb, "nosuch.key")
    assert (answer["class"], answer["namespace"], answer["entry"]) == ("global", "none", None)
    assert answer["evidence"].startswith("default:")


# --------------------------------------------------------------------------- coverage of the reference

# Every key (or a representative of every prefix) in the reference's summary table, with the class
# and namespace the sources give on the latest kernel (6.18).
REFERENCE = [
    ("net.core.somaxconn", "isolated", "net"),
    ("net.netfilter.nf_conntrack_max", "mirror", "none"),
    ("net.netfilter.nf_conntrack_expect_max", "mirror", "none"),
    ("net.netfilter.nf_conntrack_buckets", "mirror", "none"),
    ("net.nf_conntrack_max", "host-only", "none"),
    ("net.netfilter.nf_conntrack_count", "isolated", "net"),
    ("net.netfilter.nf_conntrack_tcp_timeout_established", "isolated", "net"),
    ("net.netfilter.nf_conntrack_udp_timeout", "isolated", "net"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "isolated", "net"),
    ("net.netfilter.nf_hooks_lwtunnel", "leaking", "none"),
    ("net.netfilter.nf_log_all_netns", "host-only", "none"),
    ("net.core.rmem_default", "mirror", "none"),
    ("net.core.wmem_max", "mirror", "none"),
    ("net.core.optmem_max", "isolated", "net"),
    ("net.core.xfrm_acq_expires", "isolated", "net"),
    ("net.core.netdev_max_backlog", "host-only", "none"),
    ("net.core.netdev_budget_usecs", "host-only", "none"),
    ("net.core.default_qdisc", "host-only", "none"),
    ("net.core.bpf_jit_enable", "host-only", "none"),
    ("net.core.devconf_inherit_init_net", "host-only", "none"),
    ("net.ipv4.tcp_mem", "host-only", "none"),
    ("net.ipv4.udp_mem", "host-only", "none"),
    ("net.ipv4.tcp_max_orphans", "host-only", "none"),
    ("net.ipv4.inet_peer_threshold", "host-only", "none"),
    ("net.ipv4.cipso_cache_enable", "host-only", "none"),
    ("net.ipv4.route.max_size", "host-only", "none"),
    ("net.ipv4.neigh.default.gc_thresh1", "host-only", "none"),
    ("net.ipv6.neigh.default.gc_thresh3", "host-only", "none"),
    ("net.ipv6.mld_max_msf", "host-only", "none"),
    ("net.ipv6.calipso_cache_enable", "host-only", "none"),
    ("net.ipv4.tcp_allowed_congestion_control", "mirror", "none"),
    ("net.ipv4.tcp_available_congestion_control", "mirror", "none"),
    ("net.ipv4.tcp_congestion_control", "isolated-inherited", "net"),
    ("net.ipv4.tcp_rmem", "isolated-inherited", "net"),
    ("net.ipv4.tcp_wmem", "isolated-inherited", "net"),
    ("net.ipv4.ip_local_port_range", "isolated", "net"),
    ("net.ipv4.ip_local_reserved_ports", "isolated", "net"),
    ("net.ipv4.tcp_keepalive_intvl", "isolated", "net"),
    ("net.ipv4.tcp_fin_timeout", "isolated", "net"),
    ("net.ipv4.tcp_syncookies", "isolated", "net"),
    ("net.ipv4.ping_group_range", "isolated", "net"),
    ("net.ipv4.ip_unprivileged_port_start", "isolated", "net"),
    ("net.ipv4.tcp_max_syn_backlog", "isolated", "net"),
    ("net.ipv4.tcp_tw_reuse", "isolated", "net"),
    ("net.ipv4.ip_forward", "isolated-inherited", "net"),
    ("net.ipv4.conf.all.forwarding", "isolated-inherited", "net"),
    ("net.ipv6.conf.all.disable_ipv6", "isolated", "net"),
    ("net.ipv4.conf.eth0.rp_filter", "isolated", "net"),
    ("net.unix.max_dgram_qlen", "isolated", "net"),
    ("kernel.shmmax", "isolated", "ipc"),
    ("kernel.shm_rmid_forced", "isolated", "ipc"),
    ("kernel.msgmnb", "isolated", "ipc"),
    ("kernel.sem", "isolated", "ipc"),
    ("kernel.msg_next_id", "isolated", "ipc"),
    ("fs.mqueue.queues_max", "isolated", "ipc"),
    ("kernel.hostname", "isolated-inherited", "uts"),
    ("kernel.domainname", "isolated-inherited", "uts"),
    ("user.max_user_namespaces", "isolated", "user"),
    ("user.max_time_namespaces", "isolated", "user"),
    ("user.max_inotify_instances", "isolated", "user"),
    ("user.max_fanotify_marks", "isolated", "user"),
    ("fs.inotify.max_user_instances", "global", "none"),
    ("fs.inotify.max_queued_events", "global", "none"),
    ("kernel.pid_max", "isolated", "pid"),
    ("kernel.ns_last_pid", "isolated", "pid"),
    ("fs.mount-max", "global", "none"),
    ("vm.max_map_count", "global", "none"),
    ("vm.overcommit_memory", "global", "none"),
    ("vm.swappiness", "global", "none"),
    ("fs.file-max", "global", "none"),
    ("fs.nr_open", "global", "none"),
    ("kernel.threads-max", "global", "none"),
    ("kernel.keys.maxkeys", "global", "none"),
    ("kernel.perf_event_paranoid", "global", "none"),
]


@pytest.mark.parametrize("key,klass,namespace", REFERENCE)
def test_reference_coverage(key, klass, namespace):
    answer = scope(load_knowledge(), key)
    assert (answer["class"], answer["namespace"]) == (klass, namespace), answer["evidence"]
    assert answer["entry"] is not None and answer["sources"]


def test_notes_carry_the_semantics_people_get_wrong():
    kb = load_knowledge()
    conntrack = kb.entry("net.netfilter.nf_conntrack_max").notes
    assert "each network namespace's OWN count" in conntrack and "hash table" in conntrack
    assert "counted per mount namespace" in kb.entry("fs.mount-max").notes
    assert "gc_thresh" in kb.entry("net.ipv4.neigh.default.gc_thresh1").notes
    assert "initial user namespace" in kb.entry("fs.inotify.max_user_watches").notes


def test_empty_or_non_mapping_file(tmp_path):
    path = write(tmp_path, "empty.yml", "")
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert (info.value.file, info.value.path) == (str(path), "$") and "not of type 'object'" in info.value.message
    path.write_text("- just\n- a list\n")
    with pytest.raises(KnowledgeError) as info:
        build_knowledge([tmp_path])
    assert info.value.path == "$"
