# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_watch.serve on loopback with real sockets (ephemeral ports): /healthz, /livez,
/metrics, the healthCheckNodePort listeners opening and closing, a clean stop."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._watch import metrics, serve


class Clock:
    """A monotonic clock and a wall clock the test moves."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def wall(self):
        return 1767225600.0 + self.now  # 2026-01-01T00:00:00Z + now


def get(address, path='/', method='GET'):
    """(status, headers dict, body text) of one request."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode('utf-8')
    finally:
        conn.close()


def free_port():
    """A port nothing listens on (the kernel's pick, released at once)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def listening(port):
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(('127.0.0.1', port)) == 0


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def health(clock):
    return serve.Health(max_age=10, clock=clock.monotonic, wall=clock.wall)


@pytest.fixture
def threads_before():
    before = set(threading.enumerate())
    yield before
    assert set(threading.enumerate()) <= before, 'threads left behind'


@pytest.fixture
def status(health, threads_before):  # pylint: disable=unused-argument
    registry = metrics.Registry()
    server = serve.StatusServer(health, registry, ('127.0.0.1', 0))
    yield server
    server.close()


def test_healthz_follows_the_last_sync(status, health, clock):
    code, headers, body = get(status.address, '/healthz')
    assert code == 503  # nothing synced yet: the table is not programmed
    assert headers['Content-Type'] == 'application/json' and headers['X-Content-Type-Options'] == 'nosniff'
    assert json.loads(body) == {'lastUpdated': '0001-01-01 00:00:00 +0000 UTC',
                                'currentTime': '2026-01-01 00:16:40 +0000 UTC', 'nodeEligible': True}
    health.synced()
    clock.now += 9.5
    code, _headers, body = get(status.address, '/healthz')
    assert code == 200
    assert json.loads(body)['lastUpdated'] == json.loads(body)['currentTime'] == '2026-01-01 00:16:49.5 +0000 UTC'
    clock.now += 1  # 10.5 s after the sync, max_age 10
    code, _headers, body = get(status.address, '/healthz')
    assert code == 503 and json.loads(body)['lastUpdated'] == '2026-01-01 00:16:40 +0000 UTC'
    health.synced()
    health.set_node_eligible(False)  # the node is being deleted: not for new traffic
    assert get(status.address, '/healthz')[0] == 503
    assert get(status.address, '/livez')[0] == 200
    assert json.loads(get(status.address, '/livez')[2]).keys() == {'lastUpdated', 'currentTime'}


def test_metrics_and_unknown_paths(health, threads_before):  # pylint: disable=unused-argument
    registry = metrics.Registry()
    scrapes = registry.counter('scrapes_total', 'Scrapes.')
    server = serve.StatusServer(health, registry, ('127.0.0.1', 0), on_scrape=scrapes.inc)
    try:
        code, headers, body = get(server.address, '/metrics')
        assert code == 200 and headers['Content-Type'] == 'text/plain; version=0.0.4; charset=utf-8'
        assert body == '# HELP scrapes_total Scrapes.\n# TYPE scrapes_total counter\nscrapes_total 1\n'
        assert get(server.address, '/metrics?x=1')[2].endswith('scrapes_total 2\n')
        code, headers, body = get(server.address, '/metrics', 'HEAD')
        assert code == 200 and body == '' and int(headers['Content-Length']) > 0
        assert get(server.address, '/nothing')[0] == 404
    finally:
        server.close()


def test_a_failing_scrape_is_a_500_and_the_server_keeps_serving(health, threads_before):  # pylint: disable=unused-argument
    def broken():
        raise RuntimeError('kernel read failed')

    server = serve.StatusServer(health, metrics.Registry(), ('127.0.0.1', 0), on_scrape=broken)
    try:
        code, _headers, body = get(server.address, '/metrics')
        assert code == 500 and 'kernel read failed' in body
        assert get(server.address, '/livez')[0] == 503
    finally:
        server.close()


def test_status_address_in_use_is_an_error_at_start(health, status):
    with pytest.raises(OSError):
        serve.StatusServer(health, metrics.Registry(), status.address)


def test_service_health_ports_open_answer_and_close(health, threads_before):  # pylint: disable=unused-argument
    first, second = free_port(), free_port()
    server = serve.ServiceHealthServer(health, addresses=('127.0.0.1',))
    try:
        health.synced()
        assert server.update({first: ('shop/web', 2), second: ('shop/api', 0)}) == {}
        assert server.ports() == sorted((first, second))
        code, headers, body = get(('127.0.0.1', first), '/any/path')
        assert code == 200
        assert headers['Content-Type'] == 'application/json' and headers['X-Content-Type-Options'] == 'nosniff'
        assert body == ('{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n'
                        '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
        code, _headers, body = get(('127.0.0.1', second))
        assert code == 503 and json.loads(body)['localEndpoints'] == 0  # no ready local endpoint
        # The endpoints move: counts change in place, a port goes, its socket closes.
        assert server.update({second: ('shop/api', 1)}) == {}
        assert server.ports() == [second]
        assert not listening(first)
        assert get(('127.0.0.1', second))[0] == 200
        # A watcher that has not synced for too long is not trusted for traffic.
        health._last = None  # pylint: disable=protected-access
        code, _headers, body = get(('127.0.0.1', second))
        assert code == 503 and json.loads(body)['serviceProxyHealthy'] is False
    finally:
        server.close()
    assert not listening(second)
    assert server.ports() == []


def test_a_port_in_use_is_reported_and_retried(health, threads_before):  # pylint: disable=unused-argument
    health.synced()
    blocker = socket.socket()
    blocker.bind(('127.0.0.1', 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    server = serve.ServiceHealthServer(health, addresses=('127.0.0.1',))
    try:
        errors = server.update({port: ('shop/web', 1)})
        assert list(errors) == [port] and 'cannot listen on 127.0.0.1 port %d' % port in errors[port]
        assert server.ports() == []
        blocker.close()
        assert server.update({port: ('shop/web', 1)}) == {}
        assert get(('127.0.0.1', port))[0] == 200
    finally:
        blocker.close()
        server.close()


@pytest.mark.parametrize('services, message', [
    ({0: ('a/b', 1)}, 'not a port number'),
    ({'80': ('a/b', 1)}, 'not a port number'),
    ({8080: ('ab', 1)}, 'health check port 8080'),
    ({8080: ('a/b', -1)}, 'health check port 8080'),
    ({8080: 'a/b'}, 'health check port 8080'),
])
def test_bad_updates_name_the_port(health, services, message):
    server = serve.ServiceHealthServer(health, addresses=('127.0.0.1',))
    try:
        with pytest.raises(ValueError, match=message):
            server.update(services)
    finally:
        server.close()


def test_close_joins_a_slow_client_and_leaves_no_thread(health, threads_before, monkeypatch):  # pylint: disable=unused-argument
    monkeypatch.setattr(serve._Handler, 'timeout', 0.5)  # pylint: disable=protected-access
    server = serve.StatusServer(health, metrics.Registry(), ('127.0.0.1', 0))
    idle = socket.create_connection(server.address)  # connects, never sends a request
    try:
        assert get(server.address, '/livez')[0] == 503  # others are served meanwhile
    finally:
        server.close()
        idle.close()


@pytest.mark.parametrize('seconds, text', [
    (None, '0001-01-01 00:00:00 +0000 UTC'),
    (0, '1970-01-01 00:00:00 +0000 UTC'),
    (1767225600.25, '2026-01-01 00:00:00.25 +0000 UTC'),
])
def test_go_time(seconds, text):
    assert serve.go_time(seconds) == text


def test_health_needs_a_positive_age():
    with pytest.raises(ValueError, match='max_age'):
        serve.Health(max_age=0)


def slice_of(service, endpoints, namespace='shop'):
    return {'metadata': {'namespace': namespace, 'name': service + '-abc',
                         'labels': {'kubernetes.io/service-name': service}},
            'addressType': 'IPv4', 'endpoints': endpoints}


def endpoint_on(node_name, address, ready=None):
    conditions = {} if ready is None else {'ready': ready}
    return {'addresses': [address], 'nodeName': node_name, 'conditions': conditions}


def test_local_ready_endpoints_counted_as_kube_proxy_does():
    slices = [
        slice_of('web', [endpoint_on('node-a', '10.244.1.5', True), endpoint_on('node-a', '10.244.1.6'),
                         endpoint_on('node-a', '10.244.1.7', False),  # terminating: not counted
                         endpoint_on('node-b', '10.244.2.5', True)]),
        slice_of('web', [endpoint_on('node-a', '10.244.1.5', True)]),  # the same pod, another port's slice
        slice_of('api', [endpoint_on('node-b', '10.244.2.9', True)]),
        slice_of('db', [endpoint_on('node-a', '10.244.1.9', True)], namespace='data'),
        {'metadata': {'namespace': 'shop'}, 'endpoints': [endpoint_on('node-a', '10.244.1.8')]},  # no service
        'not an object', {'metadata': {'namespace': 'shop', 'labels': {'kubernetes.io/service-name': 'x'}},
                          'endpoints': ['bad', {'nodeName': 'node-a', 'addresses': []}]},
    ]
    counts = serve.local_ready_endpoints(slices, 'node-a')
    assert counts == {'shop/web': 2, 'data/db': 1}
    assert serve.health_check_services({'shop/web': 32001, 'shop/api': 32002}, counts) == {
        32001: ('shop/web', 2), 32002: ('shop/api', 0)}


def test_ports_coming_and_going_leak_no_descriptor_or_thread(health, threads_before):  # pylint: disable=unused-argument
    health.synced()
    ports = [free_port() for _port in range(4)]
    before = len(os.listdir('/proc/self/fd'))
    server = serve.ServiceHealthServer(health, addresses=('127.0.0.1',))
    for round_ in range(6):
        wanted = dict((port, ('shop/web-%d' % index, 1)) for index, port in enumerate(ports) if (index + round_) % 2)
        assert server.update(wanted) == {}
        for port in wanted:
            assert get(('127.0.0.1', port))[0] == 200
    server.close()
    assert len(os.listdir('/proc/self/fd')) == before


def test_concurrent_scrapes_read_one_at_a_time(health, threads_before):  # pylint: disable=unused-argument
    inside, most = [0], [0]
    guard = threading.Lock()

    def slow_scrape():
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with guard:
            inside[0] -= 1

    server = serve.StatusServer(health, metrics.Registry(), ('127.0.0.1', 0), on_scrape=slow_scrape)
    try:
        clients = [threading.Thread(target=get, args=(server.address, '/metrics')) for _client in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
    finally:
        server.close()
    assert most[0] == 1
