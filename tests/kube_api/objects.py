# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Builders of realistic API objects as the apiserver returns them (JSON dicts), for the
stand-in server, the sources' and translator's tests and benchmarks.

Defaults follow what a v1.31 apiserver fills in (ipFamilies, internalTrafficPolicy,
sessionAffinity...); keyword arguments override or add fields.
"""

import ipaddress

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by'
ZONE_LABEL = 'topology.kubernetes.io/zone'


def _ports(ports, with_node_port=False):
    """(name, port, target_port, protocol[, node_port]) tuples -> Service ports."""
    result = []
    for spec in ports:
        name, port, target, protocol = spec[:4]
        entry = {'name': name, 'port': port, 'targetPort': target, 'protocol': protocol}
        if with_node_port:
            entry['nodePort'] = spec[4] if len(spec) > 4 else 30000 + port % 2768
        result.append(entry)
    return result


def service(name, namespace='default', cluster_ip='10.96.0.10', ports=(('http', 80, 8080, 'TCP'),),
            type='ClusterIP', selector=None, labels=None, external_ips=(), lb_ips=(),
            external_traffic_policy=None, internal_traffic_policy='Cluster', session_affinity='None',
            affinity_timeout=None, lb_source_ranges=(), annotations=None, **spec):
    """A v1 Service. selector None: {'app': name}; {} makes it selector-less."""
    family = 'IPv6' if cluster_ip and ':' in cluster_ip else 'IPv4'
    body = {
        'type': type,
        'clusterIP': cluster_ip,
        'clusterIPs': [cluster_ip] if cluster_ip and cluster_ip != 'None' else [cluster_ip] if cluster_ip else [],
        'ipFamilies': [family],
        'ipFamilyPolicy': 'SingleStack',
        'ports': _ports(ports, with_node_port=type in ('NodePort', 'LoadBalancer')),
        'sessionAffinity': session_affinity,
        'internalTrafficPolicy': internal_traffic_policy,
    }
    if type == 'ExternalName':
        body = {'type': type, 'externalName': spec.pop('external_name', 'example.invalid'), 'sessionAffinity': 'None'}
    if selector is None:
        selector = {'app': name}
    if selector:
        body['selector'] = dict(selector)
    if external_ips:
        body['externalIPs'] = list(external_ips)
    if type in ('NodePort', 'LoadBalancer'):
        body['externalTrafficPolicy'] = external_traffic_policy or 'Cluster'
    if lb_source_ranges:
        body['loadBalancerSourceRanges'] = list(lb_source_ranges)
    if session_affinity == 'ClientIP':
        body['sessionAffinityConfig'] = {'clientIP': {'timeoutSeconds': affinity_timeout or 10800}}
    body.update(spec)
    obj = {'apiVersion': 'v1', 'kind': 'Service',
           'metadata': {'name': name, 'namespace': namespace, 'labels': dict(labels or {})},
           'spec': body, 'status': {'loadBalancer': {}}}
    if annotations:
        obj['metadata']['annotations'] = dict(annotations)
    if lb_ips:
        obj['status']['loadBalancer']['ingress'] = [{'ip': ip, 'ipMode': 'VIP'} for ip in lb_ips]
    return obj


def endpoint_slice(service_name, addresses, namespace='default', ports=(('http', 8080, 'TCP'),),
                   name=None, address_type=None, ready=True, serving=None, terminating=False,
                   node_name='node1', zone=None, hints=None, managed_by='endpointslice-controller.k8s.io'):
    """A discovery.k8s.io/v1 EndpointSlice of service_name; one endpoint per address.

    addresses: address texts, or dicts merged over each endpoint's defaults (to vary
    conditions, nodeName, zone per endpoint).
    """
    endpoints = []
    for item in addresses:
        extra = dict(item) if isinstance(item, dict) else {'addresses': [item]}
        endpoint = {
            'addresses': extra.pop('addresses'),
            'conditions': {'ready': ready, 'serving': ready if serving is None else serving,
                           'terminating': terminating},
            'nodeName': node_name,
        }
        if zone:
            endpoint['zone'] = zone
        if hints:
            endpoint['hints'] = {'forZones': [{'name': hint} for hint in hints]}
        endpoint.update(extra)
        endpoints.append(endpoint)
    first = endpoints[0]['addresses'][0] if endpoints else '0.0.0.0'
    if address_type is None:
        address_type = 'IPv%d' % ipaddress.ip_address(first).version
    return {
        'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice',
        'metadata': {'name': name or '%s-abcde' % service_name, 'namespace': namespace,
                     'labels': {SERVICE_NAME_LABEL: service_name, MANAGED_BY_LABEL: managed_by}},
        'addressType': address_type,
        'endpoints': endpoints,
        'ports': [{'name': port_name, 'port': port, 'protocol': protocol} for port_name, port, protocol in ports],
    }


def endpoints(name, addresses, namespace='default', ports=(('http', 8080, 'TCP'),), not_ready=()):
    """A legacy v1 Endpoints (for a selector-less Service)."""
    subset = {'addresses': [{'ip': ip} for ip in addresses],
              'ports': [{'name': port_name, 'port': port, 'protocol': protocol} for port_name, port, protocol in ports]}
    if not_ready:
        subset['notReadyAddresses'] = [{'ip': ip} for ip in not_ready]
    return {'apiVersion': 'v1', 'kind': 'Endpoints', 'metadata': {'name': name, 'namespace': namespace},
            'subsets': [subset] if addresses or not_ready else []}


def node(name, zone=None, addresses=('192.168.1.10',), labels=None):
    """A v1 Node with its zone label and InternalIP addresses."""
    all_labels = {'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux'}
    if zone:
        all_labels[ZONE_LABEL] = zone
    all_labels.update(labels or {})
    return {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name, 'labels': all_labels},
            'spec': {}, 'status': {'addresses': [{'type': 'InternalIP', 'address': address} for address in addresses]
                                   + [{'type': 'Hostname', 'address': name}]}}


def cluster(count, namespaces=('default',), endpoints_per_service=3):
    """count Services spread over namespaces, each with one EndpointSlice: (services, slices).

    ClusterIPs 10.96.x.y and endpoints 10.244.x.y, all distinct: for paging tests and benchmarks.
    """
    services, slices = [], []
    for index in range(count):
        namespace = namespaces[index % len(namespaces)]
        name = 'svc-%05d' % index
        cluster_ip = str(ipaddress.ip_address('10.96.0.0') + 10 + index)
        services.append(service(name, namespace=namespace, cluster_ip=cluster_ip, labels={'tier': 'web'}))
        base = ipaddress.ip_address('10.244.0.0') + 2 + index * endpoints_per_service
        slices.append(endpoint_slice(name, [str(base + k) for k in range(endpoints_per_service)],
                                     namespace=namespace))
    return services, slices
