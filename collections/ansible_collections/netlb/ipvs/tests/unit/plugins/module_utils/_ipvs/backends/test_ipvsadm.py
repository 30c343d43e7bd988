# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.ipvsadm import IpvsadmBackend, reflected
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    Action,
    RealServer,
    ServiceKey,
    VirtualService,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures')
IPVSADM = '/usr/sbin/ipvsadm'
SAVE = (IPVSADM, '-S', '-n')
LIST = (IPVSADM, '-L', '-n', '--thresholds')
RESTORE = (IPVSADM, '-R')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


class FakeRunner(_command.Runner):
    """Answers argv from a script: {argv tuple: [(rc, stdout, stderr), ...]}, each answer
    used once in turn (the last one repeats). Records every call with its stdin."""

    def __init__(self, script, installed=True):
        super(FakeRunner, self).__init__(None)
        self.script = dict((argv, list(answers)) for argv, answers in script.items())
        self.installed = installed
        self.calls = []

    def which(self, name, required=True):
        if self.installed:
            return '/usr/sbin/' + name
        if required:
            raise _command.CommandError([name], 127, msg='%s: command not found' % name)
        return None

    def _execute(self, argv, data):
        self.calls.append((tuple(argv), data))
        answers = self.script[tuple(argv)]
        return answers.pop(0) if len(answers) > 1 else answers[0]


TCP80 = ServiceKey.tcp_udp('tcp', '10.0.0.1', 80)
WEB = VirtualService(TCP80, 'rr')
A = RealServer('10.244.0.2', 8080)
B = RealServer('10.244.0.3', 8080, weight=2)
LISTING = ('IP Virtual Server version 1.2.1 (size=4096)\n'
           'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n'
           '  -> RemoteAddress:Port\n'
           'TCP  10.0.0.1:80 rr\n'
           '  -> 10.244.0.2:8080               10         5          3          1\n')


def test_read_merges_thresholds_and_counters():
    runner = FakeRunner({SAVE: [(0, '-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.244.0.2:8080 -m -w 1\n', '')],
                         LIST: [(0, LISTING, '')]})
    service = IpvsadmBackend(runner).read()[TCP80]
    assert service.real_servers == (A.replace(upper_threshold=10, lower_threshold=5),)
    assert service.connections_of(A.key) == (3, 1)


def test_read_fixtures_from_the_lab():
    runner = FakeRunner({SAVE: [(0, fixture('ipvsadm-save.txt'), '')],
                         LIST: [(0, fixture('ipvsadm-list-thresholds.txt'), '')]})
    table = IpvsadmBackend(runner).read()
    assert table == save_format.with_listing(save_format.parse(fixture('ipvsadm-save.txt')),
                                             save_format.parse_listing(fixture('ipvsadm-list-thresholds.txt')))


def _saved(*servers, service=WEB):
    return save_format.render({service.key: service.replace(real_servers=servers)})


ADD_A = Action(model.ADD_SERVER, WEB, A)
ADD_B = Action(model.ADD_SERVER, WEB, B)
DRAIN_A = Action(model.EDIT_SERVER, WEB, A.replace(weight=0), reason='drain')


@pytest.mark.parametrize('actions, rc, after, expect_applied, expect_failed', [
    pytest.param([ADD_A, ADD_B], 0, _saved(A, B), None, None, id='all-applied'),
    pytest.param([ADD_A, ADD_B], 0, _saved(A), [ADD_A], ADD_B, id='rc-0-but-line-refused'),
    pytest.param([ADD_A, ADD_B, DRAIN_A], 255, _saved(A, B), [ADD_A, ADD_B], DRAIN_A, id='last-line-refused'),
    pytest.param([ADD_B, DRAIN_A], 255, _saved(A.replace(weight=0)), [DRAIN_A], ADD_B,
                 id='refused-line-then-applied-one'),
])
def test_apply_confirms_by_reading_back(actions, rc, after, expect_applied, expect_failed):
    runner = FakeRunner({RESTORE: [(rc, '', 'Memory allocation problem\n')], SAVE: [(0, after, '')],
                         LIST: [(0, '', '')]})
    backend = IpvsadmBackend(runner)
    if expect_failed is None:
        backend.apply(actions)
    else:
        with pytest.raises(model.ApplyError) as info:
            backend.apply(actions)
        assert (info.value.applied, info.value.failed) == (expect_applied, expect_failed)
        assert save_format.restore_line(expect_failed) in str(info.value)
        assert info.value.evidence == {'cmd': '/usr/sbin/ipvsadm -R', 'rc': rc, 'stdout': '',
                                       'stderr': 'Memory allocation problem\n'}
    assert runner.calls[0] == (RESTORE, save_format.restore_script(actions))
    assert [argv for argv, _data in runner.calls[1:]] == [SAVE, LIST]


def test_check_mode_never_restores():
    runner = FakeRunner({SAVE: [(0, '', '')], LIST: [(0, '', '')]})
    backend = IpvsadmBackend(runner, check_mode=True)
    backend.apply([ADD_A])
    assert backend.read() == {}
    assert RESTORE not in [argv for argv, _data in runner.calls]


@pytest.mark.parametrize('runner, message', [
    pytest.param(FakeRunner({}, installed=False), 'install the ipvsadm package', id='not-installed'),
    pytest.param(FakeRunner({SAVE: [(2, '', "Can't initialize ipvs: Permission denied (you must be root)\n")]}),
                 'you must be root', id='not-root'),
    pytest.param(FakeRunner({SAVE: [(0, '-A -t 10.0.0.1:80 -s rr --what\n', '')], LIST: [(0, '', '')]}),
                 'cannot read ipvsadm output: line 1: unknown option', id='unreadable'),
])
def test_read_errors(runner, message):
    with pytest.raises(model.BackendError, match=message):
        IpvsadmBackend(runner).read()


def test_a_failed_call_carries_cmd_rc_and_stderr():
    runner = FakeRunner({SAVE: [(2, '', "Can't initialize ipvs: Permission denied (you must be root)\n")]})
    with pytest.raises(model.BackendError) as info:
        IpvsadmBackend(runner).read()
    assert info.value.evidence == {'cmd': '/usr/sbin/ipvsadm -S -n', 'rc': 2, 'stdout': '',
                                   'stderr': "Can't initialize ipvs: Permission denied (you must be root)\n"}


def test_read_counters_is_one_listing():
    runner = FakeRunner({LIST: [(0, fixture('ipvsadm-list-thresholds.txt'), '')]})
    gone = ServiceKey.tcp_udp('tcp', '10.0.0.99', 80)
    counters = IpvsadmBackend(runner).read_counters([TCP80, gone])
    assert counters == {TCP80: {('10.244.0.2', 8080): (0, 1), ('10.244.0.3', 80): (0, 0),
                                ('10.244.0.4', 80): (1, 0)}}
    assert [argv for argv, _data in runner.calls] == [LIST]


@pytest.mark.parametrize('action, table, expect', [
    pytest.param(Action(model.ADD_SERVICE, WEB), {}, False, id='service-missing'),
    pytest.param(Action(model.EDIT_SERVICE, WEB.replace(scheduler='wlc')), {TCP80: WEB}, False, id='settings-differ'),
    pytest.param(Action(model.EDIT_SERVICE, WEB), {TCP80: WEB.replace(real_servers=(A,))}, True,
                 id='servers-do-not-matter'),
    pytest.param(Action(model.DELETE_SERVICE, WEB), {}, True, id='service-gone'),
    pytest.param(ADD_A, {TCP80: WEB.replace(real_servers=(A,), connections={A.key: (5, 0)})}, True,
                 id='counters-do-not-matter'),
    pytest.param(DRAIN_A, {TCP80: WEB.replace(real_servers=(A,))}, False, id='weight-differs'),
    pytest.param(Action(model.DELETE_SERVER, WEB, A), {TCP80: WEB}, True, id='server-gone'),
    pytest.param(Action(model.DELETE_SERVER, WEB, A), {}, True, id='server-gone-with-its-service'),
])
def test_reflected(action, table, expect):
    assert reflected(action, table) is expect
