# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""direct.target(): which connections the API source serves with its own HTTPS GET, and
which it leaves to the kubernetes client (the requests themselves: test_api.py runs
every read both ways against the stand-in server)."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api, direct

SERVER = 'https://192.0.2.10:6443'
CA = base64.b64encode(b'-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n').decode()


def kubeconfig(user=None, cluster=None, context='main', current='main'):
    return {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': current,
        'clusters': [{'name': 'c', 'cluster': dict({'server': SERVER, 'certificate-authority-data': CA},
                                                   **(cluster or {}))}],
        'users': [{'name': 'u', 'user': {'token': 't0'} if user is None else user}],
        'contexts': [{'name': context, 'context': {'cluster': 'c', 'user': 'u'}}],
    }


# id, kubeconfig (or None: explicit options only), options, expected Target fields (None: the client's job)
CASES = [
    ('token and CA data', kubeconfig(), {},
     {'url': SERVER, 'token': 't0', 'ca_data': base64.b64decode(CA).decode(), 'verify': True}),
    ('options win over the file', kubeconfig(), {'api_key': 't1', 'ca_cert': '/ca.pem', 'validate_certs': False},
     {'token': 't1', 'ca_file': '/ca.pem', 'ca_data': None, 'verify': False}),
    ('host option', kubeconfig(), {'host': 'https://198.51.100.1:443/'}, {'url': 'https://198.51.100.1:443'}),
    ('client certificate files, relative to the file', kubeconfig(
        user={'client-certificate': 'c.pem', 'client-key': '/k.pem'}), {},
     {'cert_file': 'DIR/c.pem', 'key_file': '/k.pem', 'token': None}),
    ('client certificate data', kubeconfig(user={'client-certificate-data': CA, 'client-key-data': CA}), {},
     {'cert_data': base64.b64decode(CA), 'key_data': base64.b64decode(CA)}),
    ('insecure-skip-tls-verify, overridden by validate_certs', kubeconfig(
        cluster={'insecure-skip-tls-verify': True}), {'validate_certs': True}, {'verify': True}),
    ('explicit host and token', None, {'host': SERVER, 'api_key': 'tok', 'ca_cert': '/ca.pem'},
     {'url': SERVER, 'token': 'tok', 'ca_file': '/ca.pem'}),
    ('an exec plugin', kubeconfig(user={'exec': {'command': 'aws'}}), {}, None),
    ('an auth provider', kubeconfig(user={'auth-provider': {'name': 'oidc'}}), {}, None),
    ('basic auth', kubeconfig(user={'username': 'a', 'password': 'b'}), {}, None),
    ('a proxy', kubeconfig(cluster={'proxy-url': 'http://proxy:3128'}), {}, None),
    ('plain http', kubeconfig(cluster={'server': 'http://192.0.2.10:8080'}), {}, None),
    ('a server path', kubeconfig(cluster={'server': SERVER + '/k8s'}), {}, None),
    ('no such context', kubeconfig(current='other'), {}, None),
    ('client certificate without key data', kubeconfig(user={'client-certificate-data': CA}), {}, None),
]


@pytest.mark.parametrize('config, options, expected', [row[1:] for row in CASES], ids=[row[0] for row in CASES])
def test_target(tmp_path, config, options, expected):
    options = api.connection_options_from_params(options, environ={})
    if config is not None:
        path = tmp_path / 'kubeconfig'
        path.write_text(json.dumps(config))
        options['kubeconfig'] = str(path)
    how, source = api._plan_connection(options, {})
    found = direct.target(options, how, source)
    if expected is None:
        assert found is None
        return
    got = dict((name, getattr(found, name)) for name in expected)
    assert got == dict((name, value.replace('DIR', str(tmp_path)) if isinstance(value, str) else value)
                       for name, value in expected.items())


def test_a_kubeconfig_as_a_dict_and_as_yaml(tmp_path):
    yaml = pytest.importorskip('yaml')
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump(kubeconfig()))
    for source in (kubeconfig(), str(path)):
        assert direct.target({'context': None}, 'kubeconfig', source).token == 't0'
    # Several files to merge, or the in-cluster configuration: the client's rules.
    assert direct.target({}, 'kubeconfig', '%s:%s' % (path, path)) is None
    assert direct.target({}, 'incluster', None) is None


def test_the_module_reads_the_stand_in_without_the_client(kube_api, tmp_path):
    options = api.connection_options_from_params({'kubeconfig': kube_api.write_kubeconfig(str(tmp_path / 'kc'))},
                                                 environ={})
    reader = api._Reader(options, {}, 5, 500)
    try:
        assert reader.connection is not None and reader.client is None
        assert reader.get('Services', 'services')['items'] == []
    finally:
        reader.close()
    assert kube_api.requests[-1].headers['authorization'] == 'Bearer %s' % kube_api.token
