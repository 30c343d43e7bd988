# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import Action, RealServer as RS, ServiceKey
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import VirtualService as VS
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import conntrack
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.conntrack import Flow

DNS = VS(ServiceKey.tcp_udp('udp', '10.96.0.10', 53), 'rr', real_servers=(RS('10.244.1.5', 53),))
DNS6 = VS(ServiceKey.tcp_udp('udp', 'fd00::a', 53), 'rr')
WEB = VS(ServiceKey.tcp_udp('tcp', '10.96.0.1', 443), 'rr')


@pytest.mark.parametrize('actions, expected', [
    pytest.param([Action(model.DELETE_SERVER, DNS, RS('10.244.1.5', 53))],
                 [Flow(4, '10.96.0.10', 53, '10.244.1.5', 53)], id='udp-server'),
    pytest.param([Action(model.DELETE_SERVER, WEB, RS('10.244.1.5', 443))], [], id='tcp-ignored'),
    pytest.param([Action(model.ADD_SERVER, DNS, RS('10.244.1.6', 53)),
                  Action(model.EDIT_SERVER, DNS, RS('10.244.1.5', 53, 0))], [], id='add-edit-ignored'),
    pytest.param([Action(model.DELETE_SERVICE, DNS6)], [Flow(6, 'fd00::a', 53, '', 0)], id='udp-service-all-entries'),
    pytest.param([Action(model.DELETE_SERVER, DNS, RS('10.244.1.5', 53)),
                  Action(model.DELETE_SERVER, DNS, RS('10.244.1.5', 53))],
                 [Flow(4, '10.96.0.10', 53, '10.244.1.5', 53)], id='deduplicated'),
])
def test_flows(actions, expected):
    assert conntrack.flows(actions) == expected


DNS_EMPTY = DNS.replace(real_servers=())
DNS_DRAINED = DNS.replace(real_servers=(RS('10.244.1.5', 53, 0),))
WEB_UP = WEB.replace(real_servers=(RS('10.244.1.5', 443),))
ALL_DNS = Flow(4, '10.96.0.10', 53, '', 0)


# Columns: the plan's before and after tables (lists of virtual services), the Flows activated() gives.
@pytest.mark.parametrize('before, after, expected', [
    pytest.param([DNS_EMPTY], [DNS], [ALL_DNS], id='no-endpoint-to-one-whole-service'),
    pytest.param([], [DNS], [ALL_DNS], id='new-service-with-an-endpoint'),
    pytest.param([DNS_DRAINED], [DNS], [ALL_DNS], id='only-weight-0-before-counts-as-none'),
    pytest.param([DNS], [DNS.replace(real_servers=(RS('10.244.1.5', 53), RS('10.244.1.6', 53)))], [],
                 id='had-one-already'),
    pytest.param([DNS_EMPTY], [DNS_EMPTY], [], id='still-none'),
    pytest.param([DNS], [DNS_EMPTY], [], id='some-to-none-is-flows-job'),
    pytest.param([], [DNS_DRAINED], [], id='weight-0-serves-nothing'),
    pytest.param([WEB], [WEB_UP], [], id='tcp-ignored'),
])
def test_activated(before, after, expected):
    table = dict
    assert conntrack.activated(table((vs.key, vs) for vs in before), table((vs.key, vs) for vs in after)) == expected


class _Plan(object):
    def __init__(self, actions, before, after):
        self.actions, self.before, self.after = actions, before, after


def test_plan_flows_both_kinds_each_once():
    gone = Action(model.DELETE_SERVER, DNS6.replace(real_servers=(RS('fd10::5', 53),)), RS('fd10::5', 53))
    plan = _Plan([gone, Action(model.DELETE_SERVICE, DNS)], {DNS6.key: gone.service},
                 {DNS.key: DNS, DNS6.key: DNS6})
    assert conntrack.plan_flows(plan) == [Flow(6, 'fd00::a', 53, 'fd10::5', 53), ALL_DNS]


@pytest.mark.parametrize('flow, argv', [
    pytest.param(Flow(4, '10.96.0.10', 53, '10.244.1.5', 5353),
                 ['ct', '-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53',
                  '--reply-src', '10.244.1.5', '--reply-port-src', '5353'], id='server'),
    pytest.param(Flow(6, 'fd00::a', 53, '', 0),
                 ['ct', '-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00::a', '--orig-port-dst', '53'], id='service'),
])
def test_command(flow, argv):
    assert conntrack.command('ct', flow) == argv


class FakeRunner(_command.Runner):
    def __init__(self, rc):
        super(FakeRunner, self).__init__(None)
        self.rc = rc
        self.calls = []

    def which(self, name, required=True):
        return '/usr/sbin/' + name

    def _execute(self, argv, data, timeout=None):
        assert timeout == _command.NODE_TIMEOUT
        self.calls.append(argv)
        return self.rc, '', 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'


@pytest.mark.parametrize('rc', [0, 1])
def test_clear_none_deleted_is_fine(rc):
    runner = FakeRunner(rc)
    actions = [Action(model.DELETE_SERVER, DNS, RS('10.244.1.5', 53)), Action(model.DELETE_SERVICE, DNS6)]
    assert len(conntrack.clear(runner, actions)) == 2
    assert len(runner.calls) == 2


def test_clear_check_mode_runs_nothing():
    runner = FakeRunner(0)
    assert conntrack.clear(runner, [Action(model.DELETE_SERVICE, DNS6)], check_mode=True) == [
        Flow(6, 'fd00::a', 53, '', 0)]
    assert runner.calls == []


def test_clear_error():
    with pytest.raises(conntrack.ConntrackError, match='cannot delete stale UDP conntrack entries'):
        conntrack.clear(FakeRunner(2), [Action(model.DELETE_SERVICE, DNS6)])
