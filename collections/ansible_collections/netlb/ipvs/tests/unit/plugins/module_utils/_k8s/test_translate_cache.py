# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""translate(..., cache=): after every step of scripted and random event sequences
(the watcher's store fed by events), the translation made with the cache is the whole
translation of the same snapshot, and only the Services the step touched were
translated again."""

from __future__ import annotations

import copy
import random

from kube_api import objects as o

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate as translator
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import NodeContext, ProxyOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_cache import TranslationCache
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.store import Store
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.snapshots import node

OPTIONS = ProxyOptions(service_cidrs=('10.96.0.0/12',), external_ips_allowed_cidrs=('203.0.113.0/24',))


class World(object):
    """The watcher's store, this node's context and the options, changed step by step."""

    def __init__(self):
        self.store = Store()
        self.context = node()
        self.options = OPTIONS
        self.version = 1000

    def put(self, obj):
        self.version += 1
        obj['metadata']['resourceVersion'] = str(self.version)
        self.store.apply(obj['kind'], 'ADDED', obj)

    def change(self, kind, namespace, name, edit):
        """A MODIFIED event: a new object (the store never holds an edited one)."""
        obj = copy.deepcopy(self.store.objects[kind][(namespace, name)])
        edit(obj)
        self.version += 1
        obj['metadata']['resourceVersion'] = str(self.version)
        assert self.store.apply(kind, 'MODIFIED', obj)

    def delete(self, kind, namespace, name):
        assert self.store.apply(kind, 'DELETED', self.store.objects[kind][(namespace, name)])


def check(world, cache):
    """The cached translation equals the whole one; returns how many Services' pieces it
    made again."""
    snapshot = world.store.snapshot('test')
    cached = translator.translate(snapshot, world.context, world.options, cache=cache)
    whole = translator.translate(snapshot, world.context, world.options)
    assert cached == whole
    assert not whole.stopped
    # Bounded by the cluster: one piece per Service of this snapshot, a deleted one's gone.
    assert len(cache.entries) == len(set(_ref(obj) for obj in snapshot.services))
    return cache.made


def _ref(obj):
    return '%s/%s' % (obj['metadata']['namespace'], obj['metadata']['name'])


def _endpoint(address, **kwargs):
    kwargs.setdefault('node', 'node-b')
    return o.endpoint(address, **kwargs)


def start(world):
    world.put(o.service('web', cluster_ip='10.96.0.20', ports=[o.service_port(80, name='http')]))
    world.put(o.endpoint_slice('web', [_endpoint('10.244.1.11'), _endpoint('10.244.1.12')],
                               ports=[o.slice_port(8080, name='http')]))
    world.put(o.service('api', cluster_ip='10.96.0.30', namespace='team-b', type='NodePort',
                        ports=[o.service_port(443, node_port=30443)]))
    world.put(o.endpoint_slice('api', [_endpoint('10.244.2.5')], namespace='team-b', ports=[o.slice_port(443)]))
    world.put(o.service('dns', cluster_ip='10.96.0.53', namespace='team-b',
                        ports=[o.service_port(53, protocol='UDP'), o.service_port(53, name='tcp')]))
    world.put(o.endpoint_slice('dns', [_endpoint('10.244.3.5', hints=['zone-a']), _endpoint('10.244.3.6', hints=['zone-b'])],
                               namespace='team-b', ports=[o.slice_port(53, protocol='UDP'), o.slice_port(53, name='tcp')]))
    world.put(o.service('dual', cluster_ips=['10.96.0.40', 'fd00:96::40'], ip_families=['IPv4', 'IPv6']))
    world.put(o.endpoint_slice('dual', [_endpoint('10.244.4.5')], name='dual-v4'))
    world.put(o.endpoint_slice('dual', [_endpoint('fd10::5')], name='dual-v6', address_type='IPv6'))
    world.put(o.node_object())


def endpoint_not_ready(world):
    def edit(obj):
        obj['endpoints'][0]['conditions'].update(ready=False, serving=False)
    world.change('EndpointSlice', 'default', 'web-abcde', edit)


def endpoint_on_this_node(world):
    def edit(obj):
        obj['endpoints'].append(o.endpoint('10.244.1.13'))  # node-a: a local endpoint (hairpin)
    world.change('EndpointSlice', 'default', 'web-abcde', edit)


def service_added(world):
    world.put(o.service('new', cluster_ip='10.96.0.60', namespace='team-c'))
    world.put(o.endpoint_slice('new', [_endpoint('10.244.6.1')], namespace='team-c'))


def type_to_node_port(world):
    def edit(obj):
        obj['spec'].update(type='NodePort', externalTrafficPolicy='Cluster')
        obj['spec']['ports'][0]['nodePort'] = 30080
    world.change('Service', 'default', 'web', edit)


def type_to_load_balancer(world):
    def edit(obj):
        obj['spec'].update(type='LoadBalancer', externalTrafficPolicy='Local', healthCheckNodePort=32000,
                           loadBalancerSourceRanges=['198.51.100.0/24'])
        obj['status'] = {'loadBalancer': {'ingress': [{'ip': '192.0.2.80'}]}}
    world.change('Service', 'default', 'web', edit)


def type_to_external_name(world):
    def edit(obj):
        obj['spec'] = {'type': 'ExternalName', 'externalName': 'db.example.com'}
    world.change('Service', 'team-c', 'new', edit)


def slice_moves(world):
    def edit(obj):
        obj['metadata']['labels']['kubernetes.io/service-name'] = 'dns'
        obj['ports'] = [o.slice_port(53, protocol='UDP')]
    world.change('EndpointSlice', 'team-b', 'api-abcde', edit)


def cluster_ip_claimed(world):
    # team-a/thief sorts before team-b/dns: it keeps dns's cluster IP:port, dns warns.
    world.put(o.service('thief', cluster_ip='10.96.0.53', namespace='team-a', ports=[o.service_port(53, protocol='UDP')]))


def claimer_deleted(world):
    world.delete('Service', 'team-a', 'thief')


def external_ip(world):
    def edit(obj):
        obj['spec']['externalIPs'] = ['203.0.113.9', '10.96.0.99']  # the second refused: inside the service CIDR
    world.change('Service', 'team-b', 'dns', edit)


def malformed(world):
    def edit(obj):
        obj['spec']['ports'][0]['port'] = 70000
    world.change('Service', 'team-b', 'api', edit)


def slice_deleted(world):
    world.delete('EndpointSlice', 'default', 'dual-v6')


def service_deleted(world):
    world.delete('Service', 'default', 'dual')  # its v4 slice stays, belonging to nothing


def namespace_relisted(world):
    world.store.replace('Service', 'team-c', [])  # a relist of one namespace that no longer has it
    world.store.replace('EndpointSlice', 'team-c', [])


def node_zone(world):
    def edit(obj):
        obj['metadata']['labels']['topology.kubernetes.io/zone'] = 'zone-b'
    world.change('Node', '', 'node-a', edit)
    world.context = NodeContext(name=world.context.name, zone='zone-b', addresses=world.context.addresses,
                                primary=world.context.primary)


def node_address(world):
    world.context = NodeContext(name=world.context.name, zone=world.context.zone,
                                addresses=world.context.addresses + (('eth2', '192.168.20.11/24'),),
                                primary=world.context.primary)


def address_bound(world):
    # A Service's address bound on the dummy interface (what every sync does): no piece changes.
    world.context = NodeContext(name=world.context.name, zone=world.context.zone,
                                addresses=world.context.addresses + (('kube-ipvs0', '10.96.0.53/32'),),
                                primary=world.context.primary)


def options_changed(world):
    world.options = ProxyOptions(service_cidrs=OPTIONS.service_cidrs, scheduler='wrr')


def nothing(world):
    pass


def unreadable_slice(world):
    # A slice whose owner label cannot be read: a warning of the whole translation, no piece's.
    world.put(o.endpoint_slice('x', ['10.244.9.9'], name='stray', labels={o.SERVICE_NAME_LABEL: ['x']}))


# (step, pieces made again: None = every Service's, a whole translation)
STEPS = [
    (start, None),
    (nothing, 0),
    (endpoint_not_ready, 1),
    (endpoint_on_this_node, 1),
    (service_added, 1),
    (type_to_node_port, 1),
    (type_to_load_balancer, 1),
    (type_to_external_name, 1),
    (slice_moves, 2),
    (cluster_ip_claimed, 1),
    (claimer_deleted, 0),
    (external_ip, 1),
    (malformed, 1),
    (slice_deleted, 1),
    (service_deleted, 0),
    (namespace_relisted, 0),
    (address_bound, 0),
    (node_zone, None),
    (endpoint_not_ready, 1),
    (node_address, None),
    (options_changed, None),
    (nothing, 0),
    (unreadable_slice, 0),
    (nothing, 0),
]
# Steps whose pieces are the last translation's, in its order: its assembly is reused.
SAME_PIECES = (nothing, address_bound, unreadable_slice)


def test_scripted_events_give_the_whole_translation():
    world, cache = World(), TranslationCache()
    results = []
    for step, made in STEPS:
        step(world)
        count = check(world, cache)
        expected = len(world.store.objects['Service']) if made is None else made
        assert count == expected, '%s: %d pieces made, not %d' % (step.__name__, count, expected)
        assert cache.assembled == (step not in SAME_PIECES), step.__name__
        results.append(translator.translate(world.store.snapshot('test'), world.context, world.options))
    # The steps changed what they say (the test is not comparing empty tables).
    web = [port for port in results[6].ports if port.service == 'default/web']
    assert set(port.kind for port in web) == {'cluster_ip', 'node_port', 'load_balancer'}
    assert 'team-a/thief' in [port.service for port in results[9].ports if port.address == '10.96.0.53']
    assert any('already a virtual service of Service team-a/thief' in line for line in results[9].warnings)
    assert not any('thief' in line for line in results[10].warnings)
    assert results[12].skipped.get('malformed') == ['team-b/api']
    # The reused assembly comes with this translation's own warnings.
    assert any(line.startswith('EndpointSlice default/stray: ') for line in results[-1].warnings)
    assert not any(line.startswith('EndpointSlice default/stray: ') for line in results[-3].warnings)


def test_a_piece_is_reused_only_for_the_very_same_objects():
    """An equal but new object is translated again (the cache never compares contents)."""
    world, cache = World(), TranslationCache()
    start(world)
    check(world, cache)
    world.change('Service', 'default', 'web', lambda obj: None)
    assert check(world, cache) == 1
    cache.clear()
    assert check(world, cache) == len(world.store.objects['Service'])


def test_random_event_sequences_give_the_whole_translation():
    rng = random.Random(21)
    names = [('default', 'a'), ('default', 'b'), ('team-b', 'a'), ('team-b', 'c')]
    ips = ['10.96.0.%d' % i for i in (10, 11, 12)]  # few: Services collide on them (rule 10's claims)
    types = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']

    def random_service(namespace, name):
        kind = rng.choice(types)
        return o.service(name, namespace=namespace, cluster_ip=rng.choice(ips), type=kind,
                         ports=[o.service_port(80, name='http', node_port=30000 + rng.randrange(3)
                                               if kind != 'ClusterIP' else None)],
                         external_policy=rng.choice(['Local', 'Cluster']) if kind != 'ClusterIP' else None,
                         lb_ingress=[{'ip': '192.0.2.%d' % rng.randrange(1, 3)}] if kind == 'LoadBalancer' else None,
                         external_ips=['203.0.113.%d' % rng.randrange(1, 3)] if rng.random() < 0.3 else None)

    def random_slice(namespace, index):
        owner = rng.choice(names)[1]
        endpoints = [o.endpoint('10.244.0.%d' % rng.randrange(1, 9), ready=rng.random() < 0.7,
                                node=rng.choice(['node-a', 'node-b'])) for _i in range(rng.randrange(0, 4))]
        return o.endpoint_slice(owner, endpoints, name='s%d' % index, namespace=namespace,
                                ports=[o.slice_port(8080 + rng.randrange(2), name='http')])

    world, cache = World(), TranslationCache()
    world.put(o.node_object())
    made = reused = assembled = 0
    for _step in range(300):
        roll = rng.random()
        namespace, name = rng.choice(names)
        if roll < 0.3:
            world.put(random_service(namespace, name))
        elif roll < 0.4:
            if (namespace, name) in world.store.objects['Service']:
                world.delete('Service', namespace, name)
        elif roll < 0.85:
            world.put(random_slice(namespace, rng.randrange(4)))
        elif roll < 0.95:
            key = (namespace, 's%d' % rng.randrange(4))
            if key in world.store.objects['EndpointSlice']:
                world.delete('EndpointSlice', *key)
        else:
            world.context = node(zone=rng.choice(['zone-a', 'zone-b']))
        made += check(world, cache)
        reused += cache.reused
        assembled += cache.assembled
    assert reused > made  # most steps reused most pieces
    assert 0 < assembled < 300  # some steps changed no piece (a slice moved between unready endpoints...)
