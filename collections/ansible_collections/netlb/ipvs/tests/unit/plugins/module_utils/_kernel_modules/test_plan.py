# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.plan import missing_message, plan_absent, plan_present, unload_roots
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import KernelSnapshot, parse_proc_modules
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kernel_modules.fakes import (
    DEFAULT_MODULES,
    DEPENDS,
    RELEASE,
    SCHEDULER_FILES,
    captured_tree,
    proc_line,
)


def snapshot_of(proc_lines, builtin=(), available=None):
    return KernelSnapshot(RELEASE, parse_proc_modules('\n'.join(proc_lines)), frozenset(builtin),
                          None if available is None else frozenset(available), {'nf_conntrack_ipv4': 'nf_conntrack'})


@pytest.mark.parametrize('proc_lines, builtin, available, modules, expect_load, expect_present, expect_builtin, expect_missing', [
    pytest.param([], (), DEPENDS, ['ip_vs', 'ip_vs_rr'], ['ip_vs', 'ip_vs_rr'], [], [], [], id='fresh'),
    pytest.param([proc_line('ip_vs', 1, ['ip_vs_rr']), proc_line('ip_vs_rr', 0)], (), DEPENDS, ['ip_vs', 'ip_vs_rr', 'ip_vs_sh'],
                 ['ip_vs_sh'], ['ip_vs', 'ip_vs_rr'], [], [], id='partly-loaded'),
    pytest.param([], ('ip_vs', 'ip_vs_rr'), ('nf_conntrack',), ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], ['nf_conntrack'], [], ['ip_vs', 'ip_vs_rr'], [],
                 id='builtin'),
    pytest.param([], (), ('ip_vs',), ['ip_vs', 'ip_vs_twos', 'dummy'], ['ip_vs'], [], [], ['ip_vs_twos', 'dummy'], id='missing'),
    pytest.param([], (), None, ['ip_vs', 'whatever'], ['ip_vs', 'whatever'], [], [], [], id='no-modules-dep-modprobe-decides'),
    pytest.param([proc_line('nf_conntrack', 0)], (), (), ['nf_conntrack_ipv4'], [], ['nf_conntrack_ipv4'], [], [], id='alias'),
])
def test_plan_present(proc_lines, builtin, available, modules, expect_load, expect_present, expect_builtin, expect_missing):
    plan = plan_present(modules, snapshot_of(proc_lines, builtin, available))
    assert plan == (expect_load, expect_present, expect_builtin, expect_missing)


IPVS_LOADED = [
    proc_line('ip_vs_rr', 0), proc_line('ip_vs_sh', 0),
    proc_line('ip_vs', 4, ['ip_vs_rr', 'ip_vs_sh']),  # each scheduler counts twice
    proc_line('nf_conntrack', 1, ['ip_vs']),
]


@pytest.mark.parametrize('proc_lines, builtin, modules, expect_unload, expect_in_use', [
    pytest.param(IPVS_LOADED, (), ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_rr', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], {},
                 id='all-free-holders-first'),
    pytest.param([proc_line('ip_vs_rr', 1)] + IPVS_LOADED[1:], (), ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_sh'],
                 {'ip_vs_rr': 'in use (refcount 1', 'ip_vs': 'used by ip_vs_rr', 'nf_conntrack': 'used by ip_vs'},
                 id='service-on-rr-blocks-the-chain'),
    pytest.param(IPVS_LOADED[:3] + [proc_line('nf_conntrack', 2, ['nf_nat', 'ip_vs']), proc_line('nf_nat', 0)], (),
                 ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_rr', 'ip_vs_sh', 'ip_vs'], {'nf_conntrack': 'used by nf_nat'},
                 id='conntrack-shared'),
    pytest.param(IPVS_LOADED, (), ['ip_vs', 'ip_vs_rr'], ['ip_vs_rr'], {'ip_vs': 'used by ip_vs_sh'}, id='holder-outside-request'),
    pytest.param([proc_line('nf_conntrack', 0)], ('ip_vs',), ['ip_vs', 'nf_conntrack'], ['nf_conntrack'], {}, id='builtin-ip-vs'),
    pytest.param(['ip_vs 1 0 [permanent], Live 0x0'], (), ['ip_vs'], [], {'ip_vs': 'the kernel cannot unload it'}, id='permanent'),
    pytest.param([], (), ['ip_vs', 'ip_vs_rr'], [], {}, id='nothing-loaded'),
])
def test_plan_absent(proc_lines, builtin, modules, expect_unload, expect_in_use):
    plan = plan_absent(modules, snapshot_of(proc_lines, builtin, DEPENDS))
    assert plan.unload == expect_unload
    assert sorted(plan.in_use) == sorted(expect_in_use)
    for name, reason in expect_in_use.items():
        assert plan.in_use[name].startswith(reason)
    assert plan.builtin == [m for m in modules if m in builtin]


def test_unload_roots():
    snapshot = snapshot_of(IPVS_LOADED, (), DEPENDS)
    assert unload_roots(['ip_vs_rr', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], snapshot) == ['ip_vs_rr', 'ip_vs_sh']
    assert unload_roots(['ip_vs', 'nf_conntrack'], snapshot) == ['ip_vs']


# ---------------------------------------------------------------- captured on the lab (see fixtures/README.md)

ALL_SCHEDULER_MODULES = ['ip_vs_' + s for s in SCHEDULER_FILES]


@pytest.mark.parametrize('proc_modules, modules, expect_load, expect_present, expect_missing', [
    pytest.param('proc_modules.fresh', DEFAULT_MODULES, DEFAULT_MODULES, [], [], id='fresh'),
    pytest.param('proc_modules.ipvs_loaded', DEFAULT_MODULES, [], DEFAULT_MODULES, [], id='loaded'),
    pytest.param('proc_modules.rr_in_use', DEFAULT_MODULES, ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_sh'],
                 ['ip_vs', 'ip_vs_rr', 'ip_vs_wlc', 'nf_conntrack'], [], id='partly'),
    pytest.param('proc_modules.fresh', ['ip_vs'] + ALL_SCHEDULER_MODULES, ['ip_vs'] + ALL_SCHEDULER_MODULES[:-1], [], ['ip_vs_twos'],
                 id='no-twos-on-6.1'),
])
def test_captured_plan_present(tmp_path, proc_modules, modules, expect_load, expect_present, expect_missing):
    snapshot = captured_tree(tmp_path, proc_modules).snapshot()
    assert plan_present(modules, snapshot) == (expect_load, expect_present, [], expect_missing)


@pytest.mark.parametrize('proc_modules, expect_unload, expect_in_use', [
    pytest.param('proc_modules.ipvs_loaded', ['ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], [],
                 id='all-free'),
    pytest.param('proc_modules.rr_in_use', ['ip_vs_wlc'], ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], id='service-on-rr'),
    pytest.param('proc_modules.fresh', [], [], id='nothing-loaded'),
])
def test_captured_plan_absent(tmp_path, proc_modules, expect_unload, expect_in_use):
    snapshot = captured_tree(tmp_path, proc_modules).snapshot()
    plan = plan_absent(DEFAULT_MODULES, snapshot)
    assert plan.unload == expect_unload
    assert sorted(plan.in_use) == expect_in_use


def test_captured_missing_scheduler_message(tmp_path):
    snapshot = captured_tree(tmp_path, 'proc_modules.fresh').snapshot()
    plan = plan_present(['ip_vs', 'ip_vs_twos'], snapshot)
    assert missing_message(plan.missing, snapshot) == (
        'schedulers: this kernel (6.1.0-56-amd64) has no module ip_vs_twos; '
        'it offers rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf')
