# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A Service's endpoints as the translator reads and picks them: EndpointSlices (and
legacy Endpoints) indexed by Service, read into Endpoints, merged per Service port, and
the cluster and local sets chosen by conditions and topology hints (rules 4-6 of
translate.py), made into real servers.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

This is the translator's hot path (every endpoint of the cluster passes through
read_slice): endpoints stay parallel lists of small ints and texts, see READY.
Pure: no I/O.
"""

from __future__ import annotations

import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import RealServer
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import (
    AF, FAMILIES, Malformed, as_address, as_dict, as_list, as_port, as_protocol, as_str, object_name)

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
SKIP_MIRROR_LABEL = 'endpointslice.kubernetes.io/skip-mirror'

# An endpoint's conditions and locality as bits of a small int. Endpoints are kept as
# parallel lists of these and of address texts, not as an object or tuple each: 100,000
# new containers would wake the cyclic garbage collector again and again, and each of
# its passes walks every object of the snapshot (that cost more than all else together).
READY, SERVING, TERMINATING, LOCAL = 1, 2, 4, 8
SERVING_TERMINATING = SERVING | TERMINATING


def slice_owner(obj):
    """The name of the Service an EndpointSlice belongs to (its service-name label)."""
    labels = obj['metadata'].get('labels') or {}
    return labels.get(SERVICE_NAME_LABEL)


def endpoints_owner(obj):
    """The name of the Service a legacy Endpoints object belongs to (its own name)."""
    labels = obj['metadata'].get('labels') or {}
    if labels.get(SKIP_MIRROR_LABEL) == 'true':
        return None  # the mirroring controller leaves these alone, so do we
    return obj['metadata'].get('name')


def index(objects, kind, owner, warnings):
    """(namespace, service name) -> [objects], in object-name order."""
    found = {}
    for obj in objects:
        try:
            service = owner(obj)
            if not service:
                continue
            meta = obj['metadata']
            if not isinstance(meta['name'], str) or not isinstance(meta['namespace'], str):
                raise TypeError
            found.setdefault((meta['namespace'], service), []).append(obj)
        except (LookupError, TypeError, AttributeError):
            warnings.append('%s %s: metadata: namespace, name and labels unreadable' % (kind, object_name(obj)))
    for entries in found.values():
        if len(entries) > 1:
            entries.sort(key=lambda obj: obj['metadata']['name'])
    return found


class Endpoints(object):
    """Endpoints as parallel lists: addresses (canonical texts), flags (READY, SERVING,
    TERMINATING, LOCAL bits), hints (None when no endpoint has topology hints, else per
    endpoint None or (zones, nodes), two frozensets of hints.forZones and hints.forNodes
    names) and ports (one int for all, or a list, when the endpoints were merged over
    slices whose port numbers differ)."""

    __slots__ = ('addresses', 'flags', 'hints', 'ports')

    def __init__(self, addresses=None, flags=None, hints=None, ports=None):
        self.addresses = [] if addresses is None else addresses
        self.flags = [] if flags is None else flags
        self.hints = hints
        self.ports = ports

    def append(self, address, flags, hints=None, port=None):
        if self.hints is not None:
            self.hints.append(hints)
        elif hints is not None:
            self.hints = [None] * len(self.addresses) + [hints]
        if isinstance(self.ports, list):
            self.ports.append(port)
        self.addresses.append(address)
        self.flags.append(flags)


def read_slice(obj, node_name, warnings, ref):
    """(family, ports, Endpoints) of one EndpointSlice, or None for an FQDN or unusable one.

    ports: {(name, protocol): port}. A bad endpoint or port is warned about and left out
    (kube-proxy keeps the slice's other ports too); a bad slice-level field leaves the
    whole slice out.
    """
    try:
        address_type = obj.get('addressType')
        family = FAMILIES.get(address_type) if isinstance(address_type, str) else None
        if family is None:
            if obj.get('addressType') != 'FQDN':
                raise Malformed('addressType', '%r is not one of IPv4, IPv6, FQDN' % (obj.get('addressType'),))
            return None
        ports_field = as_list(obj.get('ports'), 'ports')
        endpoints_field = as_list(obj.get('endpoints'), 'endpoints')
    except Malformed as problem:
        warnings.append('EndpointSlice %s: %s' % (ref, problem))
        return None
    ports = {}
    for i, port in enumerate(ports_field):
        path = 'ports[%d]' % i
        try:
            port = as_dict(port, path, required=True)
            number = port.get('port')
            if number is None:
                continue  # "all ports": the API allows it, no proxy implements it
            key = (as_str(port.get('name'), path + '.name'), as_protocol(port.get('protocol'), path + '.protocol'))
            ports[key] = as_port(number, path + '.port')
        except Malformed as problem:
            warnings.append('EndpointSlice %s: %s' % (ref, problem))
    result = Endpoints()
    addresses = result.addresses
    flags = result.flags
    af = AF[family]
    inet_pton = socket.inet_pton
    inet_ntop = socket.inet_ntop
    for i, ep in enumerate(endpoints_field):
        # The hot loop (every endpoint of the cluster): the common, well-formed shape is
        # read inline; anything else (hints, absent conditions, a fault) goes to
        # _read_endpoint, which checks every field.
        try:
            address = ep['addresses'][0]
            if inet_ntop(af, inet_pton(af, address)) != address or (family == 6 and '.' in address):
                raise LookupError
            # The controller writes all three conditions; one missing takes the slow path.
            conditions = ep['conditions']
            value = conditions['ready']
            if value is True:
                bits = READY
            elif value is False:
                bits = 0
            else:
                raise LookupError
            value = conditions['serving']
            if value is True:
                bits |= SERVING
            elif value is not False:
                raise LookupError
            value = conditions['terminating']
            if value is True:
                bits |= TERMINATING
            elif value is not False:
                raise LookupError
            if 'hints' in ep:
                raise LookupError
            if ep.get('nodeName') == node_name:
                bits |= LOCAL
        except (LookupError, TypeError, ValueError, OSError, AttributeError):
            try:
                address, bits, hints = _read_endpoint(ep, family, node_name, 'endpoints[%d]' % i)
            except Malformed as problem:
                warnings.append('EndpointSlice %s: %s' % (ref, problem))
                continue
            result.append(address, bits, hints)
            continue
        if result.hints is not None:
            result.hints.append(None)
        addresses.append(address)
        flags.append(bits)
    return family, ports, result


def _read_endpoint(ep, family, node_name, path):
    """(address, flags, hints) of one endpoint, every field checked (the slow path of
    read_slice). Absent conditions: ready and serving, not terminating (the API's
    reading of nil). hints: None, or (zones, nodes) of hints.forZones and hints.forNodes."""
    ep = as_dict(ep, path, required=True)
    addresses = as_list(ep.get('addresses'), path + '.addresses')
    if not addresses:
        raise Malformed(path + '.addresses', 'no address')
    address = as_address(addresses[0], path + '.addresses[0]', family)[0]
    conditions = as_dict(ep.get('conditions'), path + '.conditions')
    bits = 0
    for name, bit, default in (('ready', READY, True), ('serving', SERVING, True), ('terminating', TERMINATING, False)):
        value = conditions.get(name)
        if value is None:
            value = default
        elif not isinstance(value, bool):
            raise Malformed('%s.conditions.%s' % (path, name), 'expected true or false, got %r' % (value,))
        if value:
            bits |= bit
    node = as_str(ep.get('nodeName'), path + '.nodeName', None)
    if node is not None and node == node_name:
        bits |= LOCAL
    hints = as_dict(ep.get('hints'), path + '.hints')
    named = []
    for field in ('forZones', 'forNodes'):
        where = '%s.hints.%s' % (path, field)
        named.append(frozenset(as_str(as_dict(entry, '%s[%d]' % (where, i), required=True).get('name'),
                                      '%s[%d].name' % (where, i))
                               for i, entry in enumerate(as_list(hints.get(field), where))))
    return address, bits, (tuple(named) if named[0] or named[1] else None)


def read_legacy_endpoints(obj, node_name, warnings, ref):
    """A legacy Endpoints object as the mirroring controller would slice it: one
    (family, ports, endpoints) per subset and family. addresses are ready;
    notReadyAddresses are not ready, and (no terminating condition) never used as
    serving-terminating either."""
    result = []
    try:
        for s, subset in enumerate(as_list(obj.get('subsets'), 'subsets')):
            path = 'subsets[%d]' % s
            subset = as_dict(subset, path, required=True)
            ports = {}
            for i, port in enumerate(as_list(subset.get('ports'), path + '.ports')):
                ppath = '%s.ports[%d]' % (path, i)
                port = as_dict(port, ppath, required=True)
                key = (as_str(port.get('name'), ppath + '.name'), as_protocol(port.get('protocol'), ppath + '.protocol'))
                ports[key] = as_port(port.get('port'), ppath + '.port')
            by_family = {4: Endpoints(), 6: Endpoints()}
            for field, ready in (('addresses', True), ('notReadyAddresses', False)):
                for i, entry in enumerate(as_list(subset.get(field), '%s.%s' % (path, field))):
                    epath = '%s.%s[%d]' % (path, field, i)
                    try:
                        entry = as_dict(entry, epath, required=True)
                        address, family = as_address(entry.get('ip'), epath + '.ip')
                        node = as_str(entry.get('nodeName'), epath + '.nodeName', None)
                    except Malformed as problem:
                        warnings.append('Endpoints %s: %s' % (ref, problem))
                        continue
                    bits = (READY | SERVING if ready else 0) | (LOCAL if node is not None and node == node_name else 0)
                    by_family[family].append(address, bits)
            result.extend((family, ports, eps) for family, eps in sorted(by_family.items()) if eps.addresses)
    except Malformed as problem:
        warnings.append('Endpoints %s: %s' % (ref, problem))
        return []
    return result


def cluster_endpoints(endpoints, zone, node_name=None):
    """Indices of the endpoints cluster-wide traffic goes to (rule 5): the ready ones,
    narrowed by topology hints - to this node's when every ready one has node hints and
    one names this node (PreferSameNode), else to this zone's when every ready one has
    zone hints and one names the zone (PreferSameZone); with none ready, the
    serving-and-terminating ones (a rollout's last pods keep serving)."""
    flags = endpoints.flags
    ready = [i for i, bits in enumerate(flags) if bits & READY]
    if not ready:
        return [i for i, bits in enumerate(flags) if bits & SERVING_TERMINATING == SERVING_TERMINATING]
    hints = endpoints.hints
    if hints is not None:
        for which, name in ((1, node_name), (0, zone)):
            if not name or not all(hints[i] is not None and hints[i][which] for i in ready):
                continue
            hinted = [i for i in ready if name in hints[i][which]]
            if hinted:
                return hinted
    return ready


def local_endpoints(endpoints):
    """Indices of the endpoints traffic policy Local uses (rule 5): this node's ready
    ones, else its serving-and-terminating ones. Empty when the node has none: no
    fallback to other nodes' endpoints (rule 8)."""
    flags = endpoints.flags
    mine = [i for i, bits in enumerate(flags) if bits & LOCAL]
    ready = [i for i in mine if flags[i] & READY]
    if ready:
        return ready
    return [i for i in mine if flags[i] & SERVING_TERMINATING == SERVING_TERMINATING]


def merge_endpoints(parts, name, protocol):
    """The Endpoints of one Service port over its slices (rule 4): from each slice, its
    port of that name and protocol; the same address:port once, the first seen unless a
    later copy is not terminating. None when no slice has the port."""
    key = (name, protocol)
    matched = [(ports[key], endpoints) for _family, ports, endpoints in parts
               if key in ports and endpoints.addresses]
    if not matched:
        return None
    first_port, first = matched[0]
    if len(matched) == 1 and len(set(first.addresses)) == len(first.addresses):
        return Endpoints(first.addresses, first.flags, first.hints, first_port)  # the common case: shared, not copied
    uniform = all(port == first_port for port, _endpoints in matched)
    if uniform:
        addresses = [address for _port, endpoints in matched for address in endpoints.addresses]
        if len(set(addresses)) == len(addresses):
            # Slices of one Service, no address twice (the usual split of a big Service): joined.
            flags = [bits for _port, endpoints in matched for bits in endpoints.flags]
            hints = None
            if any(endpoints.hints is not None for _port, endpoints in matched):
                hints = [hint for _port, endpoints in matched
                         for hint in (endpoints.hints or [None] * len(endpoints.addresses))]
            return Endpoints(addresses, flags, hints, first_port)
    result = Endpoints(ports=first_port if uniform else [])
    seen = {}
    for port, endpoints in matched:
        hints = endpoints.hints
        for i, address in enumerate(endpoints.addresses):
            bits = endpoints.flags[i]
            seen_key = address if uniform else (address, port)
            at = seen.get(seen_key)
            if at is None:
                seen[seen_key] = len(result.addresses)
                result.append(address, bits, None if hints is None else hints[i], port)
            elif not bits & TERMINATING:
                result.flags[at] = bits
                if hints is not None or result.hints is not None:
                    if result.hints is None:
                        result.hints = [None] * len(result.addresses)
                    result.hints[at] = None if hints is None else hints[i]
    return result


def real_servers(endpoints, indices):
    """RealServers of the chosen endpoints: masq (NAT), weight 1, as kube-proxy makes them."""
    addresses = endpoints.addresses
    port = endpoints.ports
    if isinstance(port, int):
        return tuple(RealServer(address=addresses[i], port=port, weight=1, forwarding='masq') for i in indices)
    return tuple(RealServer(address=addresses[i], port=port[i], weight=1, forwarding='masq') for i in indices)
