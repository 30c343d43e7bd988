# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Doubles shared by the kernel module tests: a kernel as files under tmp_path with a
modprobe that edits them as the real one does (FakeKernel, FakeRunner), the request's
defaults, and the lab's captured module files as a tree (captured_tree; see
fixtures/README.md)."""

from __future__ import annotations

import os

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree

RELEASE = '6.1.0-35-amd64'
IPVS_DIR = 'kernel/net/netfilter/ipvs/'
SCHEDULER_FILES = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos')

# Module -> what it depends on, as modules.dep of a Debian 12 kernel has it (trimmed).
DEPENDS = {
    'ip_vs': ('nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'),
    'nf_conntrack': ('nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'),
    'nf_defrag_ipv6': (),
    'nf_defrag_ipv4': (),
    'libcrc32c': (),
    'ip_vs_ftp': ('nf_nat', 'ip_vs'),
    'nf_nat': ('nf_conntrack',),
    'dummy': (),
}
for _s in SCHEDULER_FILES:
    DEPENDS['ip_vs_' + _s] = ('ip_vs',)

DEFAULTS = {
    'schedulers': ['rr', 'wrr', 'lc', 'wlc', 'sh'],
    'extra_modules': ['nf_conntrack'],
    'state': 'present',
    'persist': True,
    'persist_file': None,  # filled in per test: a path under tmp_path
}
DEFAULT_MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'nf_conntrack']


def ko_path(name):
    folder = IPVS_DIR if name.startswith('ip_vs') else 'kernel/net/netfilter/'
    return folder + name + '.ko.xz'


def proc_line(name, refcount, holders=()):
    return '%s 65536 %s %s Live 0x0000000000000000' % (name, refcount, ','.join(holders) + ',' if holders else '-')


class FakeKernel:
    """A kernel as files under tmp_path, plus a modprobe that edits /proc/modules the
    way the real one does (loads dependencies, removes those left unused)."""

    def __init__(self, root, modular=None, builtin=(), loaded=(), extra_refs=None, lib='lib', refuse=()):
        self.root = str(root)
        self.refuse = set(refuse)  # modprobe -r says "in use" though /proc/modules showed no user
        self.modular = set(DEPENDS if modular is None else modular)
        self.builtin = set(builtin)
        self.extra_refs = dict(extra_refs or {})  # name -> references not from modules
        self.loaded = []
        self.calls = []
        self.modules_dir = os.path.join(self.root, lib, 'modules', RELEASE)
        os.makedirs(self.modules_dir)
        os.makedirs(os.path.join(self.root, 'proc', 'sys', 'kernel'))
        os.makedirs(os.path.join(self.root, 'sys', 'module'))
        self._write('proc/sys/kernel/osrelease', RELEASE + '\n')
        dep_lines = ['%s: %s' % (ko_path(m), ' '.join(ko_path(d) for d in DEPENDS.get(m, ()) if d in self.modular))
                     for m in sorted(self.modular)]
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.dep'), '\n'.join(dep_lines) + '\n')
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.builtin'),
                    ''.join('kernel/net/%s.ko\n' % b for b in sorted(self.builtin)))
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.alias'),
                    'alias nf_conntrack_ipv4 nf_conntrack\nalias pci:v00008086d* e1000\n')
        for name in loaded:
            self._insert(name)
        self._sync()

    def _write(self, rel, text):
        with open(os.path.join(self.root, rel), 'w') as handle:
            handle.write(text)

    def _insert(self, name):
        for dep in DEPENDS.get(name, ()):
            if dep in self.modular and dep not in self.loaded:
                self._insert(dep)
        if name not in self.loaded:
            self.loaded.append(name)

    def holders(self, name):
        return [m for m in self.loaded if name in DEPENDS.get(m, ())]

    def refcount(self, name):
        # As on the lab kernel: ip_vs counts each scheduler twice (module use + registration).
        holders = self.holders(name)
        registered = len([h for h in holders if h.startswith('ip_vs_')]) if name == 'ip_vs' else 0
        return len(holders) + registered + self.extra_refs.get(name, 0)

    def _sync(self):
        lines = [proc_line(m, self.refcount(m), self.holders(m)) for m in self.loaded]
        self._write('proc/modules', '\n'.join(lines) + ('\n' if lines else ''))
        sysmod = os.path.join(self.root, 'sys', 'module')
        for name in os.listdir(sysmod):
            os.rmdir(os.path.join(sysmod, name))
        for name in set(self.loaded) | self.builtin:
            os.mkdir(os.path.join(sysmod, name))

    def modprobe(self, args):
        self.calls.append(args)
        remove = '-r' in args
        names = [a for a in args if not a.startswith('-')]
        errors = []
        for name in names:
            if remove:
                # kmod 30 (Debian 12): a module not loaded is no error; one in use is
                # reported and the others are still removed.
                if name not in self.loaded:
                    continue
                if self.refcount(name) or name in self.refuse:
                    errors.append('modprobe: WARNING: Module %s is in use.\n' % name)
                    continue
                self._remove(name)
            else:
                if name in self.builtin:
                    continue
                if name not in self.modular:
                    return 1, '', 'modprobe: FATAL: Module %s not found in directory /lib/modules/%s\n' % (name, RELEASE)
                self._insert(name)
        self._sync()
        return (1 if errors else 0), '', ''.join(errors)

    def _remove(self, name):
        self.loaded.remove(name)
        for dep in DEPENDS.get(name, ()):
            if dep in self.loaded and not self.refcount(dep):
                self._remove(dep)


class FakeRunner(Runner):
    def __init__(self, kernel):
        super(FakeRunner, self).__init__(module=None)
        self.kernel = kernel

    def which(self, name, required=True):
        return '/usr/sbin/' + name

    def _execute(self, argv, data):
        assert argv[0] == '/usr/sbin/modprobe'
        return self.kernel.modprobe(argv[1:])


# The lab's module files (fixtures/README.md says where and when they were captured).
FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
LAB_RELEASE = '6.1.0-56-amd64'


def captured_tree(tmp_path, proc_modules):
    root = tmp_path / 'root'
    modules_dir = root / 'lib' / 'modules' / LAB_RELEASE
    modules_dir.mkdir(parents=True)
    (root / 'proc').mkdir()
    for name in ('modules.dep', 'modules.builtin'):
        with open(os.path.join(FIXTURES, name)) as handle:
            (modules_dir / name).write_text(handle.read())
    with open(os.path.join(FIXTURES, proc_modules)) as handle:
        (root / 'proc' / 'modules').write_text(handle.read())
    return KernelTree(str(root), release=LAB_RELEASE)
