# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_kube_proxy_leftovers as Ansible runs it, on the scripted node of
test_leftovers_node: check mode and diff, the warning for a kept KUBE-FORWARD, a second
run without change, a refusal as fail_json."""

from __future__ import annotations

import json

import pytest

from ansible_collections.netlb.ipvs.plugins.modules import k8s_kube_proxy_leftovers
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kube_proxy.test_leftovers_node import (
    RUNNING,
    FakeNode,
    node_of,
)


def warning_text(warning):
    # ansible-core 2.19 returns warnings as structured events, older ones as strings.
    return warning if isinstance(warning, str) else warning['event']['msg']


def call(capsys, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            k8s_kube_proxy_leftovers.main()
    return json.loads(capsys.readouterr().out)


def test_check_then_remove_then_nothing(monkeypatch, capsys, roots, state_path):
    runner = FakeNode()
    monkeypatch.setattr(k8s_kube_proxy_leftovers, 'Node', lambda _runner: node_of(runner, roots))
    args = {'state_path': state_path}
    checked = call(capsys, args, check_mode=True, diff=True)
    assert checked['changed'] and 'ipset KUBE-CLUSTER-IP\n' in checked['diff']['before']
    assert checked['diff']['after'] == 'iptables-nft filter: chain KUBE-FORWARD\n'
    assert any('FORWARD policy is DROP' in warning_text(warning) for warning in checked['warnings'])
    assert runner.sets == ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'ops-admins']

    removed = call(capsys, args, diff=True)
    assert removed['changed'] and removed['removed'] == checked['removed'] and removed['diff'] == checked['diff']
    assert runner.sets == ['ops-admins']
    again = call(capsys, args)
    assert not again['changed'] and again['removed'] == {'iptables': [], 'ipsets': [], 'nft_tables': []}


def test_refusal_is_a_failure_with_the_reason(monkeypatch, capsys, roots, state_path):
    monkeypatch.setattr(k8s_kube_proxy_leftovers, 'Node', lambda _runner: node_of(FakeNode(), roots, running=RUNNING))
    result = call(capsys, {'state_path': state_path})
    assert result['failed'] and result['msg'].startswith('kube-proxy is running on this node')
    assert 'exception' not in result
