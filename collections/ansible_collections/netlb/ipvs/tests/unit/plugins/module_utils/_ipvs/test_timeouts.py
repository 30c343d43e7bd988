# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import timeouts
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.timeouts import Timeouts

# `ipvsadm -L --timeout` on the lab node (Debian 12, kernel 6.1, ipvsadm 1.31), the kernel's defaults.
LISTING = 'Timeout (tcp tcpfin udp): 900 120 300\n'
DEFAULTS = Timeouts(900, 120, 300)


# Columns: the value as an inventory gives it, the seconds (None: refused, the message's start).
@pytest.mark.parametrize('value, expected', [
    pytest.param('0s', 0, id='kube-proxy-default-leave'),
    pytest.param('900s', 900, id='seconds'),
    pytest.param('1h0m0s', 3600, id='go-duration-as-kube-proxy-writes-it'),
    pytest.param('1.9s', 1, id='fraction-dropped'),
    pytest.param(7200, 7200, id='integer-seconds'),
    pytest.param('300', 300, id='digits'),
    pytest.param(0, 0, id='zero'),
    pytest.param('-5s', 'tcp: ', id='negative'),
    pytest.param('15 minutes', 'tcp: ', id='not-a-duration'),
    pytest.param(True, 'tcp: ', id='bool'),
    pytest.param('600h', 'tcp: ', id='over-the-kernel-bound'),
])
def test_seconds(value, expected):
    if isinstance(expected, str):
        with pytest.raises(ValidationError, match='^%s' % expected):
            timeouts.seconds('tcp', value)
    else:
        assert timeouts.seconds('tcp', value) == expected


def test_wanted_names_every_bad_field_at_once():
    with pytest.raises(ValidationError) as caught:
        timeouts.wanted({'tcp': 'x', 'udp': -1, 'tcp_fin': '10s'})
    assert [problem.split(':')[0] for problem in caught.value.problems] == ['tcp', 'udp']
    assert timeouts.wanted({'tcp': '2h', 'udp': 60}) == Timeouts(7200, 0, 60)


def test_parse_and_text():
    assert timeouts.parse(LISTING) == DEFAULTS
    assert DEFAULTS.text() == 'tcp 900\ntcp_fin 120\nudp 300\n'
    with pytest.raises(timeouts.TimeoutsError, match='unexpected'):
        timeouts.parse('Can\'t initialize ipvs: Protocol not available\n')


class FakeIpvsadm(_command.Runner):
    """ipvsadm over a kernel holding timeouts; --set with 0 leaves a field, as the kernel does."""

    def __init__(self, kernel=DEFAULTS, rc=0):
        super(FakeIpvsadm, self).__init__(None)
        self.kernel, self.rc, self.calls = kernel, rc, []

    def which(self, name, required=True):
        return '/usr/sbin/' + name

    def _execute(self, argv, data, timeout=None):
        assert timeout == _command.NODE_TIMEOUT
        self.calls.append(argv[1:])
        if argv[1] == '--set' and self.rc == 0:
            self.kernel = Timeouts(*(int(new) or old for new, old in zip(argv[2:], self.kernel)))
            return 0, '', ''
        if self.rc:
            return self.rc, '', 'Memory allocation problem\n'
        return 0, 'Timeout (tcp tcpfin udp): %d %d %d\n' % self.kernel, ''


# Columns: wanted, the kernel before, changed, the kernel after, the ipvsadm calls.
@pytest.mark.parametrize('want, kernel, changed, after, calls', [
    pytest.param(Timeouts(0, 0, 0), DEFAULTS, False, DEFAULTS, [], id='all-zero-runs-nothing'),
    pytest.param(Timeouts(7200, 0, 0), DEFAULTS, True, Timeouts(7200, 120, 300),
                 [['-L', '--timeout'], ['--set', '7200', '0', '0']], id='tcp-only-others-left'),
    pytest.param(Timeouts(7200, 0, 60), Timeouts(7200, 30, 60), False, Timeouts(7200, 30, 60),
                 [['-L', '--timeout']], id='held-already-read-only'),
    pytest.param(Timeouts(900, 120, 300), Timeouts(7200, 120, 300), True, DEFAULTS,
                 [['-L', '--timeout'], ['--set', '900', '120', '300']], id='drift-set-back'),
])
def test_ensure(want, kernel, changed, after, calls):
    runner = FakeIpvsadm(kernel)
    checking = FakeIpvsadm(kernel)
    predicted = timeouts.ensure(checking, want, check_mode=True)
    result = timeouts.ensure(runner, want)
    assert (result.changed, runner.kernel, runner.calls) == (changed, after, calls)
    assert predicted == result and checking.kernel == kernel, 'check mode differs from the real run or wrote'
    if any(want):
        assert result.before == kernel and result.after == after
        assert not timeouts.ensure(runner, want).changed


def test_ensure_error_names_the_command():
    with pytest.raises(timeouts.TimeoutsError, match='cannot read the IPVS timeouts'):
        timeouts.ensure(FakeIpvsadm(rc=2), Timeouts(1, 0, 0))
