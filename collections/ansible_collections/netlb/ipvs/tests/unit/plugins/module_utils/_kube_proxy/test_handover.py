# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kubeadm hand-over against the stand-in API server (tests/kube_api): the affinity is
written once and kept with what was there, nodes are labelled, a second run writes
nothing, check mode writes nothing, a missing node changes nothing."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import connection_options_from_params
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import handover

DS_PATH = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
NODE_PATH = '/api/v1/nodes/'
OURS = {'key': 'netlb.io/kube-proxy', 'operator': 'NotIn', 'values': ['absent']}
# kubeadm's own pod spec has a nodeSelector; an operator may have added an affinity too.
THEIRS = {'key': 'node-role.kubernetes.io/edge', 'operator': 'DoesNotExist'}
PREFERRED = [{'weight': 1, 'preference': {'matchExpressions': [{'key': 'zone', 'operator': 'In', 'values': ['a']}]}}]


def daemonset(pod_spec):
    return {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
            'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}},
                     'template': {'metadata': {'labels': {'k8s-app': 'kube-proxy'}}, 'spec': pod_spec}}}


def node(name, labels=None):
    return {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name, 'labels': dict(labels or {})}}


@pytest.fixture
def options(kube_api, tmp_path):
    return connection_options_from_params({'kubeconfig': kube_api.write_kubeconfig(str(tmp_path / 'kc'))}, environ={})


def writes(server):
    return [request for request in server.requests if request.method != 'GET']


def pod_spec(server):
    return server.get(DS_PATH)['spec']['template']['spec']


def test_affinity_written_once_then_each_node_only_labelled(kube_api, options):
    kube_api.add(daemonset({'nodeSelector': {'kubernetes.io/os': 'linux'}, 'containers': []}),
                 node('n1', {'kubernetes.io/hostname': 'n1'}), node('n2'))
    read_version = kube_api.get(DS_PATH)['metadata']['resourceVersion']
    result = handover.apply(options, nodes=['n1'])
    assert (result['changed'], result['daemonset_changed'], result['labelled']) == (True, True, ['n1'])
    patches = kube_api.requests_to(DS_PATH, 'PATCH')
    assert len(patches) == 1 and patches[0].body['metadata']['resourceVersion'] == read_version
    assert 'merge-patch' in patches[0].headers.get('content-type', '')
    spec = pod_spec(kube_api)
    assert spec['nodeSelector'] == {'kubernetes.io/os': 'linux'}
    assert spec['affinity'] == {'nodeAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': {
        'nodeSelectorTerms': [{'matchExpressions': [OURS]}]}}}
    assert kube_api.get(NODE_PATH + 'n1')['metadata']['labels'] == {
        'kubernetes.io/hostname': 'n1', 'netlb.io/kube-proxy': 'absent'}
    assert 'netlb.io/kube-proxy' not in kube_api.get(NODE_PATH + 'n2')['metadata']['labels']

    # The next node: only its label is written; the DaemonSet is read and left alone.
    kube_api.requests.clear()
    result = handover.apply(options, nodes=['n2'])
    assert (result['changed'], result['daemonset_changed'], result['labelled']) == (True, False, ['n2'])
    assert [(r.method, r.path) for r in writes(kube_api)] == [('PATCH', NODE_PATH + 'n2')]
    assert 'merge-patch' in writes(kube_api)[0].headers.get('content-type', '')

    # Everything done: a run writes nothing.
    kube_api.requests.clear()
    result = handover.apply(options, nodes=['n1', 'n2'])
    assert (result['changed'], result['labelled']) == (False, [])
    assert writes(kube_api) == []


def test_an_existing_affinity_is_kept_and_ours_added_to_every_term(kube_api, options):
    spec = {'nodeSelector': {'kubernetes.io/os': 'linux'}, 'affinity': {
        'nodeAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
            {'matchExpressions': [THEIRS]},
            {'matchFields': [{'key': 'metadata.name', 'operator': 'In', 'values': ['n9']}]}]},
            'preferredDuringSchedulingIgnoredDuringExecution': PREFERRED},
        'podAntiAffinity': {'x': 1}}}
    kube_api.add(daemonset(spec))
    result = handover.apply(options)
    assert result['daemonset_changed'] and result['labelled'] == []
    after = pod_spec(kube_api)
    assert after['nodeSelector'] == {'kubernetes.io/os': 'linux'}
    assert after['affinity']['podAntiAffinity'] == {'x': 1}
    node_affinity = after['affinity']['nodeAffinity']
    assert node_affinity['preferredDuringSchedulingIgnoredDuringExecution'] == PREFERRED
    assert node_affinity['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms'] == [
        {'matchExpressions': [THEIRS, OURS]},
        {'matchFields': [{'key': 'metadata.name', 'operator': 'In', 'values': ['n9']}], 'matchExpressions': [OURS]}]
    diff = result['diff'].diff()
    assert 'podAntiAffinity' in diff['before'] and diff['before'] != diff['after']
    assert diff['before_header'] == diff['after_header'] == 'DaemonSet kube-system/kube-proxy affinity'
    kube_api.requests.clear()
    assert handover.apply(options)['changed'] is False and writes(kube_api) == []


def test_check_mode_plans_and_writes_nothing(kube_api, options):
    kube_api.add(daemonset({'containers': []}), node('n1'))
    before = (kube_api.get(DS_PATH), kube_api.get(NODE_PATH + 'n1'))
    result = handover.apply(options, nodes=['n1'], check_mode=True)
    assert (result['changed'], result['daemonset_changed'], result['labelled']) == (True, True, ['n1'])
    diff = result['diff'].diff()
    assert '"NotIn"' in diff['after'] and diff['before'] == '{}\n'
    assert writes(kube_api) == [] and (kube_api.get(DS_PATH), kube_api.get(NODE_PATH + 'n1')) == before


def test_a_missing_node_fails_with_nothing_written(kube_api, options):
    kube_api.add(daemonset({'containers': []}), node('n1'))
    with pytest.raises(SourceError, match=r'^reading Node gone on https://127\.0\.0\.1:\d+: 404 Not Found: '
                                          r'nodes "gone" not found$'):
        handover.apply(options, nodes=['n1', 'gone'])
    assert writes(kube_api) == []


def test_a_conflict_is_retried_from_a_fresh_read(kube_api, options):
    kube_api.add(daemonset({'containers': []}))
    kube_api.fault('status', path=DS_PATH, method='PATCH', times=1, code=409)
    result = handover.apply(options)
    assert (result['daemonset_changed'], result['attempts']) == (True, 2)
    assert pod_spec(kube_api)['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution'] == {
        'nodeSelectorTerms': [{'matchExpressions': [OURS]}]}


def test_an_own_label_key(kube_api, options):
    kube_api.add(daemonset({'containers': []}), node('n1'))
    handover.apply(options, nodes=['n1'], label='example.org/proxy')
    assert kube_api.get(NODE_PATH + 'n1')['metadata']['labels'] == {'example.org/proxy': 'absent'}
    terms = pod_spec(kube_api)['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution']
    assert terms['nodeSelectorTerms'][0]['matchExpressions'][0]['key'] == 'example.org/proxy'


def test_restore_removes_the_label_keeps_the_others_and_skips_unknown_nodes(kube_api, options):
    kube_api.add(daemonset({'containers': []}), node('n1', {'kubernetes.io/hostname': 'n1'}), node('n2'))
    handover.apply(options, nodes=['n1', 'n2'])
    affinity = pod_spec(kube_api)['affinity']
    kube_api.requests.clear()

    checked = handover.restore(options, nodes=['n1', 'gone'], check_mode=True)
    assert (checked['changed'], checked['unlabelled'], checked['missing']) == (True, ['n1'], ['gone'])
    diff = checked['diff'].diff()
    assert (diff['before'], diff['after']) == ('n1 netlb.io/kube-proxy=absent\n', '')
    assert diff['before_header'] == diff['after_header'] == 'Node labels netlb.io/kube-proxy'
    assert writes(kube_api) == []

    result = handover.restore(options, nodes=['n1', 'gone'])
    assert {key: result[key] for key in ('changed', 'unlabelled')} == {
        key: checked[key] for key in ('changed', 'unlabelled')}
    assert result['diff'].diff() == checked['diff'].diff()
    assert [(r.method, r.path) for r in writes(kube_api)] == [('PATCH', NODE_PATH + 'n1')]
    assert kube_api.get(NODE_PATH + 'n1')['metadata']['labels'] == {'kubernetes.io/hostname': 'n1'}
    assert kube_api.get(NODE_PATH + 'n2')['metadata']['labels'] == {'netlb.io/kube-proxy': 'absent'}
    assert pod_spec(kube_api)['affinity'] == affinity  # the DaemonSet is not touched

    kube_api.requests.clear()
    assert handover.restore(options, nodes=['n1'])['changed'] is False and writes(kube_api) == []
