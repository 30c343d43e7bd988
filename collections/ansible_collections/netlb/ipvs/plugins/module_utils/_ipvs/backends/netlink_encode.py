# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The IPVS netlink requests: model actions -> (command, attributes).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. The numbers and the translation rules are netlink_family.py's; a full load
encodes one request per real server (55,000 at 5,000 x 10), so the common real server
is packed in one Struct and a service's identity is memoised.
"""

from __future__ import annotations

import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink_family import (
    AF,
    ATTR,
    CMD_ATTR_DEST,
    CMD_ATTR_SERVICE,
    CMD_DEL_DEST,
    CMD_DEL_SERVICE,
    CMD_NEW_DEST,
    CMD_NEW_SERVICE,
    CMD_SET_DEST,
    CMD_SET_SERVICE,
    DEST_ATTR_ADDR,
    DEST_ATTR_ADDR_FAMILY,
    DEST_ATTR_FWD_METHOD,
    DEST_ATTR_L_THRESH,
    DEST_ATTR_PORT,
    DEST_ATTR_U_THRESH,
    DEST_ATTR_WEIGHT,
    DEST_SETTINGS,
    FLAGS,
    FLAG_BIT,
    PROTO,
    SVC_ADDR,
    SVC_ATTR_ADDR,
    SVC_ATTR_AF,
    SVC_ATTR_FLAGS,
    SVC_ATTR_FWMARK,
    SVC_ATTR_NETMASK,
    SVC_ATTR_PE_NAME,
    SVC_ATTR_PORT,
    SVC_ATTR_PROTOCOL,
    SVC_ATTR_SCHED_NAME,
    SVC_ATTR_TIMEOUT,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    Cache,
    packed_address,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core

_SERVICE_IDS = Cache()
_SELECTORS = Cache()
# A real server's address, port (pre-swapped to network order), family, forwarding,
# weight and thresholds: the attributes of every NEW_DEST/SET_DEST, packed in one go.
_DEST_FULL = struct.Struct('=HH16s HHH2x HHH2x HHI HHI HHI HHI')
_DEST_ID = struct.Struct('=HH16s HHH2x HHH2x')
_DEST_NESTED_FULL = struct.Struct('=HH' + _DEST_FULL.format[1:])  # CMD_ATTR_DEST around _DEST_FULL
_SVC_MARK = struct.Struct('=HHH2x HHI')


def netmask_bytes(prefix, family):
    if family == 4:
        return struct.pack('>I', (0xffffffff << (32 - prefix)) & 0xffffffff)
    return struct.pack('=I', prefix)


def service_id(key):
    """The attributes naming a service (enough for deletes and real server commands)."""
    attrs = _SERVICE_IDS.get(key)
    if attrs is None:
        if key.is_fwmark:
            attrs = _SVC_MARK.pack(6, SVC_ATTR_AF, AF[key.family], 8, SVC_ATTR_FWMARK, key.fwmark)
        else:
            attrs = SVC_ADDR.pack(6, SVC_ATTR_AF, AF[key.family], 6, SVC_ATTR_PROTOCOL, PROTO[key.protocol],
                                  20, SVC_ATTR_ADDR, packed_address(key.address)[0], 6, SVC_ATTR_PORT, socket.htons(key.port))
        _SERVICE_IDS.put(key, attrs)
    return attrs


def service_selector(key):
    """CMD_ATTR_SERVICE around service_id(key): what every real server request names."""
    selector = _SELECTORS.get(key)
    if selector is None:
        attrs = service_id(key)
        selector = _SELECTORS.put(key, ATTR.pack(4 + len(attrs), CMD_ATTR_SERVICE) + attrs)
    return selector


def service_flags(service):
    flags = SVC_F_PERSISTENT if service.persistence_timeout else 0
    if service.one_packet:
        flags |= SVC_F_ONEPACKET
    for name in service.scheduler_flags:
        flags |= FLAG_BIT[name]
    return flags


def service_attrs(service):
    """A complete service: the kernel's "set" replaces every setting."""
    return b''.join((
        service_id(service.key),
        core.string(SVC_ATTR_SCHED_NAME, service.scheduler),
        core.attr(SVC_ATTR_FLAGS, FLAGS.pack(service_flags(service), 0xffffffff)),
        core.u32(SVC_ATTR_TIMEOUT, service.persistence_timeout),
        core.attr(SVC_ATTR_NETMASK, netmask_bytes(service.persistence_netmask, service.key.family)),
        core.string(SVC_ATTR_PE_NAME, service.persistence_engine) if service.persistence_engine else b'',
    ))


def server_port(service, server):
    """The port the kernel is given: ipvsadm forces route/tunnel servers onto the
    service's port, and so do we so that both backends agree."""
    if server.forwarding in ('route', 'tunnel'):
        return service.key.port
    return server.port


def dest_attrs(server, full=True, port=None):
    packed, af = packed_address(server.address)
    port = socket.htons(server.port if port is None else port)
    attrs = _DEST_ID.pack(20, DEST_ATTR_ADDR, packed, 6, DEST_ATTR_PORT, port, 6, DEST_ATTR_ADDR_FAMILY, af)
    if not full:
        return attrs
    parts = [attrs]
    for name, kind, layout, numbers in DEST_SETTINGS:
        value = getattr(server, name)
        parts.append(core.attr(kind, layout.pack(value if numbers is None else numbers[value])))
    return b''.join(parts)


def request(action):
    """(command, payload) for one action."""
    service, server = action.service, action.server
    op = action.op
    if op in (model.ADD_SERVICE, model.EDIT_SERVICE):
        cmd = CMD_NEW_SERVICE if op == model.ADD_SERVICE else CMD_SET_SERVICE
        return cmd, core.nested(CMD_ATTR_SERVICE, service_attrs(service))
    if op == model.DELETE_SERVICE:
        return CMD_DEL_SERVICE, core.nested(CMD_ATTR_SERVICE, service_id(service.key))
    svc = service_selector(service.key)
    if op == model.DELETE_SERVER:
        # The server as the kernel holds it: no port rewriting here.
        return CMD_DEL_DEST, svc + core.nested(CMD_ATTR_DEST, dest_attrs(server, full=False))
    cmd = CMD_NEW_DEST if op == model.ADD_SERVER else CMD_SET_DEST
    if server.forwarding == 'masq' and server.tunnel_type == 'ipip' and not server.tunnel_port \
            and server.tunnel_checksum == 'none':
        # The common case in one pack (a full load sends one per real server); the tunnel
        # attributes left out are the kernel's zero defaults, the model's too.
        packed, af = packed_address(server.address)
        return cmd, svc + _DEST_NESTED_FULL.pack(
            4 + _DEST_FULL.size, CMD_ATTR_DEST, 20, DEST_ATTR_ADDR, packed, 6, DEST_ATTR_PORT,
            socket.htons(server.port), 6, DEST_ATTR_ADDR_FAMILY, af, 8, DEST_ATTR_FWD_METHOD, 0, 8,
            DEST_ATTR_WEIGHT, server.weight, 8, DEST_ATTR_U_THRESH, server.upper_threshold, 8,
            DEST_ATTR_L_THRESH, server.lower_threshold)
    return cmd, svc + core.nested(CMD_ATTR_DEST, dest_attrs(server, port=server_port(service, server)))
