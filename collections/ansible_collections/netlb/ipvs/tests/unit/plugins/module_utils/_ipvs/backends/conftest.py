# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake kernel behind a fake netlink socket, for the netlink backend's unit tests.

It speaks the wire format with its own struct code (never the backend's codec), so a
mistake in the backend's encoding shows up as a test failure, not as agreement.
Semantics follow what the lab VM's kernel does: messages of one send() handled in
order, an NLMSG_ERROR for every failure and an ACK only when asked, "set" replaces the
whole entry, HASHED (0x2) set on every stored service, one datagram per dump chunk.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest

IPVS_ID = 0x1c
HDR = struct.Struct('=IHHII')
GENL = struct.Struct('=BBH')
SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'sh', 'mh', 'dh', 'sed', 'nq')


def pad(data):
    return data + b'\0' * (-len(data) % 4)


def tlv(kind, payload):
    return pad(struct.pack('=HH', 4 + len(payload), kind) + payload)


def tlvs(data):
    result, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from('=HH', data, offset)
        result[kind & 0x3fff] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return result


def u16(raw):
    return struct.unpack('=H', raw[:2])[0]


def u32(raw):
    return struct.unpack('=I', raw[:4])[0]


class FakeKernel:
    """A socket-like object: send() runs requests, recv_into() hands back answers."""

    def __init__(self):
        self.loaded = True
        self.permitted = True
        self.services = {}  # id tuple -> dict
        self.queue = []
        self.sends = []  # per send(): list of (cmd, flags, seq)
        self.refuse = {}  # (cmd, call number of that cmd) -> errno, to inject failures
        self.calls = {}
        self.dump_chunk = 3  # messages per datagram in dumps
        self.closed = False
        self.stats64 = True  # False: a kernel before 4.1, STATS only

    # socket API ---------------------------------------------------------
    def send(self, data):
        handled = []
        offset = 0
        while offset < len(data):
            length, kind, flags, seq, _pid = HDR.unpack_from(data, offset)
            body = data[offset + HDR.size:offset + length]
            cmd = body[0]
            handled.append((cmd, flags, seq))
            self._handle(kind, flags, seq, cmd, tlvs(body[GENL.size:]), data[offset:offset + HDR.size])
            offset += (length + 3) & ~3
        self.sends.append(handled)
        return len(data)

    def recv_into(self, buffer, size, flags=0):
        if not self.queue:
            raise AssertionError('the client waits for an answer the kernel never sends')
        datagram = self.queue.pop(0)
        buffer[:len(datagram)] = datagram
        return len(datagram)

    def close(self):
        self.closed = True

    # answers ------------------------------------------------------------
    def _error(self, code, seq, request_header):
        # NETLINK_CAP_ACK style: the request's header only, flagged NLM_F_CAPPED.
        body = struct.pack('=i', -code) + request_header
        return HDR.pack(HDR.size + len(body), 2, 0x100, seq, 0) + body

    def _reply(self, kind, seq, cmd, payload, flags=0x2):
        body = GENL.pack(cmd, 1, 0) + payload
        return HDR.pack(HDR.size + len(body), kind, flags, seq, 0) + body

    def _handle(self, kind, flags, seq, cmd, attrs, header):
        if kind == 0x10:  # nlctrl GETFAMILY
            if not self.loaded or attrs[2].rstrip(b'\0') != b'IPVS':
                self.queue.append(self._error(errno.ENOENT, seq, header))
                return
            reply = self._reply(0x10, seq, 1, tlv(1, struct.pack('=H', IPVS_ID)) + tlv(2, b'IPVS\0'), flags=0)
            self.queue.append(reply + (self._error(0, seq, header) if flags & 0x4 else b''))
            return
        assert kind == IPVS_ID
        if not self.permitted:
            self.queue.append(self._error(errno.EPERM, seq, header))
            return
        if flags & 0x300 == 0x300:
            self._dump(seq, cmd, attrs)
            return
        number = self.calls[cmd] = self.calls.get(cmd, 0) + 1
        code = self.refuse.get((cmd, number)) or self._execute(cmd, attrs)
        if code or flags & 0x4:
            self.queue.append(self._error(code, seq, header))

    def _dump(self, seq, cmd, attrs):
        messages = []
        if cmd == 4:
            for svc in self.services.values():
                messages.append(self._reply(IPVS_ID, seq, 1, tlv(1, self._service_attrs(svc))))
        elif cmd == 8:
            svc = self.services.get(self._service_id(tlvs(attrs[1])))
            for dest in (svc['dests'].values() if svc else ()):
                messages.append(self._reply(IPVS_ID, seq, 5, tlv(2, self._dest_attrs(dest))))
        for i in range(0, len(messages), self.dump_chunk):
            self.queue.append(b''.join(messages[i:i + self.dump_chunk]))
        self.queue.append(HDR.pack(20, 3, 0x2, seq, 0) + b'\0\0\0\0')

    # the table ------------------------------------------------------------
    @staticmethod
    def _service_id(svc):
        af = u16(svc[1])
        if 5 in svc:
            return (af, u32(svc[5]))
        return (af, u16(svc[2]), bytes(svc[3][:16]).ljust(16, b'\0'), struct.unpack('>H', svc[4])[0])

    def _service_attrs(self, svc):
        out = tlv(1, struct.pack('=H', svc['af']))
        if svc['fwmark']:
            out += tlv(5, struct.pack('=I', svc['fwmark']))
        else:
            out += tlv(2, struct.pack('=H', svc['proto'])) + tlv(3, svc['addr']) + tlv(4, struct.pack('>H', svc['port']))
        out += tlv(6, svc['sched'].encode() + b'\0')
        if svc['pe']:  # the kernel puts the persistence engine between scheduler and flags
            out += tlv(11, svc['pe'] + b'\0')
        out += tlv(7, struct.pack('=II', svc['flags'], 0xffffffff))
        out += tlv(8, struct.pack('=I', svc['timeout'])) + tlv(9, svc['netmask'])
        out += self._stats(svc.get('traffic', (0, 0, 0, 0, 0)))
        return out

    def _stats(self, traffic):
        """STATS (u32 connections and packets, u64 bytes, then five u32 rates), then
        STATS64 (all u64, a PAD attribute (11) before each to align it, as
        nla_put_u64_64bit may), unless the kernel is too old for STATS64."""
        conns, inpkts, outpkts, inbytes, outbytes = traffic
        rates = b''.join(tlv(kind, struct.pack('=I', 0)) for kind in range(6, 11))
        old = (tlv(1, struct.pack('=I', conns & 0xffffffff)) + tlv(2, struct.pack('=I', inpkts & 0xffffffff))
               + tlv(3, struct.pack('=I', outpkts & 0xffffffff)) + tlv(4, struct.pack('=Q', inbytes))
               + tlv(5, struct.pack('=Q', outbytes)) + rates)
        out = tlv(10, old)
        if self.stats64:
            out += tlv(12, b''.join(tlv(11, b'') + tlv(kind, struct.pack('=Q', value))
                                    for kind, value in enumerate(traffic + (0, 0, 0, 0, 0), 1)))
        return out

    @staticmethod
    def _dest_attrs(dest):
        # The order a 6.1 kernel dumps them in (the reader has a fast path for it).
        u32s = [tlv(kind, struct.pack('=I', dest[name])) for kind, name in
                ((5, 'u'), (6, 'l'), (7, 'active'), (8, 'inactive'))]
        return (tlv(1, dest['addr']) + tlv(2, struct.pack('>H', dest['port'])) + tlv(3, struct.pack('=I', dest['fwd']))
                + tlv(4, struct.pack('=I', dest['weight'])) + tlv(13, struct.pack('=B', dest['tun_type']))
                + tlv(14, struct.pack('>H', dest['tun_port'])) + tlv(15, struct.pack('=H', dest['tun_flags']))
                + b''.join(u32s) + tlv(9, struct.pack('=I', 0))
                + tlv(11, struct.pack('=H', dest['af'])) + tlv(10, tlv(1, struct.pack('=I', 0))))

    def _execute(self, cmd, attrs):
        svc_attrs = tlvs(attrs[1])
        if 1 not in svc_attrs or not (5 in svc_attrs or (2 in svc_attrs and 3 in svc_attrs and 4 in svc_attrs)):
            return errno.EINVAL
        sid = self._service_id(svc_attrs)
        svc = self.services.get(sid)
        if cmd in (1, 2):
            if not all(k in svc_attrs for k in (6, 7, 8, 9)):
                return errno.EINVAL
            sched = svc_attrs[6].rstrip(b'\0').decode()
            if sched not in SCHEDULERS:
                return errno.ENOENT
            if cmd == 1 and svc is not None:
                return errno.EEXIST
            if cmd == 2 and svc is None:
                return errno.ESRCH
            flags, mask = struct.unpack('=II', svc_attrs[7][:8])
            old = svc['flags'] if svc else 0
            entry = svc if svc is not None else {'dests': {}}
            entry.update(af=u16(svc_attrs[1]), fwmark=u32(svc_attrs[5]) if 5 in svc_attrs else 0,
                         proto=u16(svc_attrs[2]) if 2 in svc_attrs else 6,
                         addr=bytes(svc_attrs[3]).ljust(16, b'\0') if 3 in svc_attrs else b'\0' * 16,
                         port=struct.unpack('>H', svc_attrs[4])[0] if 4 in svc_attrs else 0,
                         sched=sched, flags=((old & ~mask) | (flags & mask)) | 0x2,
                         timeout=u32(svc_attrs[8]), netmask=bytes(svc_attrs[9][:4]),
                         pe=bytes(svc_attrs[11]).rstrip(b'\0') if 11 in svc_attrs else b'')
            self.services[sid] = entry
            return 0
        if svc is None:
            return errno.ESRCH
        if cmd == 3:
            del self.services[sid]
            return 0
        dest_attrs = tlvs(attrs[2])
        if 1 not in dest_attrs or 2 not in dest_attrs:
            return errno.EINVAL
        did = (bytes(dest_attrs[1]).ljust(16, b'\0'), struct.unpack('>H', dest_attrs[2])[0])
        dest = svc['dests'].get(did)
        if cmd == 7:
            if dest is None:
                return errno.ENOENT
            del svc['dests'][did]
            return 0
        if not all(k in dest_attrs for k in (3, 4, 5, 6)):
            return errno.EINVAL
        if cmd == 5 and dest is not None:
            return errno.EEXIST
        if cmd == 6 and dest is None:
            return errno.ENOENT
        entry = dest if dest is not None else {'active': 0, 'inactive': 0}
        entry.update(addr=did[0], port=did[1], af=u16(dest_attrs[11]) if 11 in dest_attrs else svc['af'],
                     fwd=u32(dest_attrs[3]) & 7, weight=u32(dest_attrs[4]), u=u32(dest_attrs[5]),
                     l=u32(dest_attrs[6]), tun_type=dest_attrs[13][0] if 13 in dest_attrs else 0,
                     tun_port=struct.unpack('>H', dest_attrs[14][:2])[0] if 14 in dest_attrs else 0,
                     tun_flags=u16(dest_attrs[15]) if 15 in dest_attrs else 0)
        svc['dests'][did] = entry
        return 0

    # test helpers -------------------------------------------------------
    def traffic(self, port, connections, packets_in, packets_out, bytes_in, bytes_out):
        """Set the traffic counters of every service on this port."""
        for svc in self.services.values():
            if svc['port'] == port:
                svc['traffic'] = (connections, packets_in, packets_out, bytes_in, bytes_out)

    def counters(self, address, active, inactive):
        """Set connection counters of every real server with this IPv4/IPv6 address."""
        family = socket.AF_INET6 if ':' in address else socket.AF_INET
        packed = socket.inet_pton(family, address).ljust(16, b'\0')
        for svc in self.services.values():
            for dest in svc['dests'].values():
                if dest['addr'] == packed:
                    dest.update(active=active, inactive=inactive)


@pytest.fixture
def kernel():
    return FakeKernel()
