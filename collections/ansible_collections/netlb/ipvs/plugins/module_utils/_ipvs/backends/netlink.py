# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The default backend: the kernel's IPVS generic-netlink family, spoken directly.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only, so targets need nothing installed. The family's numbers and translation
rules are py's, the requests netlink_encode.py's, the replies
netlink_decode.py's; here are the reads, the batched apply and what a refusal means.
Reads dump the services once, then the real servers service by service (the kernel
runs one dump at a time per socket); read_traffic() dumps the services alone for their
counters (STATS64). Writes go out in batches (_netlink/generic.py).
"""

from __future__ import annotations

import errno
import os

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import base, netlink_decode, netlink_encode
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink_family import (
    CMD_ATTR_DEST,
    CMD_ATTR_SERVICE,
    CMD_GET_DEST,
    CMD_GET_SERVICE,
    FAMILY_NAME,
    VERSION,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, generic

# What an errno means for IPVS, by what we asked (the kernel's own words are terse).
HINTS = {
    errno.EEXIST: 'it already exists',
    errno.ESRCH: 'no such virtual service',
    errno.ENOENT: "no such real server, or the scheduler's kernel module is missing",
    errno.EINVAL: 'for a real server: its address must be unicast, and loopback must be up in this '
                  'network namespace',
    errno.EPERM: 'managing IPVS needs CAP_NET_ADMIN (become root)',
    errno.EAFNOSUPPORT: 'IPv6 disabled, or mixed address families for a server that is not a tunnel',
}


def describe(action):
    text = '%s %s' % (action.op, action.service.key)
    if action.server is not None:
        text += ' -> %s' % action.server.endpoint
    return text


def _kernel_words(code, text):
    words = os.strerror(code)
    if code in HINTS:
        words += ': ' + HINTS[code]
    if text:
        words += ' (%s)' % text
    return words


# ---------------------------------------------------------------------------
# The backend


class NetlinkBackend(base.Backend):
    """IPVS over generic netlink, no dependency on the target."""

    name = 'netlink'

    def __init__(self, check_mode=False, sock=None):
        super(NetlinkBackend, self).__init__(check_mode)
        self._sock = sock
        self._conn = None
        self._family = None
        self._servers = {}  # the last read's real servers by their settings (netlink_decode.decode_dest_rows)

    def probe(self):
        """Open the socket and find the IPVS family now; raises BackendError."""
        self._connect()

    def _connect(self):
        if self._conn is None:
            try:
                conn = generic.GenlSocket(self._sock)
            except core.ProtocolError as exc:
                raise model.BackendError(str(exc))
            try:
                self._family = conn.family(FAMILY_NAME)[0]
            except core.NetlinkError as exc:
                conn.close()
                if exc.errno == errno.ENOENT:
                    raise model.BackendError(
                        'the kernel has no IPVS generic netlink family: the ip_vs module is not '
                        'loaded (modprobe ip_vs) or IPVS is not built in')
                raise model.BackendError('looking up the IPVS netlink family failed: %s' % exc)
            except core.ProtocolError as exc:
                conn.close()
                raise model.BackendError(str(exc))
            self._conn = conn
        return self._conn

    def close(self):
        self._servers = {}
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _dumps(self, cmd, payloads, handle, what, datagram=None):
        """Run dumps; what(index) names what the index-th one reads, for errors."""
        try:
            self._conn.dumps(self._family, cmd, VERSION, payloads, handle, datagram)
        except core.NetlinkError as exc:
            if exc.errno == errno.EPERM:
                raise model.BackendError('reading the IPVS table: permission denied: %s' % HINTS[errno.EPERM])
            raise model.BackendError('reading %s from the kernel failed: %s' % (what(exc.index), exc))
        except core.ProtocolError as exc:
            raise model.BackendError('reading the IPVS table from the kernel failed: %s' % exc)

    def read(self):
        self._connect()
        services = []

        def on_service(_index, data, offset, end):
            start, stop = netlink_decode.nested_span(data, offset, end, CMD_ATTR_SERVICE)
            services.append(netlink_decode.decode_service_message(data, start, stop))

        self._dumps(CMD_GET_SERVICE, (b'',), on_service, lambda _index: 'the virtual services')
        keys = [service['key'] for service in services]
        servers, counters = self._read_dests(keys)
        return dict((fields['key'], model.VirtualService(real_servers=tuple(servers[index]),
                                                         connections=counters[index], **fields))
                    for index, fields in enumerate(services))

    def _read_dests(self, keys):
        """The real servers and counters of each service of keys, one dump per service."""
        servers = [[] for _key in keys]
        counters = [{} for _key in keys]
        known, made = self._servers, {}  # one read's servers at most: bounded by the table

        def on_dest(index, data, offset, end):
            start, stop = netlink_decode.nested_span(data, offset, end, CMD_ATTR_DEST)
            server, counted = netlink_decode.decode_dest(data, start, stop, keys[index].family)
            servers[index].append(server)
            if counted != model.NO_CONNECTIONS:
                counters[index][server.key] = counted

        def on_datagram(index, data, length, seq):
            return netlink_decode.decode_dest_rows(data, length, keys[index].family, seq, servers[index], counters[index],
                                                   known, made)

        self._dumps(CMD_GET_DEST, [netlink_encode.service_selector(key) for key in keys], on_dest,
                    lambda index: 'the real servers of %s' % (keys[index],), on_datagram)
        self._servers = made
        return servers, counters

    def read_counters(self, keys):
        """Only the real servers of keys: one dump per service (the read's fast decoder),
        not the whole table. The kernel answers a service it does not hold (deleted
        meanwhile) with an empty dump."""
        self._connect()
        keys = list(keys)
        servers, counters = self._read_dests(keys)
        return dict((key, dict((rs.key, counters[index].get(rs.key, model.NO_CONNECTIONS)) for rs in servers[index]))
                    for index, key in enumerate(keys))

    def read_traffic(self):
        """{ServiceKey: Traffic} of every virtual service in the kernel: one dump of the
        services alone (no real servers), for metrics; the backend's check mode does not
        matter (it only reads)."""
        self._connect()
        traffic = {}

        def on_service(_index, data, offset, end):
            start, stop = netlink_decode.nested_span(data, offset, end, CMD_ATTR_SERVICE)
            attrs = core.parse_attrs(data, start, stop)
            traffic[netlink_decode.decode_service_key(attrs)] = netlink_decode.decode_traffic(attrs)

        self._dumps(CMD_GET_SERVICE, (b'',), on_service, lambda _index: 'the virtual services')
        return traffic

    def _apply(self, actions):
        self._connect()
        try:
            sent, errors = self._conn.batch(self._family, VERSION, actions, encode=netlink_encode.request)
        except core.ProtocolError as exc:
            # Batches acknowledged before are known applied; the one in flight is not.
            done = self._conn.acknowledged
            raise model.ApplyError('talking to the kernel failed after %d of %d actions: %s'
                                   % (done, len(actions), exc),
                                   applied=actions[:done], failed=actions[done] if done < len(actions) else None)
        if not errors:
            return
        failed = set(index for index, _code, _text in errors)
        applied = [a for i, a in enumerate(actions[:sent]) if i not in failed]
        lines = ['%s: %s' % (describe(actions[index]), _kernel_words(code, text))
                 for index, code, text in errors]
        message = 'the kernel refused %s' % '; '.join(lines)
        if sent < len(actions):
            message += ' (%d later action(s) not sent)' % (len(actions) - sent)
        raise model.ApplyError(message, applied=applied, failed=actions[errors[0][0]])
