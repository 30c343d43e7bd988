# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_kube_proxy_handover end to end: the real module and kubernetes client against the
stand-in API server (kube_api): check mode, diff, idempotence, failures as fail_json."""

from __future__ import annotations

import json

import pytest

from ansible_collections.netlb.ipvs.plugins.modules import k8s_kube_proxy_handover
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args

DS_PATH = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
NODE_PATH = '/api/v1/nodes/n1'


@pytest.fixture
def cluster(kube_api):
    kube_api.add(
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}},
                  'template': {'metadata': {}, 'spec': {'nodeSelector': {'kubernetes.io/os': 'linux'}}}}},
        {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'n1'}},
    )
    return kube_api


def call(capsys, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            k8s_kube_proxy_handover.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def args(cluster, tmp_path):
    return {'kubeconfig': cluster.write_kubeconfig(str(tmp_path / 'kc')), 'nodes': ['n1']}


def test_check_then_apply_then_idempotent(cluster, args, capsys):
    checked = call(capsys, args, check_mode=True, diff=True)
    assert (checked['changed'], checked['daemonset_changed'], checked['labelled']) == (True, True, ['n1'])
    assert checked['diff']['before'] == '{}\n' and '"netlb.io/kube-proxy"' in checked['diff']['after']
    assert [request.method for request in cluster.requests] == ['GET', 'GET']

    applied = call(capsys, args, diff=True)
    assert applied['diff'] == checked['diff']  # check mode predicted the real run
    assert (applied['changed'], applied['daemonset_changed'], applied['labelled']) == (True, True, ['n1'])
    assert cluster.get(NODE_PATH)['metadata']['labels'] == {'netlb.io/kube-proxy': 'absent'}
    assert cluster.get(DS_PATH)['spec']['template']['spec']['nodeSelector'] == {'kubernetes.io/os': 'linux'}

    cluster.requests.clear()
    again = call(capsys, args)
    assert (again['changed'], again['labelled'], 'diff' in again) == (False, [], False)
    assert [request.method for request in cluster.requests] == ['GET', 'GET']


def test_a_failure_is_fail_json_with_one_line(cluster, args, capsys):
    result = call(capsys, dict(args, nodes=['n1', 'n2']))
    assert result['failed'] is True
    assert result['msg'] == 'reading Node n2 on %s: 404 Not Found: nodes "n2" not found' % cluster.url
    assert [request.method for request in cluster.requests] == ['GET', 'GET']
