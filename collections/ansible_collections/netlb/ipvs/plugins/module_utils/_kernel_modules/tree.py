# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""KernelTree: the kernel's module files read under an injectable root ('/' on a
host, tmp_path in tests) into a KernelSnapshot, and the schedulers it offers.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import os

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import (
    SCHEDULER_PREFIX,
    KernelSnapshot,
    normalise,
    parse_aliases,
    parse_module_paths,
    parse_proc_modules,
)

IPVS_DIR = ('kernel', 'net', 'netfilter', 'ipvs')  # where a kernel's IPVS modules are, under modules_dir()


class KernelTree:
    """Reads the kernel's module state under root ('/' on a host, tmp_path in tests)."""

    def __init__(self, root='/', release=None):
        self.root = root
        self._release = release

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    @staticmethod
    def _read(path):
        try:
            with open(path, 'r', encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    @property
    def release(self):
        if self._release is None:
            text = self._read(self._path('proc', 'sys', 'kernel', 'osrelease'))
            self._release = text.strip() if text else os.uname()[2]
        return self._release

    def modules_dir(self):
        for base in (('lib', 'modules'), ('usr', 'lib', 'modules')):
            path = self._path(*(base + (self.release,)))
            if os.path.isdir(path):
                return path
        return self._path('lib', 'modules', self.release)

    def offered_schedulers(self):
        """The IPVS schedulers this kernel offers, read cheaply (every sync asks): loaded
        (/proc/modules), built in (modules.builtin) or loadable (a file under
        kernel/net/netfilter/ipvs/; the kernel loads ip_vs_<name> itself when a service
        asks for it). A frozenset of names, or None when the modules directory is missing
        (a container without /lib/modules): then only the kernel knows."""
        modules_dir = self.modules_dir()
        if not os.path.isdir(modules_dir):
            return None
        names = set(parse_proc_modules(self._read(self._path('proc', 'modules')) or ''))
        names |= parse_module_paths(self._read(os.path.join(modules_dir, 'modules.builtin')) or '')
        try:
            names |= parse_module_paths('\n'.join(os.listdir(os.path.join(modules_dir, *IPVS_DIR))))
        except OSError:
            pass
        return frozenset(name for name in SCHEDULERS if SCHEDULER_PREFIX + name in names)

    def snapshot(self):
        loaded = parse_proc_modules(self._read(self._path('proc', 'modules')) or '')
        builtin = set()
        modules_dir = self.modules_dir()
        builtin_text = self._read(os.path.join(modules_dir, 'modules.builtin'))
        if builtin_text is not None:
            builtin |= parse_module_paths(builtin_text)
        try:
            # Built-in code with parameters shows in /sys/module without a /proc/modules line.
            builtin |= set(normalise(n) for n in os.listdir(self._path('sys', 'module'))) - set(loaded)
        except OSError:
            pass
        dep_text = self._read(os.path.join(modules_dir, 'modules.dep'))
        available = frozenset(parse_module_paths(dep_text)) if dep_text is not None else None
        aliases = parse_aliases(self._read(os.path.join(modules_dir, 'modules.alias')) or '')
        return KernelSnapshot(self.release, loaded, frozenset(builtin), available, aliases)
