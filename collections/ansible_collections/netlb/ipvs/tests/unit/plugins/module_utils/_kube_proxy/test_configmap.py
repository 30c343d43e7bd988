# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kubeadm ConfigMap deploy against the stand-in API server (tests/kube_api): the merge
keeps what it does not manage, no write when unchanged, a write carries the
resourceVersion it read, a 409 is retried from a fresh read, the DaemonSet restarts once,
check mode writes nothing, and every failure is one line."""

from __future__ import annotations

import datetime
import os

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import connection_options_from_params
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import configmap as cm
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import render

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
CM_PATH = '/api/v1/namespaces/kube-system/configmaps/kube-proxy'
DS_PATH = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
MANAGED = render({'kube_proxy_strict_arp': True, 'kube_proxy_cluster_cidr': '10.244.0.0/16'}).config


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_merge_keeps_unmanaged_fields_golden():
    changed, after = cm.merge_config(fixture('kubeadm-config.conf'), MANAGED)
    path = os.path.join(FIXTURES, 'kubeadm-config.merged.conf')
    if os.environ.get('NETLB_REGOLDEN'):
        with open(path, 'w') as handle:
            handle.write(after)
    assert changed and after == fixture('kubeadm-config.merged.conf')
    before, merged = yaml.safe_load(fixture('kubeadm-config.conf')), yaml.safe_load(after)
    for key in ('winkernel', 'nftables', 'bindAddressHardFail', 'portRange', 'showHiddenMetricsForVersion'):
        assert merged[key] == before[key]
    assert merged['clientConnection']['kubeconfig'] == '/var/lib/kube-proxy/kubeconfig.conf'
    assert merged['logging']['options'] == before['logging']['options']
    assert (merged['mode'], merged['ipvs']['strictARP'], merged['ipvs']['syncPeriod']) == ('ipvs', True, '30s')
    assert cm.merge_config(after, MANAGED) == (False, after)


# Columns: config.conf text, the error.
BAD_TEXTS = [
    pytest.param('mode: [', r'^W is not valid YAML: ', id='not-yaml'),
    pytest.param('- a\n- b\n', r'^W is not a YAML mapping', id='not-a-mapping'),
    pytest.param('apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n',
                 r'^W has apiVersion kubeproxy.config.k8s.io/v1alpha2; this writes apiVersion '
                 r'kubeproxy.config.k8s.io/v1alpha1', id='other-version'),
]


@pytest.mark.parametrize('text, pattern', BAD_TEXTS)
def test_merge_refuses_what_it_cannot_merge_into(text, pattern):
    with pytest.raises(SourceError, match=pattern):
        cm.merge_config(text, MANAGED, where='W')


@pytest.fixture
def cluster(kube_api):
    kube_api.add(
        {'apiVersion': 'v1', 'kind': 'ConfigMap',
         'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system', 'labels': {'app': 'kube-proxy'}},
         'data': {'config.conf': fixture('kubeadm-config.conf'), 'kubeconfig.conf': 'apiVersion: v1\nkind: Config\n'}},
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'template': {'metadata': {'labels': {'k8s-app': 'kube-proxy'}}, 'spec': {'containers': []}}}},
    )
    return kube_api


@pytest.fixture
def options(kube_api, tmp_path):
    return connection_options_from_params({'kubeconfig': kube_api.write_kubeconfig(str(tmp_path / 'kc'))}, environ={})


def writes(server):
    return [request for request in server.requests if request.method != 'GET']


def test_a_change_is_written_with_the_version_read_and_restarts_once(cluster, options):
    read_version = cluster.get(CM_PATH)['metadata']['resourceVersion']
    result = cm.apply(options, MANAGED, now=NOW)
    assert (result['changed'], result['restarted'], result['attempts']) == (True, True, 1)
    puts = cluster.requests_to(CM_PATH, 'PUT')
    assert len(puts) == 1 and puts[0].body['metadata']['resourceVersion'] == read_version
    stored = cluster.get(CM_PATH)
    diff = result['diff'].diff()
    assert diff['before_header'] == diff['after_header'] == 'kube-system/kube-proxy config.conf'
    assert stored['data']['config.conf'] == diff['after'] == fixture('kubeadm-config.merged.conf')
    assert stored['data']['kubeconfig.conf'] == 'apiVersion: v1\nkind: Config\n'
    assert stored['metadata']['labels'] == {'app': 'kube-proxy'}
    assert diff['before'] == fixture('kubeadm-config.conf')
    patches = cluster.requests_to(DS_PATH, 'PATCH')
    assert [patch.body for patch in patches] == [
        {'spec': {'template': {'metadata': {'annotations': {cm.RESTARTED_AT: '2026-01-02T03:04:05Z'}}}}}]
    assert 'merge-patch' in patches[0].headers.get('content-type', '')
    template = cluster.get(DS_PATH)['spec']['template']
    assert template['metadata']['labels'] == {'k8s-app': 'kube-proxy'}  # the patch only adds the annotation


def test_unchanged_means_no_write_and_no_restart(cluster, options):
    cm.apply(options, MANAGED, now=NOW)
    cluster.requests.clear()
    result = cm.apply(options, MANAGED)
    diff = result['diff'].diff()
    assert (result['changed'], result['restarted'], diff['before'], diff['after']) == (
        False, False, fixture('kubeadm-config.merged.conf'), fixture('kubeadm-config.merged.conf'))
    assert writes(cluster) == []


def test_check_mode_reads_plans_and_writes_nothing(cluster, options):
    before = cluster.get(CM_PATH)
    result = cm.apply(options, MANAGED, check_mode=True)
    expected = (True, True, fixture('kubeadm-config.merged.conf'))
    assert (result['changed'], result['restarted'], result['diff'].diff()['after']) == expected
    assert writes(cluster) == [] and cluster.get(CM_PATH) == before


def test_a_conflict_is_retried_from_a_fresh_read(cluster, options):
    edited = []

    def someone_else_edits(server, request, match):
        # The first read answers, then another client writes before our PUT.
        obj = server.get(CM_PATH)
        if not edited:
            other = dict(obj, data=dict(obj['data'], **{'config.conf': obj['data']['config.conf'].replace(
                'portRange: ""', 'portRange: 30000-30100')}))
            server.add(other)
            edited.append(True)
        return 200, obj

    cluster.handle('GET', CM_PATH, someone_else_edits)
    try:
        result = cm.apply(options, MANAGED, now=NOW)
    finally:
        # Custom handlers live as long as the session's server: take ours away again.
        cluster._handlers.pop()  # pylint: disable=protected-access
    assert result['attempts'] == 2
    puts = cluster.requests_to(CM_PATH, 'PUT')
    assert len(puts) == 2  # the first one got 409
    assert yaml.safe_load(cluster.get(CM_PATH)['data']['config.conf'])['portRange'] == '30000-30100'
    assert len(cluster.requests_to(DS_PATH, 'PATCH')) == 1


def test_no_daemonset_fails_before_anything_is_written(cluster, options):
    with pytest.raises(SourceError, match=r'^reading DaemonSet kube-system/other on https://127\.0\.0\.1:\d+: '
                                          r'404 Not Found: daemonsets "other" not found$'):
        cm.apply(options, MANAGED, daemonset='other')
    assert writes(cluster) == []


def test_without_a_daemonset_no_restart(cluster, options):
    result = cm.apply(options, MANAGED, daemonset=None)
    assert (result['changed'], result['restarted']) == (True, False)
    assert cluster.requests_to(DS_PATH, 'PATCH') == [] and cluster.requests_to(DS_PATH) == []


# Columns: what the server does, the error.
FAILURES = [
    pytest.param(('status', CM_PATH, 'GET', {'code': 403, 'message': 'configmaps "kube-proxy" is forbidden'}),
                 r'^reading ConfigMap kube-system/kube-proxy on URL: 403 Forbidden: configmaps "kube-proxy" is '
                 r'forbidden$', id='read-403'),
    pytest.param(('status', CM_PATH, 'PUT', {'code': 500, 'message': 'etcd down'}),
                 r'^writing ConfigMap kube-system/kube-proxy on URL: 500 Internal Server Error: etcd down$',
                 id='write-500'),
    pytest.param(('status', CM_PATH, 'PUT', {'code': 409, 'times': None}),
                 r'^writing ConfigMap kube-system/kube-proxy: 409 Conflict 3 times in a row', id='409-forever'),
    pytest.param(('garbage', CM_PATH, 'GET', {}), r'^reading ConfigMap kube-system/kube-proxy on URL: the answer is '
                 r'not valid JSON', id='garbage'),
]


@pytest.mark.parametrize('fault, pattern', FAILURES)
def test_every_failure_is_one_line(cluster, options, fault, pattern):
    kind, path, method, params = fault
    times = params.pop('times', 1)
    cluster.fault(kind, path=path, method=method, times=times, **params)
    with pytest.raises(SourceError) as caught:
        cm.apply(options, MANAGED, now=NOW)
    message = str(caught.value).replace(cluster.url, 'URL')
    assert '\n' not in message
    assert __import__('re').search(pattern, message), message
    assert cluster.requests_to(DS_PATH, 'PATCH') == []


def test_no_config_conf_key(cluster, options):
    obj = cluster.get(CM_PATH)
    cluster.add(dict(obj, data={'other': 'x'}))
    with pytest.raises(SourceError, match=r'ConfigMap kube-system/kube-proxy has no config.conf key'):
        cm.apply(options, MANAGED)
