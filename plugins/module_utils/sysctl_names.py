# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sysctl key <-> ``/proc/sys`` path: the one definition of sysctl's own swap.

A key is dotted (``net.ipv4.conf.eth0/100.rp_filter``); inside one component a ``/`` stands for
a literal dot, because interface names carry dots (VLAN ``eth0.100``). Its path under
``/proc/sys`` swaps the two (``net/ipv4/conf/eth0.100/rp_filter``). A naive
``key.replace(".", "/")`` gets VLAN interfaces wrong.

Both sides use it: the target (procsys, persisted; shipped by AnsiballZ, so it lives in
module_utils) and the controller (``plugin_utils.vocabulary`` re-exports it). Standard library
only (nothing at all, in fact), Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type


def key_to_path(key):
    # type: (str) -> str
    """``net.ipv4.conf.eth0/100.rp_filter`` -> ``net/ipv4/conf/eth0.100/rp_filter`` (relative to /proc/sys)."""
    return "/".join(part.replace("/", ".") for part in key.split("."))


def path_to_key(relpath):
    # type: (str) -> str
    """``net/ipv4/conf/eth0.100/rp_filter`` -> ``net.ipv4.conf.eth0/100.rp_filter`` (as sysctl)."""
    return ".".join(part.replace(".", "/") for part in relpath.split("/"))


def is_path_spelling(name):
    # type: (str) -> bool
    """``sysctl``, sysctl.d and runtimes accept ``a.b.c`` and ``a/b/c``: with ``/`` as the first
    separator the name is a path (its dots are literal)."""
    slash, dot = name.find("/"), name.find(".")
    return slash != -1 and (dot == -1 or slash < dot)


def normalize_key(raw):
    # type: (str) -> str
    """Either spelling, stripped, as the dotted key (``net/ipv4/conf/eth0.100/rp_filter`` ->
    ``net.ipv4.conf.eth0/100.rp_filter``; a dotted key is returned as it is)."""
    key = raw.strip()
    return path_to_key(key) if is_path_spelling(key) else key
