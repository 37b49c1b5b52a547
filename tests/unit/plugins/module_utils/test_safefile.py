"""safefile: reading tenant-reachable host metadata without following it anywhere (real files,
FIFOs, devices and links in a temporary directory)."""
from __future__ import annotations

import os

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import safefile


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "root" / "c1").mkdir(parents=True)
    (tmp_path / "root" / "c1" / "config.json").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("outside")
    os.symlink(tmp_path / "outside", tmp_path / "root" / "c2")
    os.mkfifo(tmp_path / "root" / "fifo")
    os.symlink("/dev/zero", tmp_path / "root" / "zero")
    os.symlink("loop", tmp_path / "root" / "loop")
    with open(tmp_path / "root" / "huge", "wb") as handle:
        handle.truncate(100)
    os.symlink(tmp_path / "root", tmp_path / "linked-root")
    return tmp_path


def test_read_regular_reads_a_file_below_a_linked_root(tree):
    # The root itself may be a link (/var/run -> /run); what is below it may not.
    assert safefile.read_regular(str(tree / "linked-root" / "c1" / "config.json"),
                                 beneath=str(tree / "linked-root")) == b"{}"


@pytest.mark.parametrize("rel,reason", [
    ("c2/config.json", "a symbolic link on the way ({t}/root/c2 -> {t}/outside)"),
    ("fifo", "a FIFO, not a regular file"),
    ("zero", "a symbolic link on the way ({t}/root/zero -> /dev/zero)"),
    ("loop", "a symbolic link on the way ({t}/root/loop -> loop)"),
    ("huge", "100 bytes, larger than 10"),
    ("../outside/config.json", "not a path below"),
])
def test_read_regular_refuses(tree, rel, reason):
    path = str(tree / "root") + "/" + rel
    with pytest.raises(safefile.UnsafeFile) as info:
        safefile.read_regular(path, limit=10, beneath=str(tree / "root"))
    assert info.value.filename == path
    assert reason.format(t=tree) in info.value.strerror
    assert str(info.value).startswith(path + ": ")


def test_read_regular_follow_last_still_refuses_devices_and_fifos(tree):
    with pytest.raises(safefile.UnsafeFile, match="character device"):
        safefile.read_regular(str(tree / "root" / "zero"), follow_last=True)
    with pytest.raises(FileNotFoundError):
        safefile.read_regular(str(tree / "root" / "missing" / "x"), beneath=str(tree / "root"))


def test_glob_beneath_reports_links_and_does_not_list_through_them(tree):
    links = []
    got = safefile.glob_beneath(str(tree / "root" / "*" / "config.json"), on_link=lambda p, t: links.append((p, t)))
    assert got == [str(tree / "root" / "c1" / "config.json")]
    assert (str(tree / "root" / "c2"), str(tree / "outside")) in links
    assert safefile.glob_beneath(str(tree / "linked-root" / "c*")) == [str(tree / "linked-root" / "c1")]
    assert safefile.glob_beneath(str(tree / "root" / "l*"), ignore=("lo",)) == []


@pytest.mark.parametrize("pattern,prefix", [
    ("/run/containerd/runc/*", "/run/containerd/runc"),
    ("/var/lib/docker/", "/var/lib/docker"),
    ("/run/docker/runtime-*/x/*", "/run/docker"),
    ("/*", "/"),
])
def test_literal_prefix(pattern, prefix):
    assert safefile.literal_prefix(pattern) == prefix


def test_glob_beneath_looks_at_a_literal_last_part(tree):
    # A literal last part is still checked: a link there is reported, not returned.
    links = []
    assert safefile.glob_beneath(str(tree / "root" / "c2"), on_link=lambda p, t: links.append(p)) == []
    assert links == [str(tree / "root" / "c2")]
    assert safefile.glob_beneath(str(tree / "root" / "c1")) == [str(tree / "root" / "c1")]


def test_resolve_links(tree, tmp_path):
    os.symlink("../root/c1/config.json", tree / "outside" / "rel")
    assert safefile.resolve_links(str(tree / "outside" / "rel")) == str(tree / "root" / "c1" / "config.json")
    os.symlink("/proc/self/root/etc/hostname", tree / "outside" / "magic")
    with pytest.raises(safefile.UnsafeFile, match="leads under /proc"):
        safefile.resolve_links(str(tree / "outside" / "magic"))
    with pytest.raises(safefile.UnsafeFile, match="a loop"):
        safefile.resolve_links(str(tree / "root" / "loop"))
    with pytest.raises(safefile.UnsafeFile, match="leads under"):
        safefile.resolve_links(str(tree / "root" / "c2" / "config.json"), refuse=(str(tree / "outside"),))


def test_a_relative_path_is_read_below_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "rel.yml").write_bytes(b"a: 1\n")
    monkeypatch.chdir(tmp_path)
    assert safefile.read_regular("rel.yml") == b"a: 1\n"
    with pytest.raises(safefile.UnsafeFile, match="not a path below"):
        safefile.read_regular("sub/../rel.yml", beneath=str(tmp_path / "sub"))
