# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small generic-netlink client: message codec and a socket that batches requests.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only (struct, socket). Knows netlink framing, attributes, the nlctrl family
lookup, dumps and batched requests; knows nothing about IPVS. Constants come from
<linux/netlink.h> and <linux/genetlink.h>.

How a batch works: many requests go out in one send(); only the last asks for an ACK.
The kernel handles every message of a send in order, keeps going after a failure and
answers each failure with an NLMSG_ERROR carrying the failed request's sequence
number, so once the ACK of the last request arrives we know exactly which requests
failed and that all the others were applied.
"""

from __future__ import annotations

import errno
import os
import queue
import socket
import struct
import threading

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLMSGERR_ATTR_MSG = 1

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

NLA_TYPE_MASK = 0x3fff  # drops NLA_F_NESTED and NLA_F_NET_BYTEORDER

_NLMSGHDR = struct.Struct('=IHHII')  # len, type, flags, seq, pid
_GENLHDR = struct.Struct('=BBH')  # cmd, version, reserved
_NLATTR = struct.Struct('=HH')  # len, type
_U16 = struct.Struct('=H')
_U32 = struct.Struct('=I')
_BE16 = struct.Struct('>H')
_ERRNO = struct.Struct('=i')
HEADER_LEN = _NLMSGHDR.size + _GENLHDR.size
_REQUEST_HEADER = struct.Struct('=IHHIIBBH')  # nlmsghdr + genlmsghdr in one pack

# Sizes chosen so a batch in which every request fails still has room for all its
# error messages in the receive buffer (each costs the kernel ~1 KiB of truesize).
RECV_BUFFER = 256 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024
BATCH_BYTES = 64 * 1024
BATCH_COUNT = 256
TIMEOUT = 120.0


class NetlinkError(Exception):
    """The kernel answered a request with an error (errno > 0). index: which of the
    requests of a dumps() call, when there."""

    def __init__(self, code, text='', index=None):
        self.errno = code
        self.text = text
        self.index = index
        message = os.strerror(code)
        if text:
            message = '%s (%s)' % (message, text)
        super(NetlinkError, self).__init__(message)


class ProtocolError(Exception):
    """The socket broke or the kernel said something we cannot read."""


# ---------------------------------------------------------------------------
# Attributes


def _align(length):
    return (length + 3) & ~3


def attr(kind, payload):
    """One attribute: header, payload, padding to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b'\0' * (_align(length) - length)


def nested(kind, *attrs):
    # No NLA_F_NESTED bit: old kernels' IPVS parser does not expect it.
    return attr(kind, b''.join(attrs))


def u8(kind, value):
    return attr(kind, struct.pack('=B', value))


def u16(kind, value):
    return attr(kind, _U16.pack(value))


def u32(kind, value):
    return attr(kind, _U32.pack(value))


def be16(kind, value):
    return attr(kind, _BE16.pack(value))


def string(kind, value):
    return attr(kind, value.encode('ascii') + b'\0')


def parse_attrs(data, offset=0, end=None):
    """dict type -> payload bytes of the attributes in data[offset:end] (last wins)."""
    if end is None:
        end = len(data)
    result = {}
    unpack = _NLATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4 or offset + length > end:
            raise ProtocolError('bad attribute length %d at offset %d' % (length, offset))
        result[kind & NLA_TYPE_MASK] = bytes(data[offset + 4:offset + length])
        offset += _align(length)
    return result


def get_u8(attrs, kind, default=0):
    value = attrs.get(kind)
    return value[0] if value else default


def get_u16(attrs, kind, default=0):
    value = attrs.get(kind)
    return _U16.unpack(value[:2])[0] if value else default


def get_u32(attrs, kind, default=0):
    value = attrs.get(kind)
    return _U32.unpack(value[:4])[0] if value else default


def get_be16(attrs, kind, default=0):
    value = attrs.get(kind)
    return _BE16.unpack(value[:2])[0] if value else default


def get_string(attrs, kind, default=''):
    value = attrs.get(kind)
    return value.split(b'\0', 1)[0].decode('ascii', 'replace') if value is not None else default


# ---------------------------------------------------------------------------
# Messages


def message(family, flags, seq, cmd, version, payload=b''):
    """A generic-netlink request: nlmsghdr + genlmsghdr + attributes."""
    length = HEADER_LEN + len(payload)
    return _NLMSGHDR.pack(length, family, flags, seq, 0) + _GENLHDR.pack(cmd, version, 0) + payload


def iter_messages(data, length):
    """Yield (type, flags, seq, offset, end) for each netlink message in data[:length];
    offset is where the message body starts (after nlmsghdr)."""
    offset = 0
    unpack = _NLMSGHDR.unpack_from
    while offset + _NLMSGHDR.size <= length:
        size, kind, flags, seq, _pid = unpack(data, offset)
        if size < _NLMSGHDR.size or offset + size > length:
            raise ProtocolError('bad message length %d at offset %d' % (size, offset))
        yield kind, flags, seq, offset + _NLMSGHDR.size, offset + size
        offset += _align(size)


def parse_error(data, offset, end, flags):
    """(errno, extack text) of an NLMSG_ERROR body; errno 0 is an ACK."""
    code = -_ERRNO.unpack_from(data, offset)[0]
    text = ''
    if flags & NLM_F_ACK_TLVS:
        # The original request follows: its header only when capped (NETLINK_CAP_ACK).
        inner = _NLMSGHDR.unpack_from(data, offset + 4)[0]
        tlvs = offset + 4 + (_NLMSGHDR.size if flags & NLM_F_CAPPED else _align(inner))
        if tlvs < end:
            text = get_string(parse_attrs(data, tlvs, end), NLMSGERR_ATTR_MSG)
    return code, text


# ---------------------------------------------------------------------------
# Socket


def open_socket(protocol=NETLINK_GENERIC, name='generic'):
    """A bound netlink socket (NETLINK_GENERIC by default) with big buffers and compact ACKs."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    except (AttributeError, OSError) as exc:
        raise ProtocolError('cannot open a %s netlink socket: %s' % (name, exc))
    sock.bind((0, 0))
    for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
    for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
        try:
            sock.setsockopt(SOL_NETLINK, option, 1)
        except OSError:
            pass  # older kernels: full ACKs, no extended messages
    sock.settimeout(TIMEOUT)
    return sock


def _receive_error(exc):
    """The ProtocolError for a failed receive (socket.timeout is an OSError)."""
    if isinstance(exc, socket.timeout):
        return ProtocolError('no answer from the kernel within %d s' % TIMEOUT)
    if exc.errno == errno.ENOBUFS:
        return ProtocolError('netlink receive buffer overflowed: kernel answers were lost')
    return ProtocolError('netlink receive failed: %s' % exc)


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


class NetlinkSocket:
    """One netlink socket: sequence numbers, whole sends, receives into one buffer.
    GenlSocket (IPVS over generic netlink) and the rtnetlink socket build on it.

    sock is anything with send(), recv_into() and close() (tests pass a fake kernel).
    """

    protocol, protocol_name = NETLINK_GENERIC, 'generic'

    def __init__(self, sock=None):
        self.sock = sock if sock is not None else open_socket(self.protocol, self.protocol_name)
        self.buffer = bytearray(RECV_BUFFER)
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xffffffff or 1
        return self.seq

    def _send(self, data):
        try:
            sent = self.sock.send(data)
        except OSError as exc:
            raise ProtocolError('netlink send failed: %s' % exc)
        if sent != len(data):
            raise ProtocolError('netlink send was cut short (%d of %d bytes)' % (sent, len(data)))

    def _receive(self):
        """One datagram into the shared buffer; returns its length."""
        try:
            length = self.sock.recv_into(self.buffer, len(self.buffer), socket.MSG_TRUNC)
        except OSError as exc:
            raise _receive_error(exc)
        if length > len(self.buffer):
            raise ProtocolError('netlink message of %d bytes does not fit the buffer' % length)
        return length


class GenlSocket(NetlinkSocket):
    """Requests, dumps and batches over one generic netlink socket."""

    def __init__(self, sock=None):
        super(GenlSocket, self).__init__(sock)
        self.view = memoryview(self.buffer)
        self.acknowledged = 0  # requests of the current batch() known to be handled

    def family(self, name):
        """(id, version) of a generic-netlink family; NetlinkError ENOENT if unknown."""
        seq = self.next_seq()
        self._send(message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, CTRL_CMD_GETFAMILY, 1,
                           string(CTRL_ATTR_FAMILY_NAME, name)))
        found = None
        while True:
            length = self._receive()
            for kind, flags, got, offset, end in iter_messages(self.buffer, length):
                if got != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code, text = parse_error(self.buffer, offset, end, flags)
                    if code:
                        raise NetlinkError(code, text)
                    if found is None:
                        raise ProtocolError('no reply for family %s' % name)
                    return found
                if kind == GENL_ID_CTRL:
                    attrs = parse_attrs(self.buffer, offset + _GENLHDR.size, end)
                    found = (get_u16(attrs, CTRL_ATTR_FAMILY_ID), self.buffer[offset + 1])

    def dumps(self, family, cmd, version, payloads, handle, datagram=None):
        """Run one dump per payload, one after the other (the kernel runs one dump at a
        time per socket), in one loop: a table read runs thousands of them.

        handle(index, data, offset, end) gets each reply message of the index-th dump.
        datagram(index, data, length, seq), if given, sees each received datagram first
        and returns True when it has taken all of it (a caller's fast path for replies of
        a known layout). A refusal raises NetlinkError with .index set.
        """
        # The loop runs twice per service of a table: the receive is inlined, its errors
        # mapped as _receive maps them.
        buffer, view, size = self.buffer, self.view, len(self.buffer)
        recv_into, header = self.sock.recv_into, _NLMSGHDR.unpack_from
        flags = NLM_F_REQUEST | NLM_F_DUMP
        for index, payload in enumerate(payloads):
            seq = self.next_seq()
            self._send(message(family, flags, seq, cmd, version, payload))
            while True:
                try:
                    length = recv_into(buffer, size, socket.MSG_TRUNC)
                except OSError as exc:
                    raise _receive_error(exc)
                if length > size:
                    raise ProtocolError('netlink message of %d bytes does not fit the buffer' % length)
                size_, kind, _flags, got, _pid = header(buffer, 0)
                if kind == NLMSG_DONE and size_ == length and got == seq:
                    break  # the common end: DONE alone in its datagram
                if datagram is not None and datagram(index, view, length, seq):
                    continue
                if self._dump_messages(index, length, seq, handle):
                    break

    def _dump_messages(self, index, length, seq, handle):
        """Hand one datagram's replies of dump seq to handle; True once DONE is seen."""
        for kind, flags, got, offset, end in iter_messages(self.buffer, length):
            if got != seq:
                continue
            if kind == NLMSG_DONE:
                return True
            if kind == NLMSG_ERROR:
                code, text = parse_error(self.buffer, offset, end, flags)
                raise NetlinkError(code or errno.EIO, text, index)
            if flags & NLM_F_DUMP_INTR:
                raise NetlinkError(errno.EINTR, 'the table changed during the dump', index)
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
                if chunk and size + length > BATCH_BYTES:
                    break
                seq = (seq + 1) & 0xffffffff or 1
                seqs[seq] = index
                chunk.append((length, cmd, seq, payload))
                size += length
                index += 1
            parts = [header(length, family, NLM_F_REQUEST, got, 0, cmd, version, 0) + payload
                     for length, cmd, got, payload in chunk[:-1]]
            length, cmd, got, payload = chunk[-1]
            parts.append(header(length, family, NLM_F_REQUEST | NLM_F_ACK, got, 0, cmd, version, 0) + payload)
            yield b''.join(parts), seqs, seq, index

    def _collect(self, seqs, last):
        """Read answers until the last request's ACK (or error) arrives."""
        errors = []
        while True:
            length = self._receive()
            for kind, flags, seq, offset, end in iter_messages(self.buffer, length):
                if kind != NLMSG_ERROR or seq not in seqs:
                    continue
                code, text = parse_error(self.buffer, offset, end, flags)
                if code:
                    errors.append((seqs[seq], code, text))
                if seq == last:
                    return sorted(errors)
