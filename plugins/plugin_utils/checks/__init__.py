# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks behind the built-in rules, one module per rule (``nsgNNN_<name>.py`` beside
``rules/catalog/NSGNNN-<name>.yml``), what several share (``common``, ``expected``), and the
declarative checks user rules may use (``declarative``). :mod:`..rules_builtin` names them.

Plain Python, no Ansible import.
"""
