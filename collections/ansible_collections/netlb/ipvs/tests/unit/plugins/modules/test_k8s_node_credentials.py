# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_node_credentials end to end: the real module and kubernetes client against the
stand-in API server (kube_api, with its TokenRequest endpoint): the requests it sends,
none on a second run, check mode, rotation, and a kubeconfig k8s_service_proxy can use."""

from __future__ import annotations

import base64
import json
import os

import pytest
import yaml

from kube_api import tokens
from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.modules import k8s_node_credentials
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args
from ansible_collections.netlb.ipvs.tests.unit.plugins.modules.test_k8s_service_proxy import (
    call as call_service_proxy,
    cluster_objects,
    node as service_proxy_node,
)

SA_PATH = '/api/v1/namespaces/kube-system/serviceaccounts/netlb-ipvs'
SA_LIST = '/api/v1/namespaces/kube-system/serviceaccounts'
CRB_PATH = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/netlb-ipvs'
CRB_LIST = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'
TOKEN_PATH = SA_PATH + '/token'
SUBJECT = {'kind': 'ServiceAccount', 'name': 'netlb-ipvs', 'namespace': 'kube-system'}
node = service_proxy_node  # k8s_service_proxy's fixture: an in-memory kernel table and node
ROLE_REF = {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'system:node-proxier'}


@pytest.fixture
def api(kube_api):
    return tokens.install(kube_api)


@pytest.fixture
def admin(api, tmp_path):
    return api.write_kubeconfig(str(tmp_path / 'admin.conf'))


def call(capsys, args, check_mode=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(SystemExit):
            k8s_node_credentials.main()
    return json.loads(capsys.readouterr().out)


def writes(api):
    return [(request.method, request.path) for request in api.requests if request.method != 'GET']


def warning_text(warning):
    # ansible-core 2.19 returns warnings as structured events, older ones as strings.
    return warning if isinstance(warning, str) else warning['event']['msg']


def token_of(text):
    return yaml.safe_load(text)['users'][0]['user']['token']


def test_first_run_creates_then_second_run_writes_nothing(api, admin, capsys):
    first = call(capsys, {'kubeconfig': admin})
    assert first['changed'] is True, first
    assert first['created'] == ['ServiceAccount kube-system/netlb-ipvs', 'ClusterRoleBinding netlb-ipvs']
    assert (first['updated'], first['token_requested'], first['reason']) == ([], True, 'no kubeconfig yet')
    assert writes(api) == [('POST', SA_LIST), ('POST', CRB_LIST), ('POST', TOKEN_PATH)]
    sa_body = api.requests_to(SA_LIST, 'POST')[0].body
    metadata = {key: sa_body['metadata'][key] for key in ('name', 'namespace', 'labels')}
    assert metadata == {'name': 'netlb-ipvs', 'namespace': 'kube-system',
                        'labels': {'app.kubernetes.io/managed-by': 'netlb.ipvs'}}
    crb = api.get(CRB_PATH)
    assert (crb['roleRef'], crb['subjects']) == (ROLE_REF, [SUBJECT])
    token_body = api.requests_to(TOKEN_PATH, 'POST')[0].body
    assert token_body == {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest',
                          'spec': {'expirationSeconds': 7776000}}

    config = yaml.safe_load(first['kubeconfig'])
    cluster = config['clusters'][0]['cluster']
    assert cluster['server'] == api.url
    assert base64.b64decode(cluster['certificate-authority-data']) == api.pki.read('ca_cert')
    assert token_of(first['kubeconfig']) in api.tokens and token_of(first['kubeconfig']) != api.token
    assert first['expires'].endswith('Z')

    api.requests.clear()
    second = call(capsys, {'kubeconfig': admin, 'current_kubeconfig': first['kubeconfig']})
    assert (second['changed'], second['created'], second['token_requested']) == (False, [], False)
    assert second['kubeconfig'] == first['kubeconfig']  # the node's file stays byte for byte
    assert writes(api) == [] and {request.method for request in api.requests} == {'GET'}


def test_check_mode_reads_and_writes_nothing(api, admin, capsys):
    result = call(capsys, {'kubeconfig': admin}, check_mode=True)
    assert (result['changed'], result['token_requested'], result['kubeconfig']) == (True, True, '')
    assert result['created'] == ['ServiceAccount kube-system/netlb-ipvs', 'ClusterRoleBinding netlb-ipvs']
    assert writes(api) == [] and api.get(SA_PATH) is None


def test_rotate_requests_a_new_token_and_nothing_else(api, admin, capsys):
    first = call(capsys, {'kubeconfig': admin})
    api.requests.clear()
    rotated = call(capsys, {'kubeconfig': admin, 'current_kubeconfig': first['kubeconfig'], 'rotate': True})
    assert (rotated['changed'], rotated['reason'], rotated['created']) == (True, 'rotate is set', [])
    assert writes(api) == [('POST', TOKEN_PATH)]
    assert token_of(rotated['kubeconfig']) != token_of(first['kubeconfig'])


def test_a_recreated_service_account_gets_a_new_token(api, admin, capsys):
    first = call(capsys, {'kubeconfig': admin})
    api.objects.pop(SA_PATH)
    api.add({'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': 'netlb-ipvs', 'namespace': 'kube-system'}})
    again = call(capsys, {'kubeconfig': admin, 'current_kubeconfig': first['kubeconfig']})
    assert again['token_requested'] is True and again['reason'].startswith('the ServiceAccount was re-created')


def test_a_binding_without_the_account_gets_it_added_with_its_resource_version(api, admin, capsys):
    other = {'kind': 'User', 'name': 'someone', 'apiGroup': 'rbac.authorization.k8s.io'}
    stored = api.add({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
                      'metadata': {'name': 'netlb-ipvs'}, 'roleRef': ROLE_REF, 'subjects': [other]})[0]
    result = call(capsys, {'kubeconfig': admin})
    assert result['updated'] == ['ClusterRoleBinding netlb-ipvs']
    put = api.requests_to(CRB_PATH, 'PUT')[0].body
    assert put['metadata']['resourceVersion'] == stored['metadata']['resourceVersion']
    assert api.get(CRB_PATH)['subjects'] == [other, SUBJECT]


def test_a_binding_to_another_role_fails_with_nothing_requested(api, admin, capsys):
    api.add({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
             'metadata': {'name': 'netlb-ipvs'}, 'roleRef': dict(ROLE_REF, name='cluster-admin'), 'subjects': [SUBJECT]})
    result = call(capsys, {'kubeconfig': admin})
    assert result['failed'] is True
    assert 'binds ClusterRole cluster-admin, not ClusterRole system:node-proxier' in result['msg']
    assert ('POST', TOKEN_PATH) not in writes(api)


def test_the_written_kubeconfig_works_for_k8s_service_proxy(api, admin, capsys, tmp_path, node):
    credentials = call(capsys, {'kubeconfig': admin})
    path = str(tmp_path / 'node-kubeconfig')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # as the playbook's copy task writes it
    with os.fdopen(fd, 'w') as handle:
        handle.write(credentials['kubeconfig'])
    api.add(*cluster_objects())
    api.requests.clear()
    args = dict(source='api', kubeconfig=path, node_name=objects.NODE, node_zone='zone-a', apply=False,
                service_cidrs=['10.96.0.0/12'], cluster_cidrs=['10.244.0.0/16'])
    result = call_service_proxy(node, args, capsys)
    assert 'failed' not in result, result
    assert result['summary']['services_seen'] == 2 and 'warnings' not in result
    bearer = {request.headers.get('authorization') for request in api.requests}
    assert bearer == {'Bearer ' + token_of(credentials['kubeconfig'])}  # the node's token, not the admin's

    os.chmod(path, 0o644)  # readable by others: k8s_service_proxy says so
    result = call_service_proxy(node, args, capsys)
    assert [warning_text(warning) for warning in result['warnings']] == [
        'kubeconfig %s is readable by group and others (mode 0644): it holds credentials, make it 0600' % path]
