# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kubernetes Services and EndpointSlices -> this node's IPVS table, dummy addresses and ports.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Pure: ``translate(snapshot, node, options)`` reads the API's JSON objects and returns a
Translation; no I/O, no clock, and the same input always gives the same output.
kube-proxy's IPVS proxier is the reference for behaviour; where this module differs it
says so (rule 8).

Rules (the semantics the tests hold this module to):

1. Skipped Services: spec.clusterIP "None" or empty (headless), type ExternalName, and
   Services labelled service.kubernetes.io/service-proxy-name (another proxy's) or
   service.kubernetes.io/headless. Each is counted under its reason in
   Translation.skipped, as is a malformed Service and one with no cluster IP of an
   enabled family. EndpointSlices without the kubernetes.io/service-name label belong to
   no Service and are ignored.
2. Families: per family in options.families, a Service is proxied in that family only
   when it has a cluster IP of it (spec.clusterIPs paired with spec.ipFamilies; without
   ipFamilies, spec.clusterIP of that family). Its external IPs, load-balancer IPs,
   NodePort addresses, source ranges and endpoints are then taken of that family only.
3. Virtual services, per Service port (TCP, UDP, SCTP): the cluster IP; the NodePort
   (when not 0 or null) on each NodePort address of the node (by default every local
   address but loopback, IPv6 link-local and those on the dummy interface;
   options.node_port_addresses as kube-proxy's NodePortAddresses: per family the
   addresses inside that family's CIDRs but loopback, the default for a family without a
   CIDR or with a zero-length one; 'primary': the Node object's first InternalIP, else
   ExternalIP, of each family, else node.primary); each spec.externalIPs entry and each
   status.loadBalancer.ingress[].ip whose ipMode is not Proxy (hostname-only ingress has
   no VIP) that rule 10 admits. Scheduler: annotation ipvs.netlb.io/scheduler, else kube-router's
   kube-router.io/service.scheduler, else options.scheduler; an unknown scheduler is a
   warning and the default. Scheduler flags: those of options.scheduler_flags the
   scheduler reads (sh-* for sh, mh-* for mh; mh-port by default, as kube-proxy).
   sessionAffinity ClientIP: persistence of
   sessionAffinityConfig.clientIP.timeoutSeconds (default 10800) on /32 or /128.
4. Real servers: an endpoint's addresses[0] at the slice port whose name AND protocol
   match the Service port (a named targetPort may resolve to different numbers in
   different slices), masq, weight 1. Only slices whose addressType is the family
   (FQDN slices are never proxied). The same address:port from several slices (a pod
   moving between slices, or a reused pod IP) counts once: the first seen, slices in name
   order, unless a later copy is not terminating.
5. Endpoint choice. Cluster set: the ready endpoints (conditions.ready absent or true),
   narrowed by topology hints as kube-proxy's topologyModeFromHints: to those hinted for
   node.name when every ready endpoint has hints.forNodes and at least one names this
   node (PreferSameNode), else to those hinted for node.zone when every ready endpoint
   has hints.forZones and at least one names that zone; when none is ready, the serving
   (absent or true) AND terminating (true) ones. Local set: the ready endpoints on this
   node (endpoint.nodeName == node.name), else this node's serving+terminating ones;
   topology hints never apply to it. externalTrafficPolicy Local: NodePort, external-IP
   and load-balancer virtual services get the local set, or the cluster set when it is
   empty and internalTrafficPolicy is not Local too (kube-proxy's IPVS fallback, rule 8);
   internalTrafficPolicy Local: the cluster IP gets the local set, never a fallback.
   Everything else gets the cluster set.
6. Legacy Endpoints are read only for a Service without spec.selector that has no
   EndpointSlice at all, the way the mirroring controller would turn them into slices:
   subsets[].addresses are ready, notReadyAddresses not ready (and, like a mirrored
   slice, neither serving-terminating), ports matched by name and protocol.
7. Outputs: Translation.services sorted by ServiceKey; one ServicePort per virtual
   service, in the same order (local: the traffic policy Local applies to it;
   source_ranges: spec.loadBalancerSourceRanges of the family, canonical and sorted,
   LOAD_BALANCER only, () when a range covers everyone; a range with an IPv6 zone id
   ('%') is warned about and left out, and still counts as a range, so leaving it out
   never opens the load balancer to everyone). dummy_addresses: the cluster,
   external and load-balancer IPs of the virtual services made, except an address that
   is already on another interface of the node; NodePort addresses are never bound.
   local_endpoints (for hairpin masquerade, kube-proxy's KUBE-LOOP-BACK): the address of
   every endpoint on this node (nodeName == node.name, whatever its conditions) in a slice
   of an enabled family that serves a port of a proxied Service, except the node's own
   addresses (a host-network pod's reply is local to the node anyway). node_addresses:
   the node's addresses but loopback, IPv6 link-local and the dummy interface's (the
   default NodePort addresses, whatever options.node_port_addresses says); the packet
   rules let the node itself through a load balancer's source ranges when one of them
   holds such an address. health_check_node_ports: spec.healthCheckNodePort of each
   proxied LoadBalancer Service with externalTrafficPolicy Local (returned, not served).
8. externalTrafficPolicy Local without a local endpoint, as kube-proxy's IPVS mode
   (kubernetes#97081): IPVS cannot tell a pod's or the node's connection from an
   external client's, so the NodePort, external and load-balancer virtual services get
   the cluster set and pods reach them; an external client's packets reach a pod on
   another node unmasqueraded (policy Local) and its reply never comes back, nor does
   the reply to the node's own connection to an external or load-balancer IP (its
   source is that IP, bound on the other node too): what kube-proxy does too. Differences from kube-proxy's IPVS mode, on purpose:
   - internalTrafficPolicy Local never falls back: a cluster IP without a local
     endpoint has NO real servers (the Service API's semantics); kube-proxy's IPVS mode
     falls back to every endpoint when the Service is also external with
     externalTrafficPolicy Cluster.
   - a load-balancer IP of a family for which loadBalancerSourceRanges lists ranges only
     of the other family is not proxied (warned): kube-proxy would open it to everyone.
   - node_addresses are all the node's usable addresses: kube-proxy lets the node through
     source ranges only when one holds its single primary node IP (allowFromNode).
9. Robustness: a malformed object (missing or wrongly typed field, port out of range, an
   address that is not one, an unknown protocol) is left out - the Service, or just the
   bad slice, endpoint or slice port - with a warning naming the object and the field
   path. Nothing raises out of translate(): a fault of the translator itself ends the
   translation with Translation.stopped saying why, and refuse_incomplete() refuses to
   apply any of it (a partial table would delete what it did not reach).
10. What a Service may take. Anyone allowed to create a Service writes spec.externalIPs
   (CVE-2020-8554), so an external IP is proxied only inside
   options.external_ips_allowed_cidrs (none by default), never inside
   options.service_cidrs; load-balancer IPs come from the load-balancer controller
   (status) and skip those two checks. Neither is ever an address of the node (any
   interface's but the dummy one's, or node.primary), loopback, link-local or multicast.
   Then every Service's cluster IPs and NodePorts are claimed before any external or
   load-balancer IP, so none of those can take their (protocol, address, port); within
   each of the two rounds the first Service by namespace/name keeps a virtual service.
   Each refusal is a warning naming the Service, the field and the address, and, for a
   taken virtual service, the Service holding it.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import NODE_PORT, Translation
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_cache import Assembly
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_endpoints import (
    endpoints_owner,
    index,
    slice_owner,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import (
    fast_canonical,
    object_name,
    own_key,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_node import node_addresses, option_networks
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_piece import PieceMaker

# Where the rules live: a Service's own fields (rules 1-3, 10's refusals) in
# translate_service.py; its endpoints and which of them get traffic (rules 4-6) in
# translate_endpoints.py; one Service's virtual services (rules 3-5, 7) in
# translate_piece.py; the node (rule 3's NodePort addresses) in translate_node.py; the
# field readers (rule 9) in translate_fields.py. This module assembles the table.


class IncompleteTranslationError(IpvsError):
    """The translation stopped early (a fault of this module, not of the cluster): the
    table it holds is partial, so nothing may be applied from it."""


def refuse_incomplete(translation):
    """Raise IncompleteTranslationError when translation stopped early (rule 9)."""
    if translation.stopped:
        raise IncompleteTranslationError(
            'the translation of the cluster stopped early (%s); nothing was changed: a partial table would '
            'delete or empty the services it did not reach' % translation.stopped)


def translate(snapshot, node, options, cache=None):
    """Translate one ClusterSnapshot for one node (see the rules at the top).

    cache: a translate_cache.TranslationCache the caller keeps between translations (the watcher): the
    Services whose objects are the very ones of the last translation keep their piece
    of it, the others are translated again (translate_cache.py); the result is the
    whole translation's either way. Objects must never be changed in place."""
    # The records this makes (~200,000 at 10,000 Services) woke the collector's full
    # passes, each walking the whole snapshot too: half of the time. The shells that run
    # a translation hold the collector off around it (_gc.tuned()); this does not.
    return _Translator(snapshot, node, options, cache).run()


class _Translator(object):
    """One translation: the node's context once, then every Service's piece (made by
    translate_piece.PieceMaker, or kept by the cache) claimed in order (rule 10)."""

    def __init__(self, snapshot, node, options, cache=None):
        self.snapshot = snapshot
        self.cache = cache
        self.node = node
        self.options = options
        self.warnings = []
        self.skipped = {}
        self.claims = {}  # ServiceKey -> the ServicePort made of it
        self.deferred = []  # (ServiceKey, VirtualService, ServicePort) of external and LB IPs (rule 10)
        # What was made, as three parallel lists rather than a tuple each: fewer objects for
        # the cyclic garbage collector to count (see translate_endpoints.READY).
        self.keys, self.services, self.ports = [], [], []
        self.dummy = set()
        self.local_endpoints = set()
        self.own_addresses = self.node_addresses = self.node_owned = frozenset()
        self.service_networks = self.allowed_networks = ()
        self.health_check_ports = {}  # 'namespace/name' -> healthCheckNodePort (rule 7)
        self.stopped = ''

    def run(self):
        snapshot = self.snapshot
        services = snapshot.services or []
        try:
            self.own_addresses, self.node_port, self.node_addresses, primary = node_addresses(
                self.node, self.options, snapshot.node, self.warnings)
            host_primary = set(fast_canonical(text)[0] for text in self.node.primary or ())
            self.node_owned = frozenset((self.own_addresses | host_primary | set(primary)) - {None})
            self.service_networks = option_networks(self.options.service_cidrs, 'service_cidrs', self.warnings)
            self.allowed_networks = option_networks(self.options.external_ips_allowed_cidrs,
                                                    'external_ips_allowed_cidrs', self.warnings)
            slices = index(snapshot.endpoint_slices or [], 'EndpointSlice', slice_owner, self.warnings)
            endpoints = index(snapshot.endpoints or [], 'Endpoints', endpoints_owner, self.warnings)
            maker = PieceMaker(self.options, self.node, self.node_owned, self.node_port, self.service_networks,
                               self.allowed_networks)
            cache = self.cache
            if cache is not None:
                cache.begin(self._context())
            ordered = sorted(((object_name(obj), i) for i, obj in enumerate(services)))
            pieces = []
            for ref, i in ordered:
                obj = services[i]
                key = own_key(obj)
                own_slices, own_endpoints = (slices.get(key), endpoints.get(key)) if key else (None, None)
                piece = cache.get(ref, obj, own_slices, own_endpoints) if cache is not None else None
                if piece is None:
                    piece = maker.piece(obj, ref, slices, endpoints)
                    if cache is not None:
                        cache.put(ref, obj, own_slices, own_endpoints, piece)
                pieces.append(piece)
            if cache is not None:
                cache.end()
            assembly = cache.assembly(pieces) if cache is not None else None
            if assembly is None:
                assembly = self._assembled(pieces)
                if cache is not None:
                    cache.keep_assembly(pieces, assembly)
        except Exception as error:  # pylint: disable=broad-except
            # A bug here must not take the node's proxy down with a traceback: say so, and
            # mark the translation incomplete (refuse_incomplete: nothing is applied from it).
            self.stopped = '%s: %s' % (type(error).__name__, error)
            self.warnings.append('translation stopped early: %s' % self.stopped)
            assembly = self._assembly()
        return Translation(
            services=list(assembly.services),
            dummy_addresses=assembly.dummy - self.own_addresses,
            ports=list(assembly.ports),
            local_endpoints=assembly.local - self.own_addresses,
            node_addresses=self.node_addresses,
            skipped=dict((reason, list(refs)) for reason, refs in assembly.skipped.items()),
            warnings=self.warnings + list(assembly.warnings),
            seen=len(services),
            health_check_node_ports=dict(assembly.health),
            stopped=self.stopped,
        )

    def _assembled(self, pieces):
        """Assemble the pieces in order (rule 10: round-one claims as each piece made them,
        then what anyone may ask for, only once every cluster IP and NodePort is taken)."""
        before = len(self.warnings)
        for piece in pieces:
            self._assemble(piece)
        for key, vs, port in self.deferred:
            self._take(key, vs, port)
        added, self.warnings[before:] = self.warnings[before:], []
        return self._assembly(tuple(added))

    def _assembly(self, warnings=()):
        """The Assembly of what has been assembled so far."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        return Assembly(services=tuple(self.services[i] for i in order), ports=tuple(self.ports[i] for i in order),
                        dummy=frozenset(self.dummy), local=frozenset(self.local_endpoints),
                        skipped=dict((reason, tuple(sorted(refs))) for reason, refs in sorted(self.skipped.items())),
                        health=dict(sorted(self.health_check_ports.items())), warnings=warnings)

    def _context(self):
        """Everything a Service's piece depends on besides its own objects."""
        # The node's addresses only as the translation reads them (own_addresses leaves the
        # dummy interface's out: binding a Service's address changes no other piece).
        return (self.options, self.node.name, self.node.zone, self.own_addresses, self.node_owned, self.node_addresses,
                tuple((family, tuple(addresses)) for family, addresses in sorted(self.node_port.items())),
                self.service_networks, self.allowed_networks)

    def _assemble(self, piece):
        """Add one Service's Fragment to the translation: its warnings and round-one
        claims in the order it made them (rule 10), the rest for later or as sets."""
        warnings = self.warnings
        for event in piece.events:
            if isinstance(event, str):
                warnings.append(event)
            else:
                self._take(*event)
        self.deferred.extend(piece.deferred)
        for reason, ref in piece.skipped:
            self._skip(reason, ref)
        self.local_endpoints.update(piece.local)
        self.health_check_ports.update(piece.health)

    def _skip(self, reason, ref):
        self.skipped.setdefault(reason, []).append(ref)

    def _take(self, key, vs, port):
        """Make the virtual service unless another already holds its key (rule 10)."""
        owner = self.claims.get(key)
        if owner is not None:
            if owner.service != port.service:
                self.warnings.append('Service %s: %s %s is already a virtual service of Service %s (its %s)'
                                     % (port.service, port.kind, key, owner.service, owner.kind))
            return
        self.claims[key] = port
        self.keys.append(key)
        self.services.append(vs)
        self.ports.append(port)
        if port.kind != NODE_PORT:
            self.dummy.add(port.address)
