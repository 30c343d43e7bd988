# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""rules_generation.read: the kernel's NFT_MSG_NEWGEN answer to [boot id, generation],
and None on every doubt (the caller then lists the rules)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import rules_generation
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, netfilter, route


class FakeNfnl:
    """Stands in for netfilter.NfnlSocket: answers GETGEN with replies (or raises error)."""

    def __init__(self, replies=(), error=None):
        self.replies, self.error, self.asked = list(replies), error, []

    def get(self, kind, body, flags=0):
        self.asked.append((kind, body, flags))
        if self.error is not None:
            raise self.error
        return self.replies


def newgen(*attrs):
    return (netfilter.NEWGEN, netfilter.NFGENMSG.pack(socket.AF_UNSPEC, 0, 0x1234) + b''.join(attrs))


@pytest.fixture
def boot_id(tmp_path):
    path = tmp_path / 'boot_id'
    path.write_text('5f0c7b7e-6b1a-4a52-9d1c-2b1e0c0a4f11\n')
    return str(path)


def test_the_generation_is_read_from_the_answer(boot_id):
    sock = FakeNfnl([newgen(core.attr(3, b'nft\0'), core.attr(netfilter.NFTA_GEN_ID, struct.pack('>I', 70000)))])
    assert rules_generation.read(sock, boot_id) == ['5f0c7b7e-6b1a-4a52-9d1c-2b1e0c0a4f11', 70000]
    (kind, body, _flags), = sock.asked
    assert kind == (10 << 8) | 16 and body == struct.pack('=BBH', socket.AF_UNSPEC, 0, 0)


@pytest.mark.parametrize('sock', [
    pytest.param(FakeNfnl([]), id='no answer'),
    pytest.param(FakeNfnl([newgen()]), id='no generation attribute'),
    pytest.param(FakeNfnl([newgen(core.attr(netfilter.NFTA_GEN_ID, b'\0\1'))]), id='a short attribute'),
    pytest.param(FakeNfnl([(route.RTM_NEWLINK, b'\0' * 16)]), id='another message'),
    pytest.param(FakeNfnl(error=core.NetlinkError(errno.EPERM, 'Operation not permitted')), id='refused'),
    pytest.param(FakeNfnl(error=core.ProtocolError('cannot open a netfilter netlink socket')), id='no socket'),
])
def test_any_doubt_is_none(boot_id, sock):
    assert rules_generation.read(sock, boot_id) is None


def test_no_boot_id_is_none_without_asking_the_kernel(tmp_path):
    sock = FakeNfnl([newgen(core.attr(netfilter.NFTA_GEN_ID, struct.pack('>I', 1)))])
    assert rules_generation.read(sock, str(tmp_path / 'absent')) is None and sock.asked == []


@pytest.mark.parametrize('now, then, expected', [
    (['boot', 7], ('boot', 7), True),  # a list read now, a tuple kept: the same pair
    (['boot', 8], ('boot', 7), False),  # a commit since
    (['other-boot', 7], ('boot', 7), False),  # a reboot: the number started again
    (None, ('boot', 7), False),  # unknown now
    (['boot', 7], None, False),  # unknown then
    (None, None, False),
])
def test_unchanged_only_for_the_same_known_pair(now, then, expected):
    assert rules_generation.unchanged(now, then) is expected
