# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The leftovers step on a scripted node: it refuses while kube-proxy runs or before
k8s_service_proxy converged, names the package when a tool is missing and the kernel has
something for it, removes everything in one process per tool, and a second run changes
nothing; check mode plans the same and removes nothing."""

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ServiceKey
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import kube_proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import ProxyState, StateStore
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import leftovers_node
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers import LeftoversError
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers_node import Options, RefusedError
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kube_proxy.test_leftovers import (
    IPVS_NODE,
    render,
    replay,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import leftovers

SERVICE = ServiceKey.tcp_udp('tcp', '10.96.0.1', 443)
NOT_RUNNING = kube_proxy.decide([], None, None, None)
RUNNING = kube_proxy.decide([(4242, ['kube-proxy', '--proxy-mode=ipvs'])], None, 'ipvs', None)
SETS = ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'ops-admins']


class FakeNode(_command.Runner):
    """Scripts iptables-nft-save/-restore (replayed on the held text), ipset and nft."""

    def __init__(self, programs=('iptables-nft-save', 'iptables-nft-restore', 'ipset', 'nft'), iptables=IPVS_NODE,
                 sets=tuple(SETS), nft=(('ip', 'kube-proxy'), ('inet', 'netlb_ipvs'))):
        super(FakeNode, self).__init__(None)
        self.programs = set(programs)
        self.iptables = iptables
        self.sets = list(sets)
        self.nft = list(nft)
        self.calls = []

    def which(self, name, required=True):
        if name in self.programs:
            return '/usr/sbin/' + name
        if required:
            raise _command.CommandError([name], 127, msg='%s: command not found' % name)
        return None

    def _execute(self, argv, data):
        program = os.path.basename(argv[0])
        self.calls.append([program] + argv[1:])
        if program == 'iptables-nft-save':
            return 0, self.iptables, ''
        if program == 'iptables-nft-restore':
            assert argv[1:] == ['--noflush', '-w']
            self.iptables = render(replay(self.iptables, data))
            return 0, '', ''
        if argv[1:] == ['list', '-n']:
            return 0, ''.join('%s\n' % name for name in self.sets), ''
        if program == 'ipset' and argv[1:] == ['restore']:
            for line in data.splitlines():
                verb, name = line.split()
                assert verb == 'destroy'
                self.sets.remove(name)
            return 0, '', ''
        if argv[1:] == ['list', 'tables']:
            return 0, ''.join('table %s %s\n' % table for table in self.nft), ''
        if program == 'nft' and argv[1:] == ['-f', '-']:
            for line in data.splitlines():
                self.nft.remove(tuple(line.split()[2:4]))
            return 0, '', ''
        raise AssertionError(argv)


def node_of(runner, roots, running=NOT_RUNNING, ipvs=(SERVICE,)):
    proc, sys_root = roots
    return leftovers_node.Node(runner, proc_root=str(proc), sys_root=str(sys_root),
                               read_ipvs=lambda: frozenset(ipvs), detect=lambda: running)


def test_removes_everything_in_one_process_per_tool_and_a_second_run_changes_nothing(roots, state_path):
    runner = FakeNode()
    node = node_of(runner, roots)
    checked = leftovers_node.remove(node, Options(state_path=state_path, keep_forward='never'), check_mode=True)
    assert checked['changed'] and runner.iptables == IPVS_NODE and runner.sets == SETS
    assert [call[0] for call in runner.calls] == ['nft', 'iptables-nft-save', 'ipset']

    runner.calls[:] = []
    done = leftovers_node.remove(node, Options(state_path=state_path, keep_forward='never'))
    assert done['changed'] and done['removed'] == checked['removed'] and done['diff'].diff() == checked['diff'].diff()
    writes = [call for call in runner.calls if call[0].endswith('-restore') or call[1:2] in (['restore'], ['-f'])]
    assert [call[0] for call in writes] == ['iptables-nft-restore', 'ipset', 'nft']
    assert runner.sets == ['ops-admins'] and runner.nft == [('inet', 'netlb_ipvs')]
    left = set((t.name, c) for t in leftovers.parse_save(runner.iptables).values() for c in t.chains
               if not t.builtin(c))
    assert left == {('mangle', 'KUBE-IPTABLES-HINT'), ('mangle', 'KUBE-KUBELET-CANARY'),
                    ('filter', 'KUBE-KUBELET-CANARY'), ('nat', 'KUBE-KUBELET-CANARY'), ('filter', 'KUBE-FIREWALL'),
                    ('filter', 'OPS-ALLOW'), ('nat', 'OPS-SNAT')}

    again = leftovers_node.remove(node, Options(state_path=state_path, keep_forward='never'))
    diff = again['diff'].diff()
    assert not again['changed'] and diff['before'] == diff['after'] == ''
    assert diff['before_header'] == diff['after_header'] == "kube-proxy's leftovers"


def test_forward_drop_keeps_kube_forward_with_a_warning(roots, state_path):
    runner = FakeNode()
    result = leftovers_node.remove(node_of(runner, roots), Options(state_path=state_path))
    assert result['kept'] and 'FORWARD policy is DROP' in result['warnings'][0]
    assert '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD' in runner.iptables
    assert not leftovers_node.remove(node_of(runner, roots), Options(state_path=state_path))['changed']


@pytest.mark.parametrize('name, state, nft, ipvs, running, message', [
    ('kube-proxy runs', 'ok', True, (SERVICE,), RUNNING, 'kube-proxy is running on this node'),
    ('no state file', None, True, (SERVICE,), NOT_RUNNING, 'no state file'),
    ('empty state', 'empty', True, (SERVICE,), NOT_RUNNING, 'names no virtual service'),
    ('broken state', 'broken', True, (SERVICE,), NOT_RUNNING, 'state cannot be read'),
    ('no nft table of ours', 'ok', False, (SERVICE,), NOT_RUNNING, 'inet netlb_ipvs is not loaded'),
    ('IPVS lacks a service of the state', 'ok', True, (), NOT_RUNNING, r'1 virtual service\(s\) .* 10.96.0.1:443'),
])
def test_refuses_and_changes_nothing(roots, tmp_path, name, state, nft, ipvs, running, message):
    path = str(tmp_path / 'state.json')
    if state == 'ok':
        StateStore(path).save(ProxyState(services=frozenset([SERVICE])))
    elif state == 'empty':
        StateStore(path).save(ProxyState())
    elif state == 'broken':
        with open(path, 'w') as handle:
            handle.write('{"version": 1}')
    runner = FakeNode(nft=[('ip', 'kube-proxy')] + ([('inet', 'netlb_ipvs')] if nft else []))
    with pytest.raises(RefusedError, match=message):
        leftovers_node.remove(node_of(runner, roots, running=running, ipvs=ipvs), Options(state_path=path))
    assert not [call for call in runner.calls if call[0].endswith('-restore') or 'restore' in call or '-f' in call]


def test_force_skips_the_convergence_check_not_the_kube_proxy_one(roots, tmp_path):
    path = str(tmp_path / 'none.json')
    runner = FakeNode()
    assert leftovers_node.remove(node_of(runner, roots), Options(state_path=path, force=True))['changed']
    with pytest.raises(RefusedError, match='kube-proxy is running'):
        leftovers_node.remove(node_of(FakeNode(), roots, running=RUNNING), Options(state_path=path, force=True))


@pytest.mark.parametrize('programs, proc_files, sys_modules, nft, message', [
    (('ipset', 'nft'), {'net/ip_tables_names': 'nat\nfilter\n'}, (), [('inet', 'netlb_ipvs')],
     'iptables-save and iptables-restore are not installed.*legacy tables nat, filter.*install the iptables package'),
    (('ipset', 'nft'), {}, (), [('inet', 'netlb_ipvs'), ('ip', 'filter')],
     'nft table ip filter.*install the iptables package'),
    (('iptables-nft-save', 'iptables-nft-restore', 'nft'), {}, ('ip_set',), [('inet', 'netlb_ipvs')],
     'ipset is not installed, but the kernel has ip_set loaded.*install the ipset package'),
])
def test_a_missing_tool_with_something_to_read_names_the_package(
        roots, state_path, programs, proc_files, sys_modules, nft, message):
    proc, sys_root = roots
    for path, text in proc_files.items():
        (proc / path).write_text(text)
    for name in sys_modules:
        (sys_root / 'module' / name).mkdir()
    runner = FakeNode(programs=programs, nft=nft)
    with pytest.raises(LeftoversError, match=message):
        leftovers_node.remove(node_of(runner, roots), Options(state_path=state_path))


def test_missing_tools_with_nothing_to_read_are_fine(roots, tmp_path):
    runner = FakeNode(programs=())
    result = leftovers_node.remove(node_of(runner, roots), Options(state_path=str(tmp_path / 'x'), force=True))
    assert not result['changed'] and runner.calls == []


def test_legacy_tables_are_read_only_when_the_kernel_has_them(roots, state_path):
    proc, _sys = roots
    programs = ('iptables-nft-save', 'iptables-nft-restore', 'iptables-legacy-save', 'iptables-legacy-restore',
                'ipset', 'nft')
    node = node_of(FakeNode(programs=programs), roots)
    assert [r.label for r in leftovers_node.rulesets(node, [])] == ['iptables-nft']
    (proc / 'net' / 'ip_tables_names').write_text('filter\n')
    (proc / 'net' / 'if_inet6').write_text('')
    assert [r.label for r in leftovers_node.rulesets(node, [])] == ['iptables-nft', 'iptables-legacy']
