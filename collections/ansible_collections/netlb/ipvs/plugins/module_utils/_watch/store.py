# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watcher's copy of the cluster: the objects a sync is made from, keyed by kind,
namespace and name, kept current from lists and watch events.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    store = Store()
    store.replace('Service', None, items)          # a list answer: the whole kind (or one namespace of it)
    store.apply('MODIFIED', obj)                   # a watch event: True when the store changed
    snapshot = store.snapshot(origin)              # a ClusterSnapshot for proxy.sync

Bounded: it holds exactly the objects the cluster has now (a deleted object goes, a list
drops what it no longer names), one entry each, nothing else. Objects are kept as
decoded less what no sync reads (slim(): managedFields, annotations other than the
scheduler's, an endpoint's targetRef; in a real cluster managedFields alone are often
half of an object, as kube-proxy's informers strip them too) and handed to the
translator as they are (it never changes them).
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate_service
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot

KINDS = ('Service', 'EndpointSlice', 'Node')
EVENTS = ('ADDED', 'MODIFIED', 'DELETED')


class Malformed(ValueError):
    """An object without the metadata a store needs (a dict with metadata.name)."""


def key_of(kind, obj):
    """(kind, namespace, name) of obj; Malformed when it has no name."""
    metadata = obj.get('metadata') if isinstance(obj, dict) else None
    name = metadata.get('name') if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise Malformed('a %s without metadata.name: %.120r' % (kind, obj))
    namespace = metadata.get('namespace') or ''
    if not isinstance(namespace, str):
        raise Malformed('%s %s: metadata.namespace %r is not a string' % (kind, name, namespace))
    return kind, namespace, name


def resource_version(obj):
    """metadata.resourceVersion of obj, or None."""
    metadata = obj.get('metadata') if isinstance(obj, dict) else None
    version = metadata.get('resourceVersion') if isinstance(metadata, dict) else None
    return version if isinstance(version, str) and version else None


# The only annotations a sync reads (the Service's scheduler).
KEPT_ANNOTATIONS = (translate_service.SCHEDULER_ANNOTATION, translate_service.KUBE_ROUTER_SCHEDULER_ANNOTATION)
# Per endpoint of an EndpointSlice: who the endpoint is (a Pod), which no sync reads.
DROPPED_ENDPOINT_FIELDS = ('targetRef', 'deprecatedTopology')


def slim(kind, obj):
    """obj less what no sync reads: metadata.managedFields, the annotations not in
    KEPT_ANNOTATIONS, each EndpointSlice endpoint's DROPPED_ENDPOINT_FIELDS. obj itself is
    not changed (a copy of what changes, the rest shared); obj when nothing goes."""
    metadata = obj.get('metadata')
    if isinstance(metadata, dict):
        annotations = metadata.get('annotations')
        if 'managedFields' in metadata or (isinstance(annotations, dict) and any(
                name not in KEPT_ANNOTATIONS for name in annotations)):
            metadata = dict((name, value) for name, value in metadata.items() if name != 'managedFields')
            if isinstance(annotations, dict):
                kept = dict((name, value) for name, value in annotations.items() if name in KEPT_ANNOTATIONS)
                if kept:
                    metadata['annotations'] = kept
                else:
                    del metadata['annotations']
            obj = dict(obj, metadata=metadata)
    endpoints = obj.get('endpoints') if kind == 'EndpointSlice' else None
    if isinstance(endpoints, list) and any(isinstance(endpoint, dict) and any(
            field in endpoint for field in DROPPED_ENDPOINT_FIELDS) for endpoint in endpoints):
        obj = dict(obj, endpoints=[
            dict((name, value) for name, value in endpoint.items() if name not in DROPPED_ENDPOINT_FIELDS)
            if isinstance(endpoint, dict) else endpoint for endpoint in endpoints])
    return obj


def _labels(obj):
    return (obj.get('metadata') or {}).get('labels') or {}


class Store(object):
    """kind -> {(namespace, name): object}."""

    def __init__(self):
        self.objects = dict((kind, {}) for kind in KINDS)

    def __len__(self):
        return sum(len(objects) for objects in self.objects.values())

    def replace(self, kind, namespace, items):
        """A list answer for kind (namespace None: all of them): the objects it names, and
        only those, are the store's. Malformed items are left out; returns their errors."""
        objects = self.objects[kind]
        if namespace is None:
            objects.clear()
        else:
            for stale in [key for key in objects if key[0] == namespace]:
                del objects[stale]
        problems = []
        for item in items:
            try:
                _kind, item_namespace, name = key_of(kind, item)
            except Malformed as exc:
                problems.append(str(exc))
                continue
            objects[(item_namespace, name)] = slim(kind, item)
        return problems

    def apply(self, kind, event, obj):
        """One watch event (ADDED, MODIFIED, DELETED) for kind. True when the store
        changed in what a sync reads (a MODIFIED to the same resourceVersion does not, nor a
        Node's but for its labels); Malformed otherwise."""
        if event not in EVENTS:
            raise Malformed('%s event %r is not one of %s' % (kind, event, ', '.join(EVENTS)))
        _kind, namespace, name = key_of(kind, obj)
        objects = self.objects[kind]
        if event == 'DELETED':
            return objects.pop((namespace, name), None) is not None
        old = objects.get((namespace, name))
        objects[(namespace, name)] = slim(kind, obj)
        if old is None:
            return True
        if kind == 'Node':  # only its labels (the zone) shape a sync, not the kubelet's heartbeats
            return _labels(old) != _labels(obj)
        return resource_version(old) is None or resource_version(old) != resource_version(obj)

    def snapshot(self, origin=''):
        """The ClusterSnapshot of what the store holds, in the apiserver's order
        (namespace, name). Legacy Endpoints are not watched: the EndpointSlice mirroring
        controller gives selector-less Services their slices."""
        nodes = self.objects['Node']
        return ClusterSnapshot(
            services=[obj for _key, obj in sorted(self.objects['Service'].items())],
            endpoint_slices=[obj for _key, obj in sorted(self.objects['EndpointSlice'].items())],
            endpoints=[], node=next(iter(nodes.values())) if nodes else None, origin=origin)
