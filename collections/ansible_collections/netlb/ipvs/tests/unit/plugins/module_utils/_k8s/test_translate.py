# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Kubernetes translator, rule by rule: realistic objects in, one line per virtual
service out (its ServicePort and VirtualService together), plus the invariants every
translation keeps."""

from __future__ import annotations

import copy
import gc
import ipaddress
import os
import random

import pytest

from kube_api.objects import (
    endpoint,
    endpoint_slice,
    endpoints_subset,
    legacy_endpoints,
    node_object,
    service,
    service_port,
    slice_port,
)

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    SCHEDULERS,
    RealServer,
    ServiceKey,
    VirtualService,
    canonical_address,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import (
    EXTERNAL_IP,
    KINDS,
    LOAD_BALANCER,
    NODE_PORT,
    ProxyOptions,
    ServicePort,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate as translator
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate import translate
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_fields import fast_canonical
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.snapshots import node, snapshot

NODE = node()
DEFAULT = ProxyOptions()
ANY_EXTERNAL = ProxyOptions(external_ips_allowed_cidrs=('0.0.0.0/0', '::/0'))


def line(vs, port):
    """'kind protocol vip[ local][ from ranges] scheduler[ flags F,G][ persist T/M] -> servers'."""
    text = '%s %s' % (port.kind, vs.key)
    if port.local:
        text += ' local'
    if port.source_ranges:
        text += ' from ' + ','.join(port.source_ranges)
    text += ' ' + vs.scheduler
    if vs.scheduler_flags:
        text += ' flags ' + ','.join(vs.scheduler_flags)
    if vs.persistence_timeout:
        text += ' persist %d/%d' % (vs.persistence_timeout, vs.persistence_netmask)
    return text + ' -> ' + (' '.join(rs.endpoint for rs in vs.real_servers) or '(none)')


def web(name='web', cluster_ip='10.96.0.20', **kwargs):
    kwargs.setdefault('ports', [service_port(80, target_port=8080)])
    return service(name, cluster_ip, **kwargs)


def pods(*eps, **kwargs):
    """The usual slice of 'web' (port 8080, unnamed) with these endpoints."""
    kwargs.setdefault('ports', [slice_port(8080)])
    return endpoint_slice(kwargs.pop('service', 'web'), eps, **kwargs)


def rollout_old(address, serving=True, node_name='node-a'):
    """A pod of the old ReplicaSet being deleted: terminating, no longer ready."""
    return endpoint(address, ready=False, serving=serving, terminating=True, node=node_name)


SHOP = dict(type='NodePort', ports=[service_port(80, name='http', target_port='http', node_port=30080)])
SHOP_PODS = endpoint_slice('shop', [endpoint('10.244.1.5'), endpoint('10.244.2.7', node='node-b')],
                           ports=[slice_port(8080, 'http')])
DNS_PORTS = [service_port(53, 'dns', 'UDP'), service_port(53, 'dns-tcp', 'TCP'), service_port(9153, 'metrics', 'TCP')]
WARN_SCHED = "Service default/s4: metadata.annotations[ipvs.netlb.io/scheduler]: 'fastest' is not a known scheduler"

# Columns: objects (Services, EndpointSlices, Endpoints), node, options, expected lines
# (sorted by key), expected dummy addresses, expected skipped, expected warnings (each
# actual warning starts with its expected text).
CASES = [
    pytest.param(
        [web(), pods(endpoint('10.244.1.5'), endpoint('10.244.2.7', node='node-b'),
                     endpoint('10.244.3.9', ready=False))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.20'}, {}, [], id='cluster-ip-ready-endpoints-only'),
    pytest.param(
        [service('shop', '10.96.0.30', **SHOP), SHOP_PODS],
        NODE, DEFAULT,
        ['node_port tcp 10.0.0.11:30080 rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'cluster_ip tcp 10.96.0.30:80 rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'node_port tcp 192.168.10.11:30080 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.30'}, {}, [], id='node-port-cluster-policy-on-every-node-address'),
    pytest.param(
        [service('shop', '10.96.0.30', external_policy='Local', **SHOP), SHOP_PODS],
        NODE, DEFAULT,
        ['node_port tcp 10.0.0.11:30080 local rr -> 10.244.1.5:8080',
         'cluster_ip tcp 10.96.0.30:80 rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'node_port tcp 192.168.10.11:30080 local rr -> 10.244.1.5:8080'],
        {'10.96.0.30'}, {}, [], id='node-port-local-policy-this-nodes-endpoints'),
    pytest.param(
        [service('shop', '10.96.0.30', external_policy='Local', **SHOP), SHOP_PODS],
        # kube-proxy's IPVS mode: no local endpoint, every endpoint (pods' and the node's
        # own connections to the NodePort reach the Service; rule 8).
        node(name='node-c'), DEFAULT,
        ['node_port tcp 10.0.0.11:30080 local rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'cluster_ip tcp 10.96.0.30:80 rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'node_port tcp 192.168.10.11:30080 local rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.30'}, {}, [], id='node-port-local-policy-no-local-endpoint-falls-back-as-kube-proxy'),
    pytest.param(
        # Both policies Local: kube-proxy has no cluster set to fall back to, nor do we.
        [service('shop', '10.96.0.30', external_policy='Local', internal_policy='Local', **SHOP), SHOP_PODS],
        node(name='node-c'), DEFAULT,
        ['node_port tcp 10.0.0.11:30080 local rr -> (none)',
         'cluster_ip tcp 10.96.0.30:80 local rr -> (none)',
         'node_port tcp 192.168.10.11:30080 local rr -> (none)'],
        {'10.96.0.30'}, {}, [], id='both-policies-local-no-local-endpoint-no-fallback'),
    pytest.param(
        # internalTrafficPolicy Local never falls back (kube-proxy's IPVS mode does when
        # the Service is also external with policy Cluster: rule 8).
        [service('shop', '10.96.0.30', internal_policy='Local', **SHOP), SHOP_PODS],
        node(name='node-c'), DEFAULT,
        ['node_port tcp 10.0.0.11:30080 rr -> 10.244.1.5:8080 10.244.2.7:8080',
         'cluster_ip tcp 10.96.0.30:80 local rr -> (none)',
         'node_port tcp 192.168.10.11:30080 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.30'}, {}, [], id='internal-policy-local-never-falls-back'),
    pytest.param(
        [service('shop', '10.96.0.30', external_policy='Local', **SHOP),
         endpoint_slice('shop', [rollout_old('10.244.1.4'), endpoint('10.244.2.7', node='node-b'),
                                 rollout_old('10.244.3.4', node_name='node-c')],
                        ports=[slice_port(8080, 'http')])],
        NODE, DEFAULT,
        ['node_port tcp 10.0.0.11:30080 local rr -> 10.244.1.4:8080',
         'cluster_ip tcp 10.96.0.30:80 rr -> 10.244.2.7:8080',
         'node_port tcp 192.168.10.11:30080 local rr -> 10.244.1.4:8080'],
        {'10.96.0.30'}, {}, [], id='local-policy-falls-back-to-local-serving-terminating'),
    pytest.param(
        [web(internal_policy='Local'), pods(endpoint('10.244.1.5'), endpoint('10.244.2.7', node='node-b'))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 local rr -> 10.244.1.5:8080'],
        {'10.96.0.20'}, {}, [], id='internal-traffic-policy-local'),
    pytest.param(
        [service('api', '10.96.0.40', type='LoadBalancer',
                 ports=[service_port(443, name='https', target_port='https', node_port=31443)],
                 lb_ingress=[{'ip': '203.0.113.10', 'ipMode': 'VIP'}, {'ip': '203.0.113.11', 'ipMode': 'Proxy'},
                             {'hostname': 'api.lb.example.com'}],
                 source_ranges=['198.51.100.0/24', ' 192.0.2.0/25 ', '192.0.2.1/25']),
         endpoint_slice('api', [endpoint('10.244.2.7', node='node-b')], ports=[slice_port(9443, 'https')],
                        name='api-bbbbb'),
         endpoint_slice('api', [endpoint('10.244.1.5')], ports=[slice_port(8443, 'https')], name='api-aaaaa')],
        NODE, DEFAULT,
        ['node_port tcp 10.0.0.11:31443 rr -> 10.244.1.5:8443 10.244.2.7:9443',
         'cluster_ip tcp 10.96.0.40:443 rr -> 10.244.1.5:8443 10.244.2.7:9443',
         'node_port tcp 192.168.10.11:31443 rr -> 10.244.1.5:8443 10.244.2.7:9443',
         'load_balancer tcp 203.0.113.10:443 from 192.0.2.0/25,198.51.100.0/24 rr -> 10.244.1.5:8443 10.244.2.7:9443'],
        {'10.96.0.40', '203.0.113.10'}, {}, [], id='load-balancer-named-target-port-ip-mode-source-ranges'),
    pytest.param(
        [service('api', '10.96.0.40', type='LoadBalancer', external_policy='Local',
                 ports=[service_port(443, node_port=31443)], lb_ingress=[{'ip': '203.0.113.10'}],
                 source_ranges=['10.0.0.0/8', '0.0.0.0/0']),
         endpoint_slice('api', [endpoint('10.244.1.5')], ports=[slice_port(443)])],
        # A primary address the node's interfaces do not list (as behind 1:1 NAT): a NodePort
        # address still, never bound to the dummy interface.
        node(primary=('192.168.10.99',)), ProxyOptions(node_port_addresses=('primary',)),
        ['cluster_ip tcp 10.96.0.40:443 rr -> 10.244.1.5:443',
         'node_port tcp 192.168.10.99:31443 local rr -> 10.244.1.5:443',
         'load_balancer tcp 203.0.113.10:443 local rr -> 10.244.1.5:443'],
        {'10.96.0.40', '203.0.113.10'}, {}, [], id='load-balancer-range-for-everyone-and-primary-node-port'),
    pytest.param(
        # Whatever external_ips_allowed_cidrs says: not ssh's or the kubelet's address, nor
        # a primary address the interfaces do not list, loopback or the metadata service's.
        [web('ingress', '10.96.0.50', ports=[service_port(80)],
             external_ips=['198.51.100.20', '192.168.10.11', '10.0.0.11', '192.168.10.99', '127.0.0.2',
                           '169.254.169.254']),
         pods(endpoint('10.244.1.5'), service='ingress', ports=[slice_port(80)])],
        node(primary=('192.168.10.99', 'fd00:10::11')), ANY_EXTERNAL,
        ['cluster_ip tcp 10.96.0.50:80 rr -> 10.244.1.5:80',
         'external_ip tcp 198.51.100.20:80 rr -> 10.244.1.5:80'],
        {'10.96.0.50', '198.51.100.20'}, {},
        ['Service default/ingress: spec.externalIPs[1]: 192.168.10.11 is an address of this node, not proxied',
         'Service default/ingress: spec.externalIPs[2]: 10.0.0.11 is an address of this node, not proxied',
         'Service default/ingress: spec.externalIPs[3]: 192.168.10.99 is an address of this node, not proxied',
         'Service default/ingress: spec.externalIPs[4]: 127.0.0.2 is a loopback, link-local or multicast address',
         'Service default/ingress: spec.externalIPs[5]: 169.254.169.254 is a loopback, link-local or multicast'],
        id='external-ips-never-a-node-address'),
    pytest.param(
        [web('ingress', '10.96.0.50', ports=[service_port(80)],
             external_ips=['198.51.100.20', '203.0.113.5', '10.96.0.1', 'fd00:96::1']),
         web('dual', '10.96.0.51', cluster_ips=['10.96.0.51', 'fd00:96::51'], ports=[service_port(80)],
             external_ips=['2001:db8::51'])],
        NODE, ProxyOptions(service_cidrs=('10.96.0.0/12', 'fd00:96::/112'),
                           external_ips_allowed_cidrs=('198.51.100.0/24', '10.0.0.0/8', '2001:db8::/32')),
        ['cluster_ip tcp 10.96.0.50:80 rr -> (none)',
         'cluster_ip tcp 10.96.0.51:80 rr -> (none)',
         'external_ip tcp 198.51.100.20:80 rr -> (none)',
         'external_ip tcp [2001:db8::51]:80 rr -> (none)',
         'cluster_ip tcp [fd00:96::51]:80 rr -> (none)'],
        {'10.96.0.50', '10.96.0.51', '198.51.100.20', '2001:db8::51', 'fd00:96::51'}, {},
        # fd00:96::1 is of a family the Service has no cluster IP of: never proxied, not warned.
        ['Service default/ingress: spec.externalIPs[1]: 203.0.113.5 is outside external_ips_allowed_cidrs',
         'Service default/ingress: spec.externalIPs[2]: 10.96.0.1 is inside the service CIDR 10.96.0.0/12'],
        id='external-ips-inside-the-allowed-cidrs-never-the-service-cidr'),
    pytest.param(
        [web('ingress', '10.96.0.50', ports=[service_port(80)], external_ips=['198.51.100.20'])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.50:80 rr -> (none)'],
        {'10.96.0.50'}, {},
        ['Service default/ingress: spec.externalIPs[0]: 198.51.100.20 is an external IP and '
         'external_ips_allowed_cidrs allows none, not proxied'],
        id='external-ips-none-allowed-by-default'),
    pytest.param(
        # a-team sorts before default and kube-system: its Services used to take these.
        [service('kubernetes', '10.96.0.1', ports=[service_port(443, 'https', target_port=6443)], selector=None),
         service('kube-dns', '10.96.0.10', namespace='kube-system', ports=DNS_PORTS[:1]),
         service('evil', '10.96.5.5', namespace='a-team', ports=[service_port(443, 'https')],
                 external_ips=['10.96.0.1', '198.51.100.5']),
         service('evil-lb', '10.96.5.6', namespace='a-team', type='LoadBalancer',
                 ports=[service_port(53, 'dns', 'UDP')], lb_ingress=[{'ip': '10.96.0.10'}])],
        NODE, ANY_EXTERNAL,
        ['cluster_ip tcp 10.96.0.1:443 rr -> (none)',
         'cluster_ip tcp 10.96.5.5:443 rr -> (none)',
         'external_ip tcp 198.51.100.5:443 rr -> (none)',
         'cluster_ip udp 10.96.0.10:53 rr -> (none)',
         'cluster_ip udp 10.96.5.6:53 rr -> (none)'],
        {'10.96.0.1', '10.96.0.10', '10.96.5.5', '10.96.5.6', '198.51.100.5'}, {},
        ['Service a-team/evil: external_ip tcp 10.96.0.1:443 is already a virtual service of Service '
         'default/kubernetes (its cluster_ip)',
         'Service a-team/evil-lb: load_balancer udp 10.96.0.10:53 is already a virtual service of Service '
         'kube-system/kube-dns (its cluster_ip)'],
        id='external-and-lb-ips-never-take-a-cluster-ip'),
    pytest.param(
        # Written by the load-balancer controller: no allowed list, but never the node's.
        [service('api', '10.96.0.40', type='LoadBalancer', ports=[service_port(443)],
                 lb_ingress=[{'ip': '192.168.10.11'}, {'ip': '203.0.113.10'}])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.40:443 rr -> (none)',
         'load_balancer tcp 203.0.113.10:443 rr -> (none)'],
        {'10.96.0.40', '203.0.113.10'}, {},
        ['Service default/api: status.loadBalancer.ingress[0].ip: 192.168.10.11 is an address of this node, '
         'not proxied'],
        id='load-balancer-ips-never-a-node-address'),
    pytest.param(
        [service('api', '10.96.0.40', cluster_ips=['10.96.0.40', 'fd00:96::40'], type='LoadBalancer',
                 ports=[service_port(443)], lb_ingress=[{'ip': '203.0.113.10'}, {'ip': '2001:db8::10'}],
                 source_ranges=['192.0.2.0/24', 'fd00::%eth0/64']),
         service('api2', '10.96.0.41', type='LoadBalancer', ports=[service_port(443)],
                 lb_ingress=[{'ip': '203.0.113.11'}], source_ranges=['fd00::1%2/128'])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.40:443 rr -> (none)',
         'cluster_ip tcp 10.96.0.41:443 rr -> (none)',
         'load_balancer tcp 203.0.113.10:443 from 192.0.2.0/24 rr -> (none)',
         'cluster_ip tcp [fd00:96::40]:443 rr -> (none)'],
        {'10.96.0.40', '10.96.0.41', '203.0.113.10', 'fd00:96::40'}, {},
        # A left-out range still restricts: the load balancer is served to nobody rather than everybody.
        ["Service default/api: spec.loadBalancerSourceRanges[1]: 'fd00::%eth0/64' has a zone id (%), range left out",
         'Service default/api: spec.loadBalancerSourceRanges: no IPv6 range, so its IPv6 load-balancer IPs',
         "Service default/api2: spec.loadBalancerSourceRanges[0]: 'fd00::1%2/128' has a zone id (%), range left out",
         'Service default/api2: spec.loadBalancerSourceRanges: no IPv4 range, so its IPv4 load-balancer IPs'],
        id='source-range-with-a-zone-id-left-out-never-opens'),
    pytest.param(
        [web('ingress', '10.96.0.50', ports=[service_port(80)], external_ips=['198.51.100.20'],
             external_policy='Local'),
         pods(endpoint('10.244.2.5', node='node-b'), service='ingress', ports=[slice_port(80)])],
        NODE, ProxyOptions(node_port_addresses=('10.0.0.0/8',), external_ips_allowed_cidrs=('198.51.100.0/24',)),
        ['cluster_ip tcp 10.96.0.50:80 rr -> 10.244.2.5:80',
         'external_ip tcp 198.51.100.20:80 local rr -> 10.244.2.5:80'],
        {'10.96.0.50', '198.51.100.20'}, {}, [], id='external-ip-local-policy-no-local-endpoint-falls-back'),
    pytest.param(
        [service('api', '10.96.0.40', type='LoadBalancer', external_policy='Local',
                 ports=[service_port(443, node_port=31443)], lb_ingress=[{'ip': '203.0.113.10'}]),
         endpoint_slice('api', [endpoint('10.244.2.7', node='node-b', hints=['zone-b']),
                                endpoint('10.244.3.7', node='node-c', hints=['zone-a'])], ports=[slice_port(443)])],
        NODE, ProxyOptions(node_port_addresses=('10.0.0.0/8',)),
        # The fallback is the cluster set, topology hints applied, as kube-proxy's.
        ['node_port tcp 10.0.0.11:31443 local rr -> 10.244.3.7:443',
         'cluster_ip tcp 10.96.0.40:443 rr -> 10.244.3.7:443',
         'load_balancer tcp 203.0.113.10:443 local rr -> 10.244.3.7:443'],
        {'10.96.0.40', '203.0.113.10'}, {}, [], id='load-balancer-local-policy-no-local-endpoint-falls-back'),
    pytest.param(
        [service('db', 'None'), pods(endpoint('10.244.1.5'), service='db'), service('db2', ''),
         service('mail', None, type='ExternalName'),
         web('cilium-svc', labels={'service.kubernetes.io/service-proxy-name': 'cilium'}),
         web('hl', '10.96.0.21', labels={'service.kubernetes.io/headless': ''})],
        NODE, DEFAULT, [], set(),
        {'external_name': ['default/mail'], 'headless': ['default/db', 'default/db2'],
         'headless_label': ['default/hl'], 'service_proxy_name': ['default/cilium-svc']},
        [], id='skipped-services'),
    pytest.param(
        [service('legacy-db', '10.96.0.60', ports=[service_port(5432, name='pg')], selector=None),
         legacy_endpoints('legacy-db', [endpoints_subset(['192.168.50.10', '192.168.50.11'],
                                                         [{'name': 'pg', 'port': 5432, 'protocol': 'TCP'}],
                                                         not_ready=['192.168.50.12'])])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.60:5432 rr -> 192.168.50.10:5432 192.168.50.11:5432'],
        {'10.96.0.60'}, {}, [], id='selector-less-service-with-endpoints'),
    pytest.param(
        [service('legacy-db', '10.96.0.60', ports=[service_port(5432, name='pg')], selector=None),
         legacy_endpoints('legacy-db', [endpoints_subset(['192.168.50.10'], [{'name': 'pg', 'port': 5432}])]),
         endpoint_slice('legacy-db', [endpoint('192.168.50.20', node=None)], ports=[slice_port(5432, 'pg')],
                        labels={'kubernetes.io/service-name': 'legacy-db'}),
         service('app', '10.96.0.61', ports=[service_port(80)]),
         legacy_endpoints('app', [endpoints_subset(['10.244.1.5'], [{'port': 80}])])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.60:5432 rr -> 192.168.50.20:5432',
         'cluster_ip tcp 10.96.0.61:80 rr -> (none)'],
        {'10.96.0.60', '10.96.0.61'}, {}, [], id='endpoints-only-without-slices-and-selector'),
    pytest.param(
        [service('kube-dns', '10.96.0.10', namespace='kube-system', ports=DNS_PORTS),
         endpoint_slice('kube-dns', [endpoint('10.244.0.2'), endpoint('10.244.0.3', node='node-b')],
                        namespace='kube-system', ports=[slice_port(53, 'dns', 'UDP'), slice_port(53, 'dns-tcp', 'TCP'),
                                                        slice_port(9153, 'metrics', 'TCP')])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.10:53 rr -> 10.244.0.2:53 10.244.0.3:53',
         'cluster_ip tcp 10.96.0.10:9153 rr -> 10.244.0.2:9153 10.244.0.3:9153',
         'cluster_ip udp 10.96.0.10:53 rr -> 10.244.0.2:53 10.244.0.3:53'],
        {'10.96.0.10'}, {}, [], id='kube-dns-udp-tcp-metrics'),
    pytest.param(
        [service('kube-dns', '10.96.0.10', namespace='kube-system', ports=DNS_PORTS[:1]),
         endpoint_slice('kube-dns', [endpoint('10.244.0.2')], namespace='kube-system',
                        ports=[slice_port(53, 'dns', 'TCP')])],
        NODE, DEFAULT,
        ['cluster_ip udp 10.96.0.10:53 rr -> (none)'],
        {'10.96.0.10'}, {}, [], id='port-name-matches-protocol-does-not'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.20'), endpoint('10.244.2.21', node='node-b'),
                     rollout_old('10.244.1.10'), rollout_old('10.244.2.11', node_name='node-b'))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.20:8080 10.244.2.21:8080'],
        {'10.96.0.20'}, {}, [], id='rollout-ready-pods-only'),
    pytest.param(
        [web(), pods(rollout_old('10.244.1.10'), rollout_old('10.244.2.11', serving=False),
                     endpoint('10.244.3.12', ready=False))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.10:8080'],
        {'10.96.0.20'}, {}, [], id='rollout-last-pods-serving-terminating'),
    pytest.param(
        [service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], ip_families=['IPv4', 'IPv6'],
                 type='NodePort', ports=[service_port(80, node_port=30070)]),
         endpoint_slice('web6', [endpoint('10.244.1.5')], name='web6-v4'),
         endpoint_slice('web6', [endpoint('fd00:244::5')], name='web6-v6', address_type='IPv6')],
        NODE, DEFAULT,
        ['node_port tcp 10.0.0.11:30070 rr -> 10.244.1.5:80',
         'cluster_ip tcp 10.96.0.70:80 rr -> 10.244.1.5:80',
         'node_port tcp 192.168.10.11:30070 rr -> 10.244.1.5:80',
         'node_port tcp [fd00:10::11]:30070 rr -> [fd00:244::5]:80',
         'cluster_ip tcp [fd00:96::70]:80 rr -> [fd00:244::5]:80'],
        {'10.96.0.70', 'fd00:96::70'}, {}, [], id='dual-stack'),
    pytest.param(
        [service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], ip_families=['IPv4', 'IPv6'],
                 ports=[service_port(80)]),
         endpoint_slice('web6', [endpoint('10.244.1.5')], name='web6-v4'),
         endpoint_slice('web6', [endpoint('fd00:244::5')], name='web6-v6', address_type='IPv6'),
         service('only6', 'fd00:96::71')],
        NODE, ProxyOptions(families=(4,)),
        ['cluster_ip tcp 10.96.0.70:80 rr -> 10.244.1.5:80'],
        {'10.96.0.70'}, {'no_cluster_ip_of_family': ['default/only6']}, [], id='dual-stack-ipv4-proxy-only'),
    pytest.param(
        [service('old6', 'fd00:96:0:0::80', cluster_ips=[], ip_families=[], type='LoadBalancer',
                 lb_ingress=[{'ip': '2001:db8::80'}], source_ranges=['192.0.2.0/24'], affinity_timeout=600),
         endpoint_slice('old6', [endpoint('fd00:244::5'), endpoint('10.244.1.5')], address_type='IPv6')],
        NODE, ProxyOptions(node_port_addresses=('primary',)),
        ['cluster_ip tcp [fd00:96::80]:80 rr persist 600/128 -> [fd00:244::5]:80'],
        {'fd00:96::80'}, {},
        ['EndpointSlice default/old6-abcde: endpoints[1].addresses[0]: 10.244.1.5 is not an IPv6 address',
         'Service default/old6: spec.loadBalancerSourceRanges: no IPv6 range, so its IPv6 load-balancer IPs'],
        id='cluster-ip-without-ip-families-and-v4-only-source-ranges'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', ready=False, serving=True, terminating=True), endpoint('10.244.1.6'),
                     name='web-aaaaa'),
         pods(endpoint('10.244.1.5'), endpoint('10.244.1.6'), endpoint('10.244.1.7', ready=False, terminating=True),
              name='web-bbbbb'),
         pods(endpoint('10.244.1.7'), name='web-ccccc')],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.1.6:8080 10.244.1.7:8080'],
        {'10.96.0.20'}, {}, [], id='duplicates-across-slices-non-terminating-wins'),
    pytest.param(
        [web(), pods(rollout_old('10.244.1.5', serving=False), name='web-bbbbb'),
         pods(rollout_old('10.244.1.5'), name='web-aaaaa')],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080'],
        {'10.96.0.20'}, {}, [], id='duplicates-both-terminating-first-slice-by-name-wins'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', hints=['zone-a']), endpoint('10.244.2.7', node='node-b', hints=['zone-b']),
                     endpoint('10.244.3.9', node='node-c', hints=['zone-a', 'zone-c']),
                     endpoint('10.244.4.1', ready=False))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.3.9:8080'],
        {'10.96.0.20'}, {}, [], id='topology-hints-match-zone'),
    pytest.param(
        [web(), pods(endpoint('10.244.2.7', node='node-b', hints=['zone-b']),
                     endpoint('10.244.3.9', node='node-c', hints=['zone-c']))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.2.7:8080 10.244.3.9:8080'],
        {'10.96.0.20'}, {}, [], id='topology-hints-none-for-this-zone'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', hints=['zone-a']), endpoint('10.244.2.7', node='node-b'))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.20'}, {}, [], id='topology-hints-partial-ignored'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', hints=['zone-a']), endpoint('10.244.2.7', node='node-b', hints=['zone-b']))],
        node(zone=None), DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.20'}, {}, [], id='topology-hints-node-without-zone'),
    pytest.param(
        [service('shop', '10.96.0.30', external_policy='Local', **SHOP),
         endpoint_slice('shop', [endpoint('10.244.1.5', hints=['zone-b']),
                                 endpoint('10.244.2.7', node='node-b', hints=['zone-a'])],
                        ports=[slice_port(8080, 'http')])],
        NODE, ProxyOptions(node_port_addresses=('192.168.0.0/16',)),
        ['cluster_ip tcp 10.96.0.30:80 rr -> 10.244.2.7:8080',
         'node_port tcp 192.168.10.11:30080 local rr -> 10.244.1.5:8080'],
        {'10.96.0.30'}, {}, [], id='topology-hints-never-narrow-the-local-set'),
    pytest.param(
        [web('sticky', '10.96.0.90', affinity_timeout=0), web('sticky2', '10.96.0.91', affinity_timeout=30)],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.90:80 rr persist 10800/32 -> (none)',
         'cluster_ip tcp 10.96.0.91:80 rr persist 30/32 -> (none)'],
        {'10.96.0.90', '10.96.0.91'}, {}, [], id='session-affinity-client-ip'),
    pytest.param(
        [web('s1', '10.96.1.1', annotations={'ipvs.netlb.io/scheduler': 'wlc'}),
         web('s2', '10.96.1.2', annotations={'kube-router.io/service.scheduler': 'lc'}),
         web('s3', '10.96.1.3', annotations={'ipvs.netlb.io/scheduler': 'sh', 'kube-router.io/service.scheduler': 'lc'}),
         web('s4', '10.96.1.4', annotations={'ipvs.netlb.io/scheduler': 'fastest'}),
         web('s5', '10.96.1.5')],
        NODE, ProxyOptions(scheduler='wrr'),
        ['cluster_ip tcp 10.96.1.1:80 wlc -> (none)',
         'cluster_ip tcp 10.96.1.2:80 lc -> (none)',
         'cluster_ip tcp 10.96.1.3:80 sh -> (none)',
         'cluster_ip tcp 10.96.1.4:80 wrr -> (none)',
         'cluster_ip tcp 10.96.1.5:80 wrr -> (none)'],
        {'10.96.1.1', '10.96.1.2', '10.96.1.3', '10.96.1.4', '10.96.1.5'}, {}, [WARN_SCHED],
        id='scheduler-annotations'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5')),
         web('bad-port', '10.96.2.1', ports=[service_port(80), service_port(70000, 'admin')]),
         web('bad-proto', '10.96.2.2', ports=[service_port(80, protocol='ICMP')]),
         web('bad-ip', '10.96.2.300'),
         web('bad-ext', '10.96.2.4', external_ips=['lb.example.com']),
         web('bad-affinity', '10.96.2.5', affinity_timeout=90000),
         {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'no-spec', 'namespace': 'default'}}],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080'],
        {'10.96.0.20'},
        {'malformed': ['default/bad-affinity', 'default/bad-ext', 'default/bad-ip', 'default/bad-port',
                       'default/bad-proto', 'default/no-spec']},
        ['Service default/bad-affinity: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 90000 is out of range '
         '1-86400',
         "Service default/bad-ext: spec.externalIPs[0]: 'lb.example.com' is not an IP address",
         "Service default/bad-ip: spec.clusterIPs[0]: '10.96.2.300' is not an IP address",
         'Service default/bad-port: spec.ports[1].port: 70000 is out of range 1-65535',
         "Service default/bad-proto: spec.ports[0].protocol: 'ICMP' is not one of TCP, UDP, SCTP",
         'Service default/no-spec: spec: expected a mapping, got None'],
        id='malformed-services-skipped-rest-translated'),
    pytest.param(
        [web(),
         pods(endpoint('10.244.1.1'), name='web-aaaaa', address_type='IPv5'),
         pods(endpoint('10.244.1.2'), name='web-bbbbb', ports=[slice_port(0)]),
         pods(endpoint('10.244.1.3'), name='web-ccccc', ports='8080'),
         pods(endpoint('10.244.1.5'), endpoint('10.244.1.300'), endpoint('10.244.1.6', ready='yes'),
              endpoint('fd00::5'), dict(endpoint('10.244.1.7'), addresses=[]), endpoint('10.244.1.8'),
              name='web-ddddd')],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.1.8:8080'],
        {'10.96.0.20'}, {},
        ["EndpointSlice default/web-aaaaa: addressType: 'IPv5' is not one of IPv4, IPv6, FQDN",
         'EndpointSlice default/web-bbbbb: ports[0].port: 0 is out of range 1-65535',
         "EndpointSlice default/web-ccccc: ports: expected a list, got '8080'",
         "EndpointSlice default/web-ddddd: endpoints[1].addresses[0]: '10.244.1.300' is not an IP address",
         "EndpointSlice default/web-ddddd: endpoints[2].conditions.ready: expected true or false, got 'yes'",
         'EndpointSlice default/web-ddddd: endpoints[3].addresses[0]: fd00::5 is not an IPv4 address',
         'EndpointSlice default/web-ddddd: endpoints[4].addresses: no address'],
        id='malformed-slices-and-endpoints-left-out'),
    pytest.param(
        [web('b-second', '10.96.3.2', ports=[service_port(80)], external_ips=['198.51.100.30']),
         web('a-first', '10.96.3.1', ports=[service_port(80)], external_ips=['198.51.100.30'])],
        NODE, ANY_EXTERNAL,
        ['cluster_ip tcp 10.96.3.1:80 rr -> (none)',
         'cluster_ip tcp 10.96.3.2:80 rr -> (none)',
         'external_ip tcp 198.51.100.30:80 rr -> (none)'],
        {'10.96.3.1', '10.96.3.2', '198.51.100.30'}, {},
        ['Service default/b-second: external_ip tcp 198.51.100.30:80 is already a virtual service of Service '
         'default/a-first (its external_ip)'],
        id='two-services-one-virtual-service-first-wins'),
    pytest.param(
        [service('shop', '10.96.0.30', type='NodePort', ports=[service_port(80)]),
         endpoint_slice('shop', [endpoint('10.244.1.5')]),
         endpoint_slice('shop', [{'addresses': ['db.example.com'], 'conditions': {'ready': True}}],
                        name='shop-fqdn', address_type='FQDN'),
         endpoint_slice('shop', [endpoint('10.244.9.9')], name='custom', labels={'team': 'shop'})],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.30:80 rr -> 10.244.1.5:80'],
        {'10.96.0.30'}, {}, [], id='no-node-port-fqdn-and-unlabelled-slices-ignored'),
    pytest.param(
        [service('shop', '10.96.0.30', type='NodePort',
                 ports=[dict(service_port(80, name='http'), nodePort=None), service_port(81, name='admin', node_port=30081)]),
         endpoint_slice('shop', [endpoint('10.244.1.5')], ports=[slice_port(8080, 'http'), slice_port(8081, 'admin')])],
        NODE, ProxyOptions(node_port_addresses=('10.0.0.0/8',)),
        ['node_port tcp 10.0.0.11:30081 rr -> 10.244.1.5:8081',
         'cluster_ip tcp 10.96.0.30:80 rr -> 10.244.1.5:8080',
         'cluster_ip tcp 10.96.0.30:81 rr -> 10.244.1.5:8081'],
        {'10.96.0.30'}, {}, [], id='null-node-port-is-no-node-port-the-cluster-ip-served'),
    pytest.param(
        [web(ports=[service_port(80, name='http', target_port='http'), service_port(9090, name='metrics'),
                    service_port(9091, name='debug')]),
         pods(endpoint('10.244.1.5'), ports=[slice_port(8080, 'http'), slice_port(70000, 'metrics'),
                                             slice_port(9091, 'debug', 'ICMP')])],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080',
         'cluster_ip tcp 10.96.0.20:9090 rr -> (none)',
         'cluster_ip tcp 10.96.0.20:9091 rr -> (none)'],
        {'10.96.0.20'}, {},
        ['EndpointSlice default/web-abcde: ports[1].port: 70000 is out of range 1-65535',
         "EndpointSlice default/web-abcde: ports[2].protocol: 'ICMP' is not one of TCP, UDP, SCTP"],
        id='malformed-slice-port-left-out-the-others-kept'),
    pytest.param(
        [service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], type='NodePort',
                 ports=[service_port(80, node_port=30070)])],
        NODE, ProxyOptions(node_port_addresses=('10.0.0.0/8',)),
        # No IPv6 CIDR: every usable IPv6 address (not ::1, not fe80::), as kube-proxy.
        ['node_port tcp 10.0.0.11:30070 rr -> (none)',
         'cluster_ip tcp 10.96.0.70:80 rr -> (none)',
         'node_port tcp [fd00:10::11]:30070 rr -> (none)',
         'cluster_ip tcp [fd00:96::70]:80 rr -> (none)'],
        {'10.96.0.70', 'fd00:96::70'}, {}, [], id='node-port-cidrs-of-one-family-the-other-every-address'),
    pytest.param(
        [service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], type='NodePort',
                 ports=[service_port(80, node_port=30070)])],
        NODE, ProxyOptions(node_port_addresses=('0.0.0.0/0', '::/0')),
        # A zero-length CIDR is the default choice: no loopback, no IPv6 link-local.
        ['node_port tcp 10.0.0.11:30070 rr -> (none)',
         'cluster_ip tcp 10.96.0.70:80 rr -> (none)',
         'node_port tcp 192.168.10.11:30070 rr -> (none)',
         'node_port tcp [fd00:10::11]:30070 rr -> (none)',
         'cluster_ip tcp [fd00:96::70]:80 rr -> (none)'],
        {'10.96.0.70', 'fd00:96::70'}, {}, [], id='node-port-zero-cidrs-leave-loopback-and-link-local-out'),
    pytest.param(
        [service('shop', '10.96.0.30', type='NodePort', ports=[service_port(80, node_port=30080)])],
        NODE, ProxyOptions(node_port_addresses=('0.0.0.0/1', '::1/128'), families=(4,)),
        # A CIDR that holds loopback: never loopback (kube-proxy leaves it out too).
        ['node_port tcp 10.0.0.11:30080 rr -> (none)',
         'cluster_ip tcp 10.96.0.30:80 rr -> (none)'],
        {'10.96.0.30'}, {}, [], id='node-port-cidr-holding-loopback'),
    pytest.param(
        [service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], type='NodePort',
                 ports=[service_port(80, node_port=30070)]),
         node_object(addresses=(('ExternalIP', '203.0.113.7'), ('InternalIP', '10.0.0.11'),
                                ('InternalIP', '10.0.0.12'), ('ExternalIP', '2001:db8::7')))],
        # kube-proxy's node IPs: the Node object's first InternalIP of each family, else its
        # first ExternalIP; not the default route's source (NodeContext.primary).
        NODE, ProxyOptions(node_port_addresses=('primary',)),
        ['node_port tcp 10.0.0.11:30070 rr -> (none)',
         'cluster_ip tcp 10.96.0.70:80 rr -> (none)',
         'node_port tcp [2001:db8::7]:30070 rr -> (none)',
         'cluster_ip tcp [fd00:96::70]:80 rr -> (none)'],
        {'10.96.0.70', 'fd00:96::70'}, {}, [], id='node-port-primary-from-the-node-object'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', hints=['zone-a'], node_hints=['node-a']),
                     endpoint('10.244.1.6', hints=['zone-a'], node_hints=['node-a']),
                     endpoint('10.244.2.7', node='node-b', hints=['zone-a'], node_hints=['node-b']),
                     endpoint('10.244.4.1', ready=False))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.1.6:8080'],
        {'10.96.0.20'}, {}, [], id='topology-node-hints-prefer-same-node'),
    pytest.param(
        [web(), pods(endpoint('10.244.2.7', node='node-b', hints=['zone-a'], node_hints=['node-b']),
                     endpoint('10.244.3.9', node='node-c', hints=['zone-c'], node_hints=['node-c']))],
        NODE, DEFAULT,
        # No node hint for this node: the zone hints, then (none for zone-a but one) all ready.
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.2.7:8080'],
        {'10.96.0.20'}, {}, [], id='topology-node-hints-none-for-this-node-zone-hints-used'),
    pytest.param(
        [web(), pods(endpoint('10.244.1.5', node_hints=['node-a']), endpoint('10.244.2.7', node='node-b'))],
        NODE, DEFAULT,
        ['cluster_ip tcp 10.96.0.20:80 rr -> 10.244.1.5:8080 10.244.2.7:8080'],
        {'10.96.0.20'}, {}, [], id='topology-node-hints-partial-ignored'),
    pytest.param(
        [web('s1', '10.96.1.1', annotations={'ipvs.netlb.io/scheduler': 'sh'}),
         web('s2', '10.96.1.2', annotations={'ipvs.netlb.io/scheduler': 'mh'}), web('s3', '10.96.1.3')],
        NODE, ProxyOptions(scheduler='mh'),
        # kube-proxy sets mh-port on its mh services (the hash takes the source port too).
        ['cluster_ip tcp 10.96.1.1:80 sh -> (none)',
         'cluster_ip tcp 10.96.1.2:80 mh flags mh-port -> (none)',
         'cluster_ip tcp 10.96.1.3:80 mh flags mh-port -> (none)'],
        {'10.96.1.1', '10.96.1.2', '10.96.1.3'}, {}, [], id='scheduler-mh-port-by-default'),
    pytest.param(
        [web('s1', '10.96.1.1', annotations={'ipvs.netlb.io/scheduler': 'sh'}),
         web('s2', '10.96.1.2', annotations={'ipvs.netlb.io/scheduler': 'mh'}), web('s3', '10.96.1.3')],
        NODE, ProxyOptions(scheduler_flags=('sh-fallback', 'sh-port', 'mh-fallback')),
        ['cluster_ip tcp 10.96.1.1:80 sh flags sh-fallback,sh-port -> (none)',
         'cluster_ip tcp 10.96.1.2:80 mh flags mh-fallback -> (none)',
         'cluster_ip tcp 10.96.1.3:80 rr -> (none)'],
        {'10.96.1.1', '10.96.1.2', '10.96.1.3'}, {}, [], id='scheduler-flags-each-to-its-scheduler'),
]


@pytest.mark.parametrize('objects, node_context, options, lines, dummy, skipped, warnings', CASES)
def test_translate(objects, node_context, options, lines, dummy, skipped, warnings):
    result = translate(snapshot(objects), node_context, options)
    assert [line(vs, port) for vs, port in zip(result.services, result.ports)] == lines
    assert result.dummy_addresses == frozenset(dummy)
    assert result.skipped == skipped
    assert len(result.warnings) == len(warnings), result.warnings
    for got, want in zip(result.warnings, warnings):
        assert got.startswith(want), (got, want)
    assert result.seen == sum(1 for obj in objects if obj['kind'] == 'Service')
    check_invariants(result, objects, node_context, options)


WEB6 = service('web6', '10.96.0.70', cluster_ips=['10.96.0.70', 'fd00:96::70'], ip_families=['IPv4', 'IPv6'],
               ports=[service_port(80)])
WEB6_PODS = [endpoint_slice('web6', [endpoint('10.244.1.5'), endpoint('10.244.2.7', node='node-b')], name='web6-v4'),
             endpoint_slice('web6', [endpoint('fd00:244::5'), endpoint('fd00:244::7', node='node-b')], name='web6-v6',
                            address_type='IPv6')]


# Columns: objects, options, the expected local_endpoints (hairpin pairs of the packet rules).
@pytest.mark.parametrize('objects, options, local_endpoints', [
    pytest.param([web(), pods(endpoint('10.244.1.5'), endpoint('10.244.2.7', node='node-b'),
                              endpoint('10.244.3.7', node=None))],
                 DEFAULT, {'10.244.1.5'}, id='this-nodes-endpoint-only'),
    pytest.param([web(), pods(endpoint('10.244.1.6', ready=False, serving=False), rollout_old('10.244.1.4'))],
                 DEFAULT, {'10.244.1.4', '10.244.1.6'}, id='whatever-the-conditions'),
    pytest.param([web(), pods(endpoint('192.168.10.11'), endpoint('10.244.1.5'))],
                 DEFAULT, {'10.244.1.5'}, id='host-network-pod-on-a-node-address-left-out'),
    pytest.param([WEB6] + WEB6_PODS, DEFAULT, {'10.244.1.5', 'fd00:244::5'}, id='dual-stack'),
    pytest.param([WEB6] + WEB6_PODS, ProxyOptions(families=(4,)), {'10.244.1.5'}, id='dual-stack-ipv4-proxy-only'),
    pytest.param([web(), pods(endpoint('10.244.1.5'), ports=[slice_port(9090, 'metrics')])],
                 DEFAULT, set(), id='slice-without-a-port-of-the-service'),
    pytest.param([service('db', 'None'), pods(endpoint('10.244.1.5'), service='db')],
                 DEFAULT, set(), id='headless-service-not-proxied'),
    pytest.param([service('legacy-db', '10.96.0.60', ports=[service_port(5432, name='pg')], selector=None),
                  legacy_endpoints('legacy-db', [endpoints_subset(['10.244.1.8'], [{'name': 'pg', 'port': 5432}],
                                                                  not_ready=['10.244.1.9'])])],
                 DEFAULT, {'10.244.1.8', '10.244.1.9'}, id='legacy-endpoints'),
    pytest.param([web(), web('web2', '10.96.0.21'), pods(endpoint('10.244.1.5')),
                  pods(endpoint('10.244.1.5'), name='web-fghij'), pods(endpoint('10.244.1.5'), service='web2')],
                 DEFAULT, {'10.244.1.5'}, id='one-address-once'),
])
def test_local_endpoints(objects, options, local_endpoints):
    result = translate(snapshot(objects), NODE, options)
    assert result.local_endpoints == frozenset(local_endpoints)
    check_invariants(result, objects, NODE, options)


@pytest.mark.parametrize('options', [
    pytest.param(DEFAULT, id='default'),
    pytest.param(ProxyOptions(node_port_addresses=('primary',)), id='node-ports-on-primary-only'),
    pytest.param(ProxyOptions(node_port_addresses=('10.0.0.0/8',)), id='node-ports-on-a-cidr'),
])
def test_node_addresses_for_source_ranges(options):
    """Every address of the node but loopback, IPv6 link-local and the dummy interface's,
    whichever addresses serve NodePorts."""
    result = translate(snapshot([web()]), NODE, options)
    assert result.node_addresses == frozenset(['192.168.10.11', 'fd00:10::11', '10.0.0.11'])


def test_a_source_range_with_a_zone_id_never_reaches_the_packet_rules():
    """The nft text the translation becomes holds no zone id, and the load-balancer IP of
    the range's family is not served (rather than served to everyone)."""
    objects = [service('api', '10.96.0.40', cluster_ips=['10.96.0.40', 'fd00:96::40'], type='LoadBalancer',
                       ports=[service_port(443)], lb_ingress=[{'ip': '203.0.113.10'}, {'ip': '2001:db8::10'}],
                       source_ranges=['192.0.2.0/24', 'fd00::%eth0/64'])]
    result = translate(snapshot(objects), NODE, DEFAULT)
    text = packet_rules.render(result.ports, result.dummy_addresses, packet_rules.Options(), result.local_endpoints,
                               result.node_addresses)
    assert '%' not in text
    assert '203.0.113.10 . tcp . 443 . 192.0.2.0/24' in text
    assert '2001:db8::10' not in text


def test_health_check_node_ports_of_local_load_balancers():
    """spec.healthCheckNodePort of every proxied LoadBalancer Service with
    externalTrafficPolicy Local (the module returns them: it does not serve them)."""
    objects = []
    for i, (name, policy, labels, port) in enumerate((
            ('api', 'Local', None, 32001), ('cluster-lb', 'Cluster', None, 32002), ('bad', 'Local', None, 'x'),
            ('other-proxy', 'Local', {'service.kubernetes.io/service-proxy-name': 'x'}, 32004))):
        objects.append(service(name, '10.96.0.4%d' % i, type='LoadBalancer', external_policy=policy, labels=labels,
                               ports=[service_port(443, node_port=31440 + i)],
                               lb_ingress=[{'ip': '203.0.113.1%d' % i}]))
        objects[-1]['spec']['healthCheckNodePort'] = port
    result = translate(snapshot(objects), NODE, DEFAULT)
    assert result.health_check_node_ports == {'default/api': 32001}
    assert result.warnings == ["Service default/bad: spec.healthCheckNodePort: expected an integer, got 'x', "
                               'left out of health_check_node_ports']
    assert '10.96.0.42' in result.dummy_addresses  # the Service itself is still served
    assert not result.stopped


def test_a_translation_that_stopped_early_is_refused(monkeypatch):
    """A fault of the translator itself (not of an object): the table is partial, so
    refuse_incomplete refuses it naming the fault; a complete one passes."""
    objects = [web(), pods(endpoint('10.244.1.5'))]
    complete = translate(snapshot(objects), NODE, DEFAULT)
    assert complete.stopped == '' and complete.services
    translator.refuse_incomplete(complete)

    def broken(*_args):
        raise KeyError('boom')

    monkeypatch.setattr(translator, 'option_networks', broken)
    stopped = translate(snapshot(objects), NODE, DEFAULT)
    assert stopped.stopped == "KeyError: 'boom'"
    assert stopped.warnings[-1] == "translation stopped early: KeyError: 'boom'"
    with pytest.raises(translator.IncompleteTranslationError, match="stopped early .KeyError: 'boom'.; nothing was changed"):
        translator.refuse_incomplete(stopped)


def check_invariants(result, objects, node_context, options):
    """What every translation keeps, whatever the input."""
    # One ServicePort per VirtualService, in the same order, describing the same VIP.
    assert len(result.services) == len(result.ports)
    for vs, port in zip(result.services, result.ports):
        assert isinstance(vs, VirtualService) and isinstance(port, ServicePort)
        assert vs.key == ServiceKey.tcp_udp(port.protocol, port.address, port.port)  # named constructor == full parse
        assert vs.key.family == port.family and port.kind in KINDS
        assert port.source_ranges == () or port.kind == LOAD_BALANCER
        assert all(rs.weight == 1 and rs.forwarding == 'masq' for rs in vs.real_servers)
        assert vs.scheduler in SCHEDULERS
    # Sorted by key, each key once.
    keys = [vs.key for vs in result.services]
    assert keys == sorted(set(keys))
    # No NodePort address and no address of another interface is bound to the dummy interface.
    node_port_addresses = {port.address for port in result.ports if port.kind == NODE_PORT}
    assert not result.dummy_addresses & node_port_addresses
    own = {canonical_address(text.split('/')[0]) for interface, text in node_context.addresses
           if interface != options.dummy_interface}
    assert not result.dummy_addresses & own
    # No hairpin pair for an address of the node itself.
    assert not result.local_endpoints & own
    # Rule 10: no external or load-balancer IP is the node's; an external IP is inside the
    # allowed CIDRs and outside the service CIDRs; neither holds a cluster IP's key.
    node_owned = own | {canonical_address(text) for text in node_context.primary}
    allowed = [ipaddress.ip_network(text) for text in options.external_ips_allowed_cidrs]
    service_cidrs = [ipaddress.ip_network(text) for text in options.service_cidrs]
    for port in result.ports:
        if port.kind in (EXTERNAL_IP, LOAD_BALANCER):
            assert port.address not in node_owned
        if port.kind == EXTERNAL_IP:
            ip = ipaddress.ip_address(port.address)
            assert any(ip in net for net in allowed) and not any(ip in net for net in service_cidrs)
    cluster_keys = set()
    for obj in objects:
        spec = obj.get('spec') if obj.get('kind') == 'Service' else None
        for ip in (spec or {}).get('clusterIPs') or ():
            for svc_port in spec.get('ports') or ():
                try:
                    cluster_keys.add(ServiceKey.tcp_udp(svc_port.get('protocol', 'TCP').lower(), ip, svc_port['port']))
                except (ValueError, TypeError, KeyError):
                    pass  # a malformed Service, left out anyway
    assert not [vs.key for vs, port in zip(result.services, result.ports)
                if vs.key in cluster_keys and port.kind in (EXTERNAL_IP, LOAD_BALANCER)]
    # Every dummy address is the VIP of a virtual service made.
    assert result.dummy_addresses <= {port.address for port in result.ports}
    assert all(refs == sorted(refs) for refs in result.skipped.values())
    # Deterministic, and independent of the order the API listed the objects in.
    again = translate(snapshot(objects), node_context, options)
    shuffled = list(objects)
    random.Random(7).shuffle(shuffled)
    for other in (again, translate(snapshot(shuffled[::-1]), node_context, options)):
        assert other.services == result.services and other.ports == result.ports
        assert other.dummy_addresses == result.dummy_addresses and other.skipped == result.skipped
        assert other.local_endpoints == result.local_endpoints
        assert sorted(other.warnings) == sorted(result.warnings)
    # The input is not modified.
    assert objects == copy.deepcopy(objects)


def test_collector_left_as_found():
    """translate() leaves the cyclic collector as found, on or off: the shells decide it (test__gc)."""
    objects = [service('web', '10.96.0.10', ports=[service_port(80, name='http')]),
               endpoint_slice('web', [endpoint('10.244.1.5')], ports=[slice_port(8080, name='http')])]
    assert gc.isenabled()
    result = translate(snapshot(objects), NODE, DEFAULT)
    assert gc.isenabled()
    assert [line(vs, port) for vs, port in zip(result.services, result.ports)] == [
        'cluster_ip tcp 10.96.0.10:80 rr -> 10.244.1.5:8080']
    gc.disable()
    try:
        assert translate(snapshot(objects), NODE, DEFAULT).services == result.services
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_field_order_of_records_built_by_name():
    """The translator builds these by keyword; pin the fields so a reorder shows."""
    assert RealServer._fields[:4] == ('address', 'port', 'weight', 'forwarding')
    assert ServiceKey._fields == ('protocol', 'address', 'port', 'fwmark', 'family')
    assert ServicePort._fields == ('kind', 'family', 'protocol', 'address', 'port', 'local', 'source_ranges',
                                   'service')


@pytest.mark.parametrize('text', [
    '10.0.0.1', '255.255.255.255', '0.0.0.0', 'fd00::1', 'FD00::1', 'fd00:0:0:0:0:0:0:1', '2001:db8:0:0:1:0:0:1',
    '2001:0db8::1', '::', '::1', '::ffff:10.0.0.1', '::ffff:a00:1', '64:ff9b::10.0.0.1', 'fe80::1:0:0:0',
    '1:0:0:2:0:0:0:3',
])
def test_fast_canonical_equals_the_models_canonical_form(text):
    address, family = fast_canonical(text)
    assert address == canonical_address(text)
    assert family == (6 if ':' in text else 4)


@pytest.mark.parametrize('text', ['10.0.0.256', '010.0.0.1', '10.0.0', '10.0.0.1 ', 'fd00::1::2', 'example.com', '',
                                  '[fd00::1]', 'fe80::1%eth0', None, 10, ['10.0.0.1']])
def test_fast_canonical_rejects_what_is_not_an_address(text):
    assert fast_canonical(text) == (None, None)


ROUNDS = int(os.environ.get('NETLB_FUZZ_ROUNDS', '400'))
BAD_VALUES = [None, '', 'x', -1, 0, 70000, True, 1.5, [], {}, ['x'], {'x': 1}, '10.0.0.300', 'fd00::1']


def _paths(value, path=()):
    """Every (path, value) in a JSON-like value."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, path + (i,))


def _set(obj, path, value):
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def test_any_broken_field_is_a_warning_never_an_exception():
    """Replace one field anywhere in a realistic snapshot by a wrong value: translate()
    still returns, and everything it returns keeps the invariants."""
    base = [obj for case in CASES for obj in case.values[0]]
    rng = random.Random(1)
    for _round in range(ROUNDS):
        objects = copy.deepcopy(base)
        target = rng.choice(objects)
        path, _old = rng.choice([entry for entry in _paths(target) if entry[0] and entry[0] != ('kind',)])
        _set(target, path, rng.choice(BAD_VALUES))
        result = translate(snapshot(objects), NODE, DEFAULT)
        assert not [w for w in result.warnings if 'stopped early' in w or 'unexpected' in w], (path, result.warnings)
        keys = [vs.key for vs in result.services]
        assert keys == sorted(set(keys)) and len(result.ports) == len(keys)
