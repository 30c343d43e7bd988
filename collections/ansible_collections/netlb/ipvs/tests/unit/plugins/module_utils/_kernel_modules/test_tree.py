# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kernel_modules.fakes import (
    IPVS_DIR,
    RELEASE,
    SCHEDULER_FILES,
    FakeKernel,
    proc_line,
)


@pytest.mark.parametrize('lib', ['lib', 'usr/lib'])
def test_kernel_tree_snapshot(tmp_path, lib):
    kernel = FakeKernel(tmp_path, builtin=('ip_vs_twos',), loaded=('ip_vs_rr',), lib=lib)
    # Built-in code with parameters appears in /sys/module only.
    os.mkdir(os.path.join(kernel.root, 'sys', 'module', 'vt'))
    snapshot = KernelTree(kernel.root).snapshot()
    assert snapshot.release == RELEASE
    assert sorted(snapshot.loaded) == sorted(['ip_vs_rr', 'ip_vs', 'nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'])
    assert snapshot.builtin == {'ip_vs_twos', 'vt'}
    assert 'ip_vs_mh' in snapshot.available
    assert snapshot.state('nf_conntrack_ipv4') == 'loaded'
    assert snapshot.offered_schedulers() == list(SCHEDULER_FILES)


def test_kernel_tree_without_module_files(tmp_path):
    snapshot = KernelTree(str(tmp_path), release='6.6.0-test').snapshot()
    assert (snapshot.release, snapshot.loaded, snapshot.builtin, snapshot.available) == ('6.6.0-test', {}, frozenset(), None)


def test_offered_schedulers(tmp_path):
    """Loaded, built in, or a module file in the IPVS directory (the kernel loads it when
    a service asks); not the IPVS modules that are no scheduler. Without the release's
    modules directory nothing can be told."""
    tree = KernelTree(str(tmp_path), release=RELEASE)
    assert tree.offered_schedulers() is None
    ipvs = os.path.join(str(tmp_path), 'lib', 'modules', RELEASE, *IPVS_DIR.strip('/').split('/'))
    os.makedirs(ipvs)
    for name in ('ip_vs.ko', 'ip_vs_ftp.ko', 'ip_vs_wrr.ko.xz', 'ip_vs_lc.ko.zst', 'ip_vs_mh.ko'):
        open(os.path.join(ipvs, name), 'w').close()
    with open(os.path.join(str(tmp_path), 'lib', 'modules', RELEASE, 'modules.builtin'), 'w') as handle:
        handle.write('kernel/net/netfilter/ipvs/ip_vs_rr.ko\n')
    os.makedirs(os.path.join(str(tmp_path), 'proc'))
    with open(os.path.join(str(tmp_path), 'proc', 'modules'), 'w') as handle:
        handle.write(proc_line('ip_vs_sh', 0) + '\n')
    assert tree.offered_schedulers() == frozenset(['rr', 'wrr', 'lc', 'sh', 'mh'])
