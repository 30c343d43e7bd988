# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One Service's piece of a translation (a translate_cache.Fragment): its virtual
services of each family with their real servers and ports (rules 3-5 and 7 of
translate.py), its refused addresses (rule 10), skips and warnings.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

A piece depends on the Service's own objects and the node's context only, never on
another Service: that is what lets translate_cache.py keep it between translations,
and translate.py claim the virtual services of all pieces in order. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ServiceKey, VirtualService
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate_service
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import (
    CLUSTER_IP,
    EXTERNAL_IP,
    LOAD_BALANCER,
    NODE_PORT,
    ServicePort,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_cache import Fragment
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_endpoints import (
    LOCAL,
    cluster_endpoints,
    local_endpoints,
    merge_endpoints,
    read_legacy_endpoints,
    read_slice,
    real_servers,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import Malformed
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_service import (
    SKIP_MALFORMED,
    SKIP_NO_FAMILY,
    scheduler_flags,
)

FULL_PREFIX = {4: 32, 6: 128}  # the persistence netmask of session affinity: one client address


class PieceMaker(object):
    """Makes the pieces of one translation: the node's context, read once before the
    first Service (translate.py), and each Service's objects."""

    def __init__(self, options, node, node_owned, node_port, service_networks, allowed_networks):
        self.options = options
        self.node = node
        self.node_owned = node_owned  # addresses no Service may take (rule 10)
        self.node_port = node_port  # family -> NodePort addresses
        self.service_networks = service_networks
        self.allowed_networks = allowed_networks
        self.flags = {}  # scheduler -> its scheduler_flags

    def piece(self, obj, ref, slices, endpoints):
        """The Fragment of one Service: what it contributes, recorded in order."""
        piece = Fragment()
        try:
            self._service(obj, ref, slices, endpoints, piece)
        except Exception as error:  # pylint: disable=broad-except
            # A shape no check foresaw: lose this Service, not the node's whole table.
            piece.events.append('Service %s: left out, unexpected %s: %s' % (ref, type(error).__name__, error))
            piece.skip(SKIP_MALFORMED, ref)
        return piece

    def _service(self, obj, ref, slices, endpoints, piece):
        """One Service, recorded into piece (a Fragment): nothing else is touched."""
        options = self.options
        warnings = piece.events
        try:
            if not isinstance(obj, dict):
                raise Malformed('(top)', 'expected a mapping, got %r' % (type(obj).__name__,))
            svc = translate_service.read_service(obj, options.scheduler, warnings, self._refusal)
        except Malformed as problem:
            warnings.append('Service %s: %s' % (ref, problem))
            piece.skip(SKIP_MALFORMED, ref)
            return
        if isinstance(svc, str):
            piece.skip(svc, ref)
            return
        families = [family for family in options.families if family in svc.cluster_ips]
        if not families:
            piece.skip(SKIP_NO_FAMILY, ref)
            return
        key = (svc.namespace, svc.name)
        parts = [read_slice(entry, self.node.name, warnings, '%s/%s' % (svc.namespace, entry['metadata']['name']))
                 for entry in slices.get(key, ())]
        parts = [part for part in parts if part is not None]
        if key not in slices and not svc.selector and key in endpoints:
            for legacy in endpoints[key]:
                parts.extend(read_legacy_endpoints(legacy, self.node.name, warnings, ref))
        for family in families:
            self._family(svc, family, [part for part in parts if part[0] == family], piece)
        if svc.health_check_port:
            piece.health[svc.ref] = svc.health_check_port

    def _refusal(self, address, family, external):
        """Why a Service may not have this external (external=True) or load-balancer IP,
        or None (rule 10)."""
        if family not in self.options.families:
            return None  # never proxied anyway
        if address in self.node_owned:
            return 'is an address of this node'
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_link_local or ip.is_multicast:
            return 'is a loopback, link-local or multicast address'
        if not external:
            return None  # the load-balancer controller's, through status: not a user's choice
        for network in self.service_networks:
            if ip in network:
                return 'is inside the service CIDR %s' % network
        if not any(ip in network for network in self.allowed_networks):
            if not self.allowed_networks:
                return 'is an external IP and external_ips_allowed_cidrs allows none'
            return 'is outside external_ips_allowed_cidrs'
        return None

    def _family(self, svc, family, parts, piece):
        """Every virtual service of one Service in one family (rules 3-5, 7), recorded
        into piece."""
        ref = svc.ref
        lb_ips = svc.lb_ips[family]
        source_ranges = svc.source_ranges[family]
        if source_ranges is None:
            if lb_ips:
                piece.events.append('Service %s: spec.loadBalancerSourceRanges: no IPv%d range, so its IPv%d '
                                    'load-balancer IPs are not proxied' % (ref, family, family))
            lb_ips = ()
        netmask = FULL_PREFIX[family]
        cluster_ip = svc.cluster_ips[family]
        node_port_addresses = self.node_port[family]
        external_ips = svc.external_ips[family]
        # This node's endpoints, once per slice (not per port): hairpin masquerade needs
        # the addresses only.
        wanted = set((name, protocol) for name, protocol, _port, _node_port in svc.ports)
        for _family, slice_ports, endpoints in parts:
            if not wanted.isdisjoint(slice_ports):
                piece.local.update(address for address, bits in zip(endpoints.addresses, endpoints.flags)
                                   if bits & LOCAL)
        for name, protocol, port, node_port in svc.ports:
            merged = merge_endpoints(parts, name, protocol) if parts else None
            cluster = local = None
            targets = [(CLUSTER_IP, cluster_ip, port, svc.internal_local)]
            if node_port:
                targets.extend((NODE_PORT, address, node_port, svc.external_local) for address in node_port_addresses)
            targets.extend((EXTERNAL_IP, address, port, svc.external_local) for address in external_ips)
            targets.extend((LOAD_BALANCER, address, port, svc.external_local) for address in lb_ips)
            for kind, address, vport, is_local in targets:
                # Addresses are canonical already: the named constructor, not tcp_udp's re-parse
                # (a test holds the two equal).
                key = ServiceKey(protocol=protocol, address=address, port=vport, fwmark=0, family=family)
                if merged is None:
                    servers = ()
                elif is_local:
                    if local is None:
                        local = real_servers(merged, local_endpoints(merged))
                    servers = local
                    if not servers and kind != CLUSTER_IP and not svc.internal_local:
                        # kube-proxy's IPVS fallback (rule 8): this node's pods reach it.
                        if cluster is None:
                            cluster = real_servers(merged, cluster_endpoints(merged, self.node.zone, self.node.name))
                        servers = cluster
                else:
                    if cluster is None:
                        cluster = real_servers(merged, cluster_endpoints(merged, self.node.zone, self.node.name))
                    servers = cluster
                flags = self.flags.get(svc.scheduler)
                if flags is None:
                    flags = self.flags[svc.scheduler] = scheduler_flags(svc.scheduler, self.options.scheduler_flags)
                vs = VirtualService(key=key, scheduler=svc.scheduler, scheduler_flags=flags,
                                    persistence_timeout=svc.timeout, persistence_netmask=netmask, real_servers=servers)
                port_record = ServicePort(kind=kind, family=family, protocol=protocol, address=address, port=vport,
                                          local=is_local,
                                          source_ranges=source_ranges if kind == LOAD_BALANCER else (),
                                          service=ref)
                if kind == NODE_PORT or kind == CLUSTER_IP:
                    piece.events.append((key, vs, port_record))
                else:
                    piece.deferred.append((key, vs, port_record))
