# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The translator's field readers: one field of an API object checked and returned, or
Malformed naming its path (rule 9 of translate.py), and the address parsing they share.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The Service reader (translate_service.py) and the endpoint reader
(translate_endpoints.py) both read the API's JSON through these, so a field is checked
the same way wherever it appears. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import canonical_address

PROTOCOLS = {'TCP': 'tcp', 'UDP': 'udp', 'SCTP': 'sctp'}
FAMILIES = {'IPv4': 4, 'IPv6': 6}
AF = {4: socket.AF_INET, 6: socket.AF_INET6}


class Malformed(Exception):
    """A field of an object is not what the API allows: path and what is wrong."""

    def __init__(self, path, message):
        super(Malformed, self).__init__('%s: %s' % (path, message))


# ---------------------------------------------------------------------------- addresses

def fast_canonical(text):
    """(canonical text, family) of an IP address text, or (None, None) if it is not one.

    The API's addresses are nearly always canonical already: one inet_pton/inet_ntop round
    trip proves it at a fraction of ipaddress's cost; anything else (IPv4-mapped IPv6,
    whose spelling differs between libc and ipaddress) goes through the model's own
    canonical_address, so the result is always the engine's canonical form.
    """
    if not isinstance(text, str):
        return None, None
    family = 6 if ':' in text else 4
    try:
        packed = socket.inet_pton(AF[family], text)
    except (OSError, ValueError):
        return None, None
    out = socket.inet_ntop(AF[family], packed)
    if out == text and (family == 4 or '.' not in out):
        return text, family
    try:
        return canonical_address(text), family
    except ValueError:
        return None, None


def as_address(value, path, family=None):
    """The canonical text of an address field; Malformed when it is not a usable one."""
    address, found = fast_canonical(value)
    if address is None:
        raise Malformed(path, '%r is not an IP address' % (value,))
    if family is not None and found != family:
        raise Malformed(path, '%s is not an IPv%d address' % (address, family))
    if address in ('0.0.0.0', '::'):
        raise Malformed(path, '%s is the unspecified address' % address)
    return address, found


def as_source_range(value, path):
    """(family, canonical CIDR text) of one loadBalancerSourceRanges entry."""
    if not isinstance(value, str):
        raise Malformed(path, '%r is not a CIDR' % (value,))
    try:
        # The API's validation lets whitespace padding through; kube-proxy trims it too.
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise Malformed(path, '%r is not a CIDR' % (value,))
    return network.version, str(network)


# ---------------------------------------------------------------------------- field access

def as_dict(value, path, required=False):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Malformed(path, 'expected a mapping, got %r' % (value,))
    return value


def as_list(value, path):
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(path, 'expected a list, got %r' % (value,))
    return value


def as_str(value, path, default=''):
    if value is None:
        return default
    if not isinstance(value, str):
        raise Malformed(path, 'expected a string, got %r' % (value,))
    return value


def as_port(value, path, low=1):
    if isinstance(value, bool) or not isinstance(value, int):  # JSON true is no port
        raise Malformed(path, 'expected an integer, got %r' % (value,))
    if not low <= value <= 65535:
        raise Malformed(path, '%d is out of range %d-65535' % (value, low))
    return value


def as_protocol(value, path):
    protocol = PROTOCOLS.get(as_str(value, path, 'TCP'))
    if protocol is None:
        raise Malformed(path, '%r is not one of TCP, UDP, SCTP' % (value,))
    return protocol


def own_key(obj):
    """(namespace, name) of a Service as its EndpointSlices and Endpoints are indexed
    by, or None when they are not strings (such a Service reads no slice)."""
    meta = obj.get('metadata') if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    namespace, name = meta.get('namespace'), meta.get('name')
    return (namespace, name) if isinstance(namespace, str) and isinstance(name, str) else None


def object_name(obj):
    """'namespace/name' of an object, as well as a broken one allows."""
    meta = obj.get('metadata') if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return '?/?'
    return '%s/%s' % (meta.get('namespace') or '?', meta.get('name') or '?')
