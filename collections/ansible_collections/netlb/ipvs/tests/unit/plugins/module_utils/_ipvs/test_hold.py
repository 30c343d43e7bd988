# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The scheduler-change hold: its nft table and the nft runs that place and remove it."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import hold
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import key

HEAD = ('table inet netlb_ipvs_hold {\n'
        '\tcomment "netlb.ipvs: new connections held while schedulers change; deleted right after"\n')
CHAINS = ('\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n%s\t}\n'
          '\tchain output {\n\t\ttype filter hook output priority mangle + 10; policy accept;\n%s\t}\n}\n')


def nft_set(name, kind, elements):
    return ('\tset %s {\n\t\ttype %s\n\t\tflags timeout\n\t\ttimeout 10s\n\t\telements = { %s }\n\t}\n'
            % (name, kind, elements))


def table(sets, rules):
    body = ''.join('\t\t%s\n' % rule for rule in rules)
    return HEAD + ''.join(sets) + CHAINS % (body, body)


SYN = 'tcp flags & (syn | ack) == syn drop'
INIT = 'sctp vtag 0 drop'


@pytest.mark.parametrize('keys, expected', [
    pytest.param(['tcp 10.0.0.2:443', 'tcp 10.0.0.1:80'],
                 table([nft_set('tcp4', 'ipv4_addr . inet_service', '10.0.0.1 . 80, 10.0.0.2 . 443')],
                       ['ip daddr . tcp dport @tcp4 ' + SYN]), id='ipv4-tcp'),
    pytest.param(['tcp [2001:db8::1]:80', 'sctp [2001:db8::1]:3868'],
                 table([nft_set('tcp6', 'ipv6_addr . inet_service', '2001:db8::1 . 80'),
                        nft_set('sctp6', 'ipv6_addr . inet_service', '2001:db8::1 . 3868')],
                       ['ip6 daddr . tcp dport @tcp6 ' + SYN, 'ip6 daddr . sctp dport @sctp6 ' + INIT]),
                 id='ipv6-tcp-sctp'),
    pytest.param(['fwmark 10', 'fwmark 7 ipv6', 'sctp 10.0.0.1:9'],
                 table([nft_set('sctp4', 'ipv4_addr . inet_service', '10.0.0.1 . 9'),
                        nft_set('mark4', 'mark', '0x0000000a'), nft_set('mark6', 'mark', '0x00000007')],
                       ['ip daddr . sctp dport @sctp4 ' + INIT,
                        'meta nfproto ipv4 meta mark @mark4 ' + SYN, 'meta nfproto ipv4 meta mark @mark4 ' + INIT,
                        'meta nfproto ipv6 meta mark @mark6 ' + SYN, 'meta nfproto ipv6 meta mark @mark6 ' + INIT]),
                 id='fwmark-both-families'),
    pytest.param(['udp 10.0.0.1:53'], table([], []), id='udp-is-never-held'),
])
def test_render(keys, expected):
    assert hold.render([key(name) for name in keys]) == expected


class FakeRunner(_command.Runner):
    """Scripts nft: records each run; nft may be missing or fail."""

    def __init__(self, installed=True, rc=0):
        super(FakeRunner, self).__init__(None)
        self.installed = installed
        self.rc = rc
        self.calls = []

    def which(self, name, required=True):
        if not self.installed:
            raise _command.CommandError([name], 127, msg='%s: command not found' % name)
        return '/usr/sbin/' + name

    def _execute(self, argv, data, timeout=None):
        assert timeout == _command.NODE_TIMEOUT
        self.calls.append((argv, data))
        return self.rc, '', 'Error: Could not process rule: No such file or directory\n' if self.rc else ''


def test_place_replaces_the_table_in_one_run_and_release_deletes_it():
    runner = FakeRunner()
    held = hold.NftHold(runner)
    held.check()
    held.place([key('tcp 10.0.0.1:80')])
    held.release()
    (place_argv, script), (release_argv, _data) = runner.calls
    assert place_argv == ['/usr/sbin/nft', '-f', '-']
    assert script == ('table inet netlb_ipvs_hold {\n}\ndelete table inet netlb_ipvs_hold\n'
                      + hold.render([key('tcp 10.0.0.1:80')]))
    assert release_argv == ['/usr/sbin/nft', 'delete', 'table', 'inet', 'netlb_ipvs_hold']


@pytest.mark.parametrize('installed, rc, step, message', [
    pytest.param(False, 0, 'check', r'^nft: command not found \(install nftables\)$', id='check-nft-missing'),
    pytest.param(False, 0, 'place', r'^nft: command not found \(install nftables\)$', id='place-nft-missing'),
    pytest.param(True, 1, 'place', r'^cannot load table inet netlb_ipvs_hold: .*No such file or directory',
                 id='place-refused'),
    pytest.param(True, 1, 'release', r'^cannot delete table inet netlb_ipvs_hold \(its entries expire within 10 s\)',
                 id='release-refused'),
])
def test_errors_are_hold_errors_with_nft_words(installed, rc, step, message):
    held = hold.NftHold(FakeRunner(installed=installed, rc=rc))
    call = {'check': held.check, 'place': lambda: held.place([key('tcp 10.0.0.1:80')]), 'release': held.release}
    with pytest.raises(hold.HoldError, match=message):
        call[step]()
