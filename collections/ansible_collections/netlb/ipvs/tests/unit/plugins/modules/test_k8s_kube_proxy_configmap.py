# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_kube_proxy_configmap end to end: the real module and kubernetes client against the
stand-in API server (kube_api): check mode, diff, idempotence, failures as fail_json."""

from __future__ import annotations

import json

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import render
from ansible_collections.netlb.ipvs.plugins.modules import k8s_kube_proxy_configmap
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args

CM_PATH = '/api/v1/namespaces/kube-system/configmaps/kube-proxy'
DS_PATH = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
KUBEADM = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ""\nportRange: ""\n'


@pytest.fixture
def cluster(kube_api):
    kube_api.add(
        {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'data': {'config.conf': KUBEADM}},
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'template': {'metadata': {}}}},
    )
    return kube_api


def call(capsys, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            k8s_kube_proxy_configmap.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def args(cluster, tmp_path):
    return {'kubeconfig': cluster.write_kubeconfig(str(tmp_path / 'kc')),
            'config': render({'kube_proxy_strict_arp': True}).config}


def test_check_then_apply_then_idempotent(cluster, args, capsys):
    checked = call(capsys, args, check_mode=True, diff=True)
    assert (checked['changed'], checked['restarted']) == (True, True)
    assert checked['diff']['before'] == KUBEADM and 'strictARP: true' in checked['diff']['after']
    assert checked['diff']['before_header'] == 'kube-system/kube-proxy config.conf'
    assert [request.method for request in cluster.requests] == ['GET', 'GET']

    applied = call(capsys, args, diff=True)
    assert (applied['changed'], applied['restarted']) == (True, True)
    assert applied['diff'] == checked['diff']  # check mode predicted the real run
    assert cluster.get(CM_PATH)['data']['config.conf'] == applied['diff']['after']
    assert 'kubectl.kubernetes.io/restartedAt' in cluster.get(DS_PATH)['spec']['template']['metadata']['annotations']

    cluster.requests.clear()
    again = call(capsys, args)
    assert (again['changed'], again['restarted'], 'diff' in again) == (False, False, False)
    assert [request.method for request in cluster.requests] == ['GET', 'GET']


def test_no_restart_when_daemonset_is_empty(cluster, args, capsys):
    result = call(capsys, dict(args, daemonset=''))
    assert (result['changed'], result['restarted']) == (True, False)
    assert cluster.requests_to(DS_PATH) == [] and cluster.requests_to(DS_PATH, 'PATCH') == []


def test_a_failure_is_fail_json_with_one_line(cluster, args, capsys):
    cluster.fault('status', path=CM_PATH, code=403, message='forbidden')
    result = call(capsys, args)
    assert result['failed'] is True
    assert result['msg'] == 'reading ConfigMap kube-system/kube-proxy on %s: 403 Forbidden: forbidden' % cluster.url
    assert cluster.requests_to(CM_PATH, 'PUT') == []
