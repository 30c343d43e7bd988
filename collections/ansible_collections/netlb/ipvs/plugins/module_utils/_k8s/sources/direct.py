# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The API source's own HTTPS GET, for connections with static credentials.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Why: importing the `kubernetes` client (every API and model class, websocket, OAuth,
YAML helpers) takes longer than the whole sync it serves - 20 s on the lab's emulated
node, more than kube-proxy's slowest sync at 2,500 Services - and the source only needs
a few GETs answered as JSON. So when the credentials are static (a bearer token or a
token file, a client certificate, a CA; as options or in a kubeconfig) the requests go
out with http.client on one kept-alive connection. Everything else (exec plugins, auth
providers, proxies, basic auth, in-cluster configuration, a kubeconfig that does not
parse) returns None from target(), and api.py uses the kubernetes client as before, so
its error messages for broken configurations stay the client's.

    found = target(options, how, source)   # a Target, or None: use the client
    connection = Connection(found, timeout)
    status, reason, body = connection.get('/api/v1/services', {'limit': '500'})
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import ssl
import tempfile
import time
import urllib.parse

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.request_bounds import AnswerError, read_answer

# Kubeconfig user and cluster fields this GET understands; any other one (exec,
# auth-provider, username, proxy-url, tls-server-name...) is left to the kubernetes client.
_USER_FIELDS = frozenset(('token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key',
                          'client-key-data'))
_CLUSTER_FIELDS = frozenset(('server', 'certificate-authority', 'certificate-authority-data',
                             'insecure-skip-tls-verify'))


class TransportError(Exception):
    """A request failed below HTTP: kind is 'connect', 'timeout', 'tls', 'broken' or
    'too-big'."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class Target(object):
    """Where and how to connect: url (scheme://host:port, no trailing slash), token,
    ca_file / ca_data (PEM text), cert_file / key_file or cert_data / key_data (PEM
    bytes), verify."""

    def __init__(self, url, token=None, ca_file=None, ca_data=None, cert_file=None, key_file=None,
                 cert_data=None, key_data=None, verify=True):
        self.url = url.rstrip('/')
        self.token, self.verify = token, verify
        self.ca_file, self.ca_data = ca_file, ca_data
        self.cert_file, self.key_file, self.cert_data, self.key_data = cert_file, key_file, cert_data, key_data


def _load_file(path):
    """A kubeconfig file as a dict (JSON, else YAML), or None when it cannot be read here."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml
    except ImportError:
        return None
    try:
        loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
        return yaml.load(text, Loader=loader)  # nosec: a safe loader
    except yaml.YAMLError:
        return None


def _named(config, section, name):
    for entry in config.get(section) or ():
        if isinstance(entry, dict) and entry.get('name') == name:
            return entry.get(section[:-1])
    return None


def _from_kubeconfig(config, context_name, base):
    """(cluster dict, user dict, base directory) of the context, or None."""
    if not isinstance(config, dict):
        return None
    context = _named(config, 'contexts', context_name or config.get('current-context'))
    if not isinstance(context, dict):
        return None
    cluster, user = _named(config, 'clusters', context.get('cluster')), _named(config, 'users', context.get('user'))
    if not isinstance(cluster, dict) or not isinstance(user or {}, dict):
        return None
    user = user or {}
    if set(cluster) - _CLUSTER_FIELDS or set(user) - _USER_FIELDS or not isinstance(cluster.get('server'), str):
        return None
    return cluster, user, base


def _path(value, base):
    return value if os.path.isabs(value) or base is None else os.path.join(base, value)


def _decoded(value):
    try:
        return base64.b64decode(value)
    except (TypeError, ValueError):
        return None


def target(options, how, source):
    """A Target for the connection connection.plan_connection chose, or None when only the
    kubernetes client can make it (see the module doc)."""
    if how == 'explicit':
        cluster, user, base = {'server': options['host']}, {}, None
    elif how == 'kubeconfig':
        if isinstance(source, dict):
            found = _from_kubeconfig(source, options.get('context'), None)
        elif isinstance(source, str) and os.pathsep not in source:
            found = _from_kubeconfig(_load_file(source), options.get('context'), os.path.dirname(source))
        else:
            found = None  # several files to merge: the client's rules
        if found is None:
            return None
        cluster, user, base = found
    else:
        return None
    server = options.get('host') or cluster['server']
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme != 'https' or not parsed.hostname or parsed.path.strip('/'):
        return None
    result = Target(server, verify=not cluster.get('insecure-skip-tls-verify', False))
    if options.get('api_key'):
        result.token = options['api_key']
    elif user.get('token'):
        result.token = user['token']
    elif user.get('tokenFile'):
        try:
            with open(_path(user['tokenFile'], base)) as handle:
                result.token = handle.read().strip()
        except OSError:
            return None
    if options.get('ca_cert'):
        result.ca_file = options['ca_cert']
    elif cluster.get('certificate-authority-data'):
        data = _decoded(cluster['certificate-authority-data'])
        if data is None:
            return None
        result.ca_data = data.decode('ascii', 'replace')
    elif cluster.get('certificate-authority'):
        result.ca_file = _path(cluster['certificate-authority'], base)
    if options.get('client_cert'):
        result.cert_file, result.key_file = options['client_cert'], options.get('client_key')
    elif user.get('client-certificate-data') or user.get('client-certificate'):
        if user.get('client-certificate-data'):
            result.cert_data = _decoded(user['client-certificate-data'])
            result.key_data = _decoded(user.get('client-key-data') or '')
            if not result.cert_data or not result.key_data:
                return None
        else:
            result.cert_file = _path(user['client-certificate'], base)
            result.key_file = _path(user['client-key'], base) if user.get('client-key') else None
    if options.get('validate_certs') is not None:
        result.verify = bool(options['validate_certs'])
    return result


def ssl_context(found):
    """The TLS context of a Target: its CA (else the system's), its client certificate."""
    context = ssl.create_default_context(cafile=found.ca_file, cadata=found.ca_data)
    if not found.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if found.cert_data:
        # load_cert_chain reads files only: the PEM goes to a file in a directory of its own
        # (0700), both removed at once; a kill in between leaves nothing others can read.
        directory = tempfile.mkdtemp(prefix='netlb-k8s-')
        path = os.path.join(directory, 'client.pem')
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), 'wb') as out:
                out.write(found.cert_data.rstrip(b'\n') + b'\n' + found.key_data)
            context.load_cert_chain(path)
        finally:
            for remove, name in ((os.unlink, path), (os.rmdir, directory)):
                try:
                    remove(name)
                except OSError:
                    pass
    elif found.cert_file:
        context.load_cert_chain(found.cert_file, found.key_file)
    return context


def _left(deadline):
    """Seconds left before the monotonic deadline; socket.timeout when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout('the request deadline passed')
    return left


class _DeadlineSocket(object):
    """The TLS socket as http.client reads an answer through it (status line, headers,
    body): each receive may take only what is left of the request's deadline, so bytes
    trickled one by one cannot stretch a request past request_timeout."""

    def __init__(self, sock, owner):
        self._sock, self._owner = sock, owner

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._sock.settimeout(_left(self._owner.deadline))
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode='rb', *args, **kwargs):  # pylint: disable=unused-argument
        return io.BufferedReader(socket.SocketIO(self, 'rb'))


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection bound by the deadline of its current request (set per request):
    connecting and the TLS handshake get what is left of it, then every receive does."""

    deadline = None

    def connect(self):
        self.timeout = _left(self.deadline)
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self)


class Connection(object):
    """GETs on one kept-alive HTTPS connection (reopened when the server closed it), each
    done within timeout seconds in all and answered with at most MAX_ANSWER_BYTES."""

    def __init__(self, found, timeout):
        parsed = urllib.parse.urlsplit(found.url)
        self.host, self.port = parsed.hostname, parsed.port or 443
        self.timeout = timeout
        self.headers = {'Accept': 'application/json', 'User-Agent': 'netlb.ipvs'}
        if found.token:
            self.headers['Authorization'] = 'Bearer %s' % found.token
        try:
            self.context = ssl_context(found)
        except (ssl.SSLError, OSError) as err:
            raise TransportError('tls', 'loading the TLS certificates: %s' % err)
        self._http = None

    def close(self):
        if self._http is not None:
            self._http.close()
            self._http = None

    def get(self, path, query, accept=None):
        """(status, reason, body bytes) of GET path?query (accept: another Accept header);
        TransportError below HTTP."""
        headers = dict(self.headers, Accept=accept) if accept else self.headers
        url = path + ('?' + urllib.parse.urlencode(sorted(query.items())) if query else '')
        deadline = time.monotonic() + self.timeout
        for attempt in (1, 2):
            fresh = self._http is None
            if fresh:
                self._http = _HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
            self._http.deadline = deadline
            try:
                self._http.request('GET', url, headers=headers)
                response = self._http.getresponse()
                body = read_answer(response, deadline, self.timeout)
                if response.length:  # read(amt) ends quietly where a Content-Length was not met
                    raise http.client.IncompleteRead(body, response.length)
            except AnswerError as err:
                self.close()
                raise TransportError(err.kind, str(err))
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self.close()
                if fresh or attempt == 2:  # a kept-alive connection the server dropped: once more
                    raise TransportError('broken', 'the connection broke off (truncated answer): %s' % err)
                continue
            except http.client.IncompleteRead as err:
                self.close()
                raise TransportError('broken', 'the connection broke off (truncated answer): %d bytes read, '
                                               '%d more expected' % (len(err.partial), err.expected or 0))
            except socket.timeout:
                self.close()
                raise TransportError('timeout', 'no answer within %s s (request_timeout)' % self.timeout)
            except ssl.SSLError as err:
                self.close()
                raise TransportError('tls', 'TLS: %s' % ' '.join(str(err).split()))
            except (http.client.HTTPException, OSError) as err:
                self.close()
                if isinstance(err, ConnectionRefusedError) or fresh and isinstance(err, OSError):
                    raise TransportError('connect', 'cannot connect: %s' % err)
                raise TransportError('broken', 'the connection broke off (truncated answer): %s' % err)
            if response.will_close:
                self.close()
            return response.status, response.reason, body
        raise AssertionError('not reached')
