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

import ipaddress
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    SCHEDULER_FLAGS,
    SCHEDULERS,
    RealServer,
    ServiceKey,
    VirtualService,
    canonical_address,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import (
    CLUSTER_IP,
    EXTERNAL_IP,
    LOAD_BALANCER,
    NODE_PORT,
    ServicePort,
    Translation,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_cache import Fragment

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name'
HEADLESS_LABEL = 'service.kubernetes.io/headless'
SKIP_MIRROR_LABEL = 'endpointslice.kubernetes.io/skip-mirror'
SCHEDULER_ANNOTATION = 'ipvs.netlb.io/scheduler'
KUBE_ROUTER_SCHEDULER_ANNOTATION = 'kube-router.io/service.scheduler'

DEFAULT_AFFINITY_TIMEOUT = 10800  # the API's default for sessionAffinityConfig.clientIP.timeoutSeconds
AFFINITY_TIMEOUT_MAX = 86400

# Reasons a Service is counted in Translation.skipped.
SKIP_HEADLESS = 'headless'
SKIP_EXTERNAL_NAME = 'external_name'
SKIP_PROXY_NAME = 'service_proxy_name'
SKIP_HEADLESS_LABEL = 'headless_label'
SKIP_MALFORMED = 'malformed'
SKIP_NO_FAMILY = 'no_cluster_ip_of_family'

PROTOCOLS = {'TCP': 'tcp', 'UDP': 'udp', 'SCTP': 'sctp'}
FAMILIES = {'IPv4': 4, 'IPv6': 6}
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_FULL_PREFIX = {4: 32, 6: 128}

# An endpoint's conditions and locality as bits of a small int. Endpoints are kept as
# parallel lists of these and of address texts, not as an object or tuple each: 100,000
# new containers would wake the cyclic garbage collector again and again, and each of
# its passes walks every object of the snapshot (that cost more than all else together).
READY, SERVING, TERMINATING, LOCAL = 1, 2, 4, 8
SERVING_TERMINATING = SERVING | TERMINATING


class IncompleteTranslationError(IpvsError):
    """The translation stopped early (a fault of this module, not of the cluster): the
    table it holds is partial, so nothing may be applied from it."""


def refuse_incomplete(translation):
    """Raise IncompleteTranslationError when translation stopped early (rule 9)."""
    if translation.stopped:
        raise IncompleteTranslationError(
            'the translation of the cluster stopped early (%s); nothing was changed: a partial table would '
            'delete or empty the services it did not reach' % translation.stopped)


def scheduler_flags(scheduler, flags):
    """The flags of flags (options.scheduler_flags) that scheduler reads: sh-* of sh,
    mh-* of mh, none of any other (rule 3)."""
    own = SCHEDULER_FLAGS.get(scheduler, ())
    return tuple(sorted(flag for flag in flags if flag in own))


class _Malformed(Exception):
    """A field of an object is not what the API allows: path and what is wrong."""

    def __init__(self, path, message):
        super(_Malformed, self).__init__('%s: %s' % (path, message))


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
        packed = socket.inet_pton(_AF[family], text)
    except (OSError, ValueError):
        return None, None
    out = socket.inet_ntop(_AF[family], packed)
    if out == text and (family == 4 or '.' not in out):
        return text, family
    try:
        return canonical_address(text), family
    except ValueError:
        return None, None


def _address(value, path, family=None):
    """The canonical text of an address field; _Malformed when it is not a usable one."""
    address, found = fast_canonical(value)
    if address is None:
        raise _Malformed(path, '%r is not an IP address' % (value,))
    if family is not None and found != family:
        raise _Malformed(path, '%s is not an IPv%d address' % (address, family))
    if address in ('0.0.0.0', '::'):
        raise _Malformed(path, '%s is the unspecified address' % address)
    return address, found


def _source_range(value, path):
    """(family, canonical CIDR text) of one loadBalancerSourceRanges entry."""
    if not isinstance(value, str):
        raise _Malformed(path, '%r is not a CIDR' % (value,))
    try:
        # The API's validation lets whitespace padding through; kube-proxy trims it too.
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _Malformed(path, '%r is not a CIDR' % (value,))
    return network.version, str(network)


# ---------------------------------------------------------------------------- field access

def _dict(value, path, required=False):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(path, 'expected a mapping, got %r' % (value,))
    return value


def _list(value, path):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(path, 'expected a list, got %r' % (value,))
    return value


def _str(value, path, default=''):
    if value is None:
        return default
    if not isinstance(value, str):
        raise _Malformed(path, 'expected a string, got %r' % (value,))
    return value


def _port(value, path, low=1):
    if isinstance(value, bool) or not isinstance(value, int):  # JSON true is no port
        raise _Malformed(path, 'expected an integer, got %r' % (value,))
    if not low <= value <= 65535:
        raise _Malformed(path, '%d is out of range %d-65535' % (value, low))
    return value


def _protocol(value, path):
    protocol = PROTOCOLS.get(_str(value, path, 'TCP'))
    if protocol is None:
        raise _Malformed(path, '%r is not one of TCP, UDP, SCTP' % (value,))
    return protocol


def _own_key(obj):
    """(namespace, name) of a Service as its EndpointSlices and Endpoints are indexed
    by, or None when they are not strings (such a Service reads no slice)."""
    meta = obj.get('metadata') if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    namespace, name = meta.get('namespace'), meta.get('name')
    return (namespace, name) if isinstance(namespace, str) and isinstance(name, str) else None


def _object_name(obj):
    """'namespace/name' of an object, as well as a broken one allows."""
    meta = obj.get('metadata') if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return '?/?'
    return '%s/%s' % (meta.get('namespace') or '?', meta.get('name') or '?')


# ---------------------------------------------------------------------------- Services

class _Service(object):
    """A Service's fields the translation uses, read and checked once."""

    __slots__ = ('namespace', 'name', 'ref', 'cluster_ips', 'ports', 'external_ips', 'lb_ips', 'source_ranges',
                 'external_local', 'internal_local', 'timeout', 'scheduler', 'selector', 'lb_type',
                 'health_check_port')


def _read_service(obj, default_scheduler, warnings, refusal):
    """A _Service, or (skip reason) for a Service that is not proxied. Raises _Malformed.

    refusal(address, family, external): why the Service may not have that external
    (external=True) or load-balancer IP (rule 10), or None; a refused one is warned about
    and left out, the rest of the Service kept.
    """
    meta = _dict(obj.get('metadata'), 'metadata', required=True)
    labels = _dict(meta.get('labels'), 'metadata.labels')
    if PROXY_NAME_LABEL in labels:
        return SKIP_PROXY_NAME
    if HEADLESS_LABEL in labels:
        return SKIP_HEADLESS_LABEL
    spec = _dict(obj.get('spec'), 'spec', required=True)
    kind = _str(spec.get('type'), 'spec.type', 'ClusterIP')
    if kind == 'ExternalName':
        return SKIP_EXTERNAL_NAME
    if kind not in ('ClusterIP', 'NodePort', 'LoadBalancer'):
        raise _Malformed('spec.type', '%r is not one of ClusterIP, NodePort, LoadBalancer, ExternalName' % (kind,))
    cluster_ip = _str(spec.get('clusterIP'), 'spec.clusterIP')
    if cluster_ip in ('', 'None'):
        return SKIP_HEADLESS

    svc = _Service()
    svc.namespace = _str(meta.get('namespace'), 'metadata.namespace')
    svc.name = _str(meta.get('name'), 'metadata.name')
    if not svc.namespace or not svc.name:
        raise _Malformed('metadata', 'namespace and name are required')
    svc.ref = '%s/%s' % (svc.namespace, svc.name)
    svc.cluster_ips = _cluster_ips(spec, cluster_ip)
    svc.ports = []
    for i, port in enumerate(_list(spec.get('ports'), 'spec.ports')):
        path = 'spec.ports[%d]' % i
        port = _dict(port, path, required=True)
        node_port = port.get('nodePort')  # null is no NodePort, as absent or 0 (the cluster IP is still served)
        svc.ports.append((_str(port.get('name'), path + '.name'), _protocol(port.get('protocol'), path + '.protocol'),
                          _port(port.get('port'), path + '.port'),
                          _port(0 if node_port is None else node_port, path + '.nodePort', low=0)))
    refused = []  # warned about only once the whole Service has been read
    svc.external_ips = {4: [], 6: []}
    for i, text in enumerate(_list(spec.get('externalIPs'), 'spec.externalIPs')):
        path = 'spec.externalIPs[%d]' % i
        address, family = _address(text, path)
        reason = refusal(address, family, True) if family in svc.cluster_ips else None
        if reason:
            refused.append('Service %s: %s: %s %s, not proxied' % (svc.ref, path, address, reason))
        else:
            svc.external_ips[family].append(address)
    svc.lb_ips = {4: [], 6: []}
    status = _dict(obj.get('status'), 'status')
    ingress = _list(_dict(status.get('loadBalancer'), 'status.loadBalancer').get('ingress'),
                    'status.loadBalancer.ingress')
    for i, entry in enumerate(ingress):
        path = 'status.loadBalancer.ingress[%d]' % i
        entry = _dict(entry, path, required=True)
        mode = _str(entry.get('ipMode'), path + '.ipMode', 'VIP')
        if entry.get('ip') in (None, '') or mode != 'VIP':
            continue  # hostname-only (no VIP), or ipMode Proxy: the LB itself proxies to the nodes
        address, family = _address(entry.get('ip'), path + '.ip')
        reason = refusal(address, family, False) if family in svc.cluster_ips else None
        if reason:
            refused.append('Service %s: %s.ip: %s %s, not proxied' % (svc.ref, path, address, reason))
        else:
            svc.lb_ips[family].append(address)
    ranges = {4: set(), 6: set()}
    skipped_range = False
    for i, text in enumerate(_list(spec.get('loadBalancerSourceRanges'), 'spec.loadBalancerSourceRanges')):
        path = 'spec.loadBalancerSourceRanges[%d]' % i
        if isinstance(text, str) and '%' in text:
            # ipaddress keeps an IPv6 zone id in the network's text, and nft would get it.
            refused.append('Service %s: %s: %r has a zone id (%%), range left out' % (svc.ref, path, text))
            skipped_range = True
            continue
        family, cidr = _source_range(text, path)
        ranges[family].add(cidr)
    svc.source_ranges = {}
    for family, cidrs in ranges.items():
        if any(cidr.endswith('/0') for cidr in cidrs):
            svc.source_ranges[family] = ()  # everyone
        elif cidrs or not (skipped_range or any(ranges.values())):
            svc.source_ranges[family] = tuple(sorted(cidrs))
        else:
            # Ranges only of the other family, or only left-out ones: nobody of this one (a
            # left-out range must never open a load balancer to everyone).
            svc.source_ranges[family] = None
    svc.external_local = _str(spec.get('externalTrafficPolicy'), 'spec.externalTrafficPolicy') == 'Local'
    svc.internal_local = _str(spec.get('internalTrafficPolicy'), 'spec.internalTrafficPolicy') == 'Local'
    svc.timeout = _affinity_timeout(spec)
    svc.scheduler = _scheduler(_dict(meta.get('annotations'), 'metadata.annotations'), default_scheduler,
                               svc.ref, warnings)
    svc.selector = bool(_dict(spec.get('selector'), 'spec.selector'))
    svc.lb_type = kind == 'LoadBalancer'
    svc.health_check_port = 0
    if svc.lb_type and svc.external_local and spec.get('healthCheckNodePort') is not None:
        try:
            svc.health_check_port = _port(spec.get('healthCheckNodePort'), 'spec.healthCheckNodePort')
        except _Malformed as problem:  # not served here (yet): no reason to lose the Service
            refused.append('Service %s: %s, left out of health_check_node_ports' % (svc.ref, problem))
    warnings.extend(refused)
    return svc


def _cluster_ips(spec, cluster_ip):
    """family -> cluster IP: spec.clusterIPs paired with spec.ipFamilies, or spec.clusterIP
    alone (objects written before dual-stack, or manifests that leave ipFamilies out)."""
    families = _list(spec.get('ipFamilies'), 'spec.ipFamilies')
    if not families:
        address, family = _address(cluster_ip, 'spec.clusterIP')
        return {family: address}
    ips = _list(spec.get('clusterIPs'), 'spec.clusterIPs') or [cluster_ip]
    result = {}
    for i, name in enumerate(families):
        family = FAMILIES.get(name) if isinstance(name, str) else None
        if family is None:
            raise _Malformed('spec.ipFamilies[%d]' % i, '%r is not one of IPv4, IPv6' % (name,))
        if i < len(ips):
            result[family] = _address(ips[i], 'spec.clusterIPs[%d]' % i, family)[0]
    return result


def _affinity_timeout(spec):
    """Persistence timeout in seconds: sessionAffinity ClientIP's timeout, else 0."""
    affinity = _str(spec.get('sessionAffinity'), 'spec.sessionAffinity', 'None')
    if affinity == 'None':
        return 0
    if affinity != 'ClientIP':
        raise _Malformed('spec.sessionAffinity', '%r is not one of None, ClientIP' % (affinity,))
    config = _dict(spec.get('sessionAffinityConfig'), 'spec.sessionAffinityConfig')
    client = _dict(config.get('clientIP'), 'spec.sessionAffinityConfig.clientIP')
    timeout = client.get('timeoutSeconds', DEFAULT_AFFINITY_TIMEOUT)
    path = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise _Malformed(path, 'expected an integer, got %r' % (timeout,))
    if not 1 <= timeout <= AFFINITY_TIMEOUT_MAX:
        raise _Malformed(path, '%d is out of range 1-%d' % (timeout, AFFINITY_TIMEOUT_MAX))
    return timeout


def _scheduler(annotations, default, ref, warnings):
    """The Service's scheduler: our annotation, else kube-router's (so a cluster moving
    from kube-router keeps its choices), else the default. A value IPVS does not know is a
    warning and the default: a typo in one Service must not stop the others."""
    for name in (SCHEDULER_ANNOTATION, KUBE_ROUTER_SCHEDULER_ANNOTATION):
        value = annotations.get(name)
        if value is None:
            continue
        if isinstance(value, str) and value.strip() in SCHEDULERS:
            return value.strip()
        warnings.append('Service %s: metadata.annotations[%s]: %r is not a known scheduler (%s), using %s'
                        % (ref, name, value, ', '.join(SCHEDULERS), default))
        return default
    return default


# ---------------------------------------------------------------------------- endpoints

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


def _read_slice(obj, node_name, warnings, ref):
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
                raise _Malformed('addressType', '%r is not one of IPv4, IPv6, FQDN' % (obj.get('addressType'),))
            return None
        ports_field = _list(obj.get('ports'), 'ports')
        endpoints_field = _list(obj.get('endpoints'), 'endpoints')
    except _Malformed as problem:
        warnings.append('EndpointSlice %s: %s' % (ref, problem))
        return None
    ports = {}
    for i, port in enumerate(ports_field):
        path = 'ports[%d]' % i
        try:
            port = _dict(port, path, required=True)
            number = port.get('port')
            if number is None:
                continue  # "all ports": the API allows it, no proxy implements it
            key = (_str(port.get('name'), path + '.name'), _protocol(port.get('protocol'), path + '.protocol'))
            ports[key] = _port(number, path + '.port')
        except _Malformed as problem:
            warnings.append('EndpointSlice %s: %s' % (ref, problem))
    result = Endpoints()
    addresses = result.addresses
    flags = result.flags
    af = _AF[family]
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
            except _Malformed as problem:
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
    _read_slice). Absent conditions: ready and serving, not terminating (the API's
    reading of nil). hints: None, or (zones, nodes) of hints.forZones and hints.forNodes."""
    ep = _dict(ep, path, required=True)
    addresses = _list(ep.get('addresses'), path + '.addresses')
    if not addresses:
        raise _Malformed(path + '.addresses', 'no address')
    address = _address(addresses[0], path + '.addresses[0]', family)[0]
    conditions = _dict(ep.get('conditions'), path + '.conditions')
    bits = 0
    for name, bit, default in (('ready', READY, True), ('serving', SERVING, True), ('terminating', TERMINATING, False)):
        value = conditions.get(name)
        if value is None:
            value = default
        elif not isinstance(value, bool):
            raise _Malformed('%s.conditions.%s' % (path, name), 'expected true or false, got %r' % (value,))
        if value:
            bits |= bit
    node = _str(ep.get('nodeName'), path + '.nodeName', None)
    if node is not None and node == node_name:
        bits |= LOCAL
    hints = _dict(ep.get('hints'), path + '.hints')
    named = []
    for field in ('forZones', 'forNodes'):
        where = '%s.hints.%s' % (path, field)
        named.append(frozenset(_str(_dict(entry, '%s[%d]' % (where, i), required=True).get('name'),
                                    '%s[%d].name' % (where, i))
                               for i, entry in enumerate(_list(hints.get(field), where))))
    return address, bits, (tuple(named) if named[0] or named[1] else None)


def _read_endpoints(obj, node_name, warnings, ref):
    """A legacy Endpoints object as the mirroring controller would slice it: one
    (family, ports, endpoints) per subset and family. addresses are ready;
    notReadyAddresses are not ready, and (no terminating condition) never used as
    serving-terminating either."""
    result = []
    try:
        for s, subset in enumerate(_list(obj.get('subsets'), 'subsets')):
            path = 'subsets[%d]' % s
            subset = _dict(subset, path, required=True)
            ports = {}
            for i, port in enumerate(_list(subset.get('ports'), path + '.ports')):
                ppath = '%s.ports[%d]' % (path, i)
                port = _dict(port, ppath, required=True)
                key = (_str(port.get('name'), ppath + '.name'), _protocol(port.get('protocol'), ppath + '.protocol'))
                ports[key] = _port(port.get('port'), ppath + '.port')
            by_family = {4: Endpoints(), 6: Endpoints()}
            for field, ready in (('addresses', True), ('notReadyAddresses', False)):
                for i, entry in enumerate(_list(subset.get(field), '%s.%s' % (path, field))):
                    epath = '%s.%s[%d]' % (path, field, i)
                    try:
                        entry = _dict(entry, epath, required=True)
                        address, family = _address(entry.get('ip'), epath + '.ip')
                        node = _str(entry.get('nodeName'), epath + '.nodeName', None)
                    except _Malformed as problem:
                        warnings.append('Endpoints %s: %s' % (ref, problem))
                        continue
                    bits = (READY | SERVING if ready else 0) | (LOCAL if node is not None and node == node_name else 0)
                    by_family[family].append(address, bits)
            result.extend((family, ports, eps) for family, eps in sorted(by_family.items()) if eps.addresses)
    except _Malformed as problem:
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


def _real_servers(endpoints, indices):
    """RealServers of the chosen endpoints: masq (NAT), weight 1, as kube-proxy makes them."""
    addresses = endpoints.addresses
    port = endpoints.ports
    if isinstance(port, int):
        return tuple(RealServer(address=addresses[i], port=port, weight=1, forwarding='masq') for i in indices)
    return tuple(RealServer(address=addresses[i], port=port[i], weight=1, forwarding='masq') for i in indices)


# ---------------------------------------------------------------------------- the node

def _option_networks(texts, option, warnings):
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


def _node_addresses(node, options, node_object, warnings):
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
        networks = _option_networks(choice, 'node_port_addresses', warnings)
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


# ---------------------------------------------------------------------------- the whole

class _Translator(object):

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
        # the cyclic garbage collector to count (see READY).
        self.keys, self.services, self.ports = [], [], []
        self.dummy = set()
        self.local_endpoints = set()
        self.own_addresses = self.node_addresses = self.node_owned = frozenset()
        self.service_networks = self.allowed_networks = ()
        self.health_check_ports = {}  # 'namespace/name' -> healthCheckNodePort (rule 7)
        self.stopped = ''
        self.flags = {}  # scheduler -> its scheduler_flags

    def run(self):
        snapshot = self.snapshot
        services = snapshot.services or []
        try:
            self.own_addresses, self.node_port, self.node_addresses, primary = _node_addresses(
                self.node, self.options, snapshot.node, self.warnings)
            host_primary = set(fast_canonical(text)[0] for text in self.node.primary or ())
            self.node_owned = frozenset((self.own_addresses | host_primary | set(primary)) - {None})
            self.service_networks = _option_networks(self.options.service_cidrs, 'service_cidrs', self.warnings)
            self.allowed_networks = _option_networks(self.options.external_ips_allowed_cidrs,
                                                     'external_ips_allowed_cidrs', self.warnings)
            slices = self._index(snapshot.endpoint_slices or [], 'EndpointSlice', self._slice_owner)
            endpoints = self._index(snapshot.endpoints or [], 'Endpoints', self._endpoints_owner)
            cache = self.cache
            if cache is not None:
                cache.begin(self._context())
            ordered = sorted(((_object_name(obj), i) for i, obj in enumerate(services)))
            for ref, i in ordered:
                obj = services[i]
                key = _own_key(obj)
                own_slices, own_endpoints = (slices.get(key), endpoints.get(key)) if key else (None, None)
                piece = cache.get(ref, obj, own_slices, own_endpoints) if cache is not None else None
                if piece is None:
                    piece = self._piece(obj, ref, slices, endpoints)
                    if cache is not None:
                        cache.put(ref, obj, own_slices, own_endpoints, piece)
                self._assemble(piece)
            if cache is not None:
                cache.end()
            # What anyone may ask for, only once every cluster IP and NodePort is taken.
            for key, vs, port in self.deferred:
                self._take(key, vs, port)
        except Exception as error:  # pylint: disable=broad-except
            # A bug here must not take the node's proxy down with a traceback: say so, and
            # mark the translation incomplete (refuse_incomplete: nothing is applied from it).
            self.stopped = '%s: %s' % (type(error).__name__, error)
            self.warnings.append('translation stopped early: %s' % self.stopped)
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        return Translation(
            services=[self.services[i] for i in order],
            dummy_addresses=frozenset(self.dummy - self.own_addresses),
            ports=[self.ports[i] for i in order],
            local_endpoints=frozenset(self.local_endpoints - self.own_addresses),
            node_addresses=self.node_addresses,
            skipped=dict((reason, sorted(refs)) for reason, refs in sorted(self.skipped.items())),
            warnings=self.warnings,
            seen=len(services),
            health_check_node_ports=dict(sorted(self.health_check_ports.items())),
            stopped=self.stopped,
        )

    def _context(self):
        """Everything a Service's piece depends on besides its own objects."""
        # The node's addresses only as the translation reads them (own_addresses leaves the
        # dummy interface's out: binding a Service's address changes no other piece).
        return (self.options, self.node.name, self.node.zone, self.own_addresses, self.node_owned, self.node_addresses,
                tuple((family, tuple(addresses)) for family, addresses in sorted(self.node_port.items())),
                self.service_networks, self.allowed_networks)

    def _piece(self, obj, ref, slices, endpoints):
        """The Fragment of one Service: what it contributes, recorded in order."""
        piece = Fragment()
        try:
            self._service(obj, ref, slices, endpoints, piece)
        except Exception as error:  # pylint: disable=broad-except
            # A shape no check foresaw: lose this Service, not the node's whole table.
            piece.events.append('Service %s: left out, unexpected %s: %s' % (ref, type(error).__name__, error))
            piece.skip(SKIP_MALFORMED, ref)
        return piece

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

    @staticmethod
    def _slice_owner(obj):
        labels = obj['metadata'].get('labels') or {}
        return labels.get(SERVICE_NAME_LABEL)

    @staticmethod
    def _endpoints_owner(obj):
        labels = obj['metadata'].get('labels') or {}
        if labels.get(SKIP_MIRROR_LABEL) == 'true':
            return None  # the mirroring controller leaves these alone, so do we
        return obj['metadata'].get('name')

    def _index(self, objects, kind, owner):
        """(namespace, service name) -> [objects], in object-name order."""
        index = {}
        for obj in objects:
            try:
                service = owner(obj)
                if not service:
                    continue
                meta = obj['metadata']
                if not isinstance(meta['name'], str) or not isinstance(meta['namespace'], str):
                    raise TypeError
                index.setdefault((meta['namespace'], service), []).append(obj)
            except (LookupError, TypeError, AttributeError):
                self.warnings.append('%s %s: metadata: namespace, name and labels unreadable' % (kind, _object_name(obj)))
        for entries in index.values():
            if len(entries) > 1:
                entries.sort(key=lambda obj: obj['metadata']['name'])
        return index

    def _skip(self, reason, ref):
        self.skipped.setdefault(reason, []).append(ref)

    def _service(self, obj, ref, slices, endpoints, piece):
        """One Service, recorded into piece (a Fragment): nothing else is touched."""
        options = self.options
        warnings = piece.events
        try:
            if not isinstance(obj, dict):
                raise _Malformed('(top)', 'expected a mapping, got %r' % (type(obj).__name__,))
            svc = _read_service(obj, options.scheduler, warnings, self._refusal)
        except _Malformed as problem:
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
        parts = [_read_slice(entry, self.node.name, warnings, '%s/%s' % (svc.namespace, entry['metadata']['name']))
                 for entry in slices.get(key, ())]
        parts = [part for part in parts if part is not None]
        if key not in slices and not svc.selector and key in endpoints:
            for legacy in endpoints[key]:
                parts.extend(_read_endpoints(legacy, self.node.name, warnings, ref))
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
        netmask = _FULL_PREFIX[family]
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
                        local = _real_servers(merged, local_endpoints(merged))
                    servers = local
                    if not servers and kind != CLUSTER_IP and not svc.internal_local:
                        # kube-proxy's IPVS fallback (rule 8): this node's pods reach it.
                        if cluster is None:
                            cluster = _real_servers(merged, cluster_endpoints(merged, self.node.zone, self.node.name))
                        servers = cluster
                else:
                    if cluster is None:
                        cluster = _real_servers(merged, cluster_endpoints(merged, self.node.zone, self.node.name))
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
