# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in API server's own behaviours, seen by a plain stdlib HTTPS client."""

import base64
import http.client
import json
import socket
import ssl

import pytest

from kube_api import objects
from kube_api.server import Fault, parse_selector

SERVICES = '/api/v1/services'
SLICES = '/apis/discovery.k8s.io/v1/endpointslices'


def call(server, method, path, body=None, token=None, timeout=5, cert=False):
    """(status, parsed body or raw bytes) of one request."""
    context = ssl.create_default_context(cafile=server.pki.ca_cert)
    if cert:
        context.load_cert_chain(server.pki.client_cert, server.pki.client_key)
    conn = http.client.HTTPSConnection('127.0.0.1', server.port, context=context, timeout=timeout)
    headers = {'Accept': 'application/json'}
    if token is not False:
        headers['Authorization'] = 'Bearer %s' % (token or server.token)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers['Content-Type'] = 'application/merge-patch+json' if method == 'PATCH' else 'application/json'
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw


def names(listing):
    return [item['metadata']['name'] for item in listing['items']]


@pytest.fixture
def seven(kube_api):
    services, slices = objects.cluster(7, namespaces=('a', 'b'))
    kube_api.add(services, slices)
    return kube_api


def test_version_needs_a_token(kube_api):
    assert call(kube_api, 'GET', '/version')[1]['major'] == '1'
    status, body = call(kube_api, 'GET', '/version', token=False)
    assert (status, body['reason']) == (401, 'Unauthorized')
    assert call(kube_api, 'GET', '/version', token='wrong')[0] == 401


def test_a_client_certificate_of_the_ca_logs_in(kube_api):
    assert call(kube_api, 'GET', '/version', token=False, cert=True)[0] == 200


@pytest.mark.parametrize('address', ['127.0.0.1', '10.0.2.2', 'localhost'])
def test_the_server_certificate_is_valid_for(kube_api, address):
    context = ssl.create_default_context(cafile=kube_api.pki.ca_cert)
    with socket.create_connection(('127.0.0.1', kube_api.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            assert tls.getpeercert()


def test_a_client_without_the_ca_is_refused_the_handshake(kube_api):
    context = ssl.create_default_context()
    with socket.create_connection(('127.0.0.1', kube_api.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname='127.0.0.1')


def test_lists_cluster_wide_and_per_namespace_in_key_order(seven):
    status, listing = call(seven, 'GET', SERVICES)
    assert (status, listing['kind'], listing['apiVersion']) == (200, 'ServiceList', 'v1')
    assert names(listing) == ['svc-00000', 'svc-00002', 'svc-00004', 'svc-00006',
                              'svc-00001', 'svc-00003', 'svc-00005']
    assert listing['metadata']['resourceVersion'] == seven.resource_version
    assert names(call(seven, 'GET', '/api/v1/namespaces/b/services')[1]) == ['svc-00001', 'svc-00003', 'svc-00005']
    slices = call(seven, 'GET', '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices')[1]
    assert (slices['kind'], slices['apiVersion'], len(slices['items'])) == (
        'EndpointSliceList', 'discovery.k8s.io/v1', 4)
    empty = call(seven, 'GET', '/api/v1/namespaces/c/endpoints')[1]
    assert (empty['kind'], empty['items']) == ('EndpointsList', [])


def test_pages_are_a_consistent_snapshot(seven):
    first = call(seven, 'GET', SERVICES + '?limit=3&resourceVersion=0')[1]
    assert first['metadata']['remainingItemCount'] == 4
    seven.add(objects.service('aaa-new', namespace='a'))  # sorts first: must not show up in later pages
    seen, token = names(first), first['metadata']['continue']
    while token:
        page = call(seven, 'GET', SERVICES + '?limit=3&continue=' + token)[1]
        assert page['metadata']['resourceVersion'] == first['metadata']['resourceVersion']
        seen += names(page)
        token = page['metadata'].get('continue')
    assert seen == names(call(seven, 'GET', SERVICES)[1])[1:]  # the new one excluded
    assert [request.query.get('resourceVersion') for request in seven.requests_to(SERVICES)] == [
        '0', None, None, None]


def test_rv0_can_ignore_limit_like_older_apiservers(seven):
    seven.rv0_ignores_limit = True
    listing = call(seven, 'GET', SERVICES + '?limit=3&resourceVersion=0')[1]
    assert (len(listing['items']), 'continue' in listing['metadata']) == (7, False)
    assert len(call(seven, 'GET', SERVICES + '?limit=3')[1]['items']) == 3


def test_continue_with_resource_version_is_refused_and_a_bad_token_is_gone(seven):
    token = call(seven, 'GET', SERVICES + '?limit=3')[1]['metadata']['continue']
    assert call(seven, 'GET', SERVICES + '?limit=3&resourceVersion=0&continue=' + token)[0] == 400
    bogus = base64.urlsafe_b64encode(b'{"id": 99, "start": 3}').decode()
    assert call(seven, 'GET', SERVICES + '?limit=3&continue=' + bogus)[0] == 410


@pytest.mark.parametrize('selector, expected', [
    ('tier=web', ['web', 'both']),
    ('tier==web', ['web', 'both']),
    ('tier!=web', ['db', 'none']),
    ('tier', ['web', 'db', 'both']),
    ('!tier', ['none']),
    ('tier,env=prod', ['both']),
    ('tier in (db, web),!env', ['web', 'db']),
    ('tier notin (web)', ['db', 'none']),
])
def test_label_selectors(kube_api, selector, expected):
    for name, labels in (('web', {'tier': 'web'}), ('db', {'tier': 'db'}),
                         ('both', {'tier': 'web', 'env': 'prod'}), ('none', {})):
        kube_api.add(objects.service(name, labels=labels))
    listing = call(kube_api, 'GET', SERVICES + '?labelSelector=' + selector.replace(' ', '%20'))[1]
    assert sorted(names(listing)) == sorted(expected)


def test_a_bad_selector_is_a_400():
    with pytest.raises(ValueError):
        parse_selector('tier in web')


@pytest.mark.parametrize('kind, params, check', [
    ('status', {'code': 403, 'message': 'services is forbidden'},
     lambda status, body: (status, body['reason'], body['message']) == (403, 'Forbidden', 'services is forbidden')),
    ('status', {'code': 500}, lambda status, body: (status, body['kind']) == (500, 'Status')),
    ('empty', {}, lambda status, body: (status, body['kind'], body['items']) == (200, 'ServiceList', [])),
    ('no_items', {}, lambda status, body: status == 200 and 'items' not in body and body['kind'] == 'ServiceList'),
    ('garbage', {}, lambda status, body: status == 200 and body.startswith(b'<html>')),
])
def test_faults_that_answer(seven, kind, params, check):
    seven.fault(kind, path=SERVICES, **params)
    assert check(*call(seven, 'GET', SERVICES))
    assert len(call(seven, 'GET', SERVICES)[1]['items']) == 7  # used once


@pytest.mark.parametrize('kind', ['truncate', 'length', 'close'])
def test_faults_that_break_the_answer(seven, kind):
    seven.fault(kind, path='/api/v1/*')
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        call(seven, 'GET', SERVICES)
    assert call(seven, 'GET', SERVICES)[0] == 200


def test_slow_outlasts_the_client_timeout(seven):
    seven.fault('slow', path=SERVICES, delay=5)
    with pytest.raises(socket.timeout):
        call(seven, 'GET', SERVICES, timeout=0.3)


def test_gone_only_hits_continue_requests_and_faults_count(seven):
    fault = seven.fault('gone', path=SERVICES, times=None)
    first = call(seven, 'GET', SERVICES + '?limit=3')
    assert first[0] == 200
    status, body = call(seven, 'GET', SERVICES + '?limit=3&continue=' + first[1]['metadata']['continue'])
    assert (status, body['reason']) == (410, 'Expired')
    assert fault.hits == 1
    with pytest.raises(ValueError):
        Fault('nonsense')


def test_objects_are_stored_by_path_with_resource_versions(kube_api):
    config = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system'},
              'data': {'mode': 'ipvs'}}
    path = '/api/v1/namespaces/kube-system/configmaps/kube-proxy'
    assert call(kube_api, 'GET', path)[0] == 404
    assert call(kube_api, 'POST', '/api/v1/namespaces/kube-system/configmaps', config)[0] == 201
    assert call(kube_api, 'POST', '/api/v1/namespaces/kube-system/configmaps', config)[0] == 409
    stored = call(kube_api, 'GET', path)[1]
    rv = stored['metadata']['resourceVersion']

    stale = dict(stored, data={'mode': 'iptables'}, metadata=dict(stored['metadata'], resourceVersion='1'))
    status, body = call(kube_api, 'PUT', path, stale)
    assert (status, body['reason']) == (409, 'Conflict')
    status, body = call(kube_api, 'PUT', path, dict(stored, data={'mode': 'nftables'}))
    assert (status, body['data']) == (200, {'mode': 'nftables'})
    assert int(body['metadata']['resourceVersion']) > int(rv)
    assert call(kube_api, 'PUT', path + '-missing', dict(stored, metadata={'name': 'kube-proxy-missing'}))[0] == 404

    status, body = call(kube_api, 'PATCH', path, {'data': {'extra': 'x'}})
    assert (status, body['data']) == (200, {'mode': 'nftables', 'extra': 'x'})
    assert kube_api.get(path)['data']['extra'] == 'x'
    assert call(kube_api, 'DELETE', path)[0] == 200
    assert kube_api.get(path) is None

    put = kube_api.requests_to(path, 'PUT')[0]
    assert put.body['data'] == {'mode': 'iptables'}
    assert put.headers['authorization'] == 'Bearer ' + kube_api.token
    assert put.headers['content-type'] == 'application/json'


def test_nodes_are_cluster_scoped_and_subresources_unknown(kube_api):
    kube_api.add(objects.node_object('node1', zone='z1'))
    status, node = call(kube_api, 'GET', '/api/v1/nodes/node1')
    assert (status, node['metadata']['labels'][objects.ZONE_LABEL]) == (200, 'z1')
    assert 'namespace' not in node['metadata']
    assert call(kube_api, 'GET', '/api/v1/nodes/node1/proxy')[0] == 404
    assert call(kube_api, 'GET', '/healthz')[0] == 404


def test_load_yaml_and_json_files_with_lists(kube_api, tmp_path):
    (tmp_path / 'a.yaml').write_text(
        'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n'
        '  metadata: {name: one, namespace: x}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\n')
    (tmp_path / 'b.json').write_text(json.dumps(objects.service('two')))
    assert len(kube_api.load(str(tmp_path / 'a.yaml'))) == 2
    kube_api.load(str(tmp_path / 'b.json'))
    assert names(call(kube_api, 'GET', SERVICES)[1]) == ['two', 'one']  # default < x
    assert kube_api.get('/api/v1/nodes/n1')['metadata']['name'] == 'n1'


def test_reset_forgets_everything(seven):
    seven.fault('status', times=None, code=500)
    call(seven, 'GET', SERVICES)
    seven.reset()
    assert (seven.requests, seven.faults, seven.objects) == ([], [], {})
    assert call(seven, 'GET', SERVICES)[1]['items'] == []


def test_kubeconfig_for_the_lab_vm(kube_api, tmp_path):
    import yaml
    path = kube_api.write_kubeconfig(str(tmp_path / 'config'), host='10.0.2.2')
    config = yaml.safe_load(open(path))
    cluster = config['clusters'][0]['cluster']
    assert cluster['server'] == 'https://10.0.2.2:%d' % kube_api.port
    assert base64.b64decode(cluster['certificate-authority-data']) == kube_api.pki.read('ca_cert')
    assert config['users'][0]['user'] == {'token': kube_api.token}
    assert (tmp_path / 'config').stat().st_mode & 0o077 == 0


def test_the_openssl_fallback_makes_a_working_pki(tmp_path):
    from kube_api import certs
    pki = certs.make_pki(str(tmp_path), use_openssl=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    client = ssl.create_default_context(cafile=pki.ca_cert)
    client.load_cert_chain(pki.client_cert, pki.client_key)


def open_watch(server, path, timeout=5):
    """(connection, response) of a watch request; read events with next_event()."""
    context = ssl.create_default_context(cafile=server.pki.ca_cert)
    conn = http.client.HTTPSConnection('127.0.0.1', server.port, context=context, timeout=timeout)
    conn.request('GET', path, headers={'Authorization': 'Bearer %s' % server.token})
    return conn, conn.getresponse()


def next_event(response):
    line = response.readline()
    return json.loads(line) if line else None


def test_a_watch_streams_the_changes_after_its_version(kube_api):
    kube_api.add(objects.service('web', namespace='a'), objects.service('db', namespace='b'))
    status, listing = call(kube_api, 'GET', SERVICES)
    version = listing['metadata']['resourceVersion']
    conn, response = open_watch(kube_api, '/api/v1/namespaces/a/services?watch=1&resourceVersion=%s' % version)
    try:
        assert response.status == 200 and response.headers['Transfer-Encoding'] == 'chunked'
        kube_api.add(objects.service('api', namespace='a'), objects.service('other', namespace='b'))
        kube_api.update('/api/v1/namespaces/a/services/web', lambda obj: obj['spec'].update(clusterIP='10.96.0.99'))
        kube_api.remove('/api/v1/namespaces/a/services/api')
        events = [next_event(response) for _ in range(3)]
        assert [(event['type'], event['object']['metadata']['name']) for event in events] == [
            ('ADDED', 'api'), ('MODIFIED', 'web'), ('DELETED', 'api')]
        assert events[1]['object']['spec']['clusterIP'] == '10.96.0.99'
        versions = [int(event['object']['metadata']['resourceVersion']) for event in events]
        assert versions == sorted(versions) and versions[0] > int(version)
    finally:
        conn.close()


def test_a_watch_by_field_selector_sends_bookmarks_and_ends_after_its_timeout(kube_api):
    kube_api.bookmark_interval = 0.2
    kube_api.add(objects.node_object('node1', zone='z1'), objects.node_object('node2', zone='z2'))
    conn, response = open_watch(kube_api, '/api/v1/nodes?watch=1&resourceVersion=%s&allowWatchBookmarks=true'
                                '&fieldSelector=metadata.name%%3Dnode2&timeoutSeconds=1' % kube_api.resource_version)
    try:
        kube_api.update('/api/v1/nodes/node1', lambda obj: obj['metadata'].update(labels={}))
        kube_api.update('/api/v1/nodes/node2', lambda obj: obj['metadata'].update(labels={}))
        events = []
        while True:
            event = next_event(response)
            if event is None:
                break
            events.append(event)
    finally:
        conn.close()
    assert events[0]['type'] == 'MODIFIED' and events[0]['object']['metadata']['name'] == 'node2'
    assert all(event['type'] == 'BOOKMARK' for event in events[1:]) and len(events) >= 2
    assert events[-1]['object']['metadata']['resourceVersion'] == kube_api.resource_version


def test_a_watch_from_a_compacted_version_gets_410_and_drop_watches_hangs_up(kube_api):
    kube_api.add(objects.service('web'))
    old = kube_api.resource_version
    kube_api.add(objects.service('db'))
    kube_api.compact()
    conn, response = open_watch(kube_api, '/api/v1/services?watch=1&resourceVersion=%s' % old)
    try:
        event = next_event(response)
        assert (event['type'], event['object']['code']) == ('ERROR', 410)
        assert next_event(response) is None
    finally:
        conn.close()
    conn, response = open_watch(kube_api, '/api/v1/services?watch=1&resourceVersion=%s' % kube_api.resource_version)
    try:
        kube_api.drop_watches()
        try:
            assert response.readline() == b''  # the stream ends without its last chunk
        except (http.client.IncompleteRead, ConnectionError, ssl.SSLError):
            pass
    finally:
        conn.close()
    kube_api.down()
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError, OSError)):
        call(kube_api, 'GET', SERVICES)
    kube_api.up()
    assert call(kube_api, 'GET', SERVICES)[0] == 200
