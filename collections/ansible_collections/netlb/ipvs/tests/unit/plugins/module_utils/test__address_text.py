# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_address_text against ipaddress: the same text for every address, the same refusals."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _address_text


def _slow(text):
    return str(ipaddress.ip_address(text))


def _addresses():
    """Addresses with every shape of zero run, both IPv4 tails, and random ones."""
    rng = random.Random(7)
    found = ['0.0.0.0', '255.255.255.255', '10.96.0.1', '::', '::1', '1::', '::ffff:1.2.3.4', '::1.2.3.4',
             '::ffff:0:0', '64:ff9b::1.2.3.4', 'fe80::1', '2001:db8::', '2001:db8:0:1:0:0:0:1',
             '2001:0:0:1:0:0:0:1', '1:0:2:3:4:5:6:7', '0:0:1:0:0:1:0:0', '::ffff:0.0.0.1', '::0.0.1.0']
    for _index in range(3000):
        if rng.random() < 0.3:
            found.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
            continue
        words = [rng.choice((0, 0, 0, 1, 0xffff, rng.getrandbits(16))) for _word in range(8)]
        found.append(':'.join('%x' % word for word in words))
    return found


@pytest.mark.parametrize('shape', ['as given', 'upper case', 'long form'])
def test_canonical_spells_every_address_as_ipaddress_does(shape):
    for text in _addresses():
        if shape == 'upper case':
            text = text.upper()
        elif shape == 'long form' and ':' in text and '.' not in text:
            text = ipaddress.ip_address(text).exploded
        assert _address_text.canonical(text) == _slow(text), text


def test_from_packed_spells_every_address_as_ipaddress_does():
    for text in _addresses():
        packed = ipaddress.ip_address(text).packed
        assert _address_text.from_packed(packed) == _slow(text), text
        assert _address_text.from_packed(bytearray(packed)) == _slow(text), text


@pytest.mark.parametrize('text', ['', ' 10.0.0.1', '10.0.0.1 ', '10.0.0.01', '10.0.0', '10.0.0.256', '1.2.3.4.5',
                                  '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '10.0.0.1/32', '::1/128',
                                  ':::', '1.2.3.4:80', '[::1]', 'fe80::1%', 'localhost', '\x00'])
def test_canonical_refuses_what_ipaddress_refuses(text):
    with pytest.raises(ValueError) as slow:
        _slow(text)
    with pytest.raises(ValueError) as fast:
        _address_text.canonical(text)
    assert str(fast.value) == str(slow.value)


def test_a_zone_index_takes_ipaddress_s_way():
    assert _address_text.canonical('FE80::1%eth0') == _slow('FE80::1%eth0') == 'fe80::1%eth0'


def test_numbers_and_address_objects_are_taken_as_ipaddress_takes_them():
    assert _address_text.canonical(167772161) == '10.0.0.1'
    assert _address_text.canonical(ipaddress.ip_address('fd00::1')) == 'fd00::1'
