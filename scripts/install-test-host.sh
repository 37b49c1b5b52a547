#!/usr/bin/env bash
# Installs, from Debian packages, what the tests and harnesses run for real. One package set per
# call:
#   install-test-host.sh               the test suite (`make test`): the container runtimes
#                                      (docker.io, podman, runc, crun, lxc), the busybox rootfs
#                                      source, network tools and a browser for the HTML report test
#   install-test-host.sh kernel-truth  the kernel matrix harness (`make kernel-truth`): qemu (TCG
#                                      only, no recommends: no firmware, UI or audio packages),
#                                      kmod's depmod and a static busybox for the guest's initramfs
# so `make test` never pays for qemu.
#
# Idempotent: when every package is already installed it only says so (no apt-get update).
# Works as root on a fresh Debian 12 machine with no services running. No service is started:
# the test harness starts its own daemons (dockerd with its own data-root, sockets and pidfile)
# and stops them again. When the machine has no /usr/sbin/policy-rc.d, one that refuses every
# service start is put in place for the duration of the install and removed afterwards, so a
# machine with a running init does not get dockerd/containerd/lxc-net started behind our back.
set -euo pipefail

SET="${1:-test}"
# Wanted but not required: when the package registry cannot give them, the tests that need them
# skip and say so, and the rest of the set-up goes on.
OPTIONAL=()
APT_EXTRA=()
case "$SET" in
  test)
    PACKAGES=(
      busybox-static   # the rootfs of every test container (static: no libraries to copy)
      runc             # the OCI runtime used by docker, podman and the bare runc tests
      podman
      docker.io        # dockerd 20.10 + containerd 1.6 (+ containerd-shim-runc-v2, ctr)
      containerd       # ctr: the harness's Kubernetes-shaped pod runs on dockerd's containerd
      lxc
      lxc-templates    # lxc-create -t busybox
      iproute2         # ip netns
      nftables         # nft: inspect and restore what dockerd/netavark add
      conntrack
      util-linux       # unshare, nsenter
      procps           # sysctl, pgrep
      chromium         # renders the HTML report in a later test
      redis-server     # the fact-cache report test runs a private redis on loopback
      strace           # the reliability test proves what the module opens and executes
      shellcheck       # ansible-test sanity checks the scripts with it (it skips itself without)
    )
    # crun stays optional although Debian 12 has it: a machine that has every other package
    # would otherwise fail its set-up on a registry outage for crun alone;
    # tests/integration/test_runtime_acceptance.py then skips crun and podman-crun with "crun is
    # not installed (apt-get install crun)", and the committed crun tables still serve the judges.
    OPTIONAL=(
      crun             # the runtime acceptance harness measures crun and podman with crun
    )
    ;;
  kernel-truth)
    PACKAGES=(
      qemu-system-x86  # qemu-system-x86_64 boots Debian's kernels under TCG (tests/kernels/boot.py)
      kmod             # depmod: Debian's image packages ship no modules.dep (tests/kernels/packages.py)
      busybox-static   # /init and its tools in the guest's initramfs (tests/kernels/initramfs.py)
      iproute2         # ip and nft are copied into the initramfs for the measurement's veth and
      nftables         # conntrack steps
    )
    # qemu-system-x86 recommends firmware, UI, audio and block-driver packages (hundreds of MB);
    # a -kernel/-initrd boot with -display none uses none of them (SeaBIOS is a hard dependency).
    APT_EXTRA=(--no-install-recommends)
    ;;
  *)
    echo "install-test-host.sh: unknown package set '$SET' (test, kernel-truth)" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-host.sh: must run as root" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully configured package.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

# NSG_FORCE_INSTALL=1 runs apt-get even when everything is there (to check the slow path).
if [ "${NSG_FORCE_INSTALL:-0}" = 1 ]; then
  missing=("${PACKAGES[@]}")
fi

optional_missing=()
for p in "${OPTIONAL[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    optional_missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ] && [ ${#optional_missing[@]} -eq 0 ]; then
  echo "install-test-host.sh: all ${#PACKAGES[@]} packages of the $SET set already installed"
  exit 0
fi

SECONDS=0
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary: written by nsguard.sysctl scripts/install-test-host.sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
APT_INSTALL=(apt-get -o DPkg::Lock::Timeout=600 install -y -q -o Dpkg::Options::=--force-confdef
             -o Dpkg::Options::=--force-confold "${APT_EXTRA[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-host.sh: installing ${missing[*]}"
  # Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -q
  "${APT_INSTALL[@]}" "${missing[@]}"
fi
if [ ${#optional_missing[@]} -gt 0 ]; then
  if [ ${#missing[@]} -eq 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -q || true
  fi
  "${APT_INSTALL[@]}" "${optional_missing[@]}" ||
    echo "install-test-host.sh: could not install ${optional_missing[*]} (package registry unreachable?); the tests that need them skip"
fi
echo "install-test-host.sh: done in ${SECONDS} s"
