"""A container whose /proc/sys is writable (issue 7, part 3), through the real kernel.

Real namespace sets with their own mount namespace build the mount shapes runtimes and tenants
make (runc's read-only bind, a privileged rw /proc, a ro /proc with a rw /proc/sys bind, /proc/sys
bound twice, a second procfs or a rw bind elsewhere, one hidden under a tmpfs) and then drop
every capability, so that the mounts are the only thing that differs. Inside, each set writes
its *own* network namespace's ``net.core.somaxconn`` at every place the tree shows: that write is
the ground truth. A real ``ansible-playbook`` run gathers the facts and evaluates the rules;
``privileges.proc_sys_rw`` must equal the ground truth, and NSG006 must fire exactly for the
writable ones.

The user-namespace cases measure what root of a non-initial user namespace writes among the
host's global keys: the write puts back the value the key already holds, under the host sysctl
lock, and the value is checked unchanged afterwards.
"""
from __future__ import annotations

import fcntl
import json
import subprocess

import pytest

from tests.ansible_run import run_playbook, write_playbook
from tests.integration.nsfixtures import spawn_set
from tests.integration.test_audit_support import HostSysctls, read_sysctl

pytestmark = pytest.mark.root

RO_BIND = "mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys"
SHAPES = {
    # name: (mount commands, paths where the tree shows, where it is writable)
    "runc-ro-bind": (RO_BIND, ["/proc/sys"], []),
    "privileged-rw-proc": (":", ["/proc/sys"], ["/proc/sys"]),
    "ro-proc-rw-sys-bind": ("mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc",
                            ["/proc/sys"], ["/proc/sys"]),
    "twice-ro-then-rw": (RO_BIND + "; mount --bind /proc/sys /proc/sys; mount -o remount,bind,rw /proc/sys",
                         ["/proc/sys"], ["/proc/sys"]),
    "twice-rw-then-ro": ("mount --bind /proc/sys /proc/sys; " + RO_BIND, ["/proc/sys"], []),
    "procfs-elsewhere": (RO_BIND + "; mkdir -p {d}/p; mount -t proc proc {d}/p", ["/proc/sys", "{d}/p/sys"],
                         ["{d}/p/sys"]),
    "rw-bind-elsewhere": ("mkdir -p {d}/s; mount --bind /proc/sys {d}/s; " + RO_BIND, ["/proc/sys", "{d}/s"],
                          ["{d}/s"]),
    "procfs-hidden": (RO_BIND + "; mkdir -p {d}/h/p; mount -t proc proc {d}/h/p; mount -t tmpfs t {d}/h",
                      ["/proc/sys", "{d}/h/p/sys"], []),
    "ro-superblock": ("mount -o remount,ro /proc", ["/proc/sys"], []),
}
# Ground truth: try the set's own somaxconn at each place; "ok" or "fail" per path.
TRY = ('try() {{ if [ -e "$1/net/core/somaxconn" ] && echo 1234 > "$1/net/core/somaxconn" 2>/dev/null; '
       'then echo "$1 ok" >> {out}; else echo "$1 fail" >> {out}; fi; }}\n')
NO_CAPS = "setpriv --bounding-set=-all --inh-caps=-all"
# Keys written back with their own value from inside a user namespace.
GLOBAL_KEYS = ["vm.max_map_count", "fs.file-max", "kernel.shmmax", "kernel.kptr_restrict", "kernel.dmesg_restrict"]


def _ground_truth(path):
    out = {}
    for line in path.read_text().splitlines():
        where, verdict = line.rsplit(" ", 1)
        out[where] = verdict == "ok"
    return out


def _gather_and_lint(tmp_path):
    facts_out, findings_out = tmp_path / "facts.json", tmp_path / "findings.json"
    book = write_playbook(tmp_path / "audit.yml", [
        {"name": "gather", "nsguard.sysctl.sysctl_facts": {"probe": False, "runtime_cli": False}},
        {"name": "lint", "nsguard.sysctl.sysctl_lint": {"fail_on": "never"}, "register": "lint"},
        {"name": "save facts", "ansible.builtin.copy": {
            "content": "{{ ansible_facts.nsguard_sysctl | to_json }}", "dest": str(facts_out)}},
        {"name": "save findings", "ansible.builtin.copy": {
            "content": "{{ lint.findings | to_json }}", "dest": str(findings_out)}},
    ])
    run_playbook(book, check=True)
    return json.loads(facts_out.read_text()), json.loads(findings_out.read_text())


def _set_of(facts, made):
    return next(s for s in facts["namespace_sets"] if s["ns"]["net"] == made.ns["net"])


def _nsg006(findings, ns_set):
    return [f for f in findings if f["rule"] == "NSG006" and f["set_id"] == ns_set["id"]]


def test_proc_sys_rw_follows_the_real_mounts_and_nsg006_fires_only_for_writable(tmp_path):
    made = {}
    try:
        for name, (commands, shows, dummy) in SHAPES.items():
            work = tmp_path / name
            work.mkdir()
            out = work / "truth"
            script = (TRY.format(out=out) + commands.format(d=work) + "\n"
                      + "".join('try "%s"\n' % p.format(d=work) for p in shows)
                      + 'echo ready $$\nexec %s sleep 600\n' % NO_CAPS)
            made[name] = (spawn_set(script, flags=("-m", "-n", "-p", "-f", "--mount-proc")), work)
        facts, findings = _gather_and_lint(tmp_path)
    finally:
        for ns_set, dummy in made.values():
            ns_set.kill()

    for name, (ns_set, work) in made.items():
        shows, writable = SHAPES[name][1], [p.format(d=work) for p in SHAPES[name][2]]
        truth = _ground_truth(work / "truth")
        # The ground truth first: the kernel agrees with the shape's intent.
        assert sorted(p for p, ok in truth.items() if ok) == sorted(writable), (name, truth)
        assert len(truth) == len(shows)
        got = _set_of(facts, ns_set)
        priv = got["privileges"]
        assert priv["capabilities"] == [] and priv["privileged"] is False, name
        assert priv["proc_sys_rw"] is bool(writable), (name, priv)
        assert priv["proc_sys_rw_paths"] == writable, (name, priv)
        fired = _nsg006(findings, got)
        if writable:
            assert len(fired) == 1 and fired[0]["severity"] == "error", (name, fired)
            assert "/proc/sys mounted read-write" in fired[0]["details"]["signals"]
            assert "vm.max_map_count" in fired[0]["details"]["exposed_keys"]
        else:
            assert fired == [], (name, fired)


# Write each key's own value back; one "KEY ok|fail" line each.
USERNS_WRITE = ('for k in {keys}; do f=/proc/sys/$(echo $k | tr . /); '
                'if v=$(cat $f 2>/dev/null) && printf "%s\\n" "$v" > $f 2>/dev/null; then echo "$k ok"; '
                'else echo "$k fail"; fi; done')


def test_root_mapped_to_host_root_writes_host_globals(tmp_path):
    """``unshare -U -r`` run by root: uid 0 inside is uid 0 on the host. Measured: it writes
    vm.max_map_count, fs.file-max and (sharing the host's ipc namespace) kernel.shmmax through
    the host's rw /proc/sys without any capability in the host's user namespace; only handlers
    that call capable() refuse (kptr_restrict, dmesg_restrict). A map to another host uid
    writes none of them. Locked mounts: with /proc/sys bound read-only before the user
    namespace was made, its CAP_SYS_ADMIN cannot remount it, mount a procfs or unmount the bind."""
    host = HostSysctls()
    for key in GLOBAL_KEYS:
        host.track(key)
    mapped, locked = tmp_path / "mapped", tmp_path / "locked"
    mapped.mkdir()
    locked.mkdir()
    write_all = USERNS_WRITE.format(keys=" ".join(GLOBAL_KEYS))
    made = []
    try:
        with open(HostSysctls.LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            made.append(spawn_set("(%s) > %s/truth" % (write_all, mapped), flags=("-U", "-r", "-n")))
            # inside 0..65535 -> host 100000..: no subuid ranges here, so the map is written from
            # outside and the writer enters only the user namespace as its uid 0 (host 100000).
            made.append(spawn_set("", flags=("-U", "-n")))
            pid = made[-1].inner_pid
            for name, text in (("uid_map", "0 100000 65536"), ("setgroups", "deny"), ("gid_map", "0 100000 65536")):
                with open("/proc/%d/%s" % (pid, name), "w") as handle:
                    handle.write(text)
            other = subprocess.run(["nsenter", "-U", "-t", str(pid), "-S", "0", "-G", "0", "sh", "-c", write_all],
                                   capture_output=True, text=True, timeout=30, check=True).stdout
        locked_script = (
            RO_BIND + "\n"
            f"exec unshare -U -r -m -n sh -c '"
            f"mount -o remount,bind,rw /proc/sys 2>/dev/null && echo remount >> {locked}/truth; "
            f"mkdir -p {locked}/p; mount -t proc proc {locked}/p 2>/dev/null && echo procfs >> {locked}/truth; "
            f"umount /proc/sys 2>/dev/null && echo umount >> {locked}/truth; "
            f"echo done >> {locked}/truth; echo ready; exec sleep 600'\n")
        made.append(spawn_set(locked_script, flags=("-m", "-p", "-f", "--mount-proc")))
        facts, findings = _gather_and_lint(tmp_path)
    finally:
        for ns_set in made:
            ns_set.kill()
        problems = host.restore()
    assert problems == [], problems
    assert all(read_sysctl(k) == host.changed.get(k, (read_sysctl(k),))[0] for k in GLOBAL_KEYS)

    truth = _ground_truth(mapped / "truth")
    assert truth == {"vm.max_map_count": True, "fs.file-max": True, "kernel.shmmax": True,
                     "kernel.kptr_restrict": False, "kernel.dmesg_restrict": False}, truth
    assert all(line.endswith(" fail") for line in other.split("\n") if line) and len(other.split()) == 10, other
    other_set = _set_of(facts, made[1])
    assert other_set["privileges"]["uid_map"] == [[0, 100000, 65536]]
    assert other_set["privileges"]["root_is_host_root"] is False
    assert _nsg006(findings, other_set) == []
    mapped_set = _set_of(facts, made[0])
    priv = mapped_set["privileges"]
    assert priv["userns_is_host"] is False and priv["root_is_host_root"] is True
    assert priv["uid_map"] == [[0, 0, 1]] and priv["gid_map"] == [[0, 0, 1]] and priv["euid"] == 0
    assert priv["proc_sys_rw"] is True  # the host's own /proc (no mount namespace of its own)
    fired = _nsg006(findings, mapped_set)
    assert len(fired) == 1 and fired[0]["severity"] == "error", fired
    assert "uid_map 0 -> 0" in fired[0]["message"]

    assert (locked / "truth").read_text().split() == ["done"], "a locked read-only /proc/sys was made writable"
    locked_set = _set_of(facts, made[2])
    assert locked_set["privileges"]["root_is_host_root"] is True
    assert locked_set["privileges"]["proc_sys_rw"] is False
    assert _nsg006(findings, locked_set) == []
