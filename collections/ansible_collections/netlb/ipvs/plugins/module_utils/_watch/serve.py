# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watcher's HTTP side: its own health and metrics, and the load balancers' health
checks of externalTrafficPolicy: Local Services. Stdlib only (http.server).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    health = Health(max_age=2 * interval)           # health.synced() after every reconcile
    status = StatusServer(health, registry, ('127.0.0.1', DEFAULT_PORT))   # binds now
    services = ServiceHealthServer(health, addresses=('192.168.10.17',))
    errors = services.update({32000: ('shop/web', 2)})   # {port: why it could not listen}
    # that argument from a translation and the EndpointSlices:
    #   health_check_services(translation.health_check_node_ports,
    #                         local_ready_endpoints(slices, node_name))
    ...
    services.close(); status.close()                # every socket and thread gone

StatusServer answers /healthz (200 while the last reconcile is recent and the node may
take traffic, else 503; kube-proxy's JSON fields), /livez (the same without the node)
and /metrics (the registry's exposition). ServiceHealthServer opens one listener per
healthCheckNodePort on each node address and answers any path as kube-proxy's service
health server does: 200 when this node has ready local endpoints for the Service (and
the watcher is healthy), 503 otherwise, with the Service's name and the count in JSON.

Each server runs one thread that waits on all its listening sockets; a request gets a
short thread of its own (at most MAX_CLIENTS at once per listener, each bounded by
CLIENT_TIMEOUT), joined when the listener closes.
"""

from __future__ import annotations

import datetime
import http.server
import json
import selectors
import socket
import socketserver
import threading
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._watch import metrics

# Not a port of kube-proxy (10249 metrics, 10256 healthz) nor of the kubelet or the
# control plane: both may run on the node during a migration.
DEFAULT_PORT = 10266
DEFAULT_ADDRESS = ('127.0.0.1', DEFAULT_PORT)
CLIENT_TIMEOUT = 5.0
MAX_CLIENTS = 16
_JSON = 'application/json'
_ZERO_TIME = '0001-01-01 00:00:00 +0000 UTC'  # what Go prints for a time never set


class Health:
    """When the watcher last finished a reconcile, and whether this node may take traffic.

    healthy(): a reconcile finished within max_age seconds (none yet: not healthy, the
    table is not programmed). The node is ineligible while it is being deleted or drained
    (set_node_eligible(False)), as kube-proxy reads its Node.
    """

    def __init__(self, max_age, clock=time.monotonic, wall=time.time):
        if not max_age > 0:
            raise ValueError('max_age: must be a positive number of seconds, got %r' % (max_age,))
        self.max_age = float(max_age)
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._last = None  # (monotonic, wall) of the last finished reconcile
        self._eligible = True

    def synced(self):
        with self._lock:
            self._last = (self._clock(), self._wall())

    def set_node_eligible(self, eligible):
        with self._lock:
            self._eligible = bool(eligible)

    def state(self):
        """(healthy, node eligible, wall time of the last reconcile or None, wall time now)."""
        with self._lock:
            last, eligible = self._last, self._eligible
        healthy = last is not None and self._clock() - last[0] <= self.max_age
        return healthy, eligible, None if last is None else last[1], self._wall()

    def healthy(self):
        return self.state()[0]


def go_time(seconds):
    """A Unix time as Go's time.Time prints (UTC), the spelling kube-proxy's body has."""
    if seconds is None:
        return _ZERO_TIME
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    fraction = ('.%06d' % moment.microsecond).rstrip('0').rstrip('.')
    return moment.strftime('%Y-%m-%d %H:%M:%S') + fraction + ' +0000 UTC'


def healthz_body(health, node=True):
    """(status, body) of /healthz (node=True) or /livez. Healthy, lastUpdated is now, as
    kube-proxy says (older clients read a recent lastUpdated as healthy)."""
    healthy, eligible, last, now = health.state()
    ok = healthy and (eligible or not node)
    fields = [('lastUpdated', go_time(now if ok else last)), ('currentTime', go_time(now))]
    if node:
        fields.append(('nodeEligible', eligible))
    body = '{%s}' % ', '.join('%s: %s' % (json.dumps(key), json.dumps(value)) for key, value in fields)
    return (200 if ok else 503), body


def service_body(namespace, name, local_endpoints, proxy_healthy):
    """(status, body) of a healthCheckNodePort answer: kube-proxy's fields and layout."""
    ok = local_endpoints > 0 and proxy_healthy
    body = '{\n\t"service": {\n\t\t"namespace": %s,\n\t\t"name": %s\n\t},\n\t"localEndpoints": %d,\n' \
           '\t"serviceProxyHealthy": %s\n}' % (json.dumps(namespace), json.dumps(name), local_endpoints,
                                               'true' if proxy_healthy else 'false')
    return (200 if ok else 503), body


class _Handler(http.server.BaseHTTPRequestHandler):
    """Asks its server's answer(path) for (status, content type, body); GET and HEAD."""

    timeout = CLIENT_TIMEOUT
    server_version = 'netlb-ipvs'
    sys_version = ''

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def _answer(self, with_body):
        try:
            status, content_type, body = self.server.answer(self.path.split('?', 1)[0])
        except Exception as exc:  # pylint: disable=broad-exception-caught
            status, content_type, body = 500, 'text/plain; charset=utf-8', 'error: %s\n' % exc
        data = body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, *_args):  # pylint: disable=arguments-differ
        pass  # no stderr from library code; the watcher counts what it needs


class _Listener(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """One listening socket; requests in threads joined on close (block_on_close)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address, answer):
        self.address_family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        self.answer = answer
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super(_Listener, self).__init__(address, _Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            # "::" beside "0.0.0.0" on the same port: each family its own socket.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would look the host name up
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # a flood of slow clients: refuse, keep serving
            return
        super(_Listener, self).process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super(_Listener, self).process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Loop:
    """One thread waiting on any number of listeners; add and remove from any thread."""

    def __init__(self, name):
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, listener):
        with self._lock:
            listener.socket.setblocking(False)  # a client gone between wake-up and accept
            self._selector.register(listener, selectors.EVENT_READ, listener)
        self._wake()

    def remove(self, listener):
        """Stop accepting on listener, close it and join its request threads."""
        with self._lock:
            self._selector.unregister(listener)
        listener.server_close()

    def _wake(self):
        try:
            self._wake_write.send(b'x')
        except OSError:
            pass  # closing, or the pipe is full: it wakes anyway

    def _run(self):
        while True:
            events = self._selector.select()
            with self._lock:
                if self._closed:
                    return
                for key, _mask in events:
                    if key.data is None:
                        try:
                            self._wake_read.recv(4096)
                        except OSError:
                            pass
                    elif self._selector.get_map().get(key.fileobj) is not None:
                        key.data.handle_request()  # readable: accepts without waiting

    def close(self):
        with self._lock:
            listeners = [key.data for key in self._selector.get_map().values() if key.data is not None]
            self._closed = True
        self._wake()
        self._thread.join()
        for listener in listeners:
            self._selector.unregister(listener)
            listener.server_close()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()


def _listen(address, answer):
    listener = _Listener(address, answer)
    listener.timeout = 0  # handle_request() after select said readable: never wait again
    return listener


class StatusServer:
    """/healthz, /livez and /metrics on one address (loopback by default). Binds in the
    constructor: OSError (address in use) reaches the caller. on_scrape(), if given, runs
    before each /metrics rendering (read the kernel's counters into the registry), one
    call at a time, in a request's thread: give it a backend of its own (a netlink
    socket is not shared between threads)."""

    def __init__(self, health, registry, address=DEFAULT_ADDRESS, on_scrape=None):
        self.health = health
        self.registry = registry
        self.on_scrape = on_scrape
        self._scrape_lock = threading.Lock()
        listener = _listen(tuple(address), self.answer)
        self.address = listener.server_address[:2]
        self._listener = listener
        self._loop = _Loop('netlb-status-http')
        self._loop.add(listener)

    def answer(self, path):
        if path in ('/healthz', '/livez'):
            status, body = healthz_body(self.health, node=path == '/healthz')
            return status, _JSON, body
        if path == '/metrics':
            if self.on_scrape is not None:
                with self._scrape_lock:
                    self.on_scrape()
            return 200, metrics.CONTENT_TYPE, self.registry.render()
        return 404, 'text/plain; charset=utf-8', '404 page not found\n'

    def close(self):
        self._loop.close()


def _service_name(port, value):
    """(namespace, name, local endpoints) of one update() entry; ValueError naming the port."""
    try:
        ref, count = value
        namespace, name = ref.split('/')
    except (TypeError, ValueError, AttributeError):
        raise ValueError('health check port %r: expected ("namespace/name", local endpoint count), got %r'
                         % (port, value))
    if not namespace or not name or not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError('health check port %r: expected ("namespace/name", local endpoint count), got %r'
                         % (port, value))
    return namespace, name, count


SERVICE_NAME_LABEL = 'kubernetes.io/service-name'


def local_ready_endpoints(endpoint_slices, node_name):
    """{'namespace/name': ready endpoints on node_name} from EndpointSlice objects (the
    API's JSON), counted as kube-proxy counts for its health checks: distinct addresses
    (a pod serving two ports is one endpoint), ready only (a terminating endpoint fails
    the check), ready when the condition is absent. Malformed parts are left out."""
    found = {}
    for item in endpoint_slices:
        try:
            meta = item.get('metadata') or {}
            service = (meta.get('labels') or {}).get(SERVICE_NAME_LABEL)
            namespace = meta.get('namespace')
            endpoints = item.get('endpoints') or ()
        except AttributeError:
            continue
        if not service or not namespace:
            continue
        for endpoint in endpoints:
            if not isinstance(endpoint, dict) or endpoint.get('nodeName') != node_name:
                continue
            if (endpoint.get('conditions') or {}).get('ready') is False:
                continue
            addresses = endpoint.get('addresses')
            if isinstance(addresses, list) and addresses and isinstance(addresses[0], str):
                found.setdefault('%s/%s' % (namespace, service), set()).add(addresses[0])
    return dict((ref, len(addresses)) for ref, addresses in found.items())


def health_check_services(health_check_node_ports, local_endpoints):
    """ServiceHealthServer.update()'s argument: health_check_node_ports {'namespace/name':
    port} (the translation's), local_endpoints {'namespace/name': count}
    (local_ready_endpoints()); a Service without a local endpoint gets 0 (503)."""
    return dict((port, (ref, local_endpoints.get(ref, 0))) for ref, port in health_check_node_ports.items())


class ServiceHealthServer:
    """The healthCheckNodePort listeners of externalTrafficPolicy: Local LoadBalancer
    Services, on each of addresses (the node's; '0.0.0.0' / '::' for all)."""

    def __init__(self, health, addresses=('0.0.0.0',)):
        self.health = health
        self.addresses = tuple(addresses)
        self._lock = threading.Lock()
        self._services = {}  # port -> (namespace, name, local endpoints)
        self._listeners = {}  # port -> [listener per address]
        self._loop = _Loop('netlb-healthcheck-http')

    def ports(self):
        """The ports listened on now."""
        with self._lock:
            return sorted(self._listeners)

    def update(self, services):
        """services: {port: ("namespace/name", local endpoint count)}, all of them. Opens
        the new ports, closes the ones gone, updates the counts. Returns {port: error} for
        ports it could not listen on (in use: retried at the next update)."""
        wanted = {}
        for port, value in services.items():
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ValueError('health check port %r: not a port number (1-65535)' % (port,))
            wanted[port] = _service_name(port, value)
        with self._lock:
            self._services = wanted
            gone = [port for port in self._listeners if port not in wanted]
            new = [port for port in sorted(wanted) if port not in self._listeners]
            closing = [self._listeners.pop(port) for port in gone]
        for listeners in closing:
            for listener in listeners:
                self._loop.remove(listener)
        errors = {}
        for port in new:
            opened = []
            try:
                for address in self.addresses:
                    opened.append(_listen((address, port), self._answer_for(port)))
            except OSError as exc:
                for listener in opened:
                    listener.server_close()
                errors[port] = 'cannot listen on %s port %d: %s' % (address, port, exc.strerror or exc)
                continue
            with self._lock:
                self._listeners[port] = opened
            for listener in opened:
                self._loop.add(listener)
        return errors

    def _answer_for(self, port):
        def answer(_path):
            with self._lock:
                service = self._services.get(port)
            if service is None:
                return 503, 'text/plain; charset=utf-8', 'no service on this port\n'
            status, body = service_body(service[0], service[1], service[2], self.health.healthy())
            return status, _JSON, body
        return answer

    def close(self):
        with self._lock:
            self._listeners = {}
            self._services = {}
        self._loop.close()
