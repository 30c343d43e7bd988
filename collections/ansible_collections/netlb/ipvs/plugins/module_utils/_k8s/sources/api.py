# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read a ClusterSnapshot from a live Kubernetes API with the `kubernetes` client.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    options = connection_options_from_params(module.params)     # AUTH_ARG_SPEC merged in
    warnings = connection_warnings(options)                     # e.g. a world-readable kubeconfig
    snapshot = read_cluster(options, namespaces=(), node_name='node1')

Connection: see _k8s/connection.py (kubernetes.core's options and K8S_AUTH_* variables).

Reads: Services (optionally by label selector) and EndpointSlices, cluster-wide or per
namespace, in pages of page_size from the watch cache (resourceVersion=0 on the first
page; an apiserver that ignores limit there answers everything at once, also fine); a
410 on a continue token restarts the listing once. Legacy Endpoints only for
selector-less Services without an EndpointSlice, per namespace of such Services. The
node's Node object only when asked (its zone label). Answers are parsed as JSON, never
into the client's model classes (seconds at scale). Every failure is a SourceError with
one line saying what was read from where and why; nothing is returned half-read.

Transport: with static credentials (a token, a client certificate, a CA: as options or
in one kubeconfig) the GETs go out through direct.py's own HTTPS connection and the
kubernetes client is not even imported (its import alone takes 20 s on the lab's
emulated node); anything else (exec plugins, auth providers, in-cluster configuration,
merged kubeconfigs) goes through the client.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot, SourceError
# The connection lives in _k8s/connection.py (shared with k8s_kube_proxy_configmap and
# k8s_node_credentials); these names stay importable from here.
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import (  # noqa: F401 pylint: disable=unused-import
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
    api_error as _api_error,
    client_configuration as _configuration,
    connection_options_from_params,
    connection_warnings,
    plan_connection as _plan_connection,
    status_text as _status_text,
    transport_error as _transport_error,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import direct

kubernetes = urllib3 = ApiException = None  # set by _import_client(), only when a connection needs it

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
ZONE_LABEL = 'topology.kubernetes.io/zone'
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_PAGE_SIZE = 500
# Lists of metadata alone (read_versions): the apiserver answers PartialObjectMetadataList.
METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json'


class _Expired(Exception):
    """410 Gone on a continue token."""


def _import_client():
    """Import the kubernetes client (and urllib3) into this module's globals."""
    global kubernetes, urllib3, ApiException  # pylint: disable=global-statement
    if kubernetes is None:
        kubernetes = connection.import_client()
        urllib3 = connection.urllib3
        ApiException = kubernetes.client.rest.ApiException


# What is read, as (resource, namespaced?) -> REST path (and, for the kubernetes client,
# the API class attribute and method): one table both transports follow.
_RESOURCES = {
    ('services', False): ('/api/v1/services', 'core', 'list_service_for_all_namespaces'),
    ('services', True): ('/api/v1/namespaces/{namespace}/services', 'core', 'list_namespaced_service'),
    ('endpointslices', False): ('/apis/discovery.k8s.io/v1/endpointslices', 'discovery',
                                'list_endpoint_slice_for_all_namespaces'),
    ('endpointslices', True): ('/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices', 'discovery',
                               'list_namespaced_endpoint_slice'),
    ('endpoints', True): ('/api/v1/namespaces/{namespace}/endpoints', 'core', 'list_namespaced_endpoints'),
    ('node', False): ('/api/v1/nodes/{name}', 'core', 'read_node'),
    ('nodes', False): ('/api/v1/nodes', 'core', 'list_node'),  # the watcher's, by fieldSelector
}
# REST query names -> the client's keyword arguments.
_CLIENT_QUERY = {'limit': 'limit', 'continue': '_continue', 'resourceVersion': 'resource_version',
                 'labelSelector': 'label_selector', 'fieldSelector': 'field_selector'}


class _Reader:
    """Requests under one timeout, answers as JSON, failures as SourceError. The
    requests go through direct.Connection when the credentials allow it, else through
    the kubernetes client (see direct.py)."""

    def __init__(self, options, environ, request_timeout, page_size, use_client=None):
        self.timeout = request_timeout
        self.page_size = page_size
        how, source = _plan_connection(options, environ)
        found = None if use_client else direct.target(options, how, source)
        if found is None and use_client is False:
            raise SourceError('this connection needs the kubernetes client')
        self.connection = self.client = self.files = None
        self.target = found
        if found is not None:
            self.origin = found.url
            try:
                self.connection = direct.Connection(found, request_timeout)
            except direct.TransportError as err:
                raise SourceError('connecting to %s: %s' % (self.origin, err))
        else:
            if not HAS_KUBERNETES:
                raise SourceError('this connection (%s) needs the Python library %s: %s'
                                  % (how, KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
            _import_client()
            self.files = connection.PrivateDirectory()
            try:
                config = _configuration(options, environ, private_dir=self.files.path)
            except BaseException:
                self.files.remove()
                raise
            self.origin = config.host
            self.client = kubernetes.client.ApiClient(config)
            self.apis = {'core': kubernetes.client.CoreV1Api(self.client),
                         'discovery': kubernetes.client.DiscoveryV1Api(self.client)}

    def both(self, first, second):
        """(first(self), second(reader)) with both running at once, the second on a
        connection of its own: the answers of one are decoded while the other's arrive.
        Through the kubernetes client, one after the other. The first's error wins."""
        if self.connection is None:
            return first(self), second(self)
        other = _Reader.__new__(_Reader)
        other.__dict__.update(self.__dict__)
        other.connection = direct.Connection(self.target, self.timeout)
        outcome = {}

        def run():
            try:
                outcome['value'] = second(other)
            except Exception as err:  # pylint: disable=broad-except
                outcome['error'] = err

        thread = threading.Thread(target=run, name='netlb-k8s-list')
        thread.daemon = True
        thread.start()
        try:
            value = first(self)
        finally:
            thread.join()
            other.connection.close()
        if 'error' in outcome:
            raise outcome['error']
        return value, outcome['value']

    def close(self):
        if self.connection is not None:
            self.connection.close()
        close = getattr(self.client, 'close', None)
        if close is not None:
            close()
        if self.files is not None:
            self.files.remove()

    def fail(self, what, why):
        return SourceError('reading %s from %s: %s' % (what, self.origin, why))

    def get(self, what, resource, namespace=None, name=None, accept=None, **query):
        """The JSON answer of one GET of a resource (query with the REST names; accept:
        another Accept header, direct connections only)."""
        path, api_name, method = _RESOURCES[(resource, namespace is not None)]
        if self.connection is not None:
            data = self._get_direct(what, path.format(namespace=namespace, name=name), query, accept)
        else:
            kwargs = dict((_CLIENT_QUERY[key], value) for key, value in query.items())
            for key, value in (('namespace', namespace), ('name', name)):
                if value is not None:
                    kwargs[key] = value
            data = self._get_client(what, getattr(self.apis[api_name], method), query, kwargs)
        try:
            return json.loads(data)
        except ValueError as err:
            raise self.fail(what, 'the answer is not valid JSON (%d bytes, truncated?): %s' % (len(data), err))

    def _get_direct(self, what, path, query, accept=None):
        try:
            status, reason, data = self.connection.get(path, query, accept)
        except direct.TransportError as err:
            raise self.fail(what, str(err))
        if status == 410 and query.get('continue'):
            raise _Expired()
        if status != 200:
            raise self.fail(what, _status_text(status, reason, data))
        return data

    def _get_client(self, what, call, query, kwargs):
        deadline = time.monotonic() + self.timeout

        def request():
            # A (connect, read) pair: older clients ignore a single float.
            response = call(_preload_content=False, _request_timeout=(self.timeout, self.timeout), **kwargs)
            return request_bounds.read_answer(response, deadline, self.timeout)

        try:
            return request_bounds.call_within(self.timeout, request)
        except request_bounds.AnswerError as err:
            raise self.fail(what, str(err))
        except ApiException as err:
            if err.status == 410 and query.get('continue'):
                raise _Expired()
            raise self.fail(what, _api_error(err))
        except urllib3.exceptions.MaxRetryError as err:
            raise self.fail(what, _transport_error(err.reason, self.timeout))
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self.fail(what, _transport_error(err, self.timeout))

    def list_all(self, what, resource, namespace=None, accept=None, **query):
        """Every item of a list, page by page; a continue token that expired (410)
        restarts the listing once."""
        for attempt in (1, 2):
            items, token = [], None
            while True:
                page_query = dict(query, limit=self.page_size)
                if token:
                    page_query['continue'] = token  # resourceVersion is not allowed with continue
                else:
                    page_query['resourceVersion'] = '0'  # the first page from the watch cache
                try:
                    page = self.get(what, resource, namespace, accept=accept, **page_query)
                except _Expired:
                    break
                if not isinstance(page, dict) or not isinstance(page.get('items'), list):
                    raise self.fail(what, 'the answer is not a list (no items)')
                items.extend(page['items'])
                token = (page.get('metadata') or {}).get('continue')
                if not token:
                    return items
        raise self.fail(what, '410 Gone: the continue token expired twice (the objects change faster than '
                              'they can be listed; try a larger page_size)')


def _scopes(namespaces):
    return sorted(set(namespaces)) if namespaces else [None]


def _needs_endpoints(services, slices):
    """namespace -> names of the Services whose backends only legacy Endpoints can give:
    no selector (so no controller makes slices) and no EndpointSlice of their own."""
    sliced = set()
    for item in slices:
        meta = item.get('metadata') or {}
        name = (meta.get('labels') or {}).get(SERVICE_NAME_LABEL)
        if name:
            sliced.add((meta.get('namespace'), name))
    needed = {}
    for item in services:
        meta, spec = item.get('metadata') or {}, item.get('spec') or {}
        if spec.get('selector') or spec.get('type') == 'ExternalName' or spec.get('clusterIP') == 'None':
            continue
        key = (meta.get('namespace'), meta.get('name'))
        if key not in sliced:
            needed.setdefault(key[0], set()).add(key[1])
    return needed


def read_cluster(options, namespaces=(), label_selector=None, node_name=None, need_node=True,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT, page_size=DEFAULT_PAGE_SIZE, environ=None, use_client=None):
    """A ClusterSnapshot read from the API the connection options point at.

    options: from connection_options_from_params; namespaces: () = cluster-wide;
    label_selector: for Services only; node_name with need_node: read that Node (its
    zone label); request_timeout: seconds each request may take in all (connect, send,
    the whole answer), each answer at most request_bounds.MAX_ANSWER_BYTES;
    page_size: list limit; use_client: None = the kubernetes client only when the
    connection needs it, True = always, False = never (tests). Raises SourceError
    (nothing partial is returned), ValidationError for a request_timeout or page_size
    out of range.
    """
    problems = request_bounds.request_problems({'request_timeout': request_timeout, 'page_size': page_size})
    if problems:  # a negative timeout would reach the socket as a traceback
        raise ValidationError(problems)
    environ = os.environ if environ is None else environ
    reader = _Reader(options, environ, request_timeout, page_size, use_client)
    try:
        with warnings.catch_warnings():
            # validate_certs: false is the user's explicit choice; urllib3 would warn per request.
            if urllib3 is not None:
                warnings.simplefilter('ignore', urllib3.exceptions.InsecureRequestWarning)
            return _read(reader, namespaces, label_selector, node_name if need_node else None)
    finally:
        reader.close()


def _services_and_slices(reader, namespaces, label_selector, accept=None):
    """(Services, EndpointSlices) of every scope, both lists at once (accept: see get())."""
    selector = {'labelSelector': label_selector} if label_selector else {}
    services, slices = [], []
    for namespace in _scopes(namespaces):
        where = ' in namespace %s' % namespace if namespace else ''
        listed = reader.both(
            lambda one: one.list_all('Services' + where, 'services', namespace, accept=accept, **selector),
            lambda other: other.list_all('EndpointSlices' + where, 'endpointslices', namespace, accept=accept))
        services += listed[0]
        slices += listed[1]
    return services, slices


def _read(reader, namespaces, label_selector, node_name):
    services, slices = _services_and_slices(reader, namespaces, label_selector)
    endpoints = []
    for namespace, names in sorted(_needs_endpoints(services, slices).items()):
        listed = reader.list_all('Endpoints in namespace %s' % namespace, 'endpoints', namespace)
        endpoints += [item for item in listed if (item.get('metadata') or {}).get('name') in names]
    node = None
    if node_name:
        node = reader.get('Node %s' % node_name, 'node', name=node_name)
        if not isinstance(node, dict) or not isinstance(node.get('metadata'), dict):
            raise reader.fail('Node %s' % node_name, 'the answer is not a Node')
    return ClusterSnapshot(services=services, endpoint_slices=slices, endpoints=endpoints, node=node,
                           origin=reader.origin)


def read_versions(options, namespaces=(), label_selector=None, node_name=None, need_node=True,
                  request_timeout=DEFAULT_REQUEST_TIMEOUT, page_size=DEFAULT_PAGE_SIZE, environ=None):
    """The cluster's Services and EndpointSlices as their metadata alone (the apiserver's
    PartialObjectMetadataList: names and resourceVersions without the endpoints, a small
    part of the bytes), and the Node whole: a ClusterSnapshot whose fingerprint
    (pipeline.fingerprint) equals the whole read's when nothing changed and no legacy
    Endpoints are read. None when the connection needs the kubernetes client (the whole
    read then). Raises SourceError; arguments as read_cluster()'s."""
    problems = request_bounds.request_problems({'request_timeout': request_timeout, 'page_size': page_size})
    if problems:
        raise ValidationError(problems)
    environ = os.environ if environ is None else environ
    how, source = _plan_connection(options, environ)
    if direct.target(options, how, source) is None:
        return None
    reader = _Reader(options, environ, request_timeout, page_size, use_client=False)
    try:
        services, slices = _services_and_slices(reader, namespaces, label_selector, accept=METADATA_LIST)
        node = None
        if node_name and need_node:
            node = reader.get('Node %s' % node_name, 'node', name=node_name)
            if not isinstance(node, dict) or not isinstance(node.get('metadata'), dict):
                raise reader.fail('Node %s' % node_name, 'the answer is not a Node')
        return ClusterSnapshot(services=services, endpoint_slices=slices, endpoints=[], node=node,
                               origin=reader.origin)
    finally:
        reader.close()


def node_zone(node):
    """The zone label of a Node dict, or None."""
    return (((node or {}).get('metadata') or {}).get('labels') or {}).get(ZONE_LABEL)
