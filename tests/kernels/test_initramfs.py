"""The guest's module load order, read from a kernel's own modules.{dep,softdep,alias,builtin}.

The files here have the shape Debian's 6.1 package has after depmod (libcrc32c needs a crc32c
provider loaded first, named by an alias); the real packages are exercised by every
``make kernel-truth`` boot, which fails when a module does not load.
"""
from __future__ import annotations

import pytest

from tests.kernels import initramfs


@pytest.fixture
def modules(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/lib/libcrc32c.ko:\n"
        "kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko\n"
        "kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:\n"
        "kernel/arch/x86/crypto/crc32c-intel.ko:\n"
        "kernel/crypto/crc32c_generic.ko:\n"
        "kernel/drivers/net/veth.ko.xz:\n")
    (tmp_path / "modules.softdep").write_text("# Soft dependencies extracted from modules themselves.\n"
                                              "softdep libcrc32c pre: crc32c\n"
                                              "softdep ext4 pre: crypto-crc32c\n")
    (tmp_path / "modules.alias").write_text("alias crc32c crc32c_intel\nalias crc32c crc32c_generic\n"
                                            "alias crypto-crc32c crc32c_generic\n")
    (tmp_path / "modules.builtin").write_text("kernel/fs/fuse/fuse.ko\n")
    return tmp_path


def test_dependencies_and_soft_dependencies_come_first(modules):
    order = initramfs.module_order(modules, ("nf_conntrack", "veth", "fuse"))
    assert order == ["kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/crypto/crc32c_generic.ko",
                     "kernel/lib/libcrc32c.ko", "kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko",
                     "kernel/net/netfilter/nf_conntrack.ko", "kernel/drivers/net/veth.ko.xz"]


def test_a_module_neither_shipped_nor_built_in_is_an_error(modules):
    with pytest.raises(initramfs.BuildError, match="nf_tables is neither"):
        initramfs.module_order(modules, ("nf_tables",))
