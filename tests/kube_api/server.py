# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's one stand-in Kubernetes API server, for tests (stdlib only).

HTTPS with a per-session test CA, bearer-token auth (or a client certificate signed by
that CA), the real REST paths, an in-memory object store keyed by path, and per-test
fault injection. It is not an apiserver: just enough of one that a client cannot tell
for the requests this project makes.

    server = KubeApiServer(workdir)        # one per session (see plugin.py)
    server.add(objects.service('web'))     # dicts, lists, `kind: List` documents
    server.load('cluster.yaml')            # YAML (multi-document) or JSON files
    server.write_kubeconfig(path)          # or host='10.0.2.2' for the lab VM
    server.fault('status', path='/apis/discovery.k8s.io/v1/endpointslices', code=403)
    server.requests                        # every request: Request(method, path, query, body, headers)
    server.reset()                         # between tests

Paths: /version; list (cluster-wide and namespaced), get, create (POST), replace (PUT,
409 on a stale metadata.resourceVersion), patch (merge patch) and delete on
/api/v1/... and /apis/GROUP/VERSION/..., for any resource. Lists honour limit/continue
(a consistent snapshot per listing, like etcd), labelSelector, fieldSelector
(metadata.name=) and resourceVersion; asked for with Accept: ...;as=PartialObjectMetadataList,
a list holds each item's metadata alone. Objects are sorted by namespace then name, as the
apiserver returns them.

Watches (?watch=1): a chunked stream of {"type", "object"} lines, one per change after
resourceVersion (every add, create, replace, patch and delete is logged), BOOKMARKs every
bookmark_interval seconds when allowWatchBookmarks, ended after timeoutSeconds. A
resourceVersion older than the log keeps (compact()) gets an ERROR event with a 410
Status, as the apiserver sends it. drop_watches() hangs up every open watch; down() also
hangs up every new request until up() (the API gone away and back).

    server.update(path, lambda obj: ...)   # change a stored object: a MODIFIED event
    server.remove(path)                    # a DELETED event
    server.compact()                       # older versions are gone: watches from them get 410
"""

import base64
import collections
import copy
import http.server
import itertools
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse

from . import certs

TOKEN = 'netlb-stand-in-token'
# The host's loopback as a lab VM (qemu user networking) sees it: write_kubeconfig(host=VM_HOST).
VM_HOST = '10.0.2.2'

# plural -> kind, for the kinds this project reads or writes (others: guessed, see _kind_of).
KINDS = {
    'services': 'Service', 'endpoints': 'Endpoints', 'endpointslices': 'EndpointSlice',
    'nodes': 'Node', 'namespaces': 'Namespace', 'configmaps': 'ConfigMap', 'secrets': 'Secret',
    'serviceaccounts': 'ServiceAccount', 'pods': 'Pod', 'clusterroles': 'ClusterRole',
    'clusterrolebindings': 'ClusterRoleBinding', 'roles': 'Role', 'rolebindings': 'RoleBinding',
}
PLURALS = {kind: plural for plural, kind in KINDS.items()}
CLUSTER_SCOPED = {'nodes', 'namespaces', 'clusterroles', 'clusterrolebindings'}

CHANGE_LOG = 10000  # changes kept for watches; older resourceVersions get 410
FAULTS = ('status', 'slow', 'truncate', 'length', 'close', 'empty', 'gone', 'no_items', 'garbage', 'trickle')

Request = collections.namedtuple('Request', ('method', 'path', 'query', 'body', 'headers'))
Request.__doc__ = """One request as the server saw it. query: name -> value (the last one
given); body: parsed JSON (or the raw bytes when it is not JSON, None when empty);
headers: name (lower case) -> value."""

# A resource address: api prefix ('/api/v1', '/apis/discovery.k8s.io/v1'), plural,
# namespace ('' when cluster-scoped or cluster-wide), name ('' for a collection).
Address = collections.namedtuple('Address', ('prefix', 'plural', 'namespace', 'name', 'subresource'))


class ApiError(Exception):
    """Answer with a v1 Status of this code."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class Fault:
    """One injected misbehaviour, used `times` times (None: until reset).

    kind: 'status' (answer code with a Status: params code, reason, message),
    'slow' (wait params delay seconds, then answer normally), 'truncate' (announce the
    whole body, send half of it, close), 'length' (announce more bytes than sent, close),
    'close' (close without answering), 'empty' (an empty list of the right kind),
    'gone' (410 Expired, only for requests with a continue token), 'no_items' (a list
    without `items`), 'garbage' (200 with a body that is not JSON), 'trickle' (the whole
    answer, status line and headers included, one byte every params interval seconds:
    no single read ever waits long).
    path: exact path, or a prefix when it ends with '*'; None matches every path.
    continued: True = only requests with a continue token (later pages), False = only
    without (first pages), None = both.
    """

    def __init__(self, kind, path=None, method='GET', times=1, continued=None, **params):
        if kind not in FAULTS:
            raise ValueError('unknown fault %r (one of %s)' % (kind, ', '.join(FAULTS)))
        self.kind, self.path, self.method, self.times, self.params = kind, path, method, times, params
        self.continued = True if kind == 'gone' else continued
        self.hits = 0

    def matches(self, method, path, query):
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and method != self.method:
            return False
        if self.continued is not None and self.continued != ('continue' in query):
            return False
        if self.path is None:
            return True
        if self.path.endswith('*'):
            return path.startswith(self.path[:-1])
        return path == self.path


def parse_path(path):
    """Address of a REST path, or None when it is not a resource path."""
    parts = [urllib.parse.unquote(part) for part in path.strip('/').split('/')]
    if len(parts) >= 2 and parts[0] == 'api':
        prefix, rest = '/api/' + parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == 'apis':
        prefix, rest = '/apis/%s/%s' % (parts[1], parts[2]), parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == 'namespaces' and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = ''
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else '', '/'.join(rest[2:])
    return Address(prefix, plural, namespace, name, sub)


def address_of(obj):
    """Where an object lives, from its apiVersion, kind, namespace and name."""
    api_version = obj.get('apiVersion') or 'v1'
    prefix = '/api/' + api_version if '/' not in api_version else '/apis/' + api_version
    plural = PLURALS.get(obj.get('kind'), (obj.get('kind') or '').lower() + 's')
    meta = obj.get('metadata') or {}
    namespace = '' if plural in CLUSTER_SCOPED else (meta.get('namespace') or 'default')
    return Address(prefix, plural, namespace, meta.get('name') or '', '')


def path_of(address):
    scope = '/namespaces/%s' % address.namespace if address.namespace else ''
    path = '%s%s/%s' % (address.prefix, scope, address.plural)
    if address.plural == 'namespaces' and address.namespace and not address.name:
        path = '%s/namespaces/%s' % (address.prefix, address.namespace)
    return path + ('/' + address.name if address.name else '')


def _kind_of(plural):
    return KINDS.get(plural) or plural[:-1].capitalize()


# ------------------------------------------------------------------ label selectors
_TERM = re.compile(r'\s*(?:(?P<not>!)\s*(?P<nkey>[^\s,!=()]+)'
                   r'|(?P<key>[^\s,!=()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)'
                   r'|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)')


def parse_selector(text):
    """A labelSelector as a list of predicates on a labels dict (ValueError if bad)."""
    terms, pos = [], 0
    text = text or ''
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError('unable to parse requirement at %r' % text[pos:])
        pos = match.end()
        if match.group('not'):
            key = match.group('nkey')
            terms.append(lambda labels, key=key: key not in labels)
        elif match.group('op') in ('=', '=='):
            key, value = match.group('key'), match.group('value')
            terms.append(lambda labels, key=key, value=value: labels.get(key) == value)
        elif match.group('op') == '!=':
            key, value = match.group('key'), match.group('value')
            terms.append(lambda labels, key=key, value=value: labels.get(key) != value)
        elif match.group('setop'):
            key = match.group('key')
            values = {value.strip() for value in match.group('values').split(',')}
            if match.group('setop') == 'in':
                terms.append(lambda labels, key=key, values=values: labels.get(key) in values)
            else:
                terms.append(lambda labels, key=key, values=values: labels.get(key) not in values)
        else:
            key = match.group('key')
            terms.append(lambda labels, key=key: key in labels)
    return terms


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (also used for strategic merge: close enough here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class KubeApiServer:
    """The stand-in API server (one thread per connection, in-memory state)."""

    def __init__(self, workdir, token=TOKEN, version=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.pki = certs.make_pki(workdir)
        self.token = token
        self.version_info = version or {'major': '1', 'minor': '31', 'gitVersion': 'v1.31.0-netlb-stand-in',
                                        'platform': 'linux/amd64'}
        self._lock = threading.RLock()
        self._handlers = []  # (method, compiled path regex, function(server, request) -> (code, body))
        self.reset()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        context.load_verify_locations(self.pki.ca_cert)
        context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is one way to log in
        self.httpd = _HTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.api = self
        # The handshake happens in the connection's thread (first read), not in accept().
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name='kube-api-stand-in', daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ state
    def reset(self):
        """Forget objects, requests, faults, listing snapshots and custom handlers' state."""
        with self._lock:
            wake = getattr(self, '_wake', None)
            if wake is not None:
                wake.set()  # cut short the sleeps of 'slow' faults still pending
            changed = getattr(self, '_changed', None)
            if changed is not None:
                changed.notify_all()  # open watches see the new generation and hang up
            self._wake = threading.Event()
            self.objects = {}  # path -> object
            self.requests = []
            self.faults = []
            self.snapshots = {}  # continue snapshot id -> list of items
            self.tokens = {self.token}
            self.rv0_ignores_limit = False  # True: rv=0 lists answer everything at once (older apiservers)
            # False: lists hand out the stored objects, not copies (for benchmarks, which never
            # change them: a real apiserver answers from its watch cache, with no such cost).
            self.copy_lists = True
            self._rv = itertools.count(1000)
            self._snap_ids = itertools.count(1)
            self.resource_version = '999'
            self.changes = collections.deque(maxlen=CHANGE_LOG)  # (rv, type, path, object) for watches
            self.compacted = 999  # watches from an older resourceVersion get 410
            self.bookmark_interval = 5.0
            self.watch_generation = getattr(self, 'watch_generation', 0) + 1  # older watches hang up
            self.is_down = False
            self._changed = threading.Condition(self._lock)

    def stop(self):
        self.drop_watches()
        self._wake.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return 'https://127.0.0.1:%d' % self.port

    def _next_rv(self):
        self.resource_version = str(next(self._rv))
        return self.resource_version

    def _log(self, kind, path, obj):
        """One change for the watches (under the lock); the log keeps CHANGE_LOG of them."""
        if len(self.changes) == self.changes.maxlen:
            self.compacted = self.changes[0][0]
        self.changes.append((int(obj['metadata']['resourceVersion']), kind, path, copy.deepcopy(obj)))
        self._changed.notify_all()

    def update(self, path, change):
        """change(obj) edits a copy of the stored object at path in place; stored with a
        new resourceVersion (a MODIFIED event). Returns the stored copy."""
        with self._lock:
            obj = copy.deepcopy(self.objects[path])
            change(obj)
            obj['metadata']['resourceVersion'] = self._next_rv()
            self.objects[path] = obj
            self._log('MODIFIED', path, obj)
            return copy.deepcopy(obj)

    def remove(self, path):
        """Delete the stored object at path (a DELETED event); returns it."""
        with self._lock:
            obj = self.objects.pop(path)
            obj['metadata']['resourceVersion'] = self._next_rv()
            self._log('DELETED', path, obj)
            return copy.deepcopy(obj)

    def compact(self):
        """Forget the change log: a watch from any version up to now gets 410 Gone."""
        with self._lock:
            self.changes.clear()
            self.compacted = int(self.resource_version)

    def drop_watches(self):
        """Hang up every open watch (their clients see the connection break off)."""
        with self._lock:
            self.watch_generation += 1
            self._changed.notify_all()

    def down(self):
        """The API goes away: open watches hang up, new requests are hung up unanswered."""
        with self._lock:
            self.is_down = True
        self.drop_watches()

    def up(self):
        with self._lock:
            self.is_down = False

    def add(self, *objects):
        """Store objects (dicts; lists and `kind: List`/`*List` dicts are flattened).

        Missing namespace becomes 'default'; resourceVersion and uid are filled in.
        Returns the stored copies.
        """
        stored = []
        with self._lock:
            for obj in _flatten(objects):
                obj = copy.deepcopy(obj)
                meta = obj.setdefault('metadata', {})
                address = address_of(obj)
                if not address.name:
                    raise ValueError('object without metadata.name: %r' % (obj,))
                if address.namespace:
                    meta['namespace'] = address.namespace
                meta['resourceVersion'] = self._next_rv()
                meta.setdefault('uid', 'uid-%s' % meta['resourceVersion'])
                path = path_of(address)
                self._log('MODIFIED' if path in self.objects else 'ADDED', path, obj)
                self.objects[path] = obj
                stored.append(obj)
        return stored

    def load(self, path):
        """Store the objects of a YAML (multi-document) or JSON file."""
        with open(path) as handle:
            text = handle.read()
        if path.endswith('.json'):
            docs = [json.loads(text)]
        else:
            import yaml  # only tests that load YAML need PyYAML
            docs = [doc for doc in yaml.safe_load_all(text) if doc]
        return self.add(*docs)

    def get(self, path):
        """The stored object at path (a copy), or None."""
        with self._lock:
            obj = self.objects.get(path)
            return copy.deepcopy(obj) if obj is not None else None

    def fault(self, kind, path=None, method='GET', times=1, continued=None, **params):
        """Inject a Fault (see its doc) for the next matching request(s); returns it."""
        fault = Fault(kind, path=path, method=method, times=times, continued=continued, **params)
        with self._lock:
            self.faults.append(fault)
        return fault

    def handle(self, method, path_regex, function):
        """Answer method on paths matching path_regex with function(server, request, match)
        -> (code, body dict). For later needs (token requests, a watch); registered per
        session, so register once."""
        self._handlers.append((method, re.compile(path_regex), function))

    def requests_to(self, path, method='GET'):
        """The recorded requests for one path (query string excluded)."""
        return [request for request in self.requests if request.path == path and request.method == method]

    def write_kubeconfig(self, path, host='127.0.0.1', token=None, ca=True, client_cert=False,
                         context='stand-in', namespace=None):
        """Write a kubeconfig for this server and return its path (mode 0600).

        host: the address clients use (10.0.2.2 from the lab VM); token: None = the
        server's token, '' = none; ca: embed the CA (False: no CA at all);
        client_cert: embed the client certificate and key.
        """
        user = {}
        if token is None:
            token = self.token
        if token:
            user['token'] = token
        if client_cert:
            user['client-certificate-data'] = base64.b64encode(self.pki.read('client_cert')).decode()
            user['client-key-data'] = base64.b64encode(self.pki.read('client_key')).decode()
        cluster = {'server': 'https://%s:%d' % (host, self.port)}
        if ca:
            cluster['certificate-authority-data'] = base64.b64encode(self.pki.read('ca_cert')).decode()
        ctx = {'cluster': 'stand-in', 'user': 'stand-in'}
        if namespace:
            ctx['namespace'] = namespace
        config = {
            'apiVersion': 'v1', 'kind': 'Config', 'current-context': context, 'preferences': {},
            'clusters': [{'name': 'stand-in', 'cluster': cluster}],
            'users': [{'name': 'stand-in', 'user': user}],
            'contexts': [{'name': context, 'context': ctx}],
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            json.dump(config, handle, indent=1)  # JSON is YAML: every kubeconfig reader takes it
        return path

    # ------------------------------------------------------------------ answering
    def _take_fault(self, method, path, query):
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, query):
                    fault.hits += 1
                    return fault
        return None

    def answer(self, request):
        """(code, body) for an authenticated request without a fault."""
        if request.path == '/version':
            return 200, self.version_info
        for method, regex, function in self._handlers:
            match = regex.fullmatch(request.path)
            if match and method == request.method:
                return function(self, request, match)
        address = parse_path(request.path)
        if address is None:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if address.subresource:
            raise ApiError(404, 'NotFound', 'the stand-in server has no %s subresource' % address.subresource)
        with self._lock:
            if request.method == 'GET':
                if address.name:
                    return 200, self._existing(address)
                code, answer = self._list(address, request.query)
                return code, (metadata_only(answer) if METADATA_LIST in request.headers.get('accept', '') else answer)
            if request.method == 'POST' and not address.name:
                return self._create(address, request.body)
            if request.method == 'PUT' and address.name:
                return self._replace(address, request.body)
            if request.method == 'PATCH' and address.name:
                return self._patch(address, request.body)
            if request.method == 'DELETE' and address.name:
                self._existing(address)
                return 200, self.remove(path_of(address))
        raise ApiError(405, 'MethodNotAllowed', '%s is not supported on %s' % (request.method, request.path))

    def _existing(self, address):
        obj = self.objects.get(path_of(address))
        if obj is None:
            raise ApiError(404, 'NotFound', '%s "%s" not found' % (address.plural, address.name))
        return copy.deepcopy(obj)

    def _create(self, address, body):
        if not isinstance(body, dict):
            raise ApiError(400, 'BadRequest', 'the body is not a JSON object')
        meta = body.setdefault('metadata', {})
        name = meta.get('name')
        if not name:
            raise ApiError(422, 'Invalid', 'metadata.name: Required value')
        target = address._replace(name=name)
        if path_of(target) in self.objects:
            raise ApiError(409, 'AlreadyExists', '%s "%s" already exists' % (address.plural, name))
        if address.namespace:
            meta['namespace'] = address.namespace
        meta['resourceVersion'] = self._next_rv()
        meta.setdefault('uid', 'uid-%s' % meta['resourceVersion'])
        self.objects[path_of(target)] = body
        self._log('ADDED', path_of(target), body)
        return 201, copy.deepcopy(body)

    def _replace(self, address, body):
        current = self._existing(address)
        if not isinstance(body, dict):
            raise ApiError(400, 'BadRequest', 'the body is not a JSON object')
        body = copy.deepcopy(body)  # requests keep the body as sent (its resourceVersion)
        meta = body.setdefault('metadata', {})
        if meta.get('name', address.name) != address.name:
            raise ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        asked = meta.get('resourceVersion')
        if asked and asked != current['metadata']['resourceVersion']:
            raise ApiError(409, 'Conflict', 'Operation cannot be fulfilled on %s "%s": the object has been '
                           'modified; please apply your changes to the latest version and try again'
                           % (address.plural, address.name))
        meta['name'] = address.name
        if address.namespace:
            meta['namespace'] = address.namespace
        meta['uid'] = current['metadata'].get('uid')
        meta['resourceVersion'] = self._next_rv()
        self.objects[path_of(address)] = body
        self._log('MODIFIED', path_of(address), body)
        return 200, copy.deepcopy(body)

    def _patch(self, address, body):
        current = self._existing(address)
        if not isinstance(body, dict):
            raise ApiError(415, 'UnsupportedMediaType', 'only merge patches (a JSON object) are supported')
        asked = (body.get('metadata') or {}).get('resourceVersion')
        if asked and asked != current['metadata']['resourceVersion']:
            raise ApiError(409, 'Conflict', 'Operation cannot be fulfilled on %s "%s": the object has been '
                           'modified' % (address.plural, address.name))
        patched = merge_patch(current, body)
        patched['metadata']['resourceVersion'] = self._next_rv()
        self.objects[path_of(address)] = patched
        self._log('MODIFIED', path_of(address), patched)
        return 200, copy.deepcopy(patched)

    def _list(self, address, query):
        cont = query.get('continue')
        rv = query.get('resourceVersion')
        if cont and rv:
            raise ApiError(400, 'BadRequest', 'specifying resource version is not allowed when using continue')
        try:
            limit = int(query.get('limit') or 0)
        except ValueError:
            raise ApiError(400, 'BadRequest', 'limit: invalid value %r' % query.get('limit'))
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()).decode())
                items, list_rv = self.snapshots[token['id']]
                start = int(token['start'])
            except (ValueError, KeyError, TypeError):
                raise ApiError(410, 'Expired', 'The provided continue parameter is too old to display a '
                               'consistent list result. You can start a new list without the continue parameter.')
        else:
            selected = _selection(address, query)
            items = [self.objects[path] for path in sorted(self.objects, key=_sort_key)
                     if selected(path, self.objects[path])]
            if self.copy_lists:
                items = copy.deepcopy(items)
            list_rv, start = self.resource_version, 0
            if rv == '0' and self.rv0_ignores_limit:
                limit = 0
        end = start + limit if limit else len(items)
        meta = {'resourceVersion': list_rv}
        if end < len(items):
            snap_id = token['id'] if cont else next(self._snap_ids)
            self.snapshots[snap_id] = (items, list_rv)
            meta['continue'] = base64.urlsafe_b64encode(json.dumps({'id': snap_id, 'start': end}).encode()).decode()
            meta['remainingItemCount'] = len(items) - end
        version = address.prefix.split('/', 2)[-1]
        return 200, {'kind': _kind_of(address.plural) + 'List', 'apiVersion': version,
                     'metadata': meta, 'items': items[start:end]}


METADATA_LIST = 'as=PartialObjectMetadataList'


def metadata_only(answer):
    """A list answer as the apiserver gives it to Accept: application/json;as=
    PartialObjectMetadataList;g=meta.k8s.io;v=v1: each item's metadata alone."""
    items = [{'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1', 'metadata': item.get('metadata') or {}}
             for item in answer['items']]
    return dict(answer, kind='PartialObjectMetadataList', apiVersion='meta.k8s.io/v1', items=items)


def _selection(address, query):
    """selected(path, obj): whether a stored object is in a list or watch of address
    with query's labelSelector and fieldSelector (metadata.name= only)."""
    try:
        selector = parse_selector(query.get('labelSelector'))
    except ValueError as err:
        raise ApiError(400, 'BadRequest', 'unable to parse requirement: %s' % err)
    field = query.get('fieldSelector') or ''
    name = None
    if field:
        key, _sep, name = field.partition('=')
        if key != 'metadata.name' or not name:
            raise ApiError(400, 'BadRequest', 'the stand-in server selects fields by metadata.name= only')

    def selected(path, obj):
        where = parse_path(path)
        if (where.prefix, where.plural) != (address.prefix, address.plural):
            return False
        if address.namespace and where.namespace != address.namespace:
            return False
        if name is not None and where.name != name:
            return False
        labels = (obj.get('metadata') or {}).get('labels') or {}
        return all(term(labels) for term in selector)

    return selected


def _sort_key(path):
    address = parse_path(path)
    return (address.prefix, address.plural, address.namespace, address.name)


def _flatten(objects):
    for obj in objects:
        if isinstance(obj, (list, tuple)):
            for item in _flatten(obj):
                yield item
        elif isinstance(obj, dict) and 'items' in obj and str(obj.get('kind', 'List')).endswith('List'):
            for item in _flatten(obj.get('items') or []):
                yield item
        elif obj:
            yield obj


def status_body(code, reason, message):
    return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
            'message': message, 'reason': reason, 'code': code}


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api = None

    def handle_error(self, request, client_address):
        pass  # clients that hang up (timeouts, TLS refusals) are part of the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive, as clients pool connections
    server_version = 'netlb-kube-api-stand-in'

    def setup(self):
        super().setup()
        # Headers and body go out in separate TLS records: without this, Nagle and
        # delayed ACKs cost 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _serve(self):
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        try:
            body = json.loads(raw.decode()) if raw else None
        except ValueError:
            body = raw
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = Request(self.command, url.path, query, body, headers)
        with api._lock:
            api.requests.append(request)
            wake = api._wake
        if not self._authenticated(api, headers):
            return self._send(401, status_body(401, 'Unauthorized', 'Unauthorized'))
        if api.is_down:
            return self._hang_up()
        if self.command == 'GET' and query.get('watch') in ('1', 'true'):
            return self._watch(api, request)
        fault = api._take_fault(self.command, url.path, query)
        if fault is not None and self._misbehave(api, fault, wake, request):
            return
        try:
            code, answer = api.answer(request)
        except ApiError as err:
            code, answer = err.code, status_body(err.code, err.reason, err.message)
        if fault is not None and fault.kind == 'no_items' and isinstance(answer, dict):
            answer.pop('items', None)
        self._send(code, answer, fault)

    def _authenticated(self, api, headers):
        auth = headers.get('authorization', '')
        if auth.startswith('Bearer ') and auth[len('Bearer '):] in api.tokens:
            return True
        # CERT_OPTIONAL: a certificate is only here when the CA verified it.
        return bool(self.connection.getpeercert())

    def _misbehave(self, api, fault, wake, request):
        """Apply a fault that replaces the answer; True when the request is done."""
        params = fault.params
        if fault.kind == 'slow':
            wake.wait(params.get('delay', 5.0))
            return False
        if fault.kind == 'status':
            code = params.get('code', 500)
            reason = params.get('reason') or {401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound',
                                              500: 'InternalError', 503: 'ServiceUnavailable'}.get(code, 'Failure')
            message = params.get('message') or '%s (injected)' % reason
            self._send(code, status_body(code, reason, message))
            return True
        if fault.kind == 'gone':
            self._send(410, status_body(410, 'Expired', 'The provided continue parameter is too old to display '
                                        'a consistent list result. You can start a new list without the '
                                        'continue parameter.'))
            return True
        if fault.kind == 'close':
            self._hang_up()
            return True
        if fault.kind == 'empty':
            address = parse_path(request.path)
            plural = address.plural if address else 'items'
            version = address.prefix.split('/', 2)[-1] if address else 'v1'
            self._send(200, {'kind': _kind_of(plural) + 'List', 'apiVersion': version,
                             'metadata': {'resourceVersion': api.resource_version}, 'items': []})
            return True
        if fault.kind == 'garbage':
            self._send_raw(200, b'<html>502 Bad Gateway</html>', 'text/html')
            return True
        return False  # truncate, length, no_items, trickle: change the real answer

    def _send(self, code, body, fault=None):
        data = json.dumps(body).encode()
        if fault is not None and fault.kind == 'trickle':
            self._trickle(code, data, fault.params.get('interval', 0.05))
        elif fault is not None and fault.kind == 'truncate':
            self._send_raw(code, data[:len(data) // 2], length=len(data))
            self._hang_up()
        elif fault is not None and fault.kind == 'length':
            self._send_raw(code, data, length=len(data) + 100)
            self._hang_up()
        else:
            self._send_raw(code, data)

    def _send_raw(self, code, data, content_type='application/json', length=None):
        self.send_response(code)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _trickle(self, code, data, interval):
        head = ('HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'
                % (code, self.responses.get(code, ('',))[0], len(data))).encode()
        wake = self.server.api._wake
        try:
            for index in range(len(head + data)):
                self.wfile.write((head + data)[index:index + 1])
                self.wfile.flush()
                if wake.wait(interval):
                    break
        except OSError:  # the client gave up
            pass
        self.close_connection = True

    def _watch(self, api, request):
        """Stream the changes after the request's resourceVersion (see the module's doc)."""
        address = parse_path(request.path)
        query = request.query
        try:
            if address is None or address.name or address.subresource:
                raise ApiError(405, 'MethodNotAllowed', 'watch a collection: %s' % request.path)
            selected = _selection(address, query)
            timeout = float(query.get('timeoutSeconds') or 1800)
            since = int(query.get('resourceVersion') or 0)
        except ValueError:
            code, answer = 400, status_body(400, 'BadRequest', 'resourceVersion and timeoutSeconds are numbers')
            return self._send(code, answer)
        except ApiError as err:
            return self._send(err.code, status_body(err.code, err.reason, err.message))
        bookmarks = query.get('allowWatchBookmarks') in ('1', 'true')
        # Open from before its headers go: a drop_watches() by a client that saw them hangs it up.
        with api._lock:
            generation = api.watch_generation
            if since == 0:
                since = int(api.resource_version)
            gone = since < api.compacted
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        kind = _kind_of(address.plural)
        deadline = time.monotonic() + timeout
        try:
            if gone:
                self._chunk({'type': 'ERROR', 'object': status_body(
                    410, 'Expired', 'too old resource version: %d (%d)' % (since, api.compacted))})
                return self._chunk(None)
            next_bookmark = time.monotonic() + api.bookmark_interval
            while True:
                with api._lock:
                    while True:
                        if api.watch_generation != generation:
                            return self._hang_up()
                        if since < api.compacted:
                            self._chunk({'type': 'ERROR', 'object': status_body(
                                410, 'Expired', 'too old resource version: %d (%d)' % (since, api.compacted))})
                            return self._chunk(None)
                        pending = [change for change in api.changes if change[0] > since]
                        now = time.monotonic()
                        if pending or now >= deadline or (bookmarks and now >= next_bookmark):
                            break
                        api._changed.wait(min(deadline, next_bookmark if bookmarks else deadline) - now)
                    version = api.resource_version
                for rv, change, path, obj in pending:
                    since = rv
                    if selected(path, obj):
                        self._chunk({'type': change, 'object': obj})
                if time.monotonic() >= deadline:
                    return self._chunk(None)
                if bookmarks and time.monotonic() >= next_bookmark:
                    since = max(since, int(version))
                    self._chunk({'type': 'BOOKMARK', 'object': {'kind': kind, 'metadata': {
                        'resourceVersion': str(since)}}})
                    next_bookmark = time.monotonic() + api.bookmark_interval
        except OSError:  # the client went away
            self.close_connection = True

    def _chunk(self, event):
        """One event as a chunk of the answer (None: the last, empty chunk)."""
        data = b'' if event is None else json.dumps(event).encode() + b'\n'
        self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
        self.wfile.flush()

    def _hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
