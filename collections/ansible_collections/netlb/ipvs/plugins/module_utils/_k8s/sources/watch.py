# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""List, then watch, the objects a sync reads, for the watcher (_watch/loop.py).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    source = ApiSource(options, namespaces=(), label_selector=None, node_name='node1')
    for stream in source.streams():               # Services, EndpointSlices (per namespace), the Node
        channel = source.open(stream)             # one per thread: a connection of its own
        items, version = channel.list()
        for event in channel.watch(version, timeout=300):   # decoded JSON, as the apiserver sent it
            ...
        channel.close()

The same connection options and transports as api.py (its _Reader): static credentials
go through direct.py's own HTTPS, anything else through the kubernetes client. Lists
page like api.py's (from the watch cache, resourceVersion=0); the list's
resourceVersion is where the watch starts. A watch asks for bookmarks
(allowWatchBookmarks) and ends after timeout seconds (timeoutSeconds); its events are
yielded one decoded line at a time, a line that is not JSON as its text (the loop leaves
it out). Gone: 410 (relist); StreamError: any other failure, one line saying what and why.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api, direct

# The longest line (one event) a watch may send: a whole object.
MAX_EVENT_BYTES = 16 << 20
_PLURALS = {'Service': 'services', 'EndpointSlice': 'endpointslices', 'Node': 'nodes'}
_NAMES = {'Service': 'Services', 'EndpointSlice': 'EndpointSlices', 'Node': 'Node'}


class Gone(Exception):
    """410 Gone: the resourceVersion is older than the apiserver keeps; list again."""


class StreamError(Exception):
    """A list or a watch failed (unreachable, refused, broken off, timed out)."""


class Stream(collections.namedtuple('Stream', ('kind', 'namespace'))):
    """What one list+watch follows: a kind (Service, EndpointSlice, Node), in one
    namespace or all (None)."""

    __slots__ = ()

    def __str__(self):
        return '%s%s' % (_NAMES[self.kind], ' in namespace %s' % self.namespace if self.namespace else '')


class ApiSource(object):
    """The cluster's streams for one node, over api.py's connection options."""

    def __init__(self, options, namespaces=(), label_selector=None, node_name=None,
                 request_timeout=api.DEFAULT_REQUEST_TIMEOUT, page_size=api.DEFAULT_PAGE_SIZE, environ=None,
                 use_client=None):
        self.options = options
        self.namespaces = sorted(set(namespaces or ()))
        self.label_selector = label_selector
        self.node_name = node_name
        self.request_timeout = request_timeout
        self.page_size = page_size
        self.environ = os.environ if environ is None else environ
        self.use_client = use_client
        probe = self._reader()  # fails here, before any thread, when the connection cannot be made
        self.origin = probe.origin
        probe.close()

    def _reader(self):
        try:
            return api._Reader(self.options, self.environ, self.request_timeout, self.page_size,  # pylint: disable=protected-access
                               self.use_client)
        except SourceError as exc:
            raise StreamError(str(exc))

    def streams(self):
        scopes = self.namespaces or [None]
        streams = [Stream('Service', namespace) for namespace in scopes]
        streams += [Stream('EndpointSlice', namespace) for namespace in scopes]
        if self.node_name:
            streams.append(Stream('Node', None))
        return streams

    def open(self, stream):
        return Channel(self._reader(), stream, self)


class Channel(object):
    """One stream's list and watches, on a reader (connection) of its own."""

    def __init__(self, reader, stream, source):
        self.reader = reader
        self.stream = stream
        self.query = {}
        if stream.kind == 'Service' and source.label_selector:
            self.query['labelSelector'] = source.label_selector
        if stream.kind == 'Node':
            self.query['fieldSelector'] = 'metadata.name=%s' % source.node_name
        self.timeout = source.request_timeout
        self.watching = None  # the open watch's connection or response, closed by close()

    def close(self):
        self._end_watch()
        self.reader.close()

    def _end_watch(self):
        watching, self.watching = self.watching, None
        if watching is not None:
            try:
                watching.close()
            except (OSError, http.client.HTTPException):
                pass

    def list(self):
        """(items, the list's resourceVersion)."""
        what = str(self.stream)
        plural = _PLURALS[self.stream.kind]
        for _attempt in (1, 2):
            items, token, version = [], None, None
            while True:
                query = dict(self.query, limit=self.reader.page_size)
                if token:
                    query['continue'] = token
                else:
                    query['resourceVersion'] = '0'
                try:
                    page = self.reader.get(what, plural, self.stream.namespace, **query)
                except api._Expired:  # pylint: disable=protected-access
                    break
                except SourceError as exc:
                    raise StreamError(str(exc))
                if not isinstance(page, dict) or not isinstance(page.get('items'), list):
                    raise StreamError('reading %s: the answer is not a list (no items)' % what)
                items.extend(page['items'])
                metadata = page.get('metadata') or {}
                version = metadata.get('resourceVersion') or version
                token = metadata.get('continue')
                if not token:
                    if not version:
                        raise StreamError('reading %s: the list has no resourceVersion to watch from' % what)
                    return items, version
        raise StreamError('reading %s: 410 Gone: the continue token expired twice' % what)

    def watch(self, version, timeout):
        """The decoded events of one watch from version, for at most timeout seconds."""
        self._end_watch()
        query = dict(self.query, watch='1', resourceVersion=version, allowWatchBookmarks='true',
                     timeoutSeconds=str(int(timeout)))
        if self.reader.connection is not None:
            lines = self._watch_direct(query, timeout)
        else:
            lines = self._watch_client(query, timeout)
        try:
            for line in lines:
                if line.strip():
                    try:
                        yield json.loads(line, object_pairs_hook=_shared_keys)
                    except ValueError:
                        yield line.decode('utf-8', 'replace')[:200]
        finally:
            self._end_watch()

    def _fail(self, why):
        return StreamError('watching %s from %s: %s' % (self.stream, self.reader.origin, why))

    def _watch_direct(self, query, timeout):
        own = self.reader.connection
        path = api._RESOURCES[(_PLURALS[self.stream.kind], self.stream.namespace is not None)][0]  # pylint: disable=protected-access
        url = path.format(namespace=self.stream.namespace) + '?' + urllib.parse.urlencode(sorted(query.items()))
        http_connection = direct._HTTPSConnection(own.host, own.port, timeout=self.timeout,  # pylint: disable=protected-access
                                                  context=own.context)
        http_connection.deadline = time.monotonic() + timeout + self.timeout
        self.watching = http_connection
        try:
            http_connection.request('GET', url, headers=own.headers)
            response = http_connection.getresponse()
            if response.status == 410:
                raise Gone('the watch from resourceVersion %s expired' % query['resourceVersion'])
            if response.status != 200:
                body = response.read(4096)
                raise self._fail(connection.status_text(response.status, response.reason, body))
            while True:
                line = response.readline(MAX_EVENT_BYTES)
                if not line:
                    return
                if not line.endswith(b'\n') and len(line) >= MAX_EVENT_BYTES:
                    raise self._fail('an event longer than %d bytes' % MAX_EVENT_BYTES)
                yield line
        except socket.timeout:
            if time.monotonic() >= http_connection.deadline:
                return  # the watch outlived its timeout: resumed from the last version
            raise self._fail('no answer within %s s' % self.timeout)
        except ssl.SSLError as exc:
            raise self._fail('TLS: %s' % ' '.join(str(exc).split()))
        except (http.client.HTTPException, OSError) as exc:
            raise self._fail('the connection broke off: %s' % (exc or type(exc).__name__))

    def _watch_client(self, query, timeout):
        _plural_path, api_name, method = api._RESOURCES[(_PLURALS[self.stream.kind], self.stream.namespace is not None)]  # pylint: disable=protected-access
        kwargs = {'watch': True, 'resource_version': query['resourceVersion'], 'allow_watch_bookmarks': True,
                  'timeout_seconds': int(timeout), '_preload_content': False,
                  '_request_timeout': (self.timeout, timeout + self.timeout)}
        for name, argument in (('labelSelector', 'label_selector'), ('fieldSelector', 'field_selector')):
            if name in query:
                kwargs[argument] = query[name]
        if self.stream.namespace is not None:
            kwargs['namespace'] = self.stream.namespace
        call = getattr(self.reader.apis[api_name], method)
        try:
            response = call(**kwargs)
        except api.ApiException as exc:
            if exc.status == 410:
                raise Gone('the watch from resourceVersion %s expired' % query['resourceVersion'])
            raise self._fail(connection.api_error(exc))
        except (api.urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._fail(connection.transport_error(exc, self.timeout))
        self.watching = response
        pending = b''
        try:
            for piece in response.stream(65536):
                pending += piece
                while b'\n' in pending:
                    line, pending = pending.split(b'\n', 1)
                    yield line
                if len(pending) > MAX_EVENT_BYTES:
                    raise self._fail('an event longer than %d bytes' % MAX_EVENT_BYTES)
        except (api.urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._fail(connection.transport_error(exc, self.timeout))
        if pending.strip():
            yield pending


# The field names of the objects watched: each decoded event's mapping uses these very
# strings as keys, so an object replaced by an event does not hold its own copy of every
# key for as long as it is kept (one json.loads shares no string with the next). A fixed
# set, not sys.intern: labels' keys are the cluster's to choose, the memory stays bounded.
_FIELDS = dict((name, name) for name in (
    'type', 'object', 'kind', 'apiVersion', 'metadata', 'name', 'namespace', 'uid', 'resourceVersion',
    'generation', 'creationTimestamp', 'labels', 'annotations', 'ownerReferences', 'controller',
    'blockOwnerDeletion', 'spec', 'status', 'ports', 'port', 'targetPort', 'nodePort', 'protocol', 'appProtocol',
    'selector', 'clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy', 'sessionAffinity',
    'sessionAffinityConfig', 'clientIP', 'timeoutSeconds', 'externalIPs', 'externalTrafficPolicy',
    'internalTrafficPolicy', 'healthCheckNodePort', 'loadBalancerIP', 'loadBalancerSourceRanges',
    'loadBalancerClass', 'allocateLoadBalancerNodePorts', 'loadBalancer', 'ingress', 'ip', 'hostname', 'ipMode',
    'addressType', 'endpoints', 'addresses', 'conditions', 'ready', 'serving', 'terminating', 'nodeName', 'zone',
    'hints', 'forZones', 'forNodes', 'targetRef', 'fieldPath'))


def _shared_keys(pairs):
    """A decoded mapping whose keys, when they are field names, are _FIELDS' strings."""
    return dict([(_FIELDS.get(key, key), value) for key, value in pairs])
