# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one builder of Kubernetes API objects for tests and benchmarks (JSON dicts as the
API returns them): the stand-in server's tests, the sources', translator's, pipeline's
and modules' unit tests, and bench/.

Shapes follow what the API server and its controllers write: the EndpointSlice
controller sets all three conditions, a targetRef and the zone; defaults the API fills
in (protocol TCP, ipFamilies, sessionAffinity None) are filled in here too unless a test
leaves them out on purpose (None drops a field).
"""

import ipaddress
import itertools

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by'
ZONE_LABEL = 'topology.kubernetes.io/zone'

NODE = 'node-a'
ZONE = 'zone-a'
_uid = itertools.count(1)


def _drop_none(mapping):
    return dict((key, value) for key, value in mapping.items() if value is not None)


def service_port(port, name=None, protocol='TCP', target_port=None, node_port=None):
    return _drop_none({'name': name, 'protocol': protocol, 'port': port,
                       'targetPort': port if target_port is None else target_port, 'nodePort': node_port})


def service(name, cluster_ip='10.96.0.10', ports=None, namespace='default', type='ClusterIP',  # pylint: disable=redefined-builtin
            cluster_ips=None, ip_families=None, selector='app', external_ips=None, lb_ingress=None,
            labels=None, annotations=None, external_policy=None, internal_policy='Cluster',
            affinity_timeout=None, source_ranges=None):
    """A v1 Service. cluster_ips/ip_families default to the single cluster_ip and its
    family; selector 'app' means {app: name}; affinity_timeout: ClientIP affinity, 0 for
    the API's default config (10800 s) written out; lb_ingress: list of ingress dicts."""
    if cluster_ips is None and cluster_ip not in (None, '', 'None'):
        cluster_ips = [cluster_ip]
    if ip_families is None and cluster_ips:
        ip_families = ['IPv6' if ':' in ip else 'IPv4' for ip in cluster_ips]
    if external_policy is None and type in ('NodePort', 'LoadBalancer'):
        external_policy = 'Cluster'
    spec = _drop_none({
        'type': type,
        'clusterIP': cluster_ip,
        'clusterIPs': cluster_ips,
        'ipFamilies': ip_families,
        'ipFamilyPolicy': None if not ip_families else ('RequireDualStack' if len(ip_families) > 1 else 'SingleStack'),
        'ports': [service_port(80)] if ports is None else ports,
        'selector': {'app': name} if selector == 'app' else selector,
        'externalIPs': external_ips,
        'loadBalancerSourceRanges': source_ranges,
        'externalTrafficPolicy': external_policy,
        'internalTrafficPolicy': internal_policy,
        'sessionAffinity': 'None' if affinity_timeout is None else 'ClientIP',
        'sessionAffinityConfig': None if affinity_timeout is None else (
            {'clientIP': {'timeoutSeconds': affinity_timeout or 10800}}),
    })
    if type == 'ExternalName':
        spec = {'type': 'ExternalName', 'externalName': 'db.example.com'}
    obj = {
        'apiVersion': 'v1',
        'kind': 'Service',
        'metadata': _drop_none({'name': name, 'namespace': namespace, 'uid': 'svc-%d' % next(_uid),
                                'resourceVersion': '1000', 'labels': labels, 'annotations': annotations}),
        'spec': spec,
        'status': {'loadBalancer': {'ingress': lb_ingress} if lb_ingress else {}},
    }
    return obj


def slice_port(port, name='', protocol='TCP'):
    return _drop_none({'name': name, 'protocol': protocol, 'port': port})


def endpoint(address, ready=True, serving=None, terminating=False, node=NODE, zone=ZONE, hints=None, pod=None,
             node_hints=None):
    """An EndpointSlice endpoint. serving defaults to ready (what the controller writes);
    hints: list of zone names for hints.forZones; node_hints: of node names for hints.forNodes."""
    ep = {
        'addresses': [address],
        'conditions': {'ready': ready, 'serving': ready if serving is None else serving,
                       'terminating': terminating},
        'nodeName': node,
        'zone': zone,
        'targetRef': {'kind': 'Pod', 'namespace': 'default', 'name': pod or 'pod-%d' % next(_uid),
                      'uid': 'pod-uid-%d' % next(_uid)},
    }
    if hints is not None:
        ep['hints'] = {'forZones': [{'name': zone_name} for zone_name in hints]}
    if node_hints is not None:
        ep.setdefault('hints', {})['forNodes'] = [{'name': node_name} for node_name in node_hints]
    return _drop_none(ep)


def endpoint_slice(service_name, endpoints, ports=None, name=None, namespace='default', address_type='IPv4',
                   labels=None):
    """A discovery.k8s.io/v1 EndpointSlice of service_name. endpoints: endpoint() dicts,
    or address texts (a ready endpoint() each); labels None: the controller's labels ({}
    for a slice that belongs to no Service)."""
    endpoints = [endpoint(item) if isinstance(item, str) else item for item in endpoints]
    if labels is None:
        labels = {SERVICE_NAME_LABEL: service_name, MANAGED_BY_LABEL: 'endpointslice-controller.k8s.io'}
    return {
        'apiVersion': 'discovery.k8s.io/v1',
        'kind': 'EndpointSlice',
        'metadata': {'name': name or '%s-%s' % (service_name, 'abcde'), 'namespace': namespace,
                     'labels': labels, 'uid': 'slice-%d' % next(_uid)},
        'addressType': address_type,
        'ports': [slice_port(80)] if ports is None else ports,
        'endpoints': list(endpoints),
    }


def endpoints_subset(addresses, ports, not_ready=(), node=NODE):
    def address(ip):
        return {'ip': ip, 'nodeName': node}
    return _drop_none({'addresses': [address(ip) for ip in addresses] or None,
                       'notReadyAddresses': [address(ip) for ip in not_ready] or None,
                       'ports': ports})


def legacy_endpoints(name, subsets, namespace='default', labels=None):
    """A v1 Endpoints object (what a selector-less Service's owner writes by hand)."""
    return {'apiVersion': 'v1', 'kind': 'Endpoints',
            'metadata': _drop_none({'name': name, 'namespace': namespace, 'labels': labels}),
            'subsets': list(subsets)}


def endpoints(name, addresses, namespace='default', ports=None):
    """A v1 Endpoints with one subset: addresses (texts), ready, on ports (slice_port()s)."""
    return legacy_endpoints(name, [endpoints_subset(addresses, [slice_port(80)] if ports is None else ports)]
                            if addresses else [], namespace=namespace)


def node_object(name=NODE, addresses=(('InternalIP', '192.168.10.11'),), zone=ZONE):
    """A v1 Node: its zone label and status.addresses as (type, address) pairs."""
    return {'apiVersion': 'v1', 'kind': 'Node',
            'metadata': {'name': name, 'labels': {ZONE_LABEL: zone, 'kubernetes.io/hostname': name}},
            'status': {'addresses': [{'type': kind, 'address': address} for kind, address in addresses]
                       + [{'type': 'Hostname', 'address': name}]}}


def cluster(count, namespaces=('default',), endpoints_per_service=3):
    """count Services spread over namespaces, each with one EndpointSlice: (services, slices).

    ClusterIPs 10.96.x.y and endpoints 10.244.x.y, all distinct, port http 80 -> 8080:
    for paging tests and benchmarks.
    """
    services, slices = [], []
    for index in range(count):
        namespace = namespaces[index % len(namespaces)]
        name = 'svc-%05d' % index
        cluster_ip = str(ipaddress.ip_address('10.96.0.0') + 10 + index)
        services.append(service(name, namespace=namespace, cluster_ip=cluster_ip, labels={'tier': 'web'},
                                ports=[service_port(80, name='http', target_port=8080)]))
        base = ipaddress.ip_address('10.244.0.0') + 2 + index * endpoints_per_service
        slices.append(endpoint_slice(name, [endpoint(str(base + k)) for k in range(endpoints_per_service)],
                                     namespace=namespace, ports=[slice_port(8080, name='http')]))
    return services, slices
