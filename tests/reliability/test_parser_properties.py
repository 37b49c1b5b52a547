"""Property and fuzz tests of every target-side parser (issue 7, part 1).

Everything these parsers read is written by someone else: the kernel (formatting names that
tenants choose: interface names, comm, mount points), container runtimes, and whoever edits
sysctl.d. Each property below either checks a parser against a small model on generated
well-formed input, or feeds it garbage and checks that it fails only in the documented way
(``ValueError`` the caller turns into an error naming the file), and that what it returns can
be serialised as UTF-8 JSON (Ansible refuses a module result that cannot).

Budget: ~60 examples per property, the whole file in well under 30 s.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan, persisted, procinfo, procsys
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtimes import RuntimeIndex

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
FAST = hypothesis.settings(max_examples=60, deadline=None,
                           suppress_health_check=[hypothesis.HealthCheck.too_slow])


def assert_json_safe(obj) -> None:
    """What Ansible does with a module result: UTF-8 JSON, lone surrogates refused."""
    json.dumps(obj, ensure_ascii=False).encode("utf-8")


# --- strategies ------------------------------------------------------------------------------

# Bytes a file name in /proc/sys may hold: interface names allow everything but '/', ':',
# whitespace and NUL (dev_valid_name), high bytes included.
NAME_BYTES = st.binary(min_size=1, max_size=15).filter(
    lambda b: b not in (b".", b"..") and not any(c in b for c in b"/\0:\t\n\r\x0b\x0c "))
JSON_SCALARS = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
SYSCTL_KEY = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8),
                      min_size=2, max_size=4).map(".".join)
SYSCTL_VALUE = st.text(alphabet="abc 0123456789\t-_", max_size=20).map(str.strip).filter(bool)


# --- /proc/sys values and trees --------------------------------------------------------------

@FAST
@hypothesis.given(st.binary(max_size=300))
def test_format_value_is_sysctl_n_and_json_safe(raw):
    text = procsys.format_value(raw)
    assert_json_safe(text)
    body = raw[:-1] if raw.endswith(b"\n") else raw
    # Only the one trailing newline goes; tabs, inner newlines and bytes are kept (escaped).
    assert text.encode("utf-8", "surrogateescape").count(b"\t") == body.count(b"\t")
    if not any(b >= 0x80 for b in body) and b"\\" not in body:
        assert text == body.decode("ascii")


VALUE_BYTES = st.one_of(
    st.lists(st.integers(0, 2**32), min_size=1, max_size=4).map(lambda v: "\t".join(map(str, v)).encode() + b"\n"),
    st.just(b""), st.just(b"\n"),
    st.binary(max_size=64),
    st.sampled_from([65535, 65536, 65537, 131072, 200000]).map(lambda n: b"7" * n + b"\n"),
)


@FAST
@hypothesis.given(st.dictionaries(st.tuples(st.sampled_from(["net", "kernel", "vm"]), NAME_BYTES, NAME_BYTES),
                                  VALUE_BYTES, min_size=1, max_size=6),
                  st.sampled_from([0o644, 0o444, 0o200, 0o600]))
def test_read_tree_reads_every_generated_file(files, odd_mode):
    with tempfile.TemporaryDirectory() as tmp:
        root = os.fsencode(tmp)
        expected = {}
        first = True
        for (top, mid, leaf), content in files.items():
            directory = os.path.join(root, top.encode(), mid)
            path = os.path.join(directory, leaf)
            if os.path.isdir(path) or os.path.isfile(directory):
                continue  # a generated name collides with another file's directory
            os.makedirs(directory, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
            mode = odd_mode if first else 0o644
            os.chmod(path, mode)
            first = False
            expected[path] = (content, mode)
        keys, unreadable = procsys.read_tree(tmp)
        assert_json_safe({"keys": keys, "unreadable": unreadable})
        assert len(keys) + len(unreadable) == len(expected)  # nothing lost, nothing invented
        values = sorted(v["value"] for v in keys.values())
        readable = sorted(procsys.format_value(c) for c, m in expected.values() if m & 0o444)
        assert values == readable
        assert sorted(v["reason"] for v in unreadable.values()) == ["write-only"] * (len(expected) - len(readable))


@FAST
@hypothesis.given(st.sampled_from(["net", "kernel", "fs"]),
                  st.lists(st.text(alphabet="abc._-019", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
                           min_size=1, max_size=4))
def test_key_names_round_trip(top, parts):
    rel = "/".join([top] + parts)
    assert procsys.key_to_path(procsys.path_to_key(rel), "/r") == "/r/" + rel


# --- /proc/PID/stat --------------------------------------------------------------------------

COMM = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=15)


@FAST
@hypothesis.given(COMM, st.integers(1, 2**22), st.sampled_from("RSDZTtXI"), st.integers(0, 2**22),
                  st.integers(0, 2**62))
def test_parse_stat_recovers_hostile_comm(comm, pid, state, ppid, starttime):
    middle = " ".join(["0"] * 17)
    text = "%d (%s) %s %d %s %d 0 0 0\n" % (pid, comm, state, ppid, middle, starttime)
    parsed = nsscan.parse_stat(text)
    assert (parsed["comm"], parsed["state"], parsed["ppid"], parsed["starttime"]) == (comm, state, ppid, starttime)


@FAST
@hypothesis.given(st.text(max_size=200))
def test_parse_stat_fails_only_as_callers_expect(text):
    try:
        nsscan.parse_stat(text)
    except (ValueError, IndexError):
        pass  # every caller catches these and skips the process


def test_read_stat_of_a_non_utf8_comm(tmp_path):
    """A process can name itself with any byte but NUL (prctl, or the name of the file it
    executes); /proc/PID/stat prints it raw. The scan must still see the process."""
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_bytes(b"42 (sl\xffp) S 1 42 42 0 -1 0 " + b"0 " * 12 + b"777 0\n")
    parsed = nsscan.read_stat(42, str(tmp_path))
    assert parsed["starttime"] == 777 and parsed["comm"] == "sl\\xffp"
    assert_json_safe(parsed)


# --- mountinfo -------------------------------------------------------------------------------

MOUNT_PATH = st.lists(st.text(st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)),
                              min_size=1, max_size=10), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))


def kernel_escape(path: str) -> str:
    """show_mountinfo's mangle(): space, tab, newline and backslash as octal."""
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in path)


MOUNTS = st.lists(st.tuples(MOUNT_PATH, st.sampled_from(["proc", "nsfs", "tmpfs", "overlay"]),
                            st.sampled_from(["rw", "ro"]), st.integers(4026531840, 4026599999)), min_size=1, max_size=6)


def mountinfo_text(mounts) -> str:
    lines = []
    for number, (point, fstype, opt, inode) in enumerate(mounts, 20):
        root = "net:[%d]" % inode if fstype == "nsfs" else "/"
        lines.append("%d 1 0:%d %s %s %s,nosuid shared:1 - %s %s rw" % (
            number, number, root, kernel_escape(point), opt, fstype, fstype))
    return "\n".join(lines) + "\n"


@FAST
@hypothesis.given(MOUNTS)
def test_nsfs_mountinfo_parser_recovers_every_mount(mounts):
    want = {}
    for point, fstype, _opt, inode in mounts:
        if fstype == "nsfs":
            want.setdefault(("net", inode), []).append(point)
    assert nsscan.parse_mountinfo_nsfs(mountinfo_text(mounts)) == want


@FAST
@hypothesis.given(MOUNTS)
@hypothesis.example([("/\x1f", "proc", "rw", 4026531840)])
def test_procinfo_mountinfo_parser_recovers_every_mount(mounts):
    parsed = procinfo.parse_mountinfo(mountinfo_text(mounts))
    assert [m["mount_point"] for m in parsed] == [m[0] for m in mounts]
    assert [m["fstype"] for m in parsed] == [m[1] for m in mounts]
    assert [m["options"][0] for m in parsed] == [m[2] for m in mounts]


@FAST
@hypothesis.given(st.lists(st.text(alphabet="0123456789 \\-/:[]nsfsproc\n\x00\xff", max_size=60), max_size=8))
def test_mountinfo_parsers_never_raise_on_garbage(lines):
    text = "\n".join(lines)
    # Shaped like nsfs lines, with escapes the kernel would never write (\\9xx, \\18).
    text += "\n" + "\n".join("1 2 0:4 net:[4026531840] %s rw - nsfs nsfs rw" % line.replace(" ", "")
                             for line in lines if line.strip())
    assert_json_safe(procinfo.parse_mountinfo(text))
    nsscan.parse_mountinfo_nsfs(text)
    procinfo.proc_sys_access(procinfo.parse_mountinfo(text))


def test_nsfs_mount_with_invalid_octal_escape():
    text = "30 1 0:4 net:[4026532000] /run/netns/a\\999b rw - nsfs nsfs rw\n"
    assert list(nsscan.parse_mountinfo_nsfs(text)) == [("net", 4026532000)]


def test_nsfs_mounts_with_non_utf8_mount_point(tmp_path):
    """The host's mountinfo may hold any byte in a mount point (propagated from a container
    with a shared mount); the module reads it as bytes and never dies on it."""
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_bytes(
        b"30 1 0:4 net:[4026532000] /run/netns/n\xff rw - nsfs nsfs rw\n"
        b"31 1 0:5 / /mnt/\xfe\\040x rw - tmpfs tmpfs rw\n")
    mounts = nsscan.nsfs_mounts(str(tmp_path))
    (point,) = mounts[("net", 4026532000)]
    assert os.fsencode(point) == b"/run/netns/n\xff"  # still a path the kernel can open


# --- cgroup paths of every runtime, capabilities ---------------------------------------------

CGROUP_FORMS = {
    "docker": ["/system.slice/docker-{id}.scope", "/docker/{id}"],
    "podman": ["/machine.slice/libpod-{id}.scope", "/libpod_parent/libpod-{id}",
               "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{id}.scope/container"],
    "cri-o": ["/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-{id}.scope"],
    "containerd": ["/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{id}.scope"],
    None: ["/kubepods/burstable/pod{uid}/{id}"],
}
UID = st.uuids().map(str)


@FAST
@hypothesis.given(st.sampled_from(sorted(CGROUP_FORMS, key=str)), st.data(), HEX64, UID,
                  st.sampled_from(["", "/init.scope", "/sub"]))
def test_cgroup_paths_of_every_runtime(runtime, data, cid, uid, suffix):
    form = data.draw(st.sampled_from(CGROUP_FORMS[runtime]))
    path = form.format(id=cid, uid=uid, uid_=uid.replace("-", "_")) + (suffix if runtime else "")
    v1 = "12:pids:%s\n4:memory:%s\n0::%s\n" % (path, path, path)
    paths = procinfo.cgroup_paths(procinfo.parse_cgroup(v1))
    assert paths == [path]
    hints = rp.cgroup_hints(paths)
    assert [(h["runtime"], h["id"]) for h in hints] == [(runtime, cid)]
    if "kubepods" in form:
        assert hints[0]["pod_uid"] == uid


@FAST
@hypothesis.given(st.sampled_from(["lxc.payload.{n}", "lxc.payload/{n}", "lxc/{n}", "machine.slice/machine-{n}.scope"]),
                  st.text(alphabet="abcdefgh-_0123", min_size=1, max_size=12))
def test_cgroup_names_of_lxc_and_nspawn(form, name):
    hints = rp.cgroup_hints(["/" + form.format(n=name)])
    assert hints and hints[0]["name"] == name


@FAST
@hypothesis.given(st.text(max_size=300))
def test_cgroup_text_never_raises(text):
    assert_json_safe(rp.cgroup_hints(procinfo.cgroup_paths(procinfo.parse_cgroup(text))))


@FAST
@hypothesis.given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), COMM)
def test_capabilities_from_status(cap_eff, bounding, name):
    status = "Name:\t%s\nUmask:\t0022\nCapInh:\t0000000000000000\nCapEff:\t%016x\nCapBnd:\t%016x\n" % (
        name.replace("\n", "\\n"), cap_eff, bounding)
    out = procinfo.privileges_from_text(status, None, bounding)
    assert int(out["cap_eff"], 16) == cap_eff
    assert len(out["capabilities"]) == bin(cap_eff).count("1")
    assert out["privileged"] == (bounding != 0 and cap_eff & bounding == bounding)


@FAST
@hypothesis.given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=200)))
def test_privileges_from_garbage_fail_only_with_value_error(status, mountinfo):
    try:
        assert_json_safe(procinfo.privileges_from_text(status, mountinfo, 0x1ff))
    except ValueError:
        pass  # read_privileges' caller records it for the set


# --- OCI config.json, inspect JSON, runc state, containers.json, LXC config ------------------

OCI_SHAPED = st.fixed_dictionaries({}, optional={
    "linux": st.fixed_dictionaries({}, optional={"sysctl": JSON_VALUES, "namespaces": JSON_VALUES,
                                                 "cgroupsPath": JSON_VALUES}) | JSON_VALUES,
    "annotations": JSON_VALUES | st.dictionaries(st.sampled_from(
        ["io.container.manager", "io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType",
         "io.kubernetes.cri-o.Labels", "org.opencontainers.image.ref.name"]), JSON_VALUES),
    "hostname": JSON_VALUES,
})
DOCKER_SHAPED = st.fixed_dictionaries({}, optional={
    "ID": JSON_VALUES | HEX64, "Id": JSON_VALUES, "Name": JSON_VALUES, "Image": JSON_VALUES,
    "Config": JSON_VALUES, "State": st.fixed_dictionaries({}, optional={"Pid": JSON_VALUES, "Running": JSON_VALUES}),
    "HostConfig": st.fixed_dictionaries({}, optional={"Sysctls": JSON_VALUES, "NetworkMode": JSON_VALUES,
                                                      "Privileged": JSON_VALUES}),
    "NetworkSettings": JSON_VALUES, "Pod": JSON_VALUES, "ImageName": JSON_VALUES,
})
RUNC_SHAPED = st.fixed_dictionaries({}, optional={
    "id": JSON_VALUES | st.text(max_size=10), "init_process_pid": JSON_VALUES, "init_process_start": JSON_VALUES,
    "config": st.fixed_dictionaries({}, optional={"labels": JSON_VALUES | st.lists(st.text(max_size=20)),
                                                  "sysctl": JSON_VALUES, "namespaces": JSON_VALUES}),
})


def only_value_error(parser, doc):
    try:
        out = parser(doc)
    except ValueError as exc:
        assert str(exc)  # a message the index puts next to the file name
        return None
    assert_json_safe(out)
    return out


@FAST
@hypothesis.given(JSON_VALUES | OCI_SHAPED)
def test_oci_config_parser(doc):
    out = only_value_error(rp.parse_oci_config, doc)
    if out is not None:
        assert all(isinstance(v, str) for v in out["requested"].values())


@FAST
@hypothesis.given(JSON_VALUES | DOCKER_SHAPED)
def test_inspect_json_parsers(doc):
    only_value_error(rp.parse_podman_inspect, doc)
    only_value_error(rp.parse_storage_containers, [doc, {"id": "x", "metadata": json.dumps(doc)}])
    only_value_error(rp.parse_storage_containers, doc)


@FAST
@hypothesis.given(JSON_VALUES | DOCKER_SHAPED, JSON_VALUES)
@hypothesis.example({"ID": "c" * 64, "Name": True}, None)
def test_docker_json_parser(doc, hostconfig):
    only_value_error(rp.parse_docker_container, doc)
    only_value_error(lambda d: rp.parse_docker_container(d, hostconfig), doc)


@FAST
@hypothesis.given(JSON_VALUES | RUNC_SHAPED)
def test_runc_state_parser(doc):
    only_value_error(rp.parse_runc_state, doc)


@FAST
@hypothesis.given(st.lists(st.tuples(SYSCTL_KEY, SYSCTL_VALUE), max_size=8),
                  st.lists(st.sampled_from(["# comment = x", "", "   ", "lxc.uts.name = h", "lxc.net.0.type = veth",
                                            "garbage line"]), max_size=4),
                  st.sampled_from(["{k} = {v}", "{k}={v}", "  {k}  =  '{v}'", '{k} = "{v}"']))
def test_lxc_config_sysctls_later_line_wins(pairs, noise, form):
    lines = list(noise)
    model = {}
    for key, value in pairs:
        lines.append(form.format(k="lxc.sysctl." + key, v=value))
        model[key] = value
    out = rp.parse_lxc_config("\n".join(lines))
    assert out["requested"] == model
    assert_json_safe(out)


# --- malformed runtime files through the index: an error naming the file --------------------

@FAST
@hypothesis.given(st.sampled_from(["docker", "runc", "bundle", "lxc", "storage"]),
                  st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_malformed_runtime_file_is_an_error_naming_it(kind, content):
    cid = "c" * 64
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rel = {
            "docker": "var/lib/docker/containers/%s/config.v2.json" % cid,
            "runc": "run/runc/%s/state.json" % cid,
            "bundle": "run/containerd/io.containerd.runtime.v2.task/k8s.io/%s/config.json" % cid,
            "lxc": "var/lib/lxc/web/config",
            "storage": "var/lib/containers/storage/overlay-containers/containers.json",
        }[kind]
        (root / rel).parent.mkdir(parents=True)
        (root / rel).write_bytes(content)
        (root / "proc").mkdir()
        index = RuntimeIndex(use_cli=False, root=tmp, proc=str(root / "proc"), discover=False)
        result = index.identify(pids=[], init_pid=None, ns={})
        errors = index.unreported_errors() + result["errors"]
        assert_json_safe(errors)
        for error in errors:
            assert "/" + rel in error["message"], error


# --- sysctl.d --------------------------------------------------------------------------------

LINE = st.one_of(
    st.tuples(st.just("assign"), st.booleans(), SYSCTL_KEY, SYSCTL_VALUE,
              st.sampled_from(["{k}={v}", "{k} = {v}", "  {k}\t=  {v}  ", "{slash} = {v}"])),
    st.tuples(st.just("comment"), st.sampled_from(["# x = 1", "; y = 2", "", "   "])),
    st.tuples(st.just("bad"), st.sampled_from(["no equals sign", "= 5", "- = 1"])),
)


def render(line) -> tuple:
    """(text, model key, value, ignore_errors, is_error)."""
    if line[0] == "assign":
        _k, dash, key, value, form = line
        text = form.format(k=key, v=value, slash=key.replace(".", "/"))
        return ("-" if dash else "") + text, key, value, dash, False
    if line[0] == "comment":
        return line[1], None, None, None, False
    return line[1], None, None, None, True


@FAST
@hypothesis.given(st.lists(st.lists(LINE, max_size=6), min_size=1, max_size=4),
                  st.lists(st.integers(0, 3), min_size=1, max_size=4), st.binary(max_size=80))
def test_sysctl_d_order_masking_duplicates_and_bad_lines(files, dir_of, garbage):
    """Files spread over two directories (a name in the first masks the second), applied in
    file-name order, a later assignment winning; bad lines are errors with file and line."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp, "etc"), Path(tmp, "usr")]
        for d in dirs:
            d.mkdir()
        chosen = {}
        for number, lines in enumerate(files):
            name = "%02d-gen.conf" % (number % 3)
            directory = dirs[dir_of[number % len(dir_of)] % 2]
            rendered = [render(line) for line in lines]
            path = directory / name
            path.write_text("\n".join(r[0] for r in rendered) + "\n")
            if name not in chosen or directory == dirs[0] or chosen[name][0].parent == directory:
                chosen[name] = (path, rendered)
        (dirs[1] / "99-garbage.conf").write_bytes(garbage)
        model, bad = {}, []
        for name in sorted(chosen):
            path, rendered = chosen[name]
            for number, (text, key, value, dash, is_error) in enumerate(rendered, 1):
                if key:
                    model[key] = {"value": value, "file": str(path), "line": number, "ignore_errors": dash}
                elif is_error:
                    bad.append((str(path), number))
        got = persisted.read_persisted(tuple(str(d) for d in dirs), None, ())
        assert_json_safe(got)
        assert got["files"][:len(chosen)] == [str(chosen[n][0]) for n in sorted(chosen)]
        garbage_file = str(dirs[1] / "99-garbage.conf")
        keys = {k: v for k, v in got["keys"].items() if v["file"] != garbage_file}
        assert keys == model
        errors = [(e["file"], e["line"]) for e in got["errors"] if e["file"] != garbage_file]
        assert errors == bad
        for error in got["errors"]:
            assert error["file"] in error["message"]


def systemd_resolve(lines, host_keys):
    """sysctl.d(5) as systemd-sysctl applies it: explicit keys (assignments and ``-key``
    exclusions) are never written by a glob, whatever the order; otherwise the last line wins."""
    import fnmatch
    explicit = {}
    for key, value in lines:
        if not any(c in key for c in "*?["):
            explicit[key] = value
    out = {k: v for k, v in explicit.items() if v is not None}
    for key, value in lines:
        if any(c in key for c in "*?["):
            for name in host_keys:
                if name not in explicit and fnmatch.fnmatchcase(name, key):
                    out[name] = value
    return out


@FAST
@hypothesis.given(st.lists(SYSCTL_KEY, min_size=1, max_size=6, unique=True), st.data())
def test_sysctl_d_explicit_keys_beat_globs_in_any_order(host_keys, data):
    globs = ["*", host_keys[0].split(".")[0] + ".*"]
    lines = data.draw(st.lists(st.tuples(st.sampled_from(globs + host_keys), st.sampled_from(["1", "2", "3"])),
                               min_size=1, max_size=6))
    text = "".join("%s = %s\n" % line for line in lines)
    assignments, errors = persisted.parse_sysctl_text(text, "/etc/sysctl.d/g.conf")
    assert errors == []
    got = {k: v["value"] for k, v in persisted.resolve(assignments, host_keys).items()}
    assert got == systemd_resolve(lines, host_keys)


def test_sysctl_d_dash_key_without_value_excludes_it_from_globs():
    host_keys = ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.hub0.rp_filter", "net.ipv4.conf.lo.rp_filter"]
    text = "net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\nnet.ipv4.conf.hub0.rp_filter = 1\n"
    assignments, errors = persisted.parse_sysctl_text(text, "/etc/sysctl.d/50-rp.conf")
    got = {k: v["value"] for k, v in persisted.resolve(assignments, host_keys).items()}
    assert errors == []
    assert got == {"net.ipv4.conf.lo.rp_filter": "2", "net.ipv4.conf.hub0.rp_filter": "1"}


def test_sysctl_d_file_name_that_is_not_utf8(tmp_path):
    (tmp_path / os.fsdecode(b"10-\xff.conf")).write_text("vm.swappiness = 1\n")
    got = persisted.read_persisted((str(tmp_path),), None, ())
    assert_json_safe(got)
    assert got["keys"]["vm.swappiness"]["value"] == "1"


def test_sysctl_d_special_files_are_not_read(tmp_path):
    """A FIFO named like a sysctl.d file would block a reader forever: it is skipped, with an
    error naming it (systemd-sysctl skips non-regular files too)."""
    os.mkfifo(tmp_path / "50-fifo.conf")
    (tmp_path / "60-dir.conf").mkdir()
    got = persisted.read_persisted((str(tmp_path),), None, ())
    assert got["files"] == [] and got["keys"] == {}
    assert sorted(e["file"] for e in got["errors"]) == [str(tmp_path / "50-fifo.conf"), str(tmp_path / "60-dir.conf")]
    assert all("not a regular file" in e["message"] for e in got["errors"])
    assert stat.S_ISFIFO(os.stat(tmp_path / "50-fifo.conf").st_mode)
