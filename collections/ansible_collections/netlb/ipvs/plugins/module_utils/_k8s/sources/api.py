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
"""

from __future__ import annotations

import json
import os
import warnings

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot, SourceError
# The connection lives in _k8s/connection.py (shared with k8s_kube_proxy_configmap); these
# names stay importable from here.
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import (  # noqa: F401 pylint: disable=unused-import
    AUTH_ARG_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
    api_error as _api_error,
    client_configuration as _configuration,
    connection_options_from_params,
    connection_warnings,
    transport_error as _transport_error,
)

try:
    import kubernetes
    import urllib3
    from kubernetes.client.rest import ApiException
except ImportError:  # HAS_KUBERNETES says so; read_cluster refuses to run without it
    pass

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
ZONE_LABEL = 'topology.kubernetes.io/zone'
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_PAGE_SIZE = 500


class _Expired(Exception):
    """410 Gone on a continue token."""


class _Reader:
    """Requests under one timeout, answers as JSON, failures as SourceError."""

    def __init__(self, config, request_timeout, page_size):
        self.origin = config.host
        self.timeout = request_timeout
        self.page_size = page_size
        self.client = kubernetes.client.ApiClient(config)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.client)

    def close(self):
        close = getattr(self.client, 'close', None)
        if close is not None:
            close()

    def fail(self, what, why):
        return SourceError('reading %s from %s: %s' % (what, self.origin, why))

    def get(self, what, call, **kwargs):
        """The JSON answer of one call (a typed API method, returning the raw response)."""
        try:
            # A (connect, read) pair: older clients ignore a single float.
            response = call(_preload_content=False, _request_timeout=(self.timeout, self.timeout), **kwargs)
            data = response.data
        except ApiException as err:
            if err.status == 410 and kwargs.get('_continue'):
                raise _Expired()
            raise self.fail(what, _api_error(err))
        except urllib3.exceptions.MaxRetryError as err:
            raise self.fail(what, _transport_error(err.reason, self.timeout))
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self.fail(what, _transport_error(err, self.timeout))
        try:
            return json.loads(data)
        except ValueError as err:
            raise self.fail(what, 'the answer is not valid JSON (%d bytes, truncated?): %s' % (len(data), err))

    def list_all(self, what, call, **kwargs):
        """Every item of a list, page by page; a continue token that expired (410)
        restarts the listing once."""
        for attempt in (1, 2):
            items, token = [], None
            while True:
                query = dict(kwargs, limit=self.page_size)
                if token:
                    query['_continue'] = token  # resourceVersion is not allowed with continue
                else:
                    query['resource_version'] = '0'  # the first page from the watch cache
                try:
                    page = self.get(what, call, **query)
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
                 request_timeout=DEFAULT_REQUEST_TIMEOUT, page_size=DEFAULT_PAGE_SIZE, environ=None):
    """A ClusterSnapshot read from the API the connection options point at.

    options: from connection_options_from_params; namespaces: () = cluster-wide;
    label_selector: for Services only; node_name with need_node: read that Node (its
    zone label); request_timeout: seconds per request (connect and read);
    page_size: list limit. Raises SourceError (nothing partial is returned).
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API source needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    environ = os.environ if environ is None else environ
    reader = _Reader(_configuration(options, environ), request_timeout, page_size)
    try:
        with warnings.catch_warnings():
            # validate_certs: false is the user's explicit choice; urllib3 would warn per request.
            warnings.simplefilter('ignore', urllib3.exceptions.InsecureRequestWarning)
            return _read(reader, namespaces, label_selector, node_name if need_node else None)
    finally:
        reader.close()


def _read(reader, namespaces, label_selector, node_name):
    selector = {'label_selector': label_selector} if label_selector else {}
    services, slices = [], []
    for namespace in _scopes(namespaces):
        where = ' in namespace %s' % namespace if namespace else ''
        if namespace:
            services += reader.list_all('Services' + where, reader.core.list_namespaced_service,
                                        namespace=namespace, **selector)
            slices += reader.list_all('EndpointSlices' + where, reader.discovery.list_namespaced_endpoint_slice,
                                      namespace=namespace)
        else:
            services += reader.list_all('Services', reader.core.list_service_for_all_namespaces, **selector)
            slices += reader.list_all('EndpointSlices', reader.discovery.list_endpoint_slice_for_all_namespaces)
    endpoints = []
    for namespace, names in sorted(_needs_endpoints(services, slices).items()):
        listed = reader.list_all('Endpoints in namespace %s' % namespace, reader.core.list_namespaced_endpoints,
                                 namespace=namespace)
        endpoints += [item for item in listed if (item.get('metadata') or {}).get('name') in names]
    node = None
    if node_name:
        node = reader.get('Node %s' % node_name, reader.core.read_node, name=node_name)
        if not isinstance(node, dict) or not isinstance(node.get('metadata'), dict):
            raise reader.fail('Node %s' % node_name, 'the answer is not a Node')
    return ClusterSnapshot(services=services, endpoint_slices=slices, endpoints=endpoints, node=node,
                           origin=reader.origin)


def node_zone(node):
    """The zone label of a Node dict, or None."""
    return (((node or {}).get('metadata') or {}).get('labels') or {}).get(ZONE_LABEL)
