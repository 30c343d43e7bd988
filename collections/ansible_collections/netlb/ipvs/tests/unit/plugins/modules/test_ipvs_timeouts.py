# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's edge: arguments in, JSON out (diff, check mode), bad input as fail_json."""

from __future__ import annotations

import json

import pytest

from ansible_collections.netlb.ipvs.plugins.modules import ipvs_timeouts
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.test_timeouts import FakeIpvsadm


@pytest.fixture
def kernel(monkeypatch):
    runner = FakeIpvsadm()
    monkeypatch.setattr(ipvs_timeouts, 'Runner', lambda module: runner)
    return runner


def call_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ipvs_timeouts.main()
    return json.loads(capsys.readouterr().out)


def test_check_apply_idempotent_with_diff(kernel, capsys):
    args = {'tcp': '2h0m0s', 'tcp_fin': '0s', 'udp': 60, '_ansible_diff': True}
    check = call_module(dict(args, _ansible_check_mode=True), capsys)
    assert check['changed'] and kernel.calls == [['-L', '--timeout']]
    applied = call_module(args, capsys)
    assert applied['changed'] and applied['diff'] == check['diff'] == {
        'before': 'tcp 900\ntcp_fin 120\nudp 300\n', 'after': 'tcp 7200\ntcp_fin 120\nudp 60\n'}
    assert applied['after'] == {'tcp': 7200, 'tcp_fin': 120, 'udp': 60}
    assert kernel.calls[-1] == ['--set', '7200', '0', '60']
    assert not call_module(args, capsys)['changed']


def test_defaults_touch_nothing(kernel, capsys):
    result = call_module({}, capsys)
    assert (result['changed'], result['before'], kernel.calls) == (False, None, [])


def test_bad_input_names_the_option(kernel, capsys):
    result = call_module({'tcp': 'forever', 'udp': '-1s'}, capsys)
    assert result['failed'] and result['msg'].startswith('invalid parameters: tcp: ') and 'udp: ' in result['msg']
    assert 'exception' not in result and kernel.calls == []
