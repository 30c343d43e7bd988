# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The connection to a Kubernetes API with the `kubernetes` client, shared by every module
that talks to the API (k8s_service_proxy's API source, k8s_kube_proxy_configmap,
k8s_kube_proxy_handover, k8s_node_credentials).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    options = connection_options_from_params(module.params)     # AUTH_ARG_SPEC merged in
    warnings = connection_warnings(options)                     # e.g. a world-readable kubeconfig
    files = PrivateDirectory()                                  # 0700, for the key files the client writes
    config = client_configuration(options, private_dir=files.path)  # a kubernetes.client.Configuration
    files.remove()                                              # once the connection is closed

No Ansible here, so the node's own entry point (netlb-ipvs) reads the API without
ansible-core; the modules' argument spec and opening are in module_connection.py.

Connection: the options and K8S_AUTH_* variables of kubernetes.core (same names, same
precedence): host with api_key (or a client certificate) is used as given; else
kubeconfig/context; else in-cluster config in a pod; else $KUBECONFIG or ~/.kube/config.
Explicit options override what the kubeconfig says; validate_certs defaults to true.
Failures are SourceError with one line; api_error and transport_error word the errors of
a request the same way for every caller; request_bounds.py bounds each request.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError

# The client is imported only when a connection needs it (import_client()): its import
# alone outlasts a whole sync on a slow node, and k8s_service_proxy's static credentials
# go out through sources/direct.py without it. Whether it is installed is found cheaply.
try:
    HAS_KUBERNETES = importlib.util.find_spec('kubernetes') is not None
    KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else ImportError("No module named 'kubernetes'")
except (ImportError, ValueError) as err:  # reported by the module with missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = err
kubernetes = urllib3 = None  # set by import_client()

# What to install, for messages (the module passes it to missing_required_lib).
KUBERNETES_REQUIREMENT = 'kubernetes (Debian: python3-kubernetes; pip: kubernetes)'

# The connection options, one row each: name, argument spec, K8S_AUTH_* variables read
# when the option is not given (first set one wins; kubernetes.core reads
# K8S_AUTH_<option> then K8S_AUTH_<client attribute>).
AUTH_OPTIONS = (
    # no_log: a dict can hold a token or a client key (module_connection.redact_kubeconfig
    # then hides those, not every string of it).
    ('kubeconfig', {'type': 'raw', 'no_log': True}, ('K8S_AUTH_KUBECONFIG',)),
    ('context', {'type': 'str'}, ('K8S_AUTH_CONTEXT',)),
    ('host', {'type': 'str'}, ('K8S_AUTH_HOST',)),
    ('api_key', {'type': 'str', 'no_log': True}, ('K8S_AUTH_API_KEY',)),
    ('validate_certs', {'type': 'bool', 'default': True, 'aliases': ['verify_ssl']},
     ('K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL')),
    ('ca_cert', {'type': 'path', 'aliases': ['ssl_ca_cert']}, ('K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT')),
    ('client_cert', {'type': 'path', 'aliases': ['cert_file']}, ('K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE')),
    ('client_key', {'type': 'path', 'aliases': ['key_file']}, ('K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE')),
)


def connection_options_from_params(params, environ=None):
    """The connection options from module params (or any dict), K8S_AUTH_* variables
    filling in what is missing or None, booleans parsed, defaults applied."""
    environ = os.environ if environ is None else environ
    options = {}
    for name, spec, variables in AUTH_OPTIONS:
        value = params.get(name)
        if value is None:
            value = next((environ[var] for var in variables if environ.get(var, '') != ''), None)
        if value is not None and spec['type'] == 'bool' and not isinstance(value, bool):
            try:
                value = boolean(value)
            except ValueError:
                raise SourceError('%s: %r is not a boolean' % (name, value))
        if value is None or value == '':
            value = spec.get('default')
        if isinstance(value, str) and spec['type'] in ('path', 'raw') and value:
            value = os.path.expanduser(value)
        options[name] = value
    return options


_TRUE = frozenset(('y', 'yes', 'on', '1', 'true', 't'))
_FALSE = frozenset(('n', 'no', 'off', '0', 'false', 'f'))


def boolean(value):
    """Ansible's reading of a boolean option (yes/no, on/off, true/false, 1/0, y/n, t/f,
    any case); ValueError for anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError('%r is not a boolean' % (value,))


def import_client():
    """Import the kubernetes client (and its urllib3) once; returns the kubernetes package."""
    global kubernetes, urllib3  # pylint: disable=global-statement
    if kubernetes is None:
        import kubernetes as client_package
        import urllib3 as urllib3_package
        kubernetes, urllib3 = client_package, urllib3_package
    return kubernetes


def plan_connection(options, environ):
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
    """Warnings about the connection set-up: certificates not checked, a token sent in
    clear over http://, a kubeconfig file that others can read."""
    environ = os.environ if environ is None else environ
    result = []
    if options.get('validate_certs') is False:
        result.append("validate_certs is false: the API server's certificate is not checked, so anyone on the way "
                      'can pose as it and read the credentials sent')
    host = options.get('host') or ''
    if host.lower().startswith('http://') and options.get('api_key'):
        result.append('host %s is http://: api_key goes to it unencrypted; use https://' % host)
    how, source = plan_connection(options, environ)
    if how != 'kubeconfig' or not isinstance(source, str):
        return result
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


class PrivateDirectory(object):
    """A 0700 directory of its own for the key files the kubernetes client writes (a
    kubeconfig's client-key-data: its TLS layer reads keys from files only), removed by
    remove() when the connection is closed. A kill leaves only a directory no one else
    can enter, not a key in $TMPDIR."""

    def __init__(self):
        import tempfile  # only on the client's path: a timer's static run never pays for it
        self.path = tempfile.mkdtemp(prefix='netlb-k8s-')

    def remove(self):
        import shutil
        shutil.rmtree(self.path, ignore_errors=True)
        # The client remembers its files by content for later loads in this process (a
        # second connection would get a removed path): forget the ones made here.
        cache = getattr(getattr(getattr(kubernetes, 'config', None), 'kube_config', None), '_temp_files', None)
        if isinstance(cache, dict):
            inside = self.path + os.sep
            for key, name in list(cache.items()):
                if isinstance(name, str) and name.startswith(inside):
                    del cache[key]


def client_configuration(options, environ=None, private_dir=None):
    """A kubernetes.client.Configuration for the options (SourceError when none can be
    made); private_dir: where the client writes a kubeconfig's key and certificates (a
    PrivateDirectory's path; None: the client's default, $TMPDIR)."""
    environ = os.environ if environ is None else environ
    files = {'temp_file_path': private_dir} if private_dir else {}
    import_client()
    config = kubernetes.client.Configuration()
    how, source = plan_connection(options, environ)
    context = options.get('context')
    try:
        if how == 'incluster':
            kubernetes.config.load_incluster_config(client_configuration=config)
        elif how == 'kubeconfig' and isinstance(source, dict):
            kubernetes.config.load_kube_config_from_dict(source, context=context, client_configuration=config,
                                                         persist_config=False, **files)
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
                                                   client_configuration=config, persist_config=False, **files)
    except SourceError:
        raise
    except Exception as err:  # the client raises ConfigException, OSError, YAML errors, KeyError...
        where = 'in-cluster config' if how == 'incluster' else (
            'kubeconfig (dict)' if isinstance(source, dict) else 'kubeconfig %s' % source)
        raise SourceError('loading the Kubernetes connection from %s: %s' % (where, one_line(err)))
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


def one_line(err):
    text = str(err) or type(err).__name__
    # urllib3 prefixes its messages with the connection (pool) object; say that once instead.
    text = re.sub(r"^(<[^>]*>|\w*Connection(Pool)?\([^)]*\)):\s*", '', text)
    return ' '.join(text.split())


def status_text(status, reason, body):
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


def api_error(err):
    """'403 Forbidden: <the Status message>' from an ApiException."""
    if not err.status:  # the client's own wrapping of transport errors (TLS)
        reason = one_line(err.reason)
        return 'TLS: %s' % reason[len('SSLError '):] if reason.startswith('SSLError') else reason
    return status_text(err.status, err.reason, err.body)


def transport_error(err, timeout):
    """One line for a failed request of the kubernetes client (urllib3's errors)."""
    if urllib3 is None:  # no request was made through the client
        return one_line(err)
    # NewConnectionError is a ConnectTimeoutError to urllib3: test it first.
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        return 'cannot connect: %s' % one_line(err).replace('Failed to establish a new connection: ', '')
    if isinstance(err, urllib3.exceptions.TimeoutError):
        return 'no answer within %s s (request_timeout)' % timeout
    if isinstance(err, urllib3.exceptions.SSLError):
        return 'TLS: %s' % one_line(err)
    if isinstance(err, urllib3.exceptions.ProtocolError):
        text = one_line(err)
        if len(err.args) == 2:  # (what urllib3 says, the underlying error)
            text, inner = str(err.args[0]).rstrip('.'), str(err.args[1])
            text = text if not inner or inner in text else '%s: %s' % (text, inner)
        return 'the connection broke off (truncated answer): %s' % text
    return one_line(err)


class ApiCalls(object):
    """Calls of the kubernetes client's typed APIs, answered as JSON (never its model
    classes), each within one request_timeout and request_bounds.MAX_ANSWER_BYTES; failures as
    SourceError naming what was done where. Subclasses add the API groups they use
    (CoreV1Api(self.client), ...)."""

    def __init__(self, options, request_timeout):
        import_client()
        self.files = PrivateDirectory()
        try:
            self.client = kubernetes.client.ApiClient(client_configuration(options, private_dir=self.files.path))
        except BaseException:
            self.files.remove()
            raise
        self.configuration = self.client.configuration
        self.origin = self.configuration.host
        self.timeout = request_timeout

    def close(self):
        try:
            close = getattr(self.client, 'close', None)
            if close is not None:
                close()
        finally:
            self.files.remove()

    def call(self, what, function, accept=(), **kwargs):
        """The JSON answer of function(**kwargs); None for an HTTP status in accept (404
        on a read, 409 on a create or a write with a stale resourceVersion)."""
        deadline = time.monotonic() + self.timeout

        def request():
            response = function(_preload_content=False, _request_timeout=(self.timeout, self.timeout), **kwargs)
            return request_bounds.read_answer(response, deadline, self.timeout)

        try:
            data = request_bounds.call_within(self.timeout, request)
        except request_bounds.AnswerError as err:
            raise SourceError('%s on %s: %s' % (what, self.origin, err))
        except kubernetes.client.rest.ApiException as err:
            if err.status in accept:
                return None
            raise SourceError('%s on %s: %s' % (what, self.origin, api_error(err)))
        except urllib3.exceptions.MaxRetryError as err:
            raise SourceError('%s on %s: %s' % (what, self.origin, transport_error(err.reason, self.timeout)))
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise SourceError('%s on %s: %s' % (what, self.origin, transport_error(err, self.timeout)))
        try:
            return json.loads(data)
        except ValueError as err:
            raise SourceError('%s on %s: the answer is not valid JSON: %s' % (what, self.origin, err))
