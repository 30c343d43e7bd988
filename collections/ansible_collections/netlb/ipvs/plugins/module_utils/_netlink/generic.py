# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Generic netlink: the nlctrl family lookup, dumps and batched requests (IPVS uses it).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. A generic-netlink message is core's nlmsghdr, a genlmsghdr (command,
version), then attributes. Knows nothing about IPVS (_ipvs/backends/netlink_*.py do).
Constants come from <linux/genetlink.h>. A batch works as core.py says; with more than
one to send, the next is built in a thread while the kernel runs the one sent.
"""

from __future__ import annotations

import errno
import queue
import socket
import struct
import threading

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core

NETLINK_GENERIC = 16

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

_GENLHDR = struct.Struct('=BBH')  # cmd, version, reserved
HEADER_LEN = core.NLMSGHDR.size + _GENLHDR.size
_REQUEST_HEADER = struct.Struct('=IHHIIBBH')  # nlmsghdr + genlmsghdr in one pack

# At most this many requests in one send (and core.BATCH_BYTES): a batch in which every
# request fails still has room for all its error messages in the receive buffer.
BATCH_COUNT = 256


def message(family, flags, seq, cmd, version, payload=b''):
    """A generic-netlink request: nlmsghdr + genlmsghdr + attributes."""
    length = HEADER_LEN + len(payload)
    return core.NLMSGHDR.pack(length, family, flags, seq, 0) + _GENLHDR.pack(cmd, version, 0) + payload


class _Prefetch:
    """Iterates over items made by a generator running in a thread, at most four ahead.

    An exception in the generator is raised here, where the item would have come.
    close() stops the thread (early too, after a failed batch) and waits for it.
    """

    _END = object()

    def __init__(self, items):
        self._items = items
        self._queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='genl-batch', daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put((self._END, exc))
            return
        self._put((self._END, None))

    def _put(self, entry):
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            item, error = self._queue.get()
            if item is self._END:
                if error is not None:
                    raise error
                return
            yield item

    def close(self):
        self._stop.set()
        self._thread.join()


class GenlSocket(core.NetlinkSocket):
    """Requests, dumps and batches over one generic netlink socket."""

    protocol, protocol_name = NETLINK_GENERIC, 'generic'

    def __init__(self, sock=None):
        super(GenlSocket, self).__init__(sock)
        self.view = memoryview(self.buffer)
        self.acknowledged = 0  # requests of the current batch() known to be handled

    def family(self, name):
        """(id, version) of a generic-netlink family; core.NetlinkError ENOENT if unknown."""
        seq = self.next_seq()
        self._send(message(GENL_ID_CTRL, core.NLM_F_REQUEST | core.NLM_F_ACK, seq, CTRL_CMD_GETFAMILY, 1,
                           core.string(CTRL_ATTR_FAMILY_NAME, name)))
        found = None
        while True:
            length = self._receive()
            for kind, flags, got, offset, end in core.iter_messages(self.buffer, length):
                if got != seq:
                    continue
                if kind == core.NLMSG_ERROR:
                    code, text = core.parse_error(self.buffer, offset, end, flags)
                    if code:
                        raise core.NetlinkError(code, text)
                    if found is None:
                        raise core.ProtocolError('no reply for family %s' % name)
                    return found
                if kind == GENL_ID_CTRL:
                    attrs = core.parse_attrs(self.buffer, offset + _GENLHDR.size, end)
                    found = (core.get_u16(attrs, CTRL_ATTR_FAMILY_ID), self.buffer[offset + 1])

    def dumps(self, family, cmd, version, payloads, handle, datagram=None):
        """Run one dump per payload, one after the other (the kernel runs one dump at a
        time per socket), in one loop: a table read runs thousands of them.

        handle(index, data, offset, end) gets each reply message of the index-th dump.
        datagram(index, data, length, seq), if given, sees each received datagram first
        and returns True when it has taken all of it (a caller's fast path for replies of
        a known layout). A refusal raises core.NetlinkError with .index set.
        """
        # The loop runs twice per service of a table: the receive is inlined, its errors
        # mapped as _receive maps them.
        buffer, view, size = self.buffer, self.view, len(self.buffer)
        recv_into, header = self.sock.recv_into, core.NLMSGHDR.unpack_from
        flags = core.NLM_F_REQUEST | core.NLM_F_DUMP
        for index, payload in enumerate(payloads):
            seq = self.next_seq()
            self._send(message(family, flags, seq, cmd, version, payload))
            while True:
                try:
                    length = recv_into(buffer, size, socket.MSG_TRUNC)
                except OSError as exc:
                    raise core.receive_error(exc)
                if length > size:
                    raise core.ProtocolError('netlink message of %d bytes does not fit the buffer' % length)
                size_, kind, _flags, got, _pid = header(buffer, 0)
                if kind == core.NLMSG_DONE and size_ == length and got == seq:
                    break  # the common end: DONE alone in its datagram
                if datagram is not None and datagram(index, view, length, seq):
                    continue
                if self._dump_messages(index, length, seq, handle):
                    break

    def _dump_messages(self, index, length, seq, handle):
        """Hand one datagram's replies of dump seq to handle; True once DONE is seen."""
        for kind, flags, got, offset, end in core.iter_messages(self.buffer, length):
            if got != seq:
                continue
            if kind == core.NLMSG_DONE:
                return True
            if kind == core.NLMSG_ERROR:
                code, text = core.parse_error(self.buffer, offset, end, flags)
                raise core.NetlinkError(code or errno.EIO, text, index)
            if flags & core.NLM_F_DUMP_INTR:
                raise core.NetlinkError(errno.EINTR, 'the table changed during the dump', index)
            handle(index, self.buffer, offset + _GENLHDR.size, end)
        return False

    def batch(self, family, version, requests, encode=None):
        """Send requests in batches, stopping after the first batch in which anything
        failed. requests: [(cmd, payload)], or any items that encode(item) turns into one.

        Returns (sent, errors): sent is how many requests reached the kernel, errors a
        list of (index, errno, text) for the ones it refused; every other sent request
        was applied.

        With more than one batch to send, the next batch is built in a thread while the
        kernel works through the one before: a send runs the kernel's handlers without
        the GIL, so encoding and kernel time overlap instead of adding up. How soon the
        sender gets the GIL back is the process's thread switch interval, the shell's to
        set (_gc.tuned()).
        """
        self.acknowledged = 0
        chunks = self._chunks(family, version, requests, encode)
        overlap = len(requests) > BATCH_COUNT
        if overlap:
            chunks = _Prefetch(chunks)
        try:
            for data, seqs, last, end in chunks:
                self.seq = last
                self._send(data)
                errors = self._collect(seqs, last)
                self.acknowledged = end
                if errors:
                    return end, errors
        finally:
            if overlap:
                chunks.close()
        return len(requests), []

    def _chunks(self, family, version, requests, encode):
        """(bytes to send, {seq: index}, last seq, index after the batch) per batch; only
        the last request of a batch asks for an ACK: its arrival closes the batch."""
        index, total, header, seq = 0, len(requests), _REQUEST_HEADER.pack, self.seq
        while index < total:
            chunk, seqs, size = [], {}, 0
            while index < total and len(chunk) < BATCH_COUNT:
                cmd, payload = encode(requests[index]) if encode is not None else requests[index]
                length = HEADER_LEN + len(payload)
                if chunk and size + length > core.BATCH_BYTES:
                    break
                seq = (seq + 1) & 0xffffffff or 1
                seqs[seq] = index
                chunk.append((length, cmd, seq, payload))
                size += length
                index += 1
            parts = [header(length, family, core.NLM_F_REQUEST, got, 0, cmd, version, 0) + payload
                     for length, cmd, got, payload in chunk[:-1]]
            length, cmd, got, payload = chunk[-1]
            parts.append(header(length, family, core.NLM_F_REQUEST | core.NLM_F_ACK, got, 0, cmd, version, 0) + payload)
            yield b''.join(parts), seqs, seq, index
