# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input to k8s_node_credentials, k8s_kube_proxy_configmap, k8s_kube_proxy_handover
and k8s_kube_proxy_leftovers: each is fail_json whose message names every bad field,
never a traceback, and nothing is written (no write request to the stand-in API server,
no command on the node)."""

from __future__ import annotations

import json

import pytest

from kube_api import tokens

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import API_VERSION, KIND, render
from ansible_collections.netlb.ipvs.plugins.modules import (
    k8s_kube_proxy_configmap,
    k8s_kube_proxy_handover,
    k8s_kube_proxy_leftovers,
    k8s_node_credentials,
)
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kube_proxy.test_leftovers_node import (
    FakeNode,
    node_of,
)

KUBEADM = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ""\n'
NAMESPACE = ('is not a namespace name (RFC 1123 label: at most 63 lowercase letters, digits and "-", starting and '
             'ending with a letter or digit)')
NAME = ('is not an object name (RFC 1123 subdomain: at most 253 lowercase letters, digits, "-" and ".", each part '
        'starting and ending with a letter or digit)')
ROLE = 'is not a ClusterRole name (not empty, no "/" or "%", not "." or "..")'
LABEL_KEY = ('is not a label key ([prefix/]name: the name at most 63 letters, digits, "-", "_" and ".", starting '
             'and ending with a letter or digit; the prefix an RFC 1123 subdomain)')
URL = 'is not an http or https URL with a host (e.g. https://192.0.2.10:6443)'
TIMEOUT = '0 is out of range (more than 0, at most 3600 seconds)'


def call(module, capsys, args):
    with patch_module_args(dict(args, _ansible_check_mode=False, _ansible_diff=False)):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def cluster(kube_api, tmp_path):
    """The stand-in API server with what the three API modules read, and an admin kubeconfig."""
    tokens.install(kube_api)
    kube_api.add(
        {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'data': {'config.conf': KUBEADM}},
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}}, 'template': {'metadata': {}, 'spec': {}}}},
        {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'n1'}},
    )
    kube_api.admin = kube_api.write_kubeconfig(str(tmp_path / 'admin.conf'))
    return kube_api


GOOD_CONFIG = render({'kube_proxy_strict_arp': True}).config

# (module, its good arguments but the kubeconfig, the bad ones, the exact problems reported)
CASES = [
    pytest.param(k8s_node_credentials, {}, {'namespace': ''}, ["namespace: '' " + NAMESPACE],
                 id='credentials-empty-namespace'),
    pytest.param(k8s_node_credentials, {},
                 {'service_account': 'Bad_Name', 'cluster_role': '', 'binding': 'a/b', 'server': 'not a url',
                  'name': '', 'request_timeout': 0},
                 ["service_account: 'Bad_Name' " + NAME, "cluster_role: '' " + ROLE, "binding: 'a/b' " + NAME,
                  "server: 'not a url' " + URL,
                  "name: '' is empty: the kubeconfig's cluster, user and context need a name",
                  'request_timeout: ' + TIMEOUT],
                 id='credentials-every-field-at-once'),
    pytest.param(k8s_node_credentials, {}, {'token_lifetime': 100},
                 None, id='credentials-token-lifetime-too-short'),
    pytest.param(k8s_kube_proxy_configmap, {'config': GOOD_CONFIG}, {'namespace': 'Kube_System', 'name': 'a b'},
                 ["namespace: 'Kube_System' " + NAMESPACE, "name: 'a b' " + NAME], id='configmap-names'),
    pytest.param(k8s_kube_proxy_configmap, {'config': GOOD_CONFIG}, {'daemonset': 'x/y', 'request_timeout': 0},
                 ["daemonset: 'x/y' " + NAME, 'request_timeout: ' + TIMEOUT], id='configmap-daemonset-timeout'),
    pytest.param(k8s_kube_proxy_configmap, {}, {'config': {}},
                 ['config.apiVersion: None is not ' + API_VERSION, 'config.kind: None is not ' + KIND],
                 id='configmap-config-empty'),
    pytest.param(k8s_kube_proxy_configmap, {},
                 {'config': dict(GOOD_CONFIG, mode='bogus', conntrack={'min': -1}, ipvs='strict')},
                 ["config.mode: 'bogus' is not a proxy mode (one of ipvs, iptables, nftables)",
                  "config.ipvs: 'strict' is not a mapping", 'config.conntrack.min: -1 must be >= 0'],
                 id='configmap-config-fields'),
    pytest.param(k8s_kube_proxy_handover, {'nodes': ['n1']},
                 {'nodes': ['n1', ''], 'namespace': '-x', 'label': 'bad label!'},
                 ["nodes[1]: '' " + NAME, "namespace: '-x' " + NAMESPACE, "label: 'bad label!' " + LABEL_KEY],
                 id='handover-nodes-namespace-label'),
    pytest.param(k8s_kube_proxy_handover, {'nodes': ['n1']}, {'state': 'restored', 'label': 'a/'},
                 ["label: 'a/' " + LABEL_KEY], id='handover-restore-bad-label'),
]


@pytest.mark.parametrize('module, good, bad, problems', CASES)
def test_bad_input_names_each_field_and_writes_nothing(cluster, capsys, module, good, bad, problems):
    args = dict(good, kubeconfig=cluster.admin, **bad)
    cluster.requests.clear()
    result = call(module, capsys, args)
    assert result['failed'] is True and 'exception' not in result, result
    if problems is None:  # checked where the module's own logic reads it
        assert result['msg'] == 'token_lifetime: 100 s is below the 600 s the API server accepts'
    else:
        assert result['problems'] == problems
        assert result['msg'] == 'invalid parameters: ' + '; '.join(problems)
    assert [(request.method, request.path) for request in cluster.requests if request.method != 'GET'] == []


def test_the_same_arguments_made_good_do_work(cluster, capsys):
    """The cases' good arguments are good: the failures above come from the bad ones."""
    for module, good in ((k8s_node_credentials, {}), (k8s_kube_proxy_configmap, {'config': GOOD_CONFIG}),
                         (k8s_kube_proxy_handover, {'nodes': ['n1']})):
        result = call(module, capsys, dict(good, kubeconfig=cluster.admin))
        assert result['changed'] is True and not result.get('failed'), result


@pytest.mark.parametrize('state_path, message', [
    pytest.param('', "invalid parameters: state_path: '' is not an absolute path", id='empty'),
    pytest.param('var/lib/x.json', "invalid parameters: state_path: 'var/lib/x.json' is not an absolute path",
                 id='relative'),
])
def test_leftovers_bad_state_path_runs_nothing(monkeypatch, capsys, roots, state_path, message):
    runner = FakeNode()
    monkeypatch.setattr(k8s_kube_proxy_leftovers, 'Node', lambda _runner: node_of(runner, roots))
    result = call(k8s_kube_proxy_leftovers, capsys, {'state_path': state_path})
    assert (result['failed'], result['msg'], 'exception' in result) == (True, message, False)
    assert runner.calls == []


def test_leftovers_unreadable_state_file_names_it_and_removes_nothing(monkeypatch, capsys, roots, tmp_path):
    runner = FakeNode()
    sets = list(runner.sets)
    monkeypatch.setattr(k8s_kube_proxy_leftovers, 'Node', lambda _runner: node_of(runner, roots))
    path = tmp_path / 'state.json'
    path.write_text('{"services": [')
    result = call(k8s_kube_proxy_leftovers, capsys, {'state_path': str(path)})
    assert result['failed'] is True and 'exception' not in result
    assert result['msg'].startswith('k8s_service_proxy state cannot be read: %s: ' % path), result['msg']
    assert runner.sets == sets and not [call for call in runner.calls if call[1:2] in (['restore'], ['-f'])]
