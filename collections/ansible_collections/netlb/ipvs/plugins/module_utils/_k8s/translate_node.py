# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node as the translator reads it: its own addresses, its NodePort addresses
(kube-proxy's NodePortAddresses, rule 3 of translate.py), its primary addresses and the
option CIDRs as networks.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Read once per translation, before any Service: what a Service may not take (rule 10)
and where its NodePorts go depend on it. Pure: the addresses come in a NodeContext.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import fast_canonical


def option_networks(texts, option, warnings):
    """ip_networks of an option's CIDRs (validated before: a bad one is a warning here)."""
    networks = []
    for i, text in enumerate(texts or ()):
        try:
            networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            warnings.append('options.%s[%d]: %r is not a CIDR' % (option, i, text))
    return tuple(networks)


def node_object_primary(node_object):
    """The Node object's primary address of each family, as kube-proxy picks its node IPs:
    the first InternalIP of the family in status.addresses, else its first ExternalIP.
    () when there is no Node object or it lists no usable address."""
    status = (node_object or {}).get('status') if isinstance(node_object, dict) else None
    entries = status.get('addresses') if isinstance(status, dict) else None
    found = {}
    for kind in ('InternalIP', 'ExternalIP'):
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or entry.get('type') != kind:
                continue
            address, family = fast_canonical(entry.get('address'))
            if address is not None and address not in ('0.0.0.0', '::'):
                found.setdefault(family, address)
    return tuple(found[family] for family in sorted(found))


def node_addresses(node, options, node_object, warnings):
    """(addresses on interfaces other than the dummy one, {family: NodePort addresses},
    those of the first but loopback and IPv6 link-local, the primary addresses).

    NodePort addresses, as kube-proxy's NodePortAddresses: 'primary' - the Node object's
    primary address of each family (node_object_primary) when it was read, else
    node.primary (the default route's source address); CIDRs - per family, the node's
    addresses inside that family's CIDRs but loopback, and every usable address (the
    default) for a family that has no CIDR or a zero-length one (0.0.0.0/0, ::/0).
    """
    own = []
    for i, entry in enumerate(node.addresses or ()):
        try:
            interface, text = entry
            # Tolerate 'address/prefix' and a zone suffix ('fe80::1%eth0'), as `ip` prints them.
            address, family = fast_canonical(str(text).split('/', 1)[0].split('%', 1)[0])
        except (TypeError, ValueError):
            address = None
        if address is None:
            warnings.append('node.addresses[%d]: %r is not (interface, address)' % (i, entry))
            continue
        if interface != options.dummy_interface:
            own.append((family, address, ipaddress.ip_address(address)))
    usable = [(family, address) for family, address, ip in own
              if not ip.is_loopback and not (family == 6 and ip.is_link_local)]
    primary = node_object_primary(node_object)
    if not primary:
        primary = tuple(address for address, _family in map(fast_canonical, node.primary or ()) if address)
    node_port = {4: [], 6: []}
    choice = tuple(options.node_port_addresses or ())
    if choice == ('primary',):
        for address in primary:
            node_port[6 if ':' in address else 4].append(address)
    else:
        networks = option_networks(choice, 'node_port_addresses', warnings)
        for family in node_port:
            mine = [net for net in networks if net.version == family]
            if not mine or any(net.prefixlen == 0 for net in mine):
                node_port[family] = [address for found, address in usable if found == family]
            else:
                node_port[family] = [address for found, address, ip in own if found == family
                                     and not ip.is_loopback and any(ip in net for net in mine)]
    for family in node_port:
        node_port[family] = sorted(set(node_port[family]))
    return (frozenset(address for _family, address, _ip in own), node_port,
            frozenset(address for _family, address in usable), primary)
