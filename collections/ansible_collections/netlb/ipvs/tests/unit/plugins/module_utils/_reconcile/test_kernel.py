# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kernel.ensure on a /proc and /sys/module in tmp_path and a scripted modprobe: one
process for every missing module and none when all are there, a drifted sysctl written
back and a matching one left alone, nothing written in check mode."""

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._command import NODE_TIMEOUT
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import kernel
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import ScriptedRunner, proc_tree

OK = (0, '', '')
FORWARD, RANGE = 'net.ipv4.ip_forward', 'net.ipv4.ip_local_port_range'


def read_sysctls(proc, keys):
    result = {}
    for key in keys:
        with open(kernel.sysctl_path(key, os.path.join(proc, 'sys'))) as handle:
            result[key] = handle.read()
    return result


CASES = [
    # id, modules wanted, loaded (/proc/modules), built in (/sys/module only), sysctls wanted,
    # sysctl files as the kernel shows them, check mode, modprobe argv after '-a' (None: not run),
    # sysctl files after, result: loaded, result: sysctls (key, was, now)
    ('all there: no process, nothing written',
     ['ip_vs', 'ip_vs_rr'], ['ip_vs', 'ip_vs_rr'], [], [(FORWARD, '1')], {FORWARD: '1\n'}, False,
     None, {FORWARD: '1\n'}, (), ()),
    ('missing ones loaded by one modprobe -a',
     ['ip_vs', 'ip_vs_rr', 'ip_vs_wlc', 'nf_conntrack'], ['ip_vs'], [], [], {}, False,
     ['ip_vs_rr', 'ip_vs_wlc', 'nf_conntrack'], {}, ('ip_vs_rr', 'ip_vs_wlc', 'nf_conntrack'), ()),
    ('dash and underscore are one character',
     ['nf-conntrack', 'ip_vs'], ['nf_conntrack', 'ip_vs'], [], [], {}, False, None, {}, (), ()),
    ('a built-in module counts as there',
     ['ip_vs', 'nf_conntrack'], ['ip_vs'], ['nf_conntrack'], [], {}, False, None, {}, (), ()),
    ('drifted sysctl written back, matching one untouched',
     [], [], [], [(FORWARD, '1'), (RANGE, '32768 60999')], {FORWARD: '0\n', RANGE: '32768\t60999\n'}, False,
     None, {FORWARD: '1', RANGE: '32768\t60999\n'}, (), ((FORWARD, '0', '1'),)),
    ('blanks inside a value are compared normalised',
     [], [], [], [(RANGE, '1024 65000')], {RANGE: '32768\t60999\n'}, False,
     None, {RANGE: '1024 65000'}, (), ((RANGE, '32768 60999', '1024 65000'),)),
    ('check mode: the same answer, nothing loaded or written',
     ['ip_vs', 'ip_vs_sh'], ['ip_vs'], [], [(FORWARD, '1')], {FORWARD: '0\n'}, True,
     None, {FORWARD: '0\n'}, ('ip_vs_sh',), ((FORWARD, '0', '1'),)),
]


@pytest.mark.parametrize('modules, loaded, builtin, sysctls, files, check_mode, modprobe, files_after, '
                         'result_loaded, result_sysctls', [row[1:] for row in CASES], ids=[row[0] for row in CASES])
def test_ensure(tmp_path, modules, loaded, builtin, sysctls, files, check_mode, modprobe, files_after,
                result_loaded, result_sysctls):
    proc, sys_module = proc_tree(tmp_path, modules=loaded, builtin=builtin, sysctl=files)
    runner = ScriptedRunner({'modprobe': OK})
    result = kernel.ensure(modules, sysctls, runner, check_mode=check_mode, proc=proc, sys_module=sys_module)
    assert runner.calls == ([] if modprobe is None else [['/usr/sbin/modprobe', '-a'] + modprobe])
    assert read_sysctls(proc, files) == files_after
    assert (result.loaded, result.sysctls) == (result_loaded, result_sysctls)
    assert result.changed is bool(result_loaded or result_sysctls)


def test_a_second_run_finds_nothing_to_do(tmp_path):
    """What a run wrote is what the next one reads: no flapping."""
    proc, sys_module = proc_tree(tmp_path, sysctl={FORWARD: '0\n', RANGE: '32768\t60999\n'})
    wanted = [(FORWARD, '1'), (RANGE, '1024 65000')]
    first = kernel.ensure([], wanted, ScriptedRunner(), proc=proc, sys_module=sys_module)
    second = kernel.ensure([], wanted, ScriptedRunner(), proc=proc, sys_module=sys_module)
    assert first.changed and not second.changed


def test_modprobe_failing_names_the_modules(tmp_path):
    proc, sys_module = proc_tree(tmp_path, modules=['ip_vs'])
    runner = ScriptedRunner({'modprobe': (1, '', 'modprobe: FATAL: Module ip_vs_mh not found in directory')})
    with pytest.raises(kernel.KernelError) as error:
        kernel.ensure(['ip_vs', 'ip_vs_mh', 'ip_vs_fo'], [], runner, proc=proc, sys_module=sys_module)
    assert 'ip_vs_mh, ip_vs_fo would not load' in str(error.value)
    assert 'Module ip_vs_mh not found' in str(error.value)
    assert runner.timeouts == [NODE_TIMEOUT]  # a hung modprobe does not hold the run lock for ever


def test_a_sysctl_the_kernel_lacks_names_the_key(tmp_path):
    proc, sys_module = proc_tree(tmp_path)
    with pytest.raises(kernel.KernelError) as error:
        kernel.ensure([], [('net.ipv4.vs.conntrack', '1')], ScriptedRunner(), proc=proc, sys_module=sys_module)
    assert str(error.value).startswith('sysctl net.ipv4.vs.conntrack=1: ')


def test_ipvs_timeouts_set_back_after_a_reboot_and_only_read_when_held(tmp_path):
    """kube-proxy's timeouts live in the kernel only: a reboot brings back 900 120 300, and
    the run sets what the config asks (0: the kernel's value stays), in check mode nothing."""
    proc, sys_module = proc_tree(tmp_path)
    from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.test_timeouts import FakeIpvsadm
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.timeouts import Timeouts
    want = Timeouts(7200, 0, 60)
    checking = FakeIpvsadm()
    predicted = kernel.ensure([], [], checking, check_mode=True, proc=proc, sys_module=sys_module, ipvs_timeouts=want)
    assert predicted.changed and checking.kernel == Timeouts(900, 120, 300)
    runner = FakeIpvsadm()
    result = kernel.ensure([], [], runner, proc=proc, sys_module=sys_module, ipvs_timeouts=want)
    assert result.ipvs_timeouts == (Timeouts(900, 120, 300), Timeouts(7200, 120, 60)) == predicted.ipvs_timeouts
    assert runner.kernel == Timeouts(7200, 120, 60)
    again = kernel.ensure([], [], runner, proc=proc, sys_module=sys_module, ipvs_timeouts=want)
    assert not again.changed and runner.calls[-1] == ['-L', '--timeout']
    untouched = FakeIpvsadm()
    assert not kernel.ensure([], [], untouched, proc=proc, sys_module=sys_module).changed and untouched.calls == []
    with pytest.raises(kernel.KernelError, match='cannot read the IPVS timeouts'):
        kernel.ensure([], [], FakeIpvsadm(rc=2), proc=proc, sys_module=sys_module, ipvs_timeouts=want)
