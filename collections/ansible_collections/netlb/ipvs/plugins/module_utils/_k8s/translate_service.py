# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A Service's own fields as the translator reads them: whether it is proxied at all
(rule 1 of translate.py), its cluster IPs per family (rule 2), ports, external and
load-balancer IPs, source ranges, traffic policies, session affinity and scheduler
(rules 3, 7, 10).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

read_service() checks every field once and hands back a ServiceFields; which endpoints
serve it is translate_endpoints.py's, the virtual services made of both
translate_piece.py's. Pure: no I/O.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULER_FLAGS, SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import (
    FAMILIES, Malformed, as_address, as_dict, as_list, as_port, as_protocol, as_source_range, as_str)

PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name'
HEADLESS_LABEL = 'service.kubernetes.io/headless'
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


def scheduler_flags(scheduler, flags):
    """The flags of flags (options.scheduler_flags) that scheduler reads: sh-* of sh,
    mh-* of mh, none of any other (rule 3)."""
    own = SCHEDULER_FLAGS.get(scheduler, ())
    return tuple(sorted(flag for flag in flags if flag in own))


class ServiceFields(object):
    """A Service's fields the translation uses, read and checked once."""

    __slots__ = ('namespace', 'name', 'ref', 'cluster_ips', 'ports', 'external_ips', 'lb_ips', 'source_ranges',
                 'external_local', 'internal_local', 'timeout', 'scheduler', 'selector', 'lb_type',
                 'health_check_port')


def read_service(obj, default_scheduler, warnings, refusal):
    """A ServiceFields, or (skip reason) for a Service that is not proxied. Raises Malformed.

    refusal(address, family, external): why the Service may not have that external
    (external=True) or load-balancer IP (rule 10), or None; a refused one is warned about
    and left out, the rest of the Service kept.
    """
    meta = as_dict(obj.get('metadata'), 'metadata', required=True)
    labels = as_dict(meta.get('labels'), 'metadata.labels')
    if PROXY_NAME_LABEL in labels:
        return SKIP_PROXY_NAME
    if HEADLESS_LABEL in labels:
        return SKIP_HEADLESS_LABEL
    spec = as_dict(obj.get('spec'), 'spec', required=True)
    kind = as_str(spec.get('type'), 'spec.type', 'ClusterIP')
    if kind == 'ExternalName':
        return SKIP_EXTERNAL_NAME
    if kind not in ('ClusterIP', 'NodePort', 'LoadBalancer'):
        raise Malformed('spec.type', '%r is not one of ClusterIP, NodePort, LoadBalancer, ExternalName' % (kind,))
    cluster_ip = as_str(spec.get('clusterIP'), 'spec.clusterIP')
    if cluster_ip in ('', 'None'):
        return SKIP_HEADLESS

    svc = ServiceFields()
    svc.namespace = as_str(meta.get('namespace'), 'metadata.namespace')
    svc.name = as_str(meta.get('name'), 'metadata.name')
    if not svc.namespace or not svc.name:
        raise Malformed('metadata', 'namespace and name are required')
    svc.ref = '%s/%s' % (svc.namespace, svc.name)
    svc.cluster_ips = _cluster_ips(spec, cluster_ip)
    svc.ports = []
    for i, port in enumerate(as_list(spec.get('ports'), 'spec.ports')):
        path = 'spec.ports[%d]' % i
        port = as_dict(port, path, required=True)
        node_port = port.get('nodePort')  # null is no NodePort, as absent or 0 (the cluster IP is still served)
        svc.ports.append((as_str(port.get('name'), path + '.name'), as_protocol(port.get('protocol'), path + '.protocol'),
                          as_port(port.get('port'), path + '.port'),
                          as_port(0 if node_port is None else node_port, path + '.nodePort', low=0)))
    refused = []  # warned about only once the whole Service has been read
    svc.external_ips = {4: [], 6: []}
    for i, text in enumerate(as_list(spec.get('externalIPs'), 'spec.externalIPs')):
        path = 'spec.externalIPs[%d]' % i
        address, family = as_address(text, path)
        reason = refusal(address, family, True) if family in svc.cluster_ips else None
        if reason:
            refused.append('Service %s: %s: %s %s, not proxied' % (svc.ref, path, address, reason))
        else:
            svc.external_ips[family].append(address)
    svc.lb_ips = {4: [], 6: []}
    status = as_dict(obj.get('status'), 'status')
    ingress = as_list(as_dict(status.get('loadBalancer'), 'status.loadBalancer').get('ingress'),
                      'status.loadBalancer.ingress')
    for i, entry in enumerate(ingress):
        path = 'status.loadBalancer.ingress[%d]' % i
        entry = as_dict(entry, path, required=True)
        mode = as_str(entry.get('ipMode'), path + '.ipMode', 'VIP')
        if entry.get('ip') in (None, '') or mode != 'VIP':
            continue  # hostname-only (no VIP), or ipMode Proxy: the LB itself proxies to the nodes
        address, family = as_address(entry.get('ip'), path + '.ip')
        reason = refusal(address, family, False) if family in svc.cluster_ips else None
        if reason:
            refused.append('Service %s: %s.ip: %s %s, not proxied' % (svc.ref, path, address, reason))
        else:
            svc.lb_ips[family].append(address)
    ranges = {4: set(), 6: set()}
    skipped_range = False
    for i, text in enumerate(as_list(spec.get('loadBalancerSourceRanges'), 'spec.loadBalancerSourceRanges')):
        path = 'spec.loadBalancerSourceRanges[%d]' % i
        if isinstance(text, str) and '%' in text:
            # ipaddress keeps an IPv6 zone id in the network's text, and nft would get it.
            refused.append('Service %s: %s: %r has a zone id (%%), range left out' % (svc.ref, path, text))
            skipped_range = True
            continue
        family, cidr = as_source_range(text, path)
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
    svc.external_local = as_str(spec.get('externalTrafficPolicy'), 'spec.externalTrafficPolicy') == 'Local'
    svc.internal_local = as_str(spec.get('internalTrafficPolicy'), 'spec.internalTrafficPolicy') == 'Local'
    svc.timeout = _affinity_timeout(spec)
    svc.scheduler = _scheduler(as_dict(meta.get('annotations'), 'metadata.annotations'), default_scheduler,
                               svc.ref, warnings)
    svc.selector = bool(as_dict(spec.get('selector'), 'spec.selector'))
    svc.lb_type = kind == 'LoadBalancer'
    svc.health_check_port = 0
    if svc.lb_type and svc.external_local and spec.get('healthCheckNodePort') is not None:
        try:
            svc.health_check_port = as_port(spec.get('healthCheckNodePort'), 'spec.healthCheckNodePort')
        except Malformed as problem:  # not served here (yet): no reason to lose the Service
            refused.append('Service %s: %s, left out of health_check_node_ports' % (svc.ref, problem))
    warnings.extend(refused)
    return svc


def _cluster_ips(spec, cluster_ip):
    """family -> cluster IP: spec.clusterIPs paired with spec.ipFamilies, or spec.clusterIP
    alone (objects written before dual-stack, or manifests that leave ipFamilies out)."""
    families = as_list(spec.get('ipFamilies'), 'spec.ipFamilies')
    if not families:
        address, family = as_address(cluster_ip, 'spec.clusterIP')
        return {family: address}
    ips = as_list(spec.get('clusterIPs'), 'spec.clusterIPs') or [cluster_ip]
    result = {}
    for i, name in enumerate(families):
        family = FAMILIES.get(name) if isinstance(name, str) else None
        if family is None:
            raise Malformed('spec.ipFamilies[%d]' % i, '%r is not one of IPv4, IPv6' % (name,))
        if i < len(ips):
            result[family] = as_address(ips[i], 'spec.clusterIPs[%d]' % i, family)[0]
    return result


def _affinity_timeout(spec):
    """Persistence timeout in seconds: sessionAffinity ClientIP's timeout, else 0."""
    affinity = as_str(spec.get('sessionAffinity'), 'spec.sessionAffinity', 'None')
    if affinity == 'None':
        return 0
    if affinity != 'ClientIP':
        raise Malformed('spec.sessionAffinity', '%r is not one of None, ClientIP' % (affinity,))
    config = as_dict(spec.get('sessionAffinityConfig'), 'spec.sessionAffinityConfig')
    client = as_dict(config.get('clientIP'), 'spec.sessionAffinityConfig.clientIP')
    timeout = client.get('timeoutSeconds', DEFAULT_AFFINITY_TIMEOUT)
    path = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise Malformed(path, 'expected an integer, got %r' % (timeout,))
    if not 1 <= timeout <= AFFINITY_TIMEOUT_MAX:
        raise Malformed(path, '%d is out of range 1-%d' % (timeout, AFFINITY_TIMEOUT_MAX))
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
