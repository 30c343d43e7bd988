# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import socket
import struct

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import dummy
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, route


@pytest.mark.parametrize('current, desired, owned, add, remove, owned_after', [
    pytest.param(set(), {'10.96.0.1'}, set(), ['10.96.0.1'], [], {'10.96.0.1'}, id='fresh'),
    pytest.param({'10.96.0.1'}, {'10.96.0.1'}, {'10.96.0.1'}, [], [], {'10.96.0.1'}, id='steady'),
    pytest.param({'10.96.0.1', '10.96.0.2'}, {'10.96.0.1'}, {'10.96.0.1', '10.96.0.2'}, [], ['10.96.0.2'],
                 {'10.96.0.1'}, id='owned-removed'),
    pytest.param({'10.96.0.1', '192.0.2.9'}, {'10.96.0.1'}, {'10.96.0.1'}, [], [], {'10.96.0.1'},
                 id='operator-address-kept'),
    # A wanted address already there (kube-proxy bound it before the hand-over) is adopted:
    # it goes once its Service goes, or it would stay answering on a dead cluster IP.
    pytest.param({'10.96.0.7'}, {'10.96.0.7'}, set(), [], [], {'10.96.0.7'}, id='wanted-address-adopted'),
    pytest.param(set(), set(), {'10.96.0.5'}, [], [], set(), id='owned-but-gone'),
    pytest.param({'fd00::1'}, {'fd00:0::1', '10.96.0.1/32'}, {'fd00::1'}, ['10.96.0.1'], [], {'fd00::1', '10.96.0.1'},
                 id='spellings-canonical-v4-first'),
    pytest.param({'10.96.0.10', '10.96.0.9'}, set(), {'10.96.0.9', '10.96.0.10', 'fd00::2'}, [],
                 ['10.96.0.9', '10.96.0.10'], set(), id='numeric-order'),
])
def test_plan(current, desired, owned, add, remove, owned_after):
    assert dummy.plan(current, desired, owned) == (add, remove, frozenset(owned_after))


def test_canonical_rejects_networks():
    with pytest.raises(ValueError, match='10.0.0.0/24'):
        dummy.canonical('10.0.0.0/24')


# Expected bytes are packed here with plain struct calls, not with the module's codec.
def _attr(kind, payload):
    raw = struct.pack('=HH', 4 + len(payload), kind) + payload
    return raw + b'\0' * (-len(raw) % 4)


@pytest.mark.parametrize('kind, address, expected_flags, expected', [
    pytest.param(20, '10.96.0.1', 0x500,
                 struct.pack('=BBBBI', 2, 32, 0, 0, 7) + _attr(2, bytes([10, 96, 0, 1])) + _attr(1, bytes([10, 96, 0, 1]))
                 + _attr(8, struct.pack('=I', 0)), id='add-v4'),
    pytest.param(20, 'fd00::1', 0x500,
                 struct.pack('=BBBBI', 10, 128, 2, 0, 7) + _attr(2, b'\xfd' + b'\0' * 14 + b'\x01')
                 + _attr(1, b'\xfd' + b'\0' * 14 + b'\x01') + _attr(8, struct.pack('=I', 2)), id='add-v6-nodad'),
    pytest.param(21, '10.96.0.1', 0,
                 struct.pack('=BBBBI', 2, 32, 0, 0, 7) + _attr(2, bytes([10, 96, 0, 1])) + _attr(1, bytes([10, 96, 0, 1])),
                 id='delete-v4'),
])
def test_address_request(kind, address, expected_flags, expected):
    assert dummy.address_request(kind, 7, address) == (kind, expected_flags, expected)


def test_link_request():
    info = _attr(1, b'dummy\0')
    expected = struct.pack('=BxHiII', 0, 0, 0, 0, 0) + _attr(3, b'kube-ipvs0\0') + _attr(18, info)
    assert dummy.link_request('kube-ipvs0') == (16, expected, 0x600)


def test_parse_link():
    body = struct.pack('=BxHiII', 0, 1, 5, 0, 0) + _attr(3, b'x\0') + _attr(18, _attr(1, b'dummy\0'))
    assert dummy.parse_link(body) == (5, 'dummy')


def test_full_request_header():
    kind, flags, body = dummy.address_request(20, 3, '10.0.0.1')
    raw = core.request(kind, flags, 9, body)
    assert struct.unpack_from('=IHHII', raw) == (16 + len(body), 20, 0x500, 9, 0)


class FakeRtnl:
    """Stands in for RtnlSocket: one interface table, records what was sent."""

    def __init__(self, links=None, refuse=None):
        self.links = dict(links or {})  # name -> [index, kind, set of addresses]
        self.refuse = dict(refuse or {})  # address -> errno
        self.batches = []
        self.created = []
        self.dumps = 0

    def get(self, kind, body, flags=0):
        name = body[16 + 4:].split(b'\0', 1)[0].decode()
        if kind == route.RTM_GETLINK:
            if name not in self.links:
                raise core.NetlinkError(errno.ENODEV)
            index, link_kind, _addrs = self.links[name]
            info = _attr(1, link_kind.encode() + b'\0')
            return [(route.RTM_NEWLINK, struct.pack('=BxHiII', 0, 1, index, 0, 0) + _attr(18, info))]
        assert kind == route.RTM_NEWLINK and flags == 0x600
        self.created.append(name)
        self.links[name] = [40 + len(self.links), 'dummy', set()]
        return []

    def dump(self, kind, body):
        self.dumps += 1
        family = body[0]
        out = []
        for index, _kind, addrs in self.links.values():
            for text in addrs:
                v6 = ':' in text
                if (family == socket.AF_INET6) != v6:
                    continue
                packed = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, text)
                out.append((route.RTM_NEWADDR, struct.pack('=BBBBI', family, 128 if v6 else 32, 0, 0, index)
                            + _attr(2 if not v6 else 1, packed)))
        return out

    def batch(self, requests):
        self.batches.append(requests)
        errors = []
        for position, (kind, _flags, body) in enumerate(requests):
            family, _plen, _f, _s, index = struct.unpack_from('=BBBBI', body)
            packed = body[8 + 4:8 + 4 + (4 if family == socket.AF_INET else 16)]
            text = socket.inet_ntop(family, packed)
            if text in self.refuse:
                errors.append((position, self.refuse[text], 'refused by the test'))
                continue
            addrs = [link[2] for link in self.links.values() if link[0] == index][0]
            (addrs.add if kind == route.RTM_NEWADDR else addrs.discard)(text)
        return errors

    def close(self):
        pass


def test_ensure_creates_and_adds_in_one_batch():
    fake = FakeRtnl()
    result = dummy.ensure(['10.96.0.1', 'fd00::1', '10.96.0.2'], [], sock=fake)
    assert result == dummy.DummyResult('kube-ipvs0', True, ['10.96.0.1', '10.96.0.2', 'fd00::1'], [],
                                       frozenset({'10.96.0.1', '10.96.0.2', 'fd00::1'}))
    assert fake.created == ['kube-ipvs0'] and len(fake.batches) == 1 and len(fake.batches[0]) == 3
    assert fake.links['kube-ipvs0'][2] == {'10.96.0.1', '10.96.0.2', 'fd00::1'}
    again = dummy.ensure(['10.96.0.1', 'fd00::1', '10.96.0.2'], result.owned, sock=fake)
    assert not again.changed and len(fake.batches) == 1


def test_ensure_check_mode_changes_nothing():
    fake = FakeRtnl({'kube-ipvs0': [5, 'dummy', {'10.96.0.9', '192.0.2.1'}]})
    result = dummy.ensure(['10.96.0.1'], ['10.96.0.9'], check_mode=True, sock=fake)
    assert (result.created, result.added, result.removed) == (False, ['10.96.0.1'], ['10.96.0.9'])
    assert fake.batches == [] and fake.links['kube-ipvs0'][2] == {'10.96.0.9', '192.0.2.1'}
    real = dummy.ensure(['10.96.0.1'], ['10.96.0.9'], sock=fake)
    assert real == result
    assert fake.links['kube-ipvs0'][2] == {'10.96.0.1', '192.0.2.1'}


def test_ensure_takes_the_addresses_the_caller_just_read_instead_of_dumping():
    fake = FakeRtnl({'kube-ipvs0': [5, 'dummy', {'10.96.0.9', '10.96.0.1'}]})
    # what the caller's read found (it is the kernel's answer that decides, not the test's fake table)
    result = dummy.ensure(['10.96.0.1', '10.96.0.2'], ['10.96.0.9'], sock=fake, current={'10.96.0.1', '10.96.0.9'})
    assert (result.added, result.removed) == (['10.96.0.2'], ['10.96.0.9']) and fake.dumps == 0
    assert fake.links['kube-ipvs0'][2] == {'10.96.0.1', '10.96.0.2'}
    again = dummy.ensure(['10.96.0.1', '10.96.0.2'], result.owned, sock=fake)
    assert not again.changed and fake.dumps == 2  # without current: dumped (one per family)


def test_ensure_creates_a_missing_interface_whatever_the_caller_read():
    fake = FakeRtnl()
    result = dummy.ensure(['10.96.0.1'], [], sock=fake, current={'10.96.0.1'})  # read before someone deleted it
    assert result.created and result.added == ['10.96.0.1'] and fake.links['kube-ipvs0'][2] == {'10.96.0.1'}


def test_ensure_refuses_other_link_kind():
    fake = FakeRtnl({'kube-ipvs0': [5, 'veth', set()]})
    with pytest.raises(dummy.DummyError, match='kube-ipvs0 exists and is not a dummy interface'):
        dummy.ensure(['10.96.0.1'], [], sock=fake)


def test_ensure_error_names_interface_address_and_kernel_message():
    fake = FakeRtnl({'kube-ipvs0': [5, 'dummy', set()]}, refuse={'10.96.0.2': errno.EADDRNOTAVAIL})
    with pytest.raises(dummy.DummyError) as info:
        dummy.ensure(['10.96.0.1', '10.96.0.2'], [], sock=fake)
    assert str(info.value) == ('cannot add address 10.96.0.2 on kube-ipvs0: Cannot assign requested address '
                               '(refused by the test)')
    got = (info.value.interface, info.value.address, info.value.errno)
    assert got == ('kube-ipvs0', '10.96.0.2', errno.EADDRNOTAVAIL)


@pytest.mark.parametrize('name', ['', 'a' * 16, 'a/b', ' x'])
def test_ensure_rejects_bad_names(name):
    with pytest.raises(dummy.DummyError, match='invalid interface name'):
        dummy.ensure([], [], interface=name, sock=FakeRtnl())
