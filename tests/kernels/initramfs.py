"""Build the guest's initramfs: busybox, this machine's Python, the collection, kernel modules.

The archive is a gzip'd cpio in the kernel's ``newc`` format, written here (no cpio binary
needed). Its contents:

- ``/bin/busybox`` (static) and ``/init``, a busybox shell script that mounts proc/sys/dev,
  loads the modules in dependency order, runs the guest program and powers off;
- the running Python (``sys.base_prefix``) at the same absolute path, its standard library
  without tests, IDLE, tkinter and site-packages, and every shared library its extension
  modules need (resolved with ``ldd``);
- iproute2's ``ip`` and ``nft`` with their libraries (the measurement creates veth devices and
  an nft conntrack rule);
- ``ansible/module_utils`` (what a module needs on a target, as AnsiballZ ships it) and this
  checkout's ``plugins/module_utils``, ``plugins/modules/sysctl_facts.py``,
  ``tests/integration/groundtruth`` and ``tests/kernels`` as ``ansible_collections.nsguard.sysctl``;
- the kernel modules the measurement needs (``MODULES``) and their dependencies from
  ``modules.dep``, decompressed (busybox ``insmod`` loads plain ``.ko`` files).
"""
from __future__ import annotations

import gzip
import lzma
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
GUEST_ROOT = "/nsguard"                       # sys.path entry: ansible_collections/... and ansible/
GUEST_COLLECTION = f"{GUEST_ROOT}/ansible_collections/nsguard/sysctl"
DATA_PORT = "/dev/ttyS1"                      # the second serial port: the result, apart from the console

# Modules whose sysctls or functions the measurement uses (the host kernel has them built in):
# conntrack and its keys, nf_tables and the ct expression (step 6's conntrack rule), veth (step 5),
# nf_log_syslog and nfnetlink_log (the loggers net.netfilter.nf_log.<family> is set to; nfnetlink_log
# serves every family), ifb (the host's ifb0/ifb1 devices),
# br_netfilter (net.bridge.*), xfs and fuse (fs.xfs.*, fs.fuse.*). ip_vs is not on the host: its keys
# (net.ipv4.vs.*, kube-proxy's IPVS mode) are measured in the guests only.
MODULES = ("nf_conntrack", "nf_tables", "nft_ct", "nf_log_syslog", "nfnetlink_log", "veth", "ifb", "bridge", "br_netfilter",
           "xfs", "fuse", "ip_vs")
TOOLS = ("/usr/sbin/ip", "/usr/sbin/nft")
BUSYBOX = "/bin/busybox"
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages",
               "pydoc_data", "distutils", "unittest"}
_LDD_PATH = re.compile(r"(/\S+)")

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /usr/bin /usr/sbin /sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "NSGUARD-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) release=$(uname -r)"
for m in $(cat /modules.order); do
  insmod "$m" || echo "NSGUARD-INSMOD-FAILED $m"
done
echo "NSGUARD-MODULES-LOADED uptime=$(cut -d' ' -f1 /proc/uptime)"
ip link set lo up
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 NSGUARD_THROWAWAY_HOST=1
{python} -E -s {collection}/tests/kernels/guest.py --out {data} {args}
echo "NSGUARD-GUEST-EXIT rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
"""


class BuildError(RuntimeError):
    pass


# --------------------------------------------------------------------------- cpio (newc)

class Cpio:
    """A gzip'd newc cpio archive written entry by entry (directories before their contents)."""

    def __init__(self, path: Path, level: int = 6) -> None:
        self._out = gzip.open(path, "wb", compresslevel=level)
        self._ino = 1
        self._dirs = {""}

    def _header(self, name: str, mode: int, size: int, nlink: int = 1) -> bytes:
        fields = [self._ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
        self._ino += 1
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        return head + name.encode() + b"\0" + b"\0" * ((4 - (110 + len(name) + 1) % 4) % 4)

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        self._out.write(self._header(name, mode, len(data), 2 if stat.S_ISDIR(mode) else 1))
        self._out.write(data + b"\0" * ((4 - len(data) % 4) % 4))

    def mkdir(self, name: str) -> None:
        name = name.strip("/")
        if name in self._dirs:
            return
        self.mkdir(os.path.dirname(name))
        self._dirs.add(name)
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)
        self._out.close()


# --------------------------------------------------------------------------- what goes in

class Tree:
    """Archive path -> host file (or bytes), with the shared libraries of every ELF added."""

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[Optional[Path], Optional[bytes], int]] = {}
        self.links: Dict[str, str] = {}
        self._elf_done: set = set()

    def add(self, dest: str, src: Optional[Path] = None, data: Optional[bytes] = None, mode: Optional[int] = None) -> None:
        if src is not None:
            st = os.stat(src)
            mode = mode if mode is not None else stat.S_IMODE(st.st_mode)
            if _is_elf(src):
                self.add_libs(src)
        self.files[dest] = (src, data, mode if mode is not None else 0o644)

    def add_libs(self, elf: Path) -> None:
        proc = subprocess.run(["ldd", str(elf)], capture_output=True, text=True)
        if proc.returncode != 0:  # a static binary: "not a dynamic executable"
            return
        for line in proc.stdout.splitlines():
            if "=>" in line and "not found" in line:
                raise BuildError(f"{elf}: {line.strip()}")
            match = _LDD_PATH.search(line.split("=>", 1)[-1])
            if not match:
                continue
            lib = match.group(1)
            if lib in self._elf_done:
                continue
            self._elf_done.add(lib)
            real = Path(os.path.realpath(lib))
            self.files[lib] = (real, None, 0o755)

    def add_tree(self, dest: str, src: Path, skip: Iterable[str] = ()) -> None:
        skip = set(skip)
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in skip)
            rel = os.path.relpath(root, src)
            for name in sorted(files):
                if name.endswith((".opt-1.pyc", ".opt-2.pyc")):
                    continue
                path = Path(root) / name
                target = os.path.normpath(os.path.join(dest, rel, name))
                if path.is_symlink():
                    self.links[target] = os.readlink(path)
                else:
                    self.add(target, path)

    def write(self, out: Path) -> int:
        cpio = Cpio(out)
        total = 0
        for dest in sorted(self.files):
            src, data, mode = self.files[dest]
            if data is None:
                data = Path(src).read_bytes()
            total += len(data)
            cpio.file(dest, data, mode)
        for dest, target in sorted(self.links.items()):
            cpio.symlink(dest, target)
        cpio.close()
        return total


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


# --------------------------------------------------------------------------- modules

def module_order(modules_dir: Path, wanted: Iterable[str] = MODULES) -> List[str]:
    """Paths (relative to ``modules_dir``) of ``wanted`` and their dependencies, dependencies first.

    Dependencies are the hard ones of ``modules.dep`` and the ``pre:`` soft ones of
    ``modules.softdep`` (libcrc32c's init fails without a crc32c provider loaded first: modprobe
    loads it, busybox insmod does not), a soft dependency named by an alias resolved through
    ``modules.alias`` to every module that provides it, as modprobe does. A module built into
    this kernel (``modules.builtin``) needs no loading; one neither built in nor shipped is an error.
    """
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    builtin = set()
    if (modules_dir / "modules.builtin").exists():
        builtin = {_module_name(p) for p in (modules_dir / "modules.builtin").read_text().split()}
    aliases: Dict[str, List[str]] = {}
    if (modules_dir / "modules.alias").exists():
        for line in (modules_dir / "modules.alias").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alias":
                aliases.setdefault(parts[1].replace("-", "_"), []).append(parts[2].replace("-", "_"))
    soft: Dict[str, List[str]] = {}
    if (modules_dir / "modules.softdep").exists():
        for line in (modules_dir / "modules.softdep").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "softdep" and parts[2] == "pre:":
                names = []
                for word in parts[3:]:
                    if word == "post:":
                        break
                    names.append(word.replace("-", "_"))
                soft.setdefault(parts[1].replace("-", "_"), []).extend(names)
    order: List[str] = []

    def providers(name: str) -> List[str]:
        if name in by_name:
            return [by_name[name]]
        return [by_name[m] for m in aliases.get(name, []) if m in by_name]

    def visit(path: str) -> None:
        if path in order:
            return
        for name in soft.get(_module_name(path), []):
            for dep in providers(name):
                visit(dep)
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        name = name.replace("-", "_")
        if name in by_name:
            visit(by_name[name])
        elif name not in builtin:
            raise BuildError(f"module {name} is neither in {modules_dir}/modules.dep nor built in")
    return order


def _module_name(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.replace("-", "_")


def _plain_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        proc = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True)
        return proc.stdout
    return data


# --------------------------------------------------------------------------- the whole image

def _ansible_package() -> Path:
    try:
        import ansible  # noqa: PLC0415 - only the harness, never the tests, needs it here
    except ImportError as exc:  # pragma: no cover - the test venv has ansible-core
        raise BuildError("ansible-core is not importable: run the harness with the test venv's python") from exc
    return Path(ansible.__file__).resolve().parent


def build(out: Path, modules_dir: Path, release: str, guest_args: str = "") -> Dict[str, object]:
    """Write the initramfs for kernel ``release`` to ``out``; returns what went in."""
    tree = Tree()
    if not Path(BUSYBOX).exists():
        raise BuildError(f"{BUSYBOX} is missing: package busybox-static (make kernel-truth-host installs it)")
    if _is_elf(Path(BUSYBOX)) and subprocess.run(["ldd", BUSYBOX], capture_output=True).returncode == 0:
        raise BuildError(f"{BUSYBOX} is not static: package busybox-static (make kernel-truth-host installs it)")
    tree.add("bin/busybox", Path(BUSYBOX))
    for tool in TOOLS:
        if not Path(tool).exists():
            raise BuildError(f"{tool} is missing: packages iproute2 and nftables (make kernel-truth-host installs them)")
    prefix = Path(sys.base_prefix)
    exe = Path(os.path.realpath(sys.executable))
    if not str(exe).startswith(str(prefix)):
        exe = prefix / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    tree.add(str(exe).lstrip("/"), exe)
    stdlib = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    tree.add_tree(str(stdlib).lstrip("/"), stdlib,
                  skip=STDLIB_SKIP | {d for d in os.listdir(stdlib) if d.startswith("config-")})
    for tool in TOOLS:
        tree.add(tool.lstrip("/"), Path(tool))
    ansible = _ansible_package()
    tree.add(f"{GUEST_ROOT}/ansible/__init__.py".lstrip("/"), ansible / "__init__.py")
    tree.add(f"{GUEST_ROOT}/ansible/release.py".lstrip("/"), ansible / "release.py")
    # ansible/__init__.py imports ansible._vendor (which puts bundled packages on sys.path)
    tree.add(f"{GUEST_ROOT}/ansible/_vendor/__init__.py".lstrip("/"), ansible / "_vendor" / "__init__.py")
    tree.add_tree(f"{GUEST_ROOT}/ansible/module_utils".lstrip("/"), ansible / "module_utils", skip={"__pycache__"})
    col = GUEST_COLLECTION.lstrip("/")
    tree.add_tree(f"{col}/plugins/module_utils", REPO / "plugins" / "module_utils", skip={"__pycache__"})
    tree.add(f"{col}/plugins/modules/sysctl_facts.py", REPO / "plugins" / "modules" / "sysctl_facts.py")
    for init in ("plugins/__init__.py", "plugins/modules/__init__.py", "tests/__init__.py", "tests/integration/__init__.py"):
        if (REPO / init).exists():
            tree.add(f"{col}/{init}", REPO / init)
    tree.add_tree(f"{col}/tests/integration/groundtruth", REPO / "tests" / "integration" / "groundtruth", skip={"__pycache__"})
    tree.add_tree(f"{col}/tests/kernels", REPO / "tests" / "kernels", skip={"__pycache__", "truth"})
    order = module_order(modules_dir)
    guest_paths = []
    for rel in order:
        plain = re.sub(r"\.(xz|gz|zst)$", "", rel)
        dest = f"lib/modules/{release}/{plain}"
        tree.add(dest, data=_plain_module(modules_dir / rel))
        guest_paths.append("/" + dest)
    tree.add("modules.order", data=("\n".join(guest_paths) + "\n").encode())
    init = INIT.format(python=str(exe), collection=GUEST_COLLECTION, data=DATA_PORT, args=guest_args)
    tree.add("init", data=init.encode(), mode=0o755)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = tree.write(out)
    return {"modules": [_module_name(p) for p in order], "files": len(tree.files), "bytes": size,
            "compressed": out.stat().st_size, "python": str(exe)}


