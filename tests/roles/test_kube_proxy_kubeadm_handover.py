# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kube_proxy role's kubeadm hand-over (kube_proxy_deploy=configmap,
kube_proxy_state=absent) through ansible-playbook against the stand-in API server, two
nodes played by the controller itself (connection local): the DaemonSet's affinity is
written once, each node gets its label, a second run writes nothing; and the way back,
kube_proxy_state=present, takes each node's label off again."""

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.playbook  # runs ansible-playbook: `make test-playbooks`

ROLES = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'roles'))
REPO = os.path.dirname(ROLES)
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
DS_PATH = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
OURS = {'key': 'netlb.io/kube-proxy', 'operator': 'NotIn', 'values': ['absent']}
PLAY = [{'hosts': 'kube_nodes', 'gather_facts': False,
         'roles': [{'role': 'kube_proxy', 'vars': {'kube_proxy_deploy': 'configmap', 'kube_proxy_state': 'absent'}}]}]


def run(tmp_path, inventory, *extra, **role_vars):
    playbook = str(tmp_path / 'play.yml')
    play = [dict(PLAY[0], roles=[dict(PLAY[0]['roles'][0], vars=dict(PLAY[0]['roles'][0]['vars'], **role_vars))])]
    with open(playbook, 'w') as handle:
        json.dump(play, handle)
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_ROLES_PATH=ROLES)
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', inventory, playbook] + list(extra), cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return {host: int(changed) for host, changed in re.findall(r'^(\S+)\s*: ok=\d+\s+changed=(\d+)', done.stdout, re.M)}


def write_inventory(kube_api, tmp_path):
    admin = kube_api.write_kubeconfig(str(tmp_path / 'admin.conf'))
    inventory = str(tmp_path / 'hosts.yml')
    with open(inventory, 'w') as handle:
        json.dump({'kube_nodes': {'hosts': {'node-a': {}, 'node-b': {}}, 'vars': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
            'kube_proxy_k8s_auth': {'kubeconfig': admin}, 'kube_proxy_handover_wait': 0}}}, handle)
    return inventory


def test_present_takes_the_label_off_again(kube_api, tmp_path):
    kube_api.add(
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}}, 'template': {'metadata': {}, 'spec': {}}}},
        {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'data': {'config.conf': 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n'
                                 'mode: ipvs\n'}},
        {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'node-a', 'labels': {'netlb.io/kube-proxy': 'absent'}}},
        {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'node-b', 'labels': {
            'netlb.io/kube-proxy': 'absent', 'kubernetes.io/os': 'linux'}}},
        {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'node-c', 'labels': {'netlb.io/kube-proxy': 'absent'}}})
    inventory = write_inventory(kube_api, tmp_path)

    run(tmp_path, inventory, kube_proxy_state='present')
    labels = {name: kube_api.get('/api/v1/nodes/' + name)['metadata'].get('labels') for name in ('node-a', 'node-b',
                                                                                                   'node-c')}
    assert labels == {'node-a': {}, 'node-b': {'kubernetes.io/os': 'linux'}, 'node-c': {'netlb.io/kube-proxy': 'absent'}}
    assert len(kube_api.requests_to('/api/v1/nodes/node-a', 'PATCH')) == 1

    kube_api.requests.clear()
    run(tmp_path, inventory, kube_proxy_state='present')
    assert [r for r in kube_api.requests if r.method != 'GET' and r.path.startswith('/api/v1/nodes/')] == []


def test_affinity_once_labels_per_node_second_run_writes_nothing(kube_api, tmp_path):
    kube_api.add(
        {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
         'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}},
                  'template': {'metadata': {}, 'spec': {'nodeSelector': {'kubernetes.io/os': 'linux'}}}}},
        *[{'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name}} for name in ('node-a', 'node-b', 'node-c')])
    inventory = write_inventory(kube_api, tmp_path)

    check = run(tmp_path, inventory, '--check')
    assert [r.method for r in kube_api.requests if r.method != 'GET'] == [] and check['node-b'] == 1

    assert run(tmp_path, inventory) == {'node-a': 2, 'node-b': 1}  # the affinity once, a label each
    spec = kube_api.get(DS_PATH)['spec']['template']['spec']
    assert spec['nodeSelector'] == {'kubernetes.io/os': 'linux'}
    assert spec['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution'] == {
        'nodeSelectorTerms': [{'matchExpressions': [OURS]}]}
    labels = {name: kube_api.get('/api/v1/nodes/' + name)['metadata'].get('labels') for name in ('node-a', 'node-b',
                                                                                                   'node-c')}
    assert labels == {'node-a': {'netlb.io/kube-proxy': 'absent'}, 'node-b': {'netlb.io/kube-proxy': 'absent'},
                      'node-c': None}
    assert len(kube_api.requests_to(DS_PATH, 'PATCH')) == 1

    kube_api.requests.clear()
    assert run(tmp_path, inventory) == {'node-a': 0, 'node-b': 0}
    assert [r.method for r in kube_api.requests if r.method != 'GET'] == []
