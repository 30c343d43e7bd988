# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the running kernel has: the text of its module files parsed into a
KernelSnapshot, and module names as the kernel spells them (pure).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS

BASE_MODULE = 'ip_vs'
SCHEDULER_PREFIX = 'ip_vs_'

_KO_SUFFIX_RE = re.compile(r'\.ko(\.(xz|gz|zst|bz2))?$')


def normalise(name):
    """The kernel's spelling of a module name ('-' and '_' are interchangeable)."""
    return name.replace('-', '_')


LoadedModule = collections.namedtuple('LoadedModule', 'name refcount holders permanent')


def parse_proc_modules(text):
    """/proc/modules -> {name: LoadedModule}.

    A line is 'name size refcount holders state address'; holders is '-' or
    'a,b,'. refcount '-' (kernel without module unloading) and holders
    '[permanent]' (module without an exit function) both mean it cannot be unloaded.
    """
    modules = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        name = normalise(fields[0])
        permanent = not fields[2].isdigit() or '[permanent]' in fields[3]
        holders = tuple(normalise(h) for h in fields[3].split(',') if h and h not in ('-', '[permanent]'))
        modules[name] = LoadedModule(name, int(fields[2]) if fields[2].isdigit() else 0, holders, permanent)
    return modules


def parse_module_paths(text):
    """modules.builtin or modules.dep -> set of module names.

    modules.builtin lines are 'kernel/net/netfilter/ipvs/ip_vs.ko'; modules.dep lines
    are 'kernel/.../ip_vs_rr.ko.xz: kernel/.../ip_vs.ko.xz ...' (only the part before
    ':' names the module; the rest are its dependencies).
    """
    names = set()
    for line in text.splitlines():
        path = line.split(':', 1)[0].strip()
        if not path:
            continue
        names.add(normalise(_KO_SUFFIX_RE.sub('', os.path.basename(path))))
    return names


def parse_aliases(text):
    """modules.alias -> {alias: module} for plain aliases (wildcard device aliases skipped)."""
    aliases = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == 'alias' and not any(c in fields[1] for c in '*?['):
            aliases.setdefault(normalise(fields[1]), normalise(fields[2]))
    return aliases


@dataclasses.dataclass(frozen=True)
class KernelSnapshot:
    """What the running kernel has. available is None when modules.dep could not be
    read: then nothing is known to be missing and modprobe has the last word."""

    release: str
    loaded: dict
    builtin: frozenset
    available: frozenset = None
    aliases: dict = dataclasses.field(default_factory=dict)

    def resolve(self, name):
        """The real module name behind name (follows plain aliases)."""
        name = normalise(name)
        known = name in self.loaded or name in self.builtin or (self.available is not None and name in self.available)
        if not known and name in self.aliases:
            return self.aliases[name]
        return name

    def state(self, name):
        """'loaded', 'builtin', 'available' or 'missing'."""
        real = self.resolve(name)
        if real in self.loaded:
            return 'loaded'
        if real in self.builtin:
            return 'builtin'
        if self.available is None or real in self.available:
            return 'available'
        return 'missing'

    def offered_schedulers(self):
        """Schedulers this kernel has (loaded, built in or loadable), in SCHEDULERS order."""
        return [s for s in SCHEDULERS if self.state(SCHEDULER_PREFIX + s) != 'missing']
