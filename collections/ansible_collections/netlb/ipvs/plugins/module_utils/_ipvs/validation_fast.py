# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fast paths of validation: an unremarkable service or list of real servers (the
whole of a big table) made into model values in one tight loop, or None as soon as
anything is not plain, and then the field-by-field checks decide and report.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Whatever these accept, the full checks (validation_service.py) accept with the same
result: tests/unit hold the two together. Pure: no I/O.
"""

from __future__ import annotations

import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    PROTOCOLS, SCHEDULERS, SERVER_FIELD, SERVICE_FIELD, RealServer, ServiceKey, VirtualService)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fields import plain_ipv4

# What the fast paths take: a service named by protocol, address and port, with the
# settings every big table has; a real server without tunnel settings. Anything else
# goes to the field-by-field checks.
_PLAIN_SERVICE_FIELDS = frozenset(['protocol', 'address', 'port', 'scheduler', 'scheduler_flags',
                                   'persistence_timeout', 'persistence_netmask', 'real_servers'])
_PLAIN_SERVER_FIELDS = frozenset(['address', 'port', 'weight', 'forwarding', 'upper_threshold', 'lower_threshold'])
# Defaults and ranges of those, from the field table.
_WEIGHT, _FORWARDING = SERVER_FIELD['weight'], SERVER_FIELD['forwarding']
_THRESHOLD_MAX = SERVER_FIELD['upper_threshold'].high
# Exact types for the fast paths (a bool is an int, a str or dict subclass could be anything:
# the full checks decide those).
_DICT = frozenset([dict])
_INT = frozenset([int])
_STR = frozenset([str])

DEFAULT_SCHEDULER = SERVICE_FIELD['scheduler'].default  # what ipvsadm and the kernel pick when none is named


def plain_service(params):
    """The VirtualService of an unremarkable table entry (known keys only; protocol,
    canonical IPv4 address, port 1-65535, scheduler, no flags, no persistence, plain real
    servers), or None as soon as anything is not: then parse_service checks it field by
    field and reports. A big table is all such entries, and the per-service part of the
    full check (field paths, defaults one by one) is half of its time. Whatever this
    accepts, parse_service accepts with the same result; tests/unit hold the two together."""
    if type(params) not in _DICT or not _PLAIN_SERVICE_FIELDS.issuperset(params):
        return None
    get = params.get
    protocol = get('protocol', 'tcp')
    address = get('address')
    port = get('port')
    scheduler = get('scheduler', DEFAULT_SCHEDULER)
    if (type(protocol) not in _STR or protocol not in PROTOCOLS or type(port) not in _INT or not 1 <= port <= 65535
            or type(scheduler) not in _STR or scheduler not in SCHEDULERS
            or get('scheduler_flags', []) != [] or type(get('persistence_timeout', 0)) not in _INT
            or get('persistence_timeout', 0) != 0 or get('persistence_netmask') is not None):
        return None
    if type(address) not in _STR or plain_ipv4(address) is None or address == '0.0.0.0':
        return None
    key = ServiceKey(protocol, address, port, 0, 4)
    servers = plain_real_servers(get('real_servers', []), key)
    if servers is None:
        return None
    return VirtualService(key=key, scheduler=scheduler, real_servers=tuple(servers))


def plain_real_servers(items, key):
    """The RealServers of a list of unremarkable entries (known keys only, IPv4 addresses
    in canonical form, exact ints in range, no duplicates), or None as soon as one entry
    is not: then _real_server checks each field by field and reports. A table of 50,000
    real servers is all such entries, and one tight loop without field paths takes half
    the time. Whatever this accepts, the full check accepts with the same result;
    tests/unit hold the two together."""
    if key is None or key.family != 4 or not isinstance(items, (list, tuple)):
        return None
    service_port = 0 if key.is_fwmark else key.port
    low = 0 if service_port == 0 else 1
    fields, pton, ntop, inet = _PLAIN_SERVER_FIELDS, socket.inet_pton, socket.inet_ntop, socket.AF_INET
    weight_default, weight_max, forwarding_default = _WEIGHT.default, _WEIGHT.high, _FORWARDING.default
    forwardings, threshold_max, server_of = _FORWARDING.choices, _THRESHOLD_MAX, RealServer
    servers, seen = [], set()
    append, see = servers.append, seen.add
    for params in items:
        if type(params) not in _DICT or not fields.issuperset(params):
            return None
        get = params.get
        address = get('address')
        try:  # plain_ipv4 inlined: a call per server is ~8% of this loop
            if ntop(inet, pton(inet, address)) != address or address == '0.0.0.0':
                return None
        except (OSError, TypeError, ValueError):
            return None
        forwarding = get('forwarding', forwarding_default)
        port = get('port', service_port)
        weight = get('weight', weight_default)
        upper = get('upper_threshold', 0)
        lower = get('lower_threshold', 0)
        # A null, a bool or a float fails here (not an int): the full check reports it.
        if not (type(port) in _INT and type(weight) in _INT and type(upper) in _INT and type(lower) in _INT
                and low <= port <= 65535 and 0 <= weight <= weight_max and 0 <= lower <= upper <= threshold_max):
            return None
        if forwarding != 'masq' and (type(forwarding) not in _STR or forwarding not in forwardings
                                     or port != service_port):
            return None  # route and tunnel cannot remap ports: _server_port says so
        # RealServer's own constructor, positionally (keywords cost a fifth of this loop);
        # the tunnel settings keep their defaults.
        append(server_of(address, port, weight, forwarding, upper, lower))
        see((address, port))
    if len(seen) != len(servers):
        return None  # the full check names the duplicates
    return servers
