# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core


@pytest.mark.parametrize('encoded, expected', [
    pytest.param(core.u16(1, 2), b'\x06\x00\x01\x00\x02\x00\x00\x00', id='u16-padded'),
    pytest.param(core.u32(8, 300), b'\x08\x00\x08\x00\x2c\x01\x00\x00', id='u32'),
    pytest.param(core.be16(4, 80), b'\x06\x00\x04\x00\x00\x50\x00\x00', id='be16-port'),
    pytest.param(core.u8(13, 0), b'\x05\x00\x0d\x00\x00\x00\x00\x00', id='u8'),
    pytest.param(core.string(6, 'rr'), b'\x07\x00\x06\x00rr\x00\x00', id='string-nul'),
    pytest.param(core.nested(1, core.u16(1, 2)), b'\x0c\x00\x01\x00\x06\x00\x01\x00\x02\x00\x00\x00',
                 id='nested-no-flag'),
])
def test_encoding(encoded, expected):
    assert encoded == expected


def test_parse_attrs_masks_flags_and_skips_padding():
    data = b'\x06\x00\x01\x80\x02\x00\x00\x00' + b'\x08\x00\x08\x00\x2c\x01\x00\x00'
    assert core.parse_attrs(data) == {1: b'\x02\x00', 8: b'\x2c\x01\x00\x00'}


def test_parse_attrs_rejects_overrun():
    with pytest.raises(core.ProtocolError):
        core.parse_attrs(b'\x10\x00\x01\x00\x00\x00')


@pytest.mark.parametrize('data, expected', [
    pytest.param(b'\x24\x00\x00\x00\x02\x00\x00\x01\x07\x00\x00\x00\x00\x00\x00\x00' + b'\x00' * 4 + b'\x00' * 16,
                 (0, ''), id='capped-ack'),
    pytest.param(b'\x24\x00\x00\x00\x02\x00\x00\x01\x07\x00\x00\x00\x00\x00\x00\x00' + b'\xef\xff\xff\xff'
                 + b'\x00' * 16, (errno.EEXIST, ''), id='capped-error'),
    pytest.param(b'\x30\x00\x00\x00\x02\x00\x00\x03\x07\x00\x00\x00\x00\x00\x00\x00' + b'\xea\xff\xff\xff'
                 + b'\x00' * 16 + b'\x0a\x00\x01\x00bad a\x00\x00\x00', (errno.EINVAL, 'bad a'), id='extack-text'),
])
def test_parse_error(data, expected):
    (kind, flags, seq, offset, end), = list(core.iter_messages(data, len(data)))
    assert (kind, seq) == (core.NLMSG_ERROR, 7)
    assert core.parse_error(data, offset, end, flags) == expected


def test_truncated_datagram_is_an_error():
    class Big:
        def recv_into(self, buffer, size, flags=0):
            return size + 1

    with pytest.raises(core.ProtocolError, match='does not fit'):
        core.NetlinkSocket(Big())._receive()
