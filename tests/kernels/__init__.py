"""Kernel truth on more than one kernel: Debian kernels booted in qemu (TCG), measured inside."""
