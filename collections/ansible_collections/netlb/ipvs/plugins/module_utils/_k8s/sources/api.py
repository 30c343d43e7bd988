# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read a ClusterSnapshot from a live Kubernetes API with the `kubernetes` client.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    options = connection_options_from_params(module.params)     # AUTH_ARG_SPEC merged in
    warnings = connection_warnings(options)                     # e.g. a world-readable kubeconfig
    snapshot = read_cluster(options, namespaces=(), node_name='node1')

Connection: the options and K8S_AUTH_* variables of kubernetes.core (same names, same
precedence): host with api_key (or a client certificate) is used as given; else
kubeconfig/context; else in-cluster config in a pod; else $KUBECONFIG or ~/.kube/config.
Explicit options override what the kubeconfig says; validate_certs defaults to true.

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

import importlib.util
import json
import os
import re
import stat
import threading
import warnings

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot, SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import direct

# The client is imported only when a connection needs it (see direct.py: its import
# alone outlasts a whole sync on a slow node); whether it is installed is found cheaply.
try:
    HAS_KUBERNETES = importlib.util.find_spec('kubernetes') is not None
    KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else ImportError("No module named 'kubernetes'")
except (ImportError, ValueError) as err:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = err
kubernetes = urllib3 = ApiException = None  # set by _import_client()

# What to install, for messages (the module passes it to missing_required_lib).
KUBERNETES_REQUIREMENT = 'kubernetes (Debian: python3-kubernetes; pip: kubernetes)'

SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
ZONE_LABEL = 'topology.kubernetes.io/zone'
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_PAGE_SIZE = 500

# The connection options, one row each: name, argument spec, K8S_AUTH_* variables read
# when the option is not given (first set one wins; kubernetes.core reads
# K8S_AUTH_<option> then K8S_AUTH_<client attribute>).
_AUTH_OPTIONS = (
    ('kubeconfig', {'type': 'raw'}, ('K8S_AUTH_KUBECONFIG',)),
    ('context', {'type': 'str'}, ('K8S_AUTH_CONTEXT',)),
    ('host', {'type': 'str'}, ('K8S_AUTH_HOST',)),
    ('api_key', {'type': 'str', 'no_log': True}, ('K8S_AUTH_API_KEY',)),
    ('validate_certs', {'type': 'bool', 'default': True, 'aliases': ['verify_ssl']},
     ('K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL')),
    ('ca_cert', {'type': 'path', 'aliases': ['ssl_ca_cert']}, ('K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT')),
    ('client_cert', {'type': 'path', 'aliases': ['cert_file']}, ('K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE')),
    ('client_key', {'type': 'path', 'aliases': ['key_file']}, ('K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE')),
)

# The module merges this into its argument spec (fallbacks: the K8S_AUTH_* variables).
AUTH_ARG_SPEC = dict(
    (name, dict(spec, fallback=(env_fallback, list(variables))))
    for name, spec, variables in _AUTH_OPTIONS
)


def connection_options_from_params(params, environ=None):
    """The connection options from module params (or any dict), K8S_AUTH_* variables
    filling in what is missing or None, booleans parsed, defaults applied."""
    environ = os.environ if environ is None else environ
    options = {}
    for name, spec, variables in _AUTH_OPTIONS:
        value = params.get(name)
        if value is None:
            value = next((environ[var] for var in variables if environ.get(var, '') != ''), None)
        if value is not None and spec['type'] == 'bool' and not isinstance(value, bool):
            try:
                value = boolean(value)
            except TypeError:
                raise SourceError('%s: %r is not a boolean' % (name, value))
        if value is None or value == '':
            value = spec.get('default')
        if isinstance(value, str) and spec['type'] in ('path', 'raw') and value:
            value = os.path.expanduser(value)
        options[name] = value
    return options


def _plan_connection(options, environ):
    """How to connect: ('explicit', None) | ('kubeconfig', path list text or dict) | ('incluster', None)."""
    kubeconfig = options.get('kubeconfig')
    if options.get('host') and (options.get('api_key') or options.get('client_cert')):
        return 'explicit', None
    if kubeconfig or options.get('context'):
        return 'kubeconfig', kubeconfig or _default_kubeconfig(environ)
    if environ.get('KUBERNETES_SERVICE_HOST'):
        return 'incluster', None
    return 'kubeconfig', _default_kubeconfig(environ)


def _default_kubeconfig(environ):
    return environ.get('KUBECONFIG') or os.path.expanduser('~/.kube/config')


def connection_warnings(options, environ=None):
    """Warnings about the connection set-up: a kubeconfig file that others can read."""
    environ = os.environ if environ is None else environ
    how, source = _plan_connection(options, environ)
    if how != 'kubeconfig' or not isinstance(source, str):
        return []
    result = []
    for path in source.split(os.pathsep):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            result.append('kubeconfig %s is readable by %s (mode %04o): it holds credentials, '
                          'make it 0600' % (path, 'group and others' if mode & stat.S_IROTH and mode & stat.S_IRGRP
                                            else 'others' if mode & stat.S_IROTH else 'its group', mode))
    return result


def _configuration(options, environ):
    """A kubernetes.client.Configuration for the options (SourceError when none can be made)."""
    config = kubernetes.client.Configuration()
    how, source = _plan_connection(options, environ)
    context = options.get('context')
    try:
        if how == 'incluster':
            kubernetes.config.load_incluster_config(client_configuration=config)
        elif how == 'kubeconfig' and isinstance(source, dict):
            kubernetes.config.load_kube_config_from_dict(source, context=context, client_configuration=config,
                                                         persist_config=False)
        elif how == 'kubeconfig':
            present = any(os.path.exists(path) for path in source.split(os.pathsep))
            if not present and options.get('kubeconfig'):
                raise SourceError('loading the Kubernetes connection: kubeconfig %s does not exist' % source)
            if not present and not options.get('host'):
                raise SourceError(
                    'no Kubernetes connection: kubeconfig %s does not exist, this is not a pod '
                    '(KUBERNETES_SERVICE_HOST unset), and no host with api_key is given' % source)
            if present:
                kubernetes.config.load_kube_config(config_file=source, context=context,
                                                   client_configuration=config, persist_config=False)
    except SourceError:
        raise
    except Exception as err:  # the client raises ConfigException, OSError, YAML errors, KeyError...
        where = 'in-cluster config' if how == 'incluster' else (
            'kubeconfig (dict)' if isinstance(source, dict) else 'kubeconfig %s' % source)
        raise SourceError('loading the Kubernetes connection from %s: %s' % (where, _one_line(err)))
    overrides = {}
    if options.get('host'):
        overrides['host'] = options['host'].rstrip('/')
    if options.get('api_key'):
        # Older clients read api_key['authorization'], newer ones api_key['BearerToken'].
        token = 'Bearer %s' % options['api_key']
        overrides['api_key'] = {'authorization': token, 'BearerToken': token}
        overrides['api_key_prefix'] = {}
    for name, attribute in (('ca_cert', 'ssl_ca_cert'), ('client_cert', 'cert_file'), ('client_key', 'key_file')):
        if options.get(name):
            overrides[attribute] = options[name]
    if options.get('validate_certs') is not None:
        overrides['verify_ssl'] = bool(options['validate_certs'])
    _override(config, overrides)
    # Each request gets request_timeout once: no silent urllib3 retries multiplying it.
    config.retries = False
    return config


def _override(config, overrides):
    """Set explicit options over the loaded ones, also after each token refresh: a
    kubeconfig's refresh hook copies host, certificates and verify_ssl back."""
    for attribute, value in overrides.items():
        setattr(config, attribute, value)
    hook = getattr(config, 'refresh_api_key_hook', None)
    if hook is not None and overrides:
        def refresh(configuration):
            hook(configuration)
            for attribute, value in overrides.items():
                setattr(configuration, attribute, value)
        config.refresh_api_key_hook = refresh


def _one_line(err):
    text = str(err) or type(err).__name__
    # urllib3 prefixes its messages with the connection (pool) object; say that once instead.
    text = re.sub(r"^(<[^>]*>|\w*Connection(Pool)?\([^)]*\)):\s*", '', text)
    return ' '.join(text.split())


class _Expired(Exception):
    """410 Gone on a continue token."""


def _import_client():
    """Import the kubernetes client (and urllib3) into this module's globals."""
    global kubernetes, urllib3, ApiException  # pylint: disable=global-statement
    if kubernetes is None:
        import kubernetes as client_package
        import urllib3 as urllib3_package
        from kubernetes.client.rest import ApiException as api_exception
        kubernetes, urllib3, ApiException = client_package, urllib3_package, api_exception


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
}
# REST query names -> the client's keyword arguments.
_CLIENT_QUERY = {'limit': 'limit', 'continue': '_continue', 'resourceVersion': 'resource_version',
                 'labelSelector': 'label_selector'}


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
        self.connection = self.client = None
        self.target = found
        if found is not None:
            self.origin = found.url
            try:
                self.connection = direct.Connection(found, request_timeout)
            except direct.TransportError as err:
                raise SourceError('connecting to %s: %s' % (self.origin, err))
        else:
            _import_client()
            config = _configuration(options, environ)
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

    def fail(self, what, why):
        return SourceError('reading %s from %s: %s' % (what, self.origin, why))

    def get(self, what, resource, namespace=None, name=None, **query):
        """The JSON answer of one GET of a resource (query with the REST names)."""
        path, api_name, method = _RESOURCES[(resource, namespace is not None)]
        if self.connection is not None:
            data = self._get_direct(what, path.format(namespace=namespace, name=name), query)
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

    def _get_direct(self, what, path, query):
        try:
            status, reason, data = self.connection.get(path, query)
        except direct.TransportError as err:
            raise self.fail(what, str(err))
        if status == 410 and query.get('continue'):
            raise _Expired()
        if status != 200:
            raise self.fail(what, _status_text(status, reason, data))
        return data

    def _get_client(self, what, call, query, kwargs):
        try:
            # A (connect, read) pair: older clients ignore a single float.
            response = call(_preload_content=False, _request_timeout=(self.timeout, self.timeout), **kwargs)
            return response.data
        except ApiException as err:
            if err.status == 410 and query.get('continue'):
                raise _Expired()
            raise self.fail(what, _api_error(err))
        except urllib3.exceptions.MaxRetryError as err:
            raise self.fail(what, _transport_error(err.reason, self.timeout))
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self.fail(what, _transport_error(err, self.timeout))

    def list_all(self, what, resource, namespace=None, **query):
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
                    page = self.get(what, resource, namespace, **page_query)
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


def _status_text(status, reason, body):
    """'403 Forbidden: <the Status message>' from an HTTP answer that is not 200."""
    message = ''
    try:
        message = json.loads(body).get('message') or ''
    except (TypeError, ValueError, AttributeError):
        message = (body or b'')[:200]
        if isinstance(message, bytes):
            message = message.decode('utf-8', 'replace')
    text = '%s %s' % (status, reason or '')
    return ' '.join(('%s: %s' % (text.strip(), message) if message else text).split())


def _api_error(err):
    """'403 Forbidden: <the Status message>' from an ApiException."""
    if not err.status:  # the client's own wrapping of transport errors (TLS)
        reason = _one_line(err.reason)
        return 'TLS: %s' % reason[len('SSLError '):] if reason.startswith('SSLError') else reason
    return _status_text(err.status, err.reason, err.body)


def _transport_error(err, timeout):
    # NewConnectionError is a ConnectTimeoutError to urllib3: test it first.
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        return 'cannot connect: %s' % _one_line(err).replace('Failed to establish a new connection: ', '')
    if isinstance(err, urllib3.exceptions.TimeoutError):
        return 'no answer within %s s (request_timeout)' % timeout
    if isinstance(err, urllib3.exceptions.SSLError):
        return 'TLS: %s' % _one_line(err)
    if isinstance(err, urllib3.exceptions.ProtocolError):
        text = _one_line(err)
        if len(err.args) == 2:  # (what urllib3 says, the underlying error)
            text, inner = str(err.args[0]).rstrip('.'), str(err.args[1])
            text = text if not inner or inner in text else '%s: %s' % (text, inner)
        return 'the connection broke off (truncated answer): %s' % text
    return _one_line(err)


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
    zone label); request_timeout: seconds per request (connect and read);
    page_size: list limit; use_client: None = the kubernetes client only when the
    connection needs it, True = always, False = never (tests). Raises SourceError
    (nothing partial is returned).
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API source needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
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


def _read(reader, namespaces, label_selector, node_name):
    selector = {'labelSelector': label_selector} if label_selector else {}
    services, slices = [], []
    for namespace in _scopes(namespaces):
        where = ' in namespace %s' % namespace if namespace else ''
        listed = reader.both(
            lambda one: one.list_all('Services' + where, 'services', namespace, **selector),
            lambda other: other.list_all('EndpointSlices' + where, 'endpointslices', namespace))
        services += listed[0]
        slices += listed[1]
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


def node_zone(node):
    """The zone label of a Node dict, or None."""
    return (((node or {}).get('metadata') or {}).get('labels') or {}).get(ZONE_LABEL)
