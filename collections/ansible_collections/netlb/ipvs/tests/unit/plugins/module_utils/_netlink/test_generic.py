# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import sys
import threading

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, generic


def test_message_header():
    assert generic.message(0x1c, 0x5, 7, 1, 1, b'') == (b'\x14\x00\x00\x00\x1c\x00\x05\x00\x07\x00\x00\x00'
                                                        b'\x00\x00\x00\x00\x01\x01\x00\x00')


def test_family_lookup(kernel):
    assert generic.GenlSocket(kernel).family('IPVS') == (0x1c, 1)


def test_family_unknown(kernel):
    kernel.loaded = False
    with pytest.raises(core.NetlinkError) as info:
        generic.GenlSocket(kernel).family('IPVS')
    assert info.value.errno == errno.ENOENT


def _service(n):
    """A NEW_SERVICE payload for tcp 10.0.0.n:80, hand-built."""
    inner = (core.u16(1, 2) + core.u16(2, 6) + core.attr(3, bytes([10, 0, 0, n]) + b'\0' * 12)
             + core.be16(4, 80) + core.string(6, 'rr') + core.attr(7, b'\0' * 4 + b'\xff' * 4)
             + core.u32(8, 0) + core.attr(9, b'\xff' * 4))
    return 1, core.nested(1, inner)


@pytest.mark.parametrize('count, batch, refuse, expect_sent, expect_errors, expect_sends', [
    pytest.param(5, 256, {}, 5, [], [5], id='one-batch'),
    pytest.param(5, 2, {}, 5, [], [2, 2, 1], id='three-batches'),
    pytest.param(5, 256, {(1, 2): errno.EEXIST}, 5, [(1, errno.EEXIST, '')], [5], id='error-mid-batch'),
    pytest.param(6, 2, {(1, 3): errno.ENOMEM}, 4, [(2, errno.ENOMEM, '')], [2, 2], id='stops-after-failing-batch'),
    pytest.param(4, 2, {(1, 2): errno.EEXIST, (1, 1): errno.EEXIST}, 2,
                 [(0, errno.EEXIST, ''), (1, errno.EEXIST, '')], [2], id='last-of-batch-fails'),
])
def test_batch(kernel, monkeypatch, count, batch, refuse, expect_sent, expect_errors, expect_sends):
    monkeypatch.setattr(generic, 'BATCH_COUNT', batch)
    kernel.refuse = refuse
    conn = generic.GenlSocket(kernel)
    sent, errors = conn.batch(0x1c, 1, [_service(n) for n in range(1, count + 1)])
    assert (sent, errors) == (expect_sent, expect_errors)
    assert [len(s) for s in kernel.sends] == expect_sends
    for chunk in kernel.sends:  # an ACK is asked only of the last request of a batch
        assert [bool(flags & core.NLM_F_ACK) for _cmd, flags, _seq in chunk] == [False] * (len(chunk) - 1) + [True]
    assert not kernel.queue


class _InOrder:
    """generic._Prefetch without the thread: the items as the generator makes them."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def close(self):
        pass


def _sent_bytes(kernel):
    sent = []
    send = kernel.send
    kernel.send = lambda data: sent.append(data) or send(data)
    return sent


def test_batch_built_in_a_thread_sends_the_same_bytes(kernel, monkeypatch):
    monkeypatch.setattr(generic, 'BATCH_COUNT', 2)
    requests = [_service(n) for n in range(1, 8)]
    threaded = _sent_bytes(kernel)
    assert generic.GenlSocket(kernel).batch(0x1c, 1, requests) == (7, [])
    monkeypatch.setattr(generic, '_Prefetch', _InOrder)
    other = type(kernel)()
    in_order = _sent_bytes(other)
    assert generic.GenlSocket(other).batch(0x1c, 1, requests) == (7, [])
    assert len(threaded) == 4 and threaded == in_order


def test_batch_encodes_items_lazily(kernel, monkeypatch):
    monkeypatch.setattr(generic, 'BATCH_COUNT', 2)
    conn = generic.GenlSocket(kernel)
    assert conn.batch(0x1c, 1, list(range(1, 6)), encode=_service) == (5, [])
    assert [len(s) for s in kernel.sends] == [2, 2, 1]
    assert len(kernel.services) == 5


def test_batch_thread_ends_after_a_failed_batch(kernel, monkeypatch):
    monkeypatch.setattr(generic, 'BATCH_COUNT', 2)
    kernel.refuse = {(1, 1): errno.ENOMEM}
    before = threading.active_count()
    interval = sys.getswitchinterval()
    conn = generic.GenlSocket(kernel)
    assert conn.batch(0x1c, 1, [_service(n) for n in range(1, 40)]) == (2, [(0, errno.ENOMEM, '')])
    assert len(kernel.sends) == 1  # nothing after the failed batch reached the kernel
    assert threading.active_count() == before
    assert sys.getswitchinterval() == interval


def test_batch_encoding_error_is_raised_and_nothing_after_it_sent(kernel, monkeypatch):
    monkeypatch.setattr(generic, 'BATCH_COUNT', 2)
    before = threading.active_count()

    def encode(n):
        if n == 4:
            raise ValueError('cannot encode item 4')
        return _service(n)

    conn = generic.GenlSocket(kernel)
    with pytest.raises(ValueError, match='item 4'):
        conn.batch(0x1c, 1, list(range(1, 10)), encode=encode)
    assert [len(s) for s in kernel.sends] == [2]  # the batch holding item 4 never went out
    assert conn.acknowledged == 2
    assert threading.active_count() == before


def test_batch_splits_by_bytes(kernel, monkeypatch):
    size = generic.HEADER_LEN + len(_service(1)[1])
    monkeypatch.setattr(core, 'BATCH_BYTES', 3 * size)  # three fit exactly, never more
    generic.GenlSocket(kernel).batch(0x1c, 1, [_service(n) for n in range(1, 6)])
    assert [len(s) for s in kernel.sends] == [3, 2]


def test_dump_collects_every_chunk(kernel):
    conn = generic.GenlSocket(kernel)
    conn.batch(0x1c, 1, [_service(n) for n in range(1, 8)])
    seen = []
    conn.dumps(0x1c, 4, 1, (b'',), lambda index, data, offset, end: seen.append(end - offset))
    assert len(seen) == 7
    assert not kernel.queue


def test_dump_refused(kernel):
    kernel.permitted = False
    with pytest.raises(core.NetlinkError) as info:
        generic.GenlSocket(kernel).dumps(0x1c, 4, 1, (b'',), lambda *a: None)
    assert info.value.errno == errno.EPERM


def test_answers_to_other_sequence_numbers_are_ignored(kernel):
    conn = generic.GenlSocket(kernel)
    kernel.queue.append(kernel._error(errno.EEXIST, 999, b'\0' * 16))  # left over from an earlier exchange
    assert conn.batch(0x1c, 1, [_service(1)]) == (1, [])
