# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's edge: arguments in, JSON out, failures as fail_json (never a traceback)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import render_persist_file
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree
from ansible_collections.netlb.ipvs.plugins.modules import ipvs_modules
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args


RELEASE = '6.1.0-35-amd64'
SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf')  # no twos


class ScriptedRunner(Runner):
    """modprobe that 'loads' by appending to the fake /proc/modules."""

    def __init__(self, root):
        super(ScriptedRunner, self).__init__(module=None)
        self.root = root
        self.calls = []

    def which(self, name, required=True):
        return '/sbin/' + name

    def _execute(self, argv, data):
        self.calls.append(argv)
        with open(os.path.join(self.root, 'proc', 'modules'), 'a') as handle:
            for name in argv[2:]:
                handle.write('%s 1 0 - Live 0x0\n' % name)
        return 0, '', ''


@pytest.fixture
def node(tmp_path, monkeypatch):
    root = str(tmp_path)
    modules_dir = os.path.join(root, 'lib', 'modules', RELEASE)
    os.makedirs(modules_dir)
    os.makedirs(os.path.join(root, 'proc', 'sys', 'kernel'))
    os.makedirs(os.path.join(root, 'etc', 'modules-load.d'))
    with open(os.path.join(root, 'proc', 'sys', 'kernel', 'osrelease'), 'w') as handle:
        handle.write(RELEASE + '\n')
    with open(os.path.join(root, 'proc', 'modules'), 'w') as handle:
        handle.write('')
    with open(os.path.join(modules_dir, 'modules.dep'), 'w') as handle:
        handle.write('kernel/net/netfilter/nf_conntrack.ko.xz:\n')
        handle.write('kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n')
        for name in SCHEDULERS:
            handle.write('kernel/net/netfilter/ipvs/ip_vs_%s.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n' % name)
    runner = ScriptedRunner(root)
    monkeypatch.setattr(ipvs_modules, 'KernelTree', lambda: KernelTree(root))
    monkeypatch.setattr(ipvs_modules, 'Runner', lambda module: runner)
    return root, runner


def call_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ipvs_modules.main()
    return json.loads(capsys.readouterr().out)


def test_loads_and_persists(node, capsys):
    root, runner = node
    persist_file = os.path.join(root, 'etc', 'modules-load.d', 'netlb-ipvs.conf')
    result = call_module({'persist_file': persist_file, '_ansible_diff': True}, capsys)
    assert result['changed'] is True, result
    assert result['loaded'] == ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'nf_conntrack']
    assert result['persisted_file'] == persist_file
    assert result['diff'][1]['after_header'] == persist_file
    assert runner.calls == [['/sbin/modprobe', '-a'] + result['loaded']]
    with open(persist_file) as handle:
        assert handle.read() == render_persist_file(result['loaded'])
    again = call_module({'persist_file': persist_file}, capsys)
    assert again['changed'] is False and 'diff' not in again


@pytest.mark.parametrize('args, expect_msg', [
    pytest.param({'schedulers': ['rr', 'fastest']}, 'value of schedulers must be one or more of', id='unknown-scheduler'),
    pytest.param({'schedulers': ['twos']}, 'schedulers: this kernel (%s) has no module ip_vs_twos; it offers rr, wrr' % RELEASE,
                 id='scheduler-not-in-kernel'),
    pytest.param({'extra_modules': ['']}, 'extra_modules[0]: empty module name', id='empty-name'),
    pytest.param({'extra_modules': ['ok', 'x y']}, "extra_modules[1]: 'x y' is not a kernel module name", id='odd-characters'),
    pytest.param({'extra_modules': ['not_here']}, 'extra_modules: this kernel (%s) has no module not_here' % RELEASE, id='not-in-kernel'),
    pytest.param({'persist_file': '/nonexistent-dir/x.conf'}, 'persist_file: cannot write /nonexistent-dir/x.conf: directory',
                 id='unwritable-persist-file'),
    pytest.param({'persist_file': '/etc/modules'}, "persist_file: '/etc/modules' must end in .conf", id='not-conf'),
])
def test_bad_input_fails_cleanly(node, capsys, args, expect_msg):
    result = call_module(args, capsys)
    assert result['failed'] is True
    assert result['msg'].startswith(expect_msg), result['msg']
    assert 'exception' not in result
    assert node[1].calls == []
