# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The seams of the Kubernetes side: what a source hands the translator, and what the
translator hands the engine and the node.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    sources/ (api, manifests)  ->  ClusterSnapshot
    translate.translate(ClusterSnapshot, NodeContext, ProxyOptions)  ->  Translation
    Translation.services  ->  _ipvs engine (reconcile within the proxy's scope)
    Translation.dummy_addresses  ->  node/dummy.py (kube-ipvs0)
    Translation.ports, .local_endpoints, .node_addresses  ->  node/packet_rules.py (nftables
        table of our own)

Objects stay the API's JSON (plain dicts, lists, str, int): the client's model classes
cost seconds at scale, and manifests and the API then look the same to the translator.
No I/O here.
"""

from __future__ import annotations

import collections
import dataclasses

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import FAMILIES, RECORD_DEFAULTS


class SourceError(Exception):
    """The cluster could not be read completely (unreachable, refused, timed out,
    truncated, unparsable). Whoever gets it changes nothing on the node."""


@dataclasses.dataclass
class ClusterSnapshot:
    """One consistent-enough read of the cluster, objects as JSON dicts.

    services: v1 Service; endpoint_slices: discovery.k8s.io/v1 EndpointSlice;
    endpoints: v1 Endpoints (legacy: only used for a selector-less Service that has no
    EndpointSlice); node: this node's v1 Node, or None when it was not read (node_zone
    given, or a manifest source without it). origin says where it came from, for messages.
    """

    services: list
    endpoint_slices: list
    endpoints: list = dataclasses.field(default_factory=list)
    node: dict = None
    origin: str = ''


@dataclasses.dataclass(frozen=True)
class NodeContext:
    """What the translator needs to know about the node it translates for.

    addresses: every local address as (interface, address text), as the node reports
    them (the translator picks the NodePort addresses from them); primary: the node's
    primary address per family, for node_port_addresses 'primary'.
    """

    name: str
    zone: str = None
    addresses: tuple = ()
    primary: tuple = ()


@dataclasses.dataclass(frozen=True)
class ProxyOptions:
    """The module options the translation depends on (validated before); the defaults are
    option_table's, as options.parse_options makes them of the module's defaults."""

    scheduler: str = RECORD_DEFAULTS['scheduler']
    families: tuple = tuple(sorted(FAMILIES[name] for name in RECORD_DEFAULTS['families']))
    # CIDR texts, or ('primary',); () = every usable local address
    node_port_addresses: tuple = RECORD_DEFAULTS['node_port_addresses']
    scheduler_flags: tuple = RECORD_DEFAULTS['scheduler_flags']  # each given to the services whose scheduler reads it
    dummy_interface: str = RECORD_DEFAULTS['dummy_interface']
    # CIDR texts: never an external IP. None given: none (no default: a sync is given the cluster's).
    service_cidrs: tuple = ()
    # CIDR texts an external IP must be inside; () = none allowed
    external_ips_allowed_cidrs: tuple = RECORD_DEFAULTS['external_ips_allowed_cidrs']


# Service kinds of a ServicePort (what a virtual service is for).
CLUSTER_IP = 'cluster_ip'
NODE_PORT = 'node_port'
EXTERNAL_IP = 'external_ip'
LOAD_BALANCER = 'load_balancer'
KINDS = (CLUSTER_IP, NODE_PORT, EXTERNAL_IP, LOAD_BALANCER)


class ServicePort(collections.namedtuple(
        'ServicePort', ('kind', 'family', 'protocol', 'address', 'port', 'local', 'source_ranges', 'service'))):
    """One virtual service as the packet rules see it.

    kind: one of KINDS; family 4/6; protocol tcp/udp/sctp; address (canonical text) and
    port: the VIP; local: traffic policy Local applies (no masquerade needed to keep the
    client address); source_ranges: loadBalancerSourceRanges as canonical CIDR texts
    (LOAD_BALANCER only, () = everyone); service: 'namespace/name' for messages.
    """

    __slots__ = ()


@dataclasses.dataclass
class Translation:
    """The node's desired state, from one ClusterSnapshot.

    services: _ipvs.model.VirtualService, one per virtual service; dummy_addresses: the
    addresses to bind on the dummy interface (cluster, external and LB IPs not already on
    another interface); ports: ServicePort per virtual service; local_endpoints: the
    addresses of this node's endpoints (hairpin masquerade); node_addresses: the node's own
    addresses that loadBalancerSourceRanges are checked against (to let the node itself
    through); skipped: reason -> sorted 'namespace/name' list; warnings: one line per
    malformed object, naming object and field; seen: how many Services the snapshot held;
    health_check_node_ports: 'namespace/name' -> spec.healthCheckNodePort of each proxied
    LoadBalancer Service with externalTrafficPolicy Local (not served by this module);
    stopped: why the translation stopped early ('' when it is complete: the only case
    whose table may be applied).
    """

    services: list
    dummy_addresses: frozenset = frozenset()
    ports: list = dataclasses.field(default_factory=list)
    local_endpoints: frozenset = frozenset()
    node_addresses: frozenset = frozenset()
    skipped: dict = dataclasses.field(default_factory=dict)
    warnings: list = dataclasses.field(default_factory=list)
    seen: int = 0
    health_check_node_ports: dict = dataclasses.field(default_factory=dict)
    stopped: str = ''
