# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""module_connection, the opening of every module that needs the kubernetes client: a
missing client or a wrong option fails the module with one clear message before any
work, a kubeconfig others can read is warned about, and the options come back. The
connection options themselves are tested in sources/test_api.py."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import PASS_VARS

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection, module_connection
from ansible_collections.netlb.ipvs.plugins.modules import (
    k8s_kube_proxy_configmap,
    k8s_kube_proxy_handover,
    k8s_node_credentials,
)
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args

MISSING = ImportError("No module named 'kubernetes'")


class Failed(Exception):
    pass


class FakeModule(object):
    """What module_connection uses of an AnsibleModule: params, argument_spec,
    no_log_values, warn, fail_json (which exits)."""

    def __init__(self, params):
        self.params = params
        self.argument_spec = module_connection.AUTH_ARG_SPEC
        self.no_log_values = set()
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    def fail_json(self, **result):
        raise Failed(result)


@pytest.fixture(autouse=True)
def environ(monkeypatch):
    """No K8S_AUTH_* or KUBECONFIG of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith('K8S_AUTH_') or name in ('KUBECONFIG', 'KUBERNETES_SERVICE_HOST'):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize('client, variables, mode, failure, warned', [
    pytest.param(True, {}, 0o600, None, None, id='fine'),
    pytest.param(True, {}, 0o644, None, 'group and others', id='world-readable kubeconfig'),
    pytest.param(False, {}, 0o600, 'python3-kubernetes', None, id='no client'),
    pytest.param(False, {'K8S_AUTH_VALIDATE_CERTS': 'maybe'}, 0o600, 'python3-kubernetes', None,
                 id='no client comes first'),
    pytest.param(True, {'K8S_AUTH_VALIDATE_CERTS': 'maybe'}, 0o644, "validate_certs: 'maybe' is not a boolean", None,
                 id='wrong option, nothing warned'),
])
def test_module_connection(environ, tmp_path, client, variables, mode, failure, warned):
    environ.setattr(connection, 'HAS_KUBERNETES', client)
    environ.setattr(connection, 'KUBERNETES_IMPORT_ERROR', None if client else MISSING)
    for name, value in variables.items():
        environ.setenv(name, value)
    path = str(tmp_path / 'kubeconfig')
    with open(path, 'w') as handle:
        handle.write('{}')
    os.chmod(path, mode)
    module = FakeModule({'kubeconfig': path, 'context': 'other'})
    if failure is not None:
        with pytest.raises(Failed) as failed:
            module_connection.module_connection(module)
        result = failed.value.args[0]
        assert failure in result['msg'], result
        if not client:
            assert result['exception'] == str(MISSING)
        assert module.warnings == []
        return
    options = module_connection.module_connection(module)
    assert options == connection.connection_options_from_params(module.params)
    assert (options['kubeconfig'], options['context'], options['validate_certs']) == (path, 'other', True)
    assert module.warnings == ([] if warned is None else [
        'kubeconfig %s is readable by %s (mode %04o): it holds credentials, make it 0600' % (path, warned, mode)])


@pytest.mark.parametrize('module, args', [
    pytest.param(k8s_kube_proxy_configmap, {'config': {'apiVersion': 'kubeproxy.config.k8s.io/v1alpha1',
                                                       'kind': 'KubeProxyConfiguration'}}, id='k8s_kube_proxy_configmap'),
    pytest.param(k8s_kube_proxy_handover, {}, id='k8s_kube_proxy_handover'),
    pytest.param(k8s_node_credentials, {}, id='k8s_node_credentials'),
])
def test_the_modules_open_with_it(environ, capsys, module, args):
    """Without the client each module fails at once, naming what to install."""
    environ.setattr(connection, 'HAS_KUBERNETES', False)
    environ.setattr(connection, 'KUBERNETES_IMPORT_ERROR', MISSING)
    with patch_module_args(dict(args, host='https://192.0.2.10:6443', api_key='x')):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    assert result['failed'] is True
    assert 'kubernetes (Debian: python3-kubernetes; pip: kubernetes)' in result['msg']


TOKEN = 'eyJhbGciOiJSUzI1NiJ9.node-token'
KEY = 'LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t'
KUBECONFIG = {
    'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'kubernetes',
    'clusters': [{'name': 'kubernetes', 'cluster': {'server': 'https://192.0.2.10:6443'}}],
    'users': [{'name': 'admin', 'user': {'token': TOKEN, 'client-key-data': KEY}},
              {'name': 'oidc', 'user': {'auth-provider': {'name': 'oidc', 'config': {
                  'id-token': 'oidc-id', 'refresh-token': 'oidc-refresh', 'client-secret': 'oidc-secret'}}}},
              {'name': 'exec', 'user': {'exec': {'command': 'get-token', 'env': [{'name': 'PASSWORD',
                                                                                  'value': 'exec-env-secret'}]}}}],
    'contexts': [{'name': 'kubernetes', 'context': {'cluster': 'kubernetes', 'user': 'admin'}}],
}
SECRETS = (TOKEN, KEY, 'oidc-id', 'oidc-refresh', 'oidc-secret', 'exec-env-secret')


def test_the_spec_hides_the_kubeconfig():
    assert module_connection.AUTH_ARG_SPEC['kubeconfig']['no_log'] is True


def _exit_result(capsys, args, **returned):
    """The JSON a module with AUTH_ARG_SPEC prints, after redact_kubeconfig, with its
    invocation (which ansible-core >= 2.19 adds only when asked)."""
    if 'inject_invocation' in PASS_VARS:
        args = dict(args, _ansible_inject_invocation=True)
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=dict(module_connection.AUTH_ARG_SPEC))
        module_connection.redact_kubeconfig(module)
        with pytest.raises(SystemExit):
            module.exit_json(**returned)
    return capsys.readouterr().out


def test_a_kubeconfig_dict_shows_no_credential_but_its_names(capsys):
    said = 'default/kubernetes on https://192.0.2.10:6443 (v1); %s' % ' '.join(SECRETS)
    out = _exit_result(capsys, {'kubeconfig': KUBECONFIG}, msg=said)
    for secret in SECRETS:
        assert secret not in out
    result = json.loads(out)
    assert result['msg'].startswith('default/kubernetes on https://192.0.2.10:6443 (v1); ********')
    shown = result['invocation']['module_args']['kubeconfig']
    assert shown['users'][0]['user']['token'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert shown['clusters'][0]['name'] == 'kubernetes'


def test_a_kubeconfig_path_is_not_masked_and_api_key_still_is(capsys):
    out = _exit_result(capsys, {'kubeconfig': '/etc/netlb-ipvs/kubeconfig', 'api_key': 'kubeconfig'},
                       msg='kubeconfig /etc/netlb-ipvs/kubeconfig')
    # api_key happens to equal a word of the message: what another no_log option gives stays masked.
    assert json.loads(out)['msg'] == '******** /etc/netlb-ipvs/********'


@pytest.mark.parametrize('value, secrets', [
    pytest.param(KUBECONFIG, set(SECRETS), id='dict'),
    pytest.param('/root/.kube/config', set(), id='path'),
    pytest.param({'users': [{'user': {'token': ''}}]}, set(), id='empty-token'),
])
def test_kubeconfig_secrets(value, secrets):
    assert module_connection.kubeconfig_secrets(value) == secrets


@pytest.mark.parametrize('module, args', [
    pytest.param(k8s_kube_proxy_configmap, {'config': {'apiVersion': 'kubeproxy.config.k8s.io/v1alpha1',
                                                       'kind': 'KubeProxyConfiguration'}}, id='k8s_kube_proxy_configmap'),
    pytest.param(k8s_kube_proxy_handover, {}, id='k8s_kube_proxy_handover'),
    pytest.param(k8s_node_credentials, {}, id='k8s_node_credentials'),
])
def test_a_request_timeout_out_of_range_fails_naming_it(environ, capsys, module, args):
    with patch_module_args(dict(args, host='https://192.0.2.10:6443', api_key='x', request_timeout=-5)):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    assert result['failed'] is True
    assert result['msg'] == 'invalid parameters: request_timeout: -5 is out of range (more than 0, at most 3600 seconds)'
