# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pipeline.fingerprint, what netlb-ipvs reconcile tells drift from a new input by: the
same cluster and options give the same digest whatever the order of the answer, and any
change of an object (its resourceVersion, or the whole object when it has none) or of an
option gives another. The run itself is tested through the module
(modules/test_k8s_service_proxy.py) and netlb-ipvs (_reconcile/test_run.py)."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s import snapshots

PARAMS = {'source': 'api', 'node_name': objects.NODE, 'service_cidrs': ['10.96.0.0/12'], 'scheduler': 'rr'}


def build():
    """Services carry a resourceVersion, the slices and Endpoints none. Built once (BASE):
    the builders number uids and pod names afresh on every call."""
    web = objects.service('web', cluster_ip='10.96.0.20')
    web['metadata']['resourceVersion'] = '1001'
    dns = objects.service('dns', cluster_ip='10.96.0.10', namespace='kube-system')
    dns['metadata']['resourceVersion'] = '1002'
    return snapshots.snapshot([
        web, objects.endpoint_slice('web', [objects.endpoint('10.244.1.11'), objects.endpoint('10.244.1.12')]),
        dns, objects.endpoint_slice('dns', [objects.endpoint('10.244.2.21')], namespace='kube-system'),
        objects.legacy_endpoints('legacy', [objects.endpoints_subset(['10.0.0.5'], [{'port': 80}])]),
    ])


BASE = build()


def base():
    return copy.deepcopy(BASE)


def reordered(snapshot, params):
    return dataclasses.replace(snapshot, services=snapshot.services[::-1],
                               endpoint_slices=snapshot.endpoint_slices[::-1]), params


def keys_reordered(snapshot, params):
    """The same JSON with its keys in another order (another client, another decoder)."""
    def backwards(value):
        if isinstance(value, dict):
            return dict((key, backwards(value[key])) for key in reversed(list(value)))
        if isinstance(value, list):
            return [backwards(item) for item in value]
        return value
    return dataclasses.replace(snapshot, endpoint_slices=backwards(snapshot.endpoint_slices)), \
        dict(reversed(list(params.items())))


def new_resource_version(snapshot, params):
    snapshot.services[0]['metadata']['resourceVersion'] = '2001'
    return snapshot, params


def same_resource_version_other_spec(snapshot, params):
    """The apiserver changes the resourceVersion with every write: the version stands for the object."""
    snapshot.services[0]['spec']['ports'][0]['port'] = 8080
    return snapshot, params


def service_added(snapshot, params):
    snapshot.services.append(objects.service('api', cluster_ip='10.96.0.21'))
    return snapshot, params


def service_gone(snapshot, params):
    del snapshot.services[1]
    return snapshot, params


def slice_changed(snapshot, params):
    snapshot.endpoint_slices[0]['endpoints'][0]['conditions']['ready'] = False
    return snapshot, params


def endpoints_changed(snapshot, params):
    snapshot.endpoints[0]['subsets'][0]['addresses'][0]['ip'] = '10.0.0.6'
    return snapshot, params


def node_read(snapshot, params):
    return dataclasses.replace(snapshot, node={'kind': 'Node', 'metadata': {
        'name': objects.NODE, 'resourceVersion': '7', 'labels': {'topology.kubernetes.io/zone': 'zone-a'}}}), params


def node_status_written(snapshot, params):
    """The kubelet's heartbeat: a new resourceVersion, the same labels."""
    snapshot, params = node_read(snapshot, params)
    snapshot.node['metadata']['resourceVersion'] = '8'
    return snapshot, params


def node_addresses_changed(snapshot, params):
    """What node_port_addresses primary reads: another InternalIP."""
    snapshot, params = node_read(snapshot, params)
    snapshot.node['status'] = {'addresses': [{'type': 'InternalIP', 'address': '192.168.10.99'}]}
    return snapshot, params


def node_zone_changed(snapshot, params):
    snapshot, params = node_read(snapshot, params)
    snapshot.node['metadata']['labels']['topology.kubernetes.io/zone'] = 'zone-b'
    return snapshot, params


def option_changed(snapshot, params):
    return snapshot, dict(params, scheduler='wlc')


def option_added(snapshot, params):
    return snapshot, dict(params, masquerade='all')


@pytest.mark.parametrize('change, same', [
    pytest.param(reordered, True, id='objects in another order'),
    pytest.param(keys_reordered, True, id='keys in another order'),
    pytest.param(same_resource_version_other_spec, True, id='same resourceVersion'),
    pytest.param(new_resource_version, False, id='a new resourceVersion'),
    pytest.param(service_added, False, id='a Service added'),
    pytest.param(service_gone, False, id='a Service gone'),
    pytest.param(slice_changed, False, id='a slice without resourceVersion changed'),
    pytest.param(endpoints_changed, False, id='Endpoints without resourceVersion changed'),
    pytest.param(node_read, False, id='the Node read (its zone label)'),
    pytest.param(option_changed, False, id='an option changed'),
    pytest.param(option_added, False, id='an option added'),
])
def test_fingerprint(change, same):
    """Changes that would change the translation change the digest; the rest do not."""
    digest = pipeline.fingerprint(base(), dict(PARAMS))
    assert pipeline.fingerprint(base(), dict(PARAMS)) == digest  # nothing random in it
    snapshot, params = change(base(), dict(PARAMS))
    assert (pipeline.fingerprint(snapshot, params) == digest) is same


@pytest.mark.parametrize('change, same', [
    pytest.param(node_status_written, True, id='the Node rewritten by its kubelet'),
    pytest.param(node_zone_changed, False, id='the Node in another zone'),
    pytest.param(node_addresses_changed, False, id='the Node with another address'),
])
def test_fingerprint_of_the_node_is_its_labels_and_addresses(change, same):
    digest = pipeline.fingerprint(*node_read(base(), dict(PARAMS)))
    assert (pipeline.fingerprint(*change(base(), dict(PARAMS))) == digest) is same


def test_fingerprint_tells_the_kinds_apart():
    """The same object under another kind is another input."""
    service = objects.service('web')
    as_service = snapshots.snapshot([service])
    as_node = dataclasses.replace(snapshots.snapshot([]), node=service)
    assert pipeline.fingerprint(as_service, PARAMS) != pipeline.fingerprint(as_node, PARAMS)


@pytest.mark.parametrize('params, merged', [
    pytest.param({}, pipeline.DEFAULTS, id='nothing given'),
    pytest.param({'page_size': None, 'source': None}, pipeline.DEFAULTS, id='None takes the default'),
    pytest.param({'page_size': 50, 'scheduler': 'wlc'}, dict(pipeline.DEFAULTS, page_size=50, scheduler='wlc'),
                 id='given ones kept'),
])
def test_with_defaults(params, merged):
    assert pipeline.with_defaults(params) == merged
