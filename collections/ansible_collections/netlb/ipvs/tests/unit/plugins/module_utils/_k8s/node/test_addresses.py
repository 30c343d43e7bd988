# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import addresses
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import route
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.addresses import Address, Route

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'rtnl_dump.json')


@pytest.fixture(scope='module')
def captured():
    with open(FIXTURE) as handle:
        data = json.load(handle)
    names = dict((int(index), name) for index, name in data['names'].items())
    return addresses.Snapshot(addresses.parse_addresses([bytes.fromhex(b) for b in data['addr']], names),
                              addresses.parse_routes([bytes.fromhex(b) for b in data['route']]), names)


def test_captured_local_addresses(captured):
    assert captured.local() == (
        ('lo', '127.0.0.1'), ('ens3', '10.0.2.15'), ('hcli', '10.200.1.1'), ('hbe', '10.200.2.1'),
        ('kube-ipvs0', '10.96.0.10'), ('kube-ipvs0', '10.96.0.11'), ('lo', '::1'), ('ens3', '2001:db8:1::5'),
        ('ens3', 'fec0::5054:ff:fe12:3456'), ('ens3', 'fe80::5054:ff:fe12:3456'), ('hcli', 'fe80::9c87:9eff:fe0b:cbcd'),
        ('hbe', 'fe80::8c6c:48ff:fe1e:ab47'), ('kube-ipvs0', 'fd00::11'), ('kube-ipvs0', 'fd00::10'))


def test_captured_fields(captured):
    by_address = dict((item.address, item) for item in captured.addresses)
    assert by_address['10.0.2.15'] == Address('ens3', 4, '10.0.2.15', 24, 0, 0)
    assert by_address['fe80::5054:ff:fe12:3456'].scope == 253
    assert by_address['fd00::11'].flags & 0x02  # added with nodad
    assert by_address['::1'].scope == 254


def test_captured_primary(captured):
    # IPv4: the DHCP default route's prefsrc; IPv6: the RA default route has none, so
    # the first usable global address on its interface.
    assert captured.primary() == ('10.0.2.15', '2001:db8:1::5')


def test_captured_default_routes(captured):
    defaults = [r for r in captured.routes if r.dst_len == 0 and r.table == 254]
    assert [(r.family, r.prefsrc, captured.names[r.oif], r.priority) for r in defaults] == [
        (4, '10.0.2.15', 'ens3', 1024), (6, '', 'ens3', 1024)]


class ReplayRtnl:
    """Answers read()'s two dumps with the captured messages (strict: a kernel that
    filters route dumps by the request's table, as Linux 4.20+ with strict dumps)."""

    def __init__(self, data, strict=False):
        self.answers = {route.RTM_GETADDR: [(route.RTM_NEWADDR, bytes.fromhex(b)) for b in data['addr']],
                        route.RTM_GETROUTE: [(route.RTM_NEWROUTE, bytes.fromhex(b)) for b in data['route']]}
        self.strict = strict
        self.tables = []  # the table of each route dump request

    def strict_dumps(self):
        return self.strict

    def dump(self, kind, body):
        if kind != route.RTM_GETROUTE:
            return self.answers[kind]
        table = route.RTMSG.unpack_from(body)[4]
        self.tables.append(table)
        return [(kind, reply) for kind, reply in self.answers[kind]
                if not (self.strict and table) or route.RTMSG.unpack_from(reply)[4] == table]


@pytest.mark.parametrize('strict', [False, True], ids=['unfiltered', 'kernel-filtered'])
def test_read_keeps_the_default_routes_alone_and_chooses_the_same_primary(captured, strict):
    with open(FIXTURE) as handle:
        data = json.load(handle)
    sock = ReplayRtnl(data, strict)
    read = addresses.read(sock, names=captured.names)
    assert sock.tables == [route.RT_TABLE_MAIN if strict else 0]  # the main table asked for where it can be
    assert len(captured.routes) > len(read.routes) and all(route.dst_len == 0 for route in read.routes)
    assert read.routes == [route for route in captured.routes if route.dst_len == 0]
    assert read.local() == captured.local() and read.primary() == captured.primary() == ('10.0.2.15', '2001:db8:1::5')


A = Address
NAMES = {1: 'lo', 2: 'eth0', 3: 'eth1', 9: 'kube-ipvs0'}


@pytest.mark.parametrize('addrs, routes, expected', [
    pytest.param([A('eth0', 4, '192.0.2.1', 24, 0, 0), A('eth1', 4, '198.51.100.1', 24, 0, 0)],
                 [Route(4, 0, 254, 1, 0, 3, '')], ('198.51.100.1',), id='default-route-interface'),
    pytest.param([A('eth0', 4, '192.0.2.1', 24, 0, 0)], [Route(4, 0, 254, 1, 0, 2, '192.0.2.99')],
                 ('192.0.2.99',), id='prefsrc-wins'),
    pytest.param([A('eth0', 4, '192.0.2.1', 24, 0, 0), A('eth1', 4, '198.51.100.1', 24, 0, 0)],
                 [Route(4, 0, 254, 1, 200, 2, ''), Route(4, 0, 254, 1, 100, 3, '')], ('198.51.100.1',),
                 id='lowest-metric'),
    pytest.param([A('eth0', 4, '192.0.2.1', 24, 0, 0)], [Route(4, 0, 100, 1, 0, 3, '198.51.100.9')],
                 ('192.0.2.1',), id='other-table-ignored'),
    pytest.param([A('kube-ipvs0', 4, '10.96.0.1', 32, 0, 0), A('lo', 4, '127.0.0.1', 8, 254, 0),
                  A('eth1', 4, '198.51.100.1', 24, 0, 0)], [], ('198.51.100.1',), id='no-route-first-global-not-dummy'),
    pytest.param([A('eth0', 6, '2001:db8::1', 64, 0, 0x40), A('eth0', 6, '2001:db8::2', 64, 0, 0),
                  A('eth0', 6, 'fe80::1', 64, 253, 0)], [Route(6, 0, 254, 1, 0, 2, '')], ('2001:db8::2',),
                 id='v6-skips-tentative'),
    pytest.param([A('lo', 4, '127.0.0.1', 8, 254, 0), A('lo', 6, '::1', 128, 254, 0)], [], (), id='none-global'),
    pytest.param([A('eth0', 6, '2001:db8::2', 64, 0, 0), A('eth0', 4, '192.0.2.1', 24, 0, 0)], [],
                 ('192.0.2.1', '2001:db8::2'), id='both-families-v4-first'),
])
def test_primary(addrs, routes, expected):
    assert addresses.primary_addresses(addrs, routes, NAMES) == expected


@pytest.mark.parametrize('address, expected', [
    pytest.param('192.0.2.1', True, id='on-eth0'),
    pytest.param('10.96.0.1', False, id='only-on-dummy'),
    pytest.param('2001:db8:0::1', True, id='other-spelling'),
    pytest.param('203.0.113.1', False, id='nowhere'),
])
def test_on_other_interface(address, expected):
    addrs = [A('eth0', 4, '192.0.2.1', 24, 0, 0), A('kube-ipvs0', 4, '10.96.0.1', 32, 0, 0),
             A('eth0', 6, '2001:db8::1', 64, 0, 0)]
    assert addresses.on_other_interface(addrs, address) is expected
