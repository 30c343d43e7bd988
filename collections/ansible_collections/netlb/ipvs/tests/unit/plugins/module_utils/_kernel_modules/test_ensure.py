# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.ensure import KernelModuleError, ensure_modules
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import render_persist_file
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kernel_modules.fakes import (
    DEFAULT_MODULES,
    DEFAULTS,
    DEPENDS,
    RELEASE,
    FakeKernel,
    FakeRunner,
)


def run(tmp_path, kernel, check_mode=False, **params):
    args = dict(DEFAULTS, persist_file=str(tmp_path / 'etc' / 'netlb-ipvs.conf'))
    args.update(params)
    return ensure_modules(args, KernelTree(kernel.root), FakeRunner(kernel), check_mode=check_mode)


@pytest.fixture
def etc(tmp_path):
    path = tmp_path / 'etc'
    path.mkdir()
    return path


def test_present_fresh_then_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    first = run(tmp_path, kernel)
    assert first['changed'] is True
    assert first['loaded'] == DEFAULT_MODULES and first['present'] == [] and first['builtin'] == []
    assert kernel.calls == [['-a'] + DEFAULT_MODULES]
    text = (etc / 'netlb-ipvs.conf').read_text()
    assert text == render_persist_file(DEFAULT_MODULES)
    assert oct(os.stat(str(etc / 'netlb-ipvs.conf')).st_mode & 0o777) == '0o644'
    assert first['diff'][0] == {'before': {'modules': []}, 'after': {'modules': DEFAULT_MODULES}}
    assert first['diff'][1]['before'] == '' and first['diff'][1]['after'] == text

    second = run(tmp_path, kernel)
    assert second['changed'] is False
    assert second['loaded'] == [] and second['present'] == DEFAULT_MODULES
    assert len(kernel.calls) == 1, 'modprobe not called when nothing is missing'


def test_present_check_mode_predicts_and_writes_nothing(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=('ip_vs_rr',))
    checked = run(tmp_path, kernel, check_mode=True)
    assert kernel.calls == [] and not (etc / 'netlb-ipvs.conf').exists()
    real = run(tmp_path, kernel)
    for key in ('changed', 'loaded', 'present', 'builtin', 'diff'):
        assert checked[key] == real[key], key


def test_present_builtin_is_never_a_change(tmp_path, etc):
    kernel = FakeKernel(tmp_path, modular=(), builtin=['ip_vs', 'ip_vs_rr', 'nf_conntrack'])
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(['ip_vs', 'ip_vs_rr', 'nf_conntrack']))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o644)
    result = run(tmp_path, kernel, schedulers=['rr'])
    assert result['changed'] is False and result['builtin'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert kernel.calls == []


def test_present_mode_only_change(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES)
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(DEFAULT_MODULES))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o600)
    result = run(tmp_path, kernel)
    assert result['changed'] is True
    assert result['diff'][0]['before']['persist_file_mode'] == '0600'


@pytest.mark.parametrize('modular, params, expect_message', [
    pytest.param(set(DEPENDS) - {'ip_vs_twos', 'ip_vs_mh'}, {'schedulers': ['rr', 'twos']},
                 'schedulers: this kernel (%s) has no module ip_vs_twos; it offers rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf'
                 % RELEASE, id='scheduler'),
    pytest.param(set(DEPENDS), {'extra_modules': ['no_such_mod']},
                 'extra_modules: this kernel (%s) has no module no_such_mod' % RELEASE, id='extra-module'),
    pytest.param({'nf_conntrack'}, {'schedulers': []}, 'ip_vs: this kernel (%s) has no IPVS' % RELEASE, id='no-ipvs'),
])
def test_present_missing_fails_before_loading(tmp_path, etc, modular, params, expect_message):
    kernel = FakeKernel(tmp_path, modular=modular)
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, **params)
    assert str(info.value).startswith(expect_message)
    assert kernel.calls == [] and not (etc / 'netlb-ipvs.conf').exists()


def test_present_unwritable_persist_file_fails_before_loading(tmp_path):
    kernel = FakeKernel(tmp_path)
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, persist_file=str(tmp_path / 'nodir' / 'x.conf'))
    assert str(info.value).startswith('persist_file: cannot write %s' % (tmp_path / 'nodir' / 'x.conf'))
    assert kernel.calls == []


def test_present_modprobe_failure_carries_command(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    kernel.modular.discard('ip_vs_sh')  # listed in modules.dep, but modprobe cannot find it
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel)
    assert 'modprobe could not load' in str(info.value)
    assert info.value.details['rc'] == 1 and 'ip_vs_sh' in info.value.details['stderr']
    assert info.value.details['cmd'].startswith('/usr/sbin/modprobe -a ip_vs')


def test_persist_false_leaves_file_alone(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    (etc / 'netlb-ipvs.conf').write_text('mine\n')
    result = run(tmp_path, kernel, persist=False)
    assert result['persisted_file'] is None and result['diff'] == {'before': {'modules': []}, 'after': {'modules': DEFAULT_MODULES}}
    assert (etc / 'netlb-ipvs.conf').read_text() == 'mine\n'


def test_absent_unloads_and_removes_then_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    run(tmp_path, kernel)
    checked = run(tmp_path, kernel, state='absent', check_mode=True)
    assert (etc / 'netlb-ipvs.conf').exists() and len(kernel.calls) == 1
    result = run(tmp_path, kernel, state='absent')
    assert result['changed'] is True and checked['changed'] is True
    assert result['unloaded'] == checked['unloaded'] == ['ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs', 'nf_conntrack']
    assert kernel.calls[1] == ['-r', '-a', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert kernel.loaded == [] and not (etc / 'netlb-ipvs.conf').exists()
    assert result['warnings'] == []
    again = run(tmp_path, kernel, state='absent')
    assert again['changed'] is False and len(kernel.calls) == 2


def test_absent_in_use_warns_and_stays_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES + ['nf_nat'], extra_refs={'ip_vs_rr': 1})
    result = run(tmp_path, kernel, state='absent')
    assert result['unloaded'] == ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert result['in_use'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert result['warnings'][0].startswith('ip_vs stays loaded: used by ip_vs_rr')
    assert 'ip_vs_rr' in kernel.loaded and 'ip_vs_sh' not in kernel.loaded
    again = run(tmp_path, kernel, state='absent')
    assert again['changed'] is False and again['in_use'] == result['in_use']


def test_absent_kernel_refuses_midway(tmp_path, etc):
    """A service appeared between plan and unload: a warning, not a failure."""
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES, refuse={'ip_vs_rr'})
    result = run(tmp_path, kernel, state='absent')
    assert result['changed'] is True
    assert result['unloaded'] == ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert result['in_use'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert 'ip_vs_rr stays loaded: the kernel refused (modprobe: WARNING: Module ip_vs_rr is in use.)' in result['warnings']
    assert 'ip_vs stays loaded: used by ip_vs_rr' in result['warnings']
    assert len(kernel.calls) == 1


def test_absent_other_modprobe_failure_is_an_error(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=['ip_vs_rr'])

    def broken(args):
        kernel.calls.append(args)
        return 1, '', 'modprobe: FATAL: Module ip_vs_rr: Operation not permitted\n'
    kernel.modprobe = broken
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, state='absent', schedulers=['rr'], extra_modules=[])
    assert str(info.value).startswith('modprobe could not unload ip_vs_rr: modprobe: FATAL: Module ip_vs_rr: Operation not permitted')
    assert info.value.details['cmd'] == '/usr/sbin/modprobe -r -a ip_vs_rr'


def test_present_read_only_directory_is_fine_when_nothing_to_write(tmp_path, etc, monkeypatch):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES)
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(DEFAULT_MODULES))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o644)
    monkeypatch.setattr(os, 'access', lambda path, mode: False)
    assert run(tmp_path, kernel)['changed'] is False
