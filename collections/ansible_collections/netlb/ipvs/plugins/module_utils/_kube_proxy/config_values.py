# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One kube_proxy_* value checked by its kind (a row of config.FIELDS), as kube-proxy's
own validation would take it: integers, booleans, durations, addresses, IP:port, CIDRs,
the cluster CIDR, NodePort addresses and feature gates.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Values come from Ansible variables, so Jinja's strings are read as the numbers and lists
they stand for. config.py places the checked values in the document. No I/O.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.netlb.ipvs.plugins.module_utils._duration import parse_duration

MODES = ('ipvs', 'iptables', 'nftables')
DETECT_LOCAL_MODES = ('ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix')
PRIMARY = 'primary'


def _int(value):
    """An int from an int or a string of digits (Jinja templating makes strings)."""
    if isinstance(value, bool):
        raise ValueError('%r is not an integer' % (value,))
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r'^\s*[-+]?\d+\s*$', value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError('%r is not an integer' % (value,))


def to_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    raise ValueError('%r is not a boolean' % (value,))


def _str(value):
    if isinstance(value, (dict, list, tuple, bool)):
        raise ValueError('%r is not a string' % (value,))
    return '' if value is None else str(value)


def _list(value):
    """A list from a list, or from a comma-separated string (kubespray accepts both)."""
    if value is None or value == '':
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(',') if part.strip()]
    if isinstance(value, (list, tuple)):
        return [_str(item).strip() for item in value]
    raise ValueError('%r is not a list' % (value,))


def _ip(text):
    """An IP address, as Go's net.ParseIP takes it (no brackets, no zone, no port)."""
    return ipaddress.ip_address(text)


def _cidr(text):
    """A CIDR as Go's ParseCIDR takes it: address/prefix, host bits allowed."""
    if '/' not in text:
        raise ValueError('%r is not a CIDR (address/prefix length, e.g. 10.0.0.0/8)' % (text,))
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError('%r is not a CIDR (address/prefix length, e.g. 10.0.0.0/8)' % (text,))


def _hostport(text):
    """IP:port, IPv6 in brackets ([::1]:10249), port 1-65535: kube-proxy's validateHostPort."""
    match = re.match(r'^(?:\[([^\]]*)\]|([^:\[\]]*)):([^:]*)$', text)
    if not match:
        raise ValueError('%r is not IP:port (an IPv6 address in brackets, e.g. [::1]:10249)' % (text,))
    host = match.group(1) if match.group(1) is not None else match.group(2)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError('%r: %r is not an IP address' % (text, host))
    if match.group(2) is not None and address.version == 6:  # pragma: no cover - the regex keeps ':' out
        raise ValueError('%r: an IPv6 address goes in brackets' % (text,))
    port = match.group(3)
    if not re.match(r'^\d+$', port) or not 1 <= int(port) <= 65535:
        raise ValueError('%r: %r is not a port (1-65535)' % (text, port))
    return text


def check_value(field, value, problems):
    """The value to write for one field (None: leave it out); problems get a line each."""
    name, kind = field.variable, field.kind
    try:
        if kind == 'str':
            return _str(value)
        if kind == 'bool':
            return to_bool(value)
        if kind == 'mode':
            mode = _str(value)
            if mode not in MODES:
                raise ValueError('%r is not a proxy mode (one of %s)' % (mode, ', '.join(MODES)))
            return mode
        if kind in ('duration', 'nonneg_duration', 'positive_duration'):
            text = _str(value).strip()
            nanos = parse_duration(text)
            if kind == 'nonneg_duration' and nanos < 0:
                raise ValueError('%s must be >= 0' % text)
            if kind == 'positive_duration' and nanos <= 0:
                raise ValueError('%s must be greater than 0' % text)
            return text
        if kind == 'nonneg_int':
            number = _int(value)
            if number < 0:
                raise ValueError('%d must be >= 0' % number)
            return number
        if kind == 'masquerade_bit':
            number = _int(value)
            if not 0 <= number <= 31:
                raise ValueError('%d is not a fwmark bit (0-31)' % number)
            return number
        if kind == 'oom_score_adj':
            number = _int(value)
            if not -1000 <= number <= 1000:
                raise ValueError('%d is outside -1000..1000' % number)
            return number
        if kind == 'qps':
            if isinstance(value, bool):
                raise ValueError('%r is not a number' % (value,))
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError('%r is not a number' % (value,))
            return _int(value) if float(number).is_integer() else number
        if kind == 'ip':
            text = _str(value).strip()
            try:
                _ip(text)
            except ValueError:
                raise ValueError('%r is not a bare IP address (no port, no brackets)' % (text,))
            return text
        if kind == 'hostport':
            return _hostport(_str(value).strip())
        if kind == 'cidrs':
            items = _list(value)
            _check_cidr_items(name, items, problems)
            return items
        if kind == 'cluster_cidr':
            return _check_cluster_cidr(name, value, problems)
        if kind == 'nodeport_addresses':
            return _check_nodeport_addresses(name, value, problems)
        if kind == 'detect_local_mode':
            mode = _str(value)
            if mode and mode not in DETECT_LOCAL_MODES:
                raise ValueError('%r is not a detectLocalMode (one of %s, or empty for ClusterCIDR)'
                                 % (mode, ', '.join(DETECT_LOCAL_MODES)))
            return mode
        if kind == 'feature_gates':
            return _check_feature_gates(name, value, problems)
        if kind == 'dict':
            if value in (None, ''):
                return {}
            if not isinstance(value, dict):
                raise ValueError('%r is not a dict' % (value,))
            return dict(value)
    except ValueError as err:
        problems.append('%s: %s' % (name, err))
        return None
    raise AssertionError('no check for kind %r' % kind)  # a FIELDS row without its check


def _check_cluster_cidr(name, value, problems):
    """One CIDR, or an IPv4 and an IPv6 one (a list or 'a,b'); written comma-joined."""
    items = _list(value)
    if len(items) > 2:
        problems.append('%s: %s has %d CIDRs: give one, or an IPv4 and an IPv6 one (dual-stack)'
                        % (name, ','.join(items), len(items)))
        return None
    networks = []
    for index, item in enumerate(items):
        try:
            networks.append(_cidr(item))
        except ValueError as err:
            problems.append('%s%s: %s' % (name, '[%d]' % index if len(items) > 1 else '', err))
    if len(networks) == 2 and networks[0].version == networks[1].version:
        problems.append('%s: %s are both IPv%d: two CIDRs must be one IPv4 and one IPv6 (dual-stack)'
                        % (name, ','.join(items), networks[0].version))
    return ','.join(items)


def _check_nodeport_addresses(name, value, problems):
    items = _list(value)
    if PRIMARY in items:
        if items != [PRIMARY]:
            problems.append("%s: 'primary' must be the only entry, not mixed with CIDRs (%s)"
                            % (name, ', '.join(items)))
        return items
    _check_cidr_items(name, items, problems, " (or the single word 'primary')")
    return items


def _check_cidr_items(name, items, problems, hint=''):
    """Each item a CIDR; a problem per one that is not, named name[index]."""
    for index, item in enumerate(items):
        try:
            _cidr(item)
        except ValueError as err:
            problems.append('%s[%d]: %s%s' % (name, index, err, hint))


def _check_feature_gates(name, value, problems):
    """A dict name -> bool; also kubespray's list of 'Name=true' strings."""
    if value in (None, '', [], {}):
        return {}
    gates = {}
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            text = _str(item) if not isinstance(item, dict) else ''
            if '=' not in text:
                problems.append('%s[%d]: %r is not Name=true|false' % (name, index, item))
                continue
            gate, setting = text.split('=', 1)
            gates[gate.strip()] = setting.strip()
    elif isinstance(value, dict):
        gates = dict(value)
    else:
        problems.append('%s: %r is not a dict of feature gate names to booleans' % (name, value))
        return None
    result = {}
    for gate, setting in sorted(gates.items()):
        try:
            result[str(gate)] = to_bool(setting)
        except ValueError:
            problems.append('%s.%s: %r is not a boolean' % (name, gate, setting))
    return result
