# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The API source against the stand-in API server (tests/kube_api): what it asks, what it
makes of the answers, and one clear SourceError line for every way a read can fail."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing import convert_bool

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api, direct
from kube_api import objects

SERVICES = '/api/v1/services'
SLICES = '/apis/discovery.k8s.io/v1/endpointslices'


@pytest.fixture
def cluster(kube_api):
    """7 Services with a slice each in namespaces a and b, and node1 in zone z1."""
    services, slices = objects.cluster(7, namespaces=('a', 'b'))
    kube_api.add(services, slices, objects.node_object('node1', zone='z1'))
    return kube_api


@pytest.fixture
def options(kube_api, tmp_path):
    return api.connection_options_from_params({'kubeconfig': kube_api.write_kubeconfig(str(tmp_path / 'kc'))},
                                              environ={})


# Every read runs twice: as the module does (its own HTTPS GET when the credentials are
# static, which those of the stand-in's kubeconfig are), and through the kubernetes client.
TRANSPORT = {'use_client': None}


@pytest.fixture(autouse=True, params=[None, True], ids=['auto', 'client'])
def transport(request, monkeypatch):
    monkeypatch.setitem(TRANSPORT, 'use_client', request.param)
    return request.param


def read(options, **kwargs):
    kwargs.setdefault('environ', {})
    kwargs.setdefault('use_client', TRANSPORT['use_client'])
    return api.read_cluster(options, **kwargs)


def names(items):
    return sorted('%s/%s' % (item['metadata']['namespace'], item['metadata']['name']) for item in items)


def test_reads_everything_in_pages_from_the_watch_cache(cluster, options):
    snapshot = read(options, node_name='node1', page_size=3)
    assert names(snapshot.services) == names(obj for path, obj in cluster.objects.items() if '/services/' in path)
    assert len(snapshot.services) == len(snapshot.endpoint_slices) == 7
    assert (snapshot.endpoints, api.node_zone(snapshot.node), snapshot.origin) == ([], 'z1', cluster.url)
    for path in (SERVICES, SLICES):
        queries = [request.query for request in cluster.requests_to(path)]
        assert [query.get('resourceVersion') for query in queries] == ['0', None, None]
        assert [query['limit'] for query in queries] == ['3', '3', '3']
        assert ['continue' in query for query in queries] == [False, True, True]
    assert len(cluster.requests_to('/api/v1/nodes/node1')) == 1
    assert [request.path for request in cluster.requests if 'endpoints' in request.path.split('/')] == []


def test_read_versions_lists_metadata_alone_with_the_whole_reads_fingerprint(cluster, options, transport):
    """The names and resourceVersions, paged, as PartialObjectMetadataList; the Node whole.
    Its fingerprint is the whole read's (pipeline.fingerprint counts nothing else)."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
    whole = read(options, node_name='node1', namespaces=('a', 'b'), label_selector='app')
    del cluster.requests[:]
    versions = api.read_versions(options, node_name='node1', namespaces=('a', 'b'), label_selector='app',
                                 page_size=2, environ={})
    assert names(versions.services) == names(whole.services) and versions.node == whole.node
    assert all(set(item) == {'kind', 'apiVersion', 'metadata'} for item in versions.services + versions.endpoint_slices)
    assert pipeline.fingerprint(versions, {'x': 1}) == pipeline.fingerprint(whole, {'x': 1})
    lists = [request for request in cluster.requests if not request.path.startswith('/api/v1/nodes')]
    assert len(lists) > 4 and all('as=PartialObjectMetadataList' in request.headers['accept'] for request in lists)
    # One object changed: another fingerprint.
    cluster.add(objects.endpoint_slice('svc-00001', [objects.endpoint('10.244.9.9')], namespace='b'))
    again = api.read_versions(options, node_name='node1', namespaces=('a', 'b'), label_selector='app', environ={})
    assert pipeline.fingerprint(again, {'x': 1}) != pipeline.fingerprint(versions, {'x': 1})


def test_read_versions_leaves_a_connection_that_needs_the_client_to_the_whole_read(tmp_path):
    config = tmp_path / 'kc'
    config.write_text(json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'm',
        'clusters': [{'name': 'c', 'cluster': {'server': 'https://192.0.2.10:6443'}}],
        'users': [{'name': 'u', 'user': {'exec': {'command': 'get-token'}}}],
        'contexts': [{'name': 'm', 'context': {'cluster': 'c', 'user': 'u'}}]}))
    options = api.connection_options_from_params({'kubeconfig': str(config)}, environ={})
    assert api.read_versions(options, environ={}) is None  # and no request was tried: nothing listens there


def test_an_apiserver_that_ignores_limit_with_rv0_is_read_in_one_request(cluster, options):
    cluster.rv0_ignores_limit = True
    snapshot = read(options, page_size=3, need_node=False)
    assert len(snapshot.services) == 7
    assert len(cluster.requests_to(SERVICES)) == len(cluster.requests_to(SLICES)) == 1


def test_namespaces_are_read_one_by_one(cluster, options):
    snapshot = read(options, namespaces=('b',), node_name='node1')
    assert names(snapshot.services) == ['b/svc-00001', 'b/svc-00003', 'b/svc-00005']
    assert {item['metadata']['namespace'] for item in snapshot.endpoint_slices} == {'b'}
    paths = {request.path for request in cluster.requests}
    assert paths == {'/api/v1/namespaces/b/services', '/apis/discovery.k8s.io/v1/namespaces/b/endpointslices',
                     '/api/v1/nodes/node1'}


def test_the_label_selector_applies_to_services_only(cluster, options):
    cluster.add(objects.service('other', namespace='a', cluster_ip='10.96.9.9', labels={'tier': 'db'}))
    snapshot = read(options, label_selector='tier=web', need_node=False)
    assert 'a/other' not in names(snapshot.services) and len(snapshot.services) == 7
    assert cluster.requests_to(SERVICES)[0].query['labelSelector'] == 'tier=web'
    assert 'labelSelector' not in cluster.requests_to(SLICES)[0].query


def test_no_node_read_unless_asked(cluster, options):
    assert read(options, node_name='node1', need_node=False).node is None
    assert read(options).node is None
    assert not [request for request in cluster.requests if request.path.startswith('/api/v1/nodes')]


def test_legacy_endpoints_only_for_selectorless_services_without_a_slice(cluster, options):
    cluster.add(
        objects.service('external-db', namespace='x', cluster_ip='10.96.8.1', selector=None),
        objects.endpoints('external-db', ['192.0.2.5'], namespace='x'),
        objects.service('mirrored', namespace='x', cluster_ip='10.96.8.2', selector=None),
        objects.endpoint_slice('mirrored', ['192.0.2.6'], namespace='x'),
        objects.endpoints('mirrored', ['192.0.2.6'], namespace='x'),
        objects.service('headless', namespace='y', cluster_ip='None', selector=None),
        objects.service('cname', namespace='y', type='ExternalName', selector=None),
        objects.endpoints('unrelated', ['192.0.2.7'], namespace='x'),
    )
    snapshot = read(options)
    assert names(snapshot.endpoints) == ['x/external-db']
    endpoint_reads = [request.path for request in cluster.requests if request.path.endswith('/endpoints')]
    assert endpoint_reads == ['/api/v1/namespaces/x/endpoints']


def test_a_continue_token_that_expires_restarts_the_listing_once(cluster, options):
    cluster.fault('gone', path=SLICES)
    snapshot = read(options, page_size=3)
    assert len(snapshot.endpoint_slices) == 7
    queries = [request.query for request in cluster.requests_to(SLICES)]
    assert [query.get('resourceVersion') for query in queries] == ['0', None, '0', None, None]


def error_of(options, **kwargs):
    with pytest.raises(SourceError) as caught:
        read(options, **kwargs)
    message = str(caught.value)
    assert '\n' not in message and 'Traceback' not in message
    return message


# Each way a read can fail, and the line the user gets (URL is the server's address).
FAILURES = [
    # id, fault (kind, path, params), read kwargs, message pattern
    ('401', ('status', SLICES, {'code': 401}), {},
     r'reading EndpointSlices from URL: 401 Unauthorized: Unauthorized \(injected\)$'),
    ('403', ('status', SERVICES, {'code': 403, 'message': 'services is forbidden: User "x" cannot list'}), {},
     r'reading Services from URL: 403 Forbidden: services is forbidden: User "x" cannot list$'),
    ('500 on a later page', ('status', SERVICES, {'code': 500, 'continued': True}), {'page_size': 3},
     r'reading Services from URL: 500 Internal Server Error: InternalError \(injected\)$'),
    ('timeout', ('slow', SERVICES, {'delay': 10}), {'request_timeout': 0.3},
     r'reading Services from URL: no answer within 0.3 s \(request_timeout\)$'),
    ('trickled bytes', ('trickle', SERVICES, {'interval': 0.05}), {'request_timeout': 0.5},
     r'reading Services from URL: no answer within 0.5 s \(request_timeout\)$'),
    ('truncated body', ('truncate', SLICES, {}), {}, r'reading EndpointSlices from URL: .*(broke off|not valid JSON)'),
    ('content-length lie', ('length', SLICES, {}), {}, r'reading EndpointSlices from URL: .*(broke off|not valid JSON)'),
    ('connection closed', ('close', SERVICES, {}), {}, r'reading Services from URL: .*(broke off|aborted|closed)'),
    ('not JSON', ('garbage', SERVICES, {}), {}, r'reading Services from URL: the answer is not valid JSON \(28 bytes'),
    ('no items', ('no_items', SLICES, {}), {}, r'reading EndpointSlices from URL: the answer is not a list \(no items\)$'),
    ('410 twice', ('gone', SLICES, {'times': None}), {'page_size': 3},
     r'reading EndpointSlices from URL: 410 Gone: the continue token expired twice'),
    ('node 500', ('status', '/api/v1/nodes/node1', {'code': 500, 'message': 'etcd down'}), {'node_name': 'node1'},
     r'reading Node node1 from URL: 500 Internal Server Error: etcd down$'),
]


@pytest.mark.parametrize('fault, kwargs, pattern', [row[1:] for row in FAILURES], ids=[row[0] for row in FAILURES])
def test_every_failure_is_one_clear_line(cluster, options, fault, kwargs, pattern):
    kind, path, params = fault
    cluster.fault(kind, path=path, **params)
    message = error_of(options, **kwargs)
    assert re.match(pattern.replace('URL', re.escape(cluster.url)), message), message


def test_request_timeout_bounds_the_whole_request(cluster, options):
    # One byte every 0.05 s: no socket read ever waits 0.5 s, the answer would take minutes.
    cluster.fault('trickle', path=SERVICES, interval=0.05)
    started = time.monotonic()
    message = error_of(options, request_timeout=0.5)
    assert 'no answer within 0.5 s (request_timeout)' in message
    assert time.monotonic() - started < 3


@pytest.mark.parametrize('announced', [True, False], ids=['content-length', 'read'])
def test_an_answer_over_the_byte_cap_is_refused(monkeypatch, cluster, options, announced):
    monkeypatch.setattr(request_bounds, 'MAX_ANSWER_BYTES', 2000)
    if not announced:  # a server that announces nothing (or lies) is cut where the cap is passed
        monkeypatch.setattr(request_bounds, 'read_answer', _without_length(request_bounds.read_answer))
        monkeypatch.setattr(direct, 'read_answer', request_bounds.read_answer)
    message = error_of(options)
    assert re.match(r'reading (Services|EndpointSlices) from %s: the answer (has \d+ bytes, more than|is longer '
                    r'than) the 2000 bytes allowed$' % re.escape(cluster.url), message), message
    assert ('has ' in message) == announced


def _without_length(read_answer):
    def read(response, deadline, timeout, limit=None):
        response.headers = {}
        return read_answer(response, deadline, timeout, limit)
    return read


@pytest.mark.parametrize('kwargs, problem', [
    pytest.param({'request_timeout': -1}, 'request_timeout: -1 is out of range (more than 0, at most 3600 seconds)',
                 id='negative-timeout'),
    pytest.param({'request_timeout': 0}, 'request_timeout: 0 is out of range (more than 0, at most 3600 seconds)',
                 id='zero-timeout'),
    pytest.param({'request_timeout': '30'}, "request_timeout: '30' is not a number of seconds", id='text-timeout'),
    pytest.param({'page_size': 0}, 'page_size: 0 is out of range 1-10000', id='zero-page'),
    pytest.param({'page_size': -5}, 'page_size: -5 is out of range 1-10000', id='negative-page'),
    pytest.param({'page_size': 10 ** 6}, 'page_size: 1000000 is out of range 1-10000', id='huge-page'),
])
def test_request_options_out_of_range_are_refused_before_any_request(cluster, options, kwargs, problem):
    with pytest.raises(ValidationError) as caught:
        read(options, **kwargs)
    assert caught.value.problems == [problem]
    assert cluster.requests == []


def test_a_missing_node_is_an_error(cluster, options):
    message = error_of(options, node_name='node9')
    assert message == 'reading Node node9 from %s: 404 Not Found: nodes "node9" not found' % cluster.url


def test_an_unreachable_server(options):
    options = dict(options, host='https://127.0.0.1:1')
    message = error_of(options)
    assert message.startswith('reading Services from https://127.0.0.1:1: ')
    assert 'refused' in message.lower()


def test_tls_is_verified_by_default(kube_api, tmp_path):
    without_ca = kube_api.write_kubeconfig(str(tmp_path / 'kc'), ca=False)
    options = api.connection_options_from_params({'kubeconfig': without_ca}, environ={})
    message = error_of(options)
    assert re.match(r'reading Services from %s: TLS: .*CERTIFICATE_VERIFY_FAILED' % re.escape(kube_api.url), message)
    assert read(dict(options, validate_certs=False)).services == []
    assert read(dict(options, ca_cert=kube_api.pki.ca_cert)).services == []


def test_host_with_api_key_or_client_certificate_needs_no_kubeconfig(kube_api):
    kube_api.add(objects.service('web'))
    explicit = {'host': kube_api.url + '/', 'ca_cert': kube_api.pki.ca_cert}
    by_token = api.connection_options_from_params(dict(explicit, api_key=kube_api.token), environ={})
    assert names(read(by_token).services) == ['default/web']
    by_cert = api.connection_options_from_params(
        dict(explicit, client_cert=kube_api.pki.client_cert, client_key=kube_api.pki.client_key), environ={})
    assert names(read(by_cert).services) == ['default/web']
    assert 'authorization' not in kube_api.requests[-1].headers
    wrong = dict(by_token, api_key='nope')
    assert error_of(wrong) == 'reading Services from %s: 401 Unauthorized: Unauthorized' % kube_api.url


def test_a_kubeconfig_dict_and_its_context(kube_api, tmp_path):
    import yaml
    config = yaml.safe_load(open(kube_api.write_kubeconfig(str(tmp_path / 'kc'), context='other')))
    config['current-context'] = 'missing'
    options = api.connection_options_from_params({'kubeconfig': config, 'context': 'other'}, environ={})
    assert read(options).origin == kube_api.url
    message = error_of(dict(options, context='nowhere'))
    assert message.startswith('loading the Kubernetes connection from kubeconfig (dict): ')


def test_no_connection_at_all(tmp_path):
    options = api.connection_options_from_params({}, environ={})
    message = error_of(options, environ={'KUBECONFIG': str(tmp_path / 'absent')})
    assert message.startswith('no Kubernetes connection: kubeconfig %s does not exist' % (tmp_path / 'absent'))
    message = error_of(dict(options, kubeconfig=str(tmp_path / 'absent')))
    assert message == 'loading the Kubernetes connection: kubeconfig %s does not exist' % (tmp_path / 'absent')


def test_in_a_pod_the_in_cluster_config_is_used(monkeypatch, tmp_path):
    # The client reads the pod's environment and its service account token file itself.
    monkeypatch.setenv('KUBERNETES_SERVICE_HOST', '127.0.0.1')
    monkeypatch.setenv('KUBERNETES_SERVICE_PORT', '1')
    options = api.connection_options_from_params({}, environ={})
    message = error_of(options, environ={'KUBERNETES_SERVICE_HOST': '127.0.0.1',
                                         'KUBECONFIG': str(tmp_path / 'absent')})
    assert message.startswith('loading the Kubernetes connection from in-cluster config: ')


def test_the_default_kubeconfig_comes_from_KUBECONFIG(cluster, tmp_path):
    path = cluster.write_kubeconfig(str(tmp_path / 'kc'))
    options = api.connection_options_from_params({}, environ={})
    assert len(read(options, environ={'KUBECONFIG': path}).services) == 7


ENV_CASES = [
    # id, params, environment, expected options (only the keys listed)
    ('nothing', {}, {}, {'validate_certs': True, 'host': None, 'kubeconfig': None}),
    ('host and token', {}, {'K8S_AUTH_HOST': 'https://h:6443', 'K8S_AUTH_API_KEY': 't'},
     {'host': 'https://h:6443', 'api_key': 't'}),
    ('verify_ssl no', {}, {'K8S_AUTH_VERIFY_SSL': 'no'}, {'validate_certs': False}),
    ('validate_certs first', {}, {'K8S_AUTH_VALIDATE_CERTS': 'false', 'K8S_AUTH_VERIFY_SSL': 'yes'},
     {'validate_certs': False}),
    ('files', {}, {'K8S_AUTH_SSL_CA_CERT': '/ca', 'K8S_AUTH_CERT_FILE': '/c', 'K8S_AUTH_KEY_FILE': '/k'},
     {'ca_cert': '/ca', 'client_cert': '/c', 'client_key': '/k'}),
    ('kubeconfig and context', {}, {'K8S_AUTH_KUBECONFIG': '/kc', 'K8S_AUTH_CONTEXT': 'prod'},
     {'kubeconfig': '/kc', 'context': 'prod'}),
    ('params win', {'host': 'https://p', 'validate_certs': True}, {'K8S_AUTH_HOST': 'https://e',
                                                                   'K8S_AUTH_VERIFY_SSL': 'no'},
     {'host': 'https://p', 'validate_certs': True}),
    ('empty variable ignored', {}, {'K8S_AUTH_HOST': ''}, {'host': None}),
]


@pytest.mark.parametrize('params, environ, expected', [row[1:] for row in ENV_CASES],
                         ids=[row[0] for row in ENV_CASES])
def test_env_fallbacks(monkeypatch, params, environ, expected):
    got = api.connection_options_from_params(params, environ=environ)
    assert {key: got[key] for key in expected} == expected
    # The argument spec's own fallbacks (what the module sees) agree.
    for name in list(os.environ):
        if name.startswith('K8S_AUTH_'):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    result = ArgumentSpecValidator(AUTH_ARG_SPEC).validate(dict(params))
    assert not result.error_messages
    via_spec = api.connection_options_from_params(result.validated_parameters, environ={})
    assert {key: via_spec[key] for key in expected} == expected


def test_env_booleans_must_be_booleans():
    with pytest.raises(SourceError, match="validate_certs: 'maybe' is not a boolean"):
        api.connection_options_from_params({}, environ={'K8S_AUTH_VERIFY_SSL': 'maybe'})


@pytest.mark.parametrize('value, expected', [
    pytest.param(True, True, id='True'),
    pytest.param(False, False, id='False'),
    pytest.param('yes', True, id='yes'),
    pytest.param(' On ', True, id='on, any case, blanks'),
    pytest.param('TRUE', True, id='TRUE'),
    pytest.param('t', True, id='t'),
    pytest.param('Y', True, id='Y'),
    pytest.param('1', True, id='"1"'),
    pytest.param(1, True, id='1'),
    pytest.param('no', False, id='no'),
    pytest.param('Off', False, id='Off'),
    pytest.param('false\n', False, id='false and a newline'),
    pytest.param('f', False, id='f'),
    pytest.param('N', False, id='N'),
    pytest.param('0', False, id='"0"'),
    pytest.param(0, False, id='0'),
    pytest.param('maybe', ValueError, id='maybe'),
    pytest.param('', ValueError, id='empty'),
    pytest.param('yes please', ValueError, id='more than a word'),
    pytest.param('2', ValueError, id='"2"'),
    pytest.param(2, ValueError, id='2'),
    pytest.param(None, ValueError, id='None'),
])
def test_boolean_reads_what_ansible_reads(value, expected):
    """connection.boolean stands in for ansible-core's (the node's entry point has none):
    the same answer for every value, a refusal where ansible-core refuses."""
    if expected is ValueError:
        with pytest.raises(ValueError, match='is not a boolean'):
            connection.boolean(value)
        with pytest.raises(TypeError):
            convert_bool.boolean(value, strict=True)
    else:
        assert connection.boolean(value) is expected
        assert convert_bool.boolean(value, strict=True) is expected


def test_the_spec_hides_the_token():
    assert AUTH_ARG_SPEC['api_key']['no_log'] is True
    assert AUTH_ARG_SPEC['validate_certs']['default'] is True


@pytest.mark.parametrize('mode, warned', [(0o600, None), (0o640, 'its group'), (0o604, 'others'),
                                          (0o644, 'group and others')])
def test_a_kubeconfig_others_can_read_is_warned_about(kube_api, tmp_path, mode, warned):
    path = kube_api.write_kubeconfig(str(tmp_path / 'kc'))
    os.chmod(path, mode)
    warnings = api.connection_warnings(api.connection_options_from_params({'kubeconfig': path}, environ={}),
                                       environ={})
    if warned is None:
        assert warnings == []
    else:
        assert warnings == ['kubeconfig %s is readable by %s (mode %04o): it holds credentials, make it 0600'
                            % (path, warned, mode)]
    explicit = {'kubeconfig': path, 'host': kube_api.url, 'api_key': 'x'}
    assert api.connection_warnings(explicit, environ={}) == []  # the file is not used


def test_without_the_kubernetes_library(monkeypatch, cluster, options, transport):
    """Static credentials need no client (the module's own HTTPS); a connection that needs
    it (here in-cluster configuration) names the package to install."""
    monkeypatch.setattr(api, 'HAS_KUBERNETES', False)
    monkeypatch.setattr(api, 'KUBERNETES_IMPORT_ERROR', ImportError("No module named 'kubernetes'"))
    if transport is None:
        assert len(read(options).services) == 7
    message = error_of({}, environ={'KUBERNETES_SERVICE_HOST': '10.96.0.1', 'KUBERNETES_SERVICE_PORT': '443'})
    assert 'incluster' in message and 'python3-kubernetes' in message and 'pip: kubernetes' in message
