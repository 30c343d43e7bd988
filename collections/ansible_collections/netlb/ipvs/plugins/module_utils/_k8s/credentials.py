# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A node's credentials for k8s_service_proxy: a ServiceAccount bound to the built-in
system:node-proxier ClusterRole (what kube-proxy itself may read), a bound token for it
from the TokenRequest API, and a kubeconfig holding that token and the API server's CA.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    result = ensure(options, Wanted(...), current_kubeconfig=text, check_mode=False)

Rules:
- Nothing is written that exists: the ServiceAccount and the ClusterRoleBinding are read
  first and created only when missing (a 409 AlreadyExists from a parallel run counts as
  present); a binding that lacks the ServiceAccount among its subjects gets it added (PUT
  with the resourceVersion read); a binding to another role fails (roleRef is immutable).
- A token is requested only when the node's current kubeconfig cannot be kept: it is not
  ours (another server, CA, ServiceAccount or ServiceAccount uid), its token expires within
  renew_before seconds, or rotate is set. Otherwise the same kubeconfig is rendered again,
  byte for byte, so the file on the node stays as it is.
- The token's claims are read without checking the signature: they only decide whether
  to renew; the API server checks the token on every use.
- Check mode reads as a real run and writes nothing (no token either: the returned
  kubeconfig is then the current one).
- Failures are one SourceError line naming the object, the server and why.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime
import json

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
    ApiCalls,
)

try:
    import kubernetes
except ImportError:  # HAS_KUBERNETES says so; ensure refuses to run without it
    pass

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

MANAGED_BY = {'app.kubernetes.io/managed-by': 'netlb.ipvs'}
DEFAULT_REQUEST_TIMEOUT = 30

Wanted = collections.namedtuple('Wanted', (
    'service_account',  # name of the ServiceAccount (and of the ClusterRoleBinding)
    'namespace',
    'cluster_role',
    'binding',
    'expiration_seconds',  # lifetime asked for each token (the server may shorten it)
    'renew_before',  # seconds: a token expiring sooner than this is replaced
    'rotate',  # True: a new token whatever the current one
    'server',  # the API server's URL as the node reaches it (None: the one connected to)
    'user',  # the kubeconfig's user, cluster and context name
))


def subject_of(wanted):
    return 'system:serviceaccount:%s:%s' % (wanted.namespace, wanted.service_account)


def render_kubeconfig(server, ca_pem, token, name):
    """The kubeconfig text (YAML, fixed key order: the same inputs give the same bytes)."""
    document = collections.OrderedDict([
        ('apiVersion', 'v1'),
        ('kind', 'Config'),
        ('clusters', [{'name': name, 'cluster': {
            'server': server, 'certificate-authority-data': base64.b64encode(ca_pem).decode('ascii')}}]),
        ('users', [{'name': name, 'user': {'token': token}}]),
        ('contexts', [{'name': name, 'context': {'cluster': name, 'user': name}}]),
        ('current-context', name),
    ])
    return yaml.safe_dump(dict(document), default_flow_style=False, sort_keys=False)


def token_claims(token):
    """The claims of a JWT (not verified), or None when the token is not one."""
    parts = (token or '').split('.')
    if len(parts) != 3:
        return None
    payload = parts[1] + '=' * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode('ascii')).decode('utf-8'))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def current_token(text, server, ca_pem, wanted, account_uid, now):
    """(token, None) when the current kubeconfig text can stay, else (None, why not)."""
    if not text or not text.strip():
        return None, 'no kubeconfig yet'
    try:
        document = yaml.safe_load(text)
        cluster = document['clusters'][0]['cluster']
        token = document['users'][0]['user']['token']
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None, 'the current kubeconfig is not one this wrote'
    if cluster.get('server') != server:
        return None, 'the server changed (%s, now %s)' % (cluster.get('server'), server)
    if cluster.get('certificate-authority-data') != base64.b64encode(ca_pem).decode('ascii'):
        return None, "the API server's CA changed"
    claims = token_claims(token)
    if claims is None:
        return None, 'the current token is not a JWT'
    if claims.get('sub') != subject_of(wanted):
        return None, 'the current token is for %s' % claims.get('sub')
    uid = ((claims.get('kubernetes.io') or {}).get('serviceaccount') or {}).get('uid')
    if uid and account_uid and uid != account_uid:
        return None, 'the ServiceAccount was re-created (uid %s, now %s)' % (uid, account_uid)
    try:
        left = int(claims['exp']) - int(now)
    except (KeyError, TypeError, ValueError):
        return None, 'the current token has no expiry'
    if left <= wanted.renew_before:
        return None, 'the current token expires in %d s (renew_before %d s)' % (left, wanted.renew_before)
    if wanted.rotate:
        return None, 'rotate is set'
    return token, None


class _Api(ApiCalls):
    """The ServiceAccount, RBAC and TokenRequest calls."""

    def __init__(self, options, request_timeout):
        super(_Api, self).__init__(options, request_timeout)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(self.client)

    def ca_pem(self):
        path = self.configuration.ssl_ca_cert
        if not path:
            raise SourceError("no CA certificate for %s: the node's kubeconfig needs the API server's CA "
                              '(give ca_cert, or a kubeconfig with certificate-authority-data)' % self.origin)
        try:
            with open(path, 'rb') as handle:
                return handle.read()
        except OSError as err:
            raise SourceError('reading the CA certificate %s: %s' % (path, err.strerror or err))


def _service_account(api, wanted, check_mode, created):
    what = 'ServiceAccount %s/%s' % (wanted.namespace, wanted.service_account)
    account = api.call('reading ' + what, api.core.read_namespaced_service_account, accept=(404,),
                       name=wanted.service_account, namespace=wanted.namespace)
    if account is not None:
        return account
    created.append(what)
    if check_mode:
        return {}
    body = {'apiVersion': 'v1', 'kind': 'ServiceAccount',
            'metadata': {'name': wanted.service_account, 'namespace': wanted.namespace, 'labels': dict(MANAGED_BY)}}
    account = api.call('creating ' + what, api.core.create_namespaced_service_account, accept=(409,),
                       namespace=wanted.namespace, body=body)
    if account is None:  # created by a parallel run (one task per node) in between
        created.remove(what)
        account = api.call('reading ' + what, api.core.read_namespaced_service_account,
                           name=wanted.service_account, namespace=wanted.namespace)
    return account


def _binding(api, wanted, check_mode, created, updated):
    what = 'ClusterRoleBinding %s' % wanted.binding
    subject = {'kind': 'ServiceAccount', 'name': wanted.service_account, 'namespace': wanted.namespace}
    role_ref = {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': wanted.cluster_role}
    binding = api.call('reading ' + what, api.rbac.read_cluster_role_binding, accept=(404,), name=wanted.binding)
    if binding is None:
        created.append(what)
        if check_mode:
            return
        body = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
                'metadata': {'name': wanted.binding, 'labels': dict(MANAGED_BY)},
                'roleRef': role_ref, 'subjects': [subject]}
        if api.call('creating ' + what, api.rbac.create_cluster_role_binding, accept=(409,), body=body) is None:
            created.remove(what)  # a parallel run made it; check what it made
            _binding(api, wanted, check_mode, created, updated)
        return
    have = binding.get('roleRef') or {}
    if (have.get('kind'), have.get('name')) != ('ClusterRole', wanted.cluster_role):
        raise SourceError('%s binds %s %s, not ClusterRole %s; a roleRef cannot be changed: delete the binding '
                          'or choose another binding name' % (what, have.get('kind'), have.get('name'),
                                                              wanted.cluster_role))
    subjects = binding.get('subjects') or []
    if any(dict((key, item.get(key)) for key in subject) == subject for item in subjects):
        return
    updated.append(what)
    if check_mode:
        return
    binding['subjects'] = subjects + [subject]  # metadata.resourceVersion stays: no lost concurrent edit
    api.call('adding %s to %s' % (subject_of(wanted), what), api.rbac.replace_cluster_role_binding,
             name=wanted.binding, body=binding)


def ensure(options, wanted, current_kubeconfig='', check_mode=False, request_timeout=DEFAULT_REQUEST_TIMEOUT,
           now=None):
    """Make the ServiceAccount, its binding and (when needed) a token; render the kubeconfig.

    Returns {changed, created, updated, token_requested, reason, expires, kubeconfig}.
    Raises SourceError.
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    if not HAS_YAML:
        raise SourceError('writing a kubeconfig needs PyYAML (Debian: python3-yaml)')
    if wanted.expiration_seconds < 600:
        raise SourceError('token_lifetime: %d s is below the 600 s the API server accepts' % wanted.expiration_seconds)
    if not 0 <= wanted.renew_before < wanted.expiration_seconds:
        raise SourceError('renew_before: %d s must be at least 0 and below token_lifetime (%d s)'
                          % (wanted.renew_before, wanted.expiration_seconds))
    now = int(now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp())
    api = _Api(options, request_timeout)
    created, updated = [], []
    try:
        server = wanted.server or api.origin
        ca_pem = api.ca_pem()
        account = _service_account(api, wanted, check_mode, created)
        _binding(api, wanted, check_mode, created, updated)
        account_uid = (account.get('metadata') or {}).get('uid')
        token, reason = current_token(current_kubeconfig, server, ca_pem, wanted, account_uid, now)
        result = {'created': created, 'updated': updated, 'token_requested': token is None, 'reason': reason,
                  'expires': None}
        if token is None and check_mode:
            result.update(changed=True, kubeconfig=current_kubeconfig or '')
            return result
        if token is None:
            what = 'requesting a token for ServiceAccount %s/%s' % (wanted.namespace, wanted.service_account)
            body = {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest',
                    'spec': {'expirationSeconds': wanted.expiration_seconds}}
            answer = api.call(what, api.core.create_namespaced_service_account_token, name=wanted.service_account,
                              namespace=wanted.namespace, body=body)
            token = (answer.get('status') or {}).get('token')
            if not token:
                raise SourceError('%s on %s: the answer has no status.token' % (what, api.origin))
        claims = token_claims(token) or {}
        if 'exp' in claims:
            result['expires'] = datetime.datetime.fromtimestamp(int(claims['exp']), datetime.timezone.utc).strftime(
                '%Y-%m-%dT%H:%M:%SZ')
        result['kubeconfig'] = render_kubeconfig(server, ca_pem, token, wanted.user)
        result['changed'] = bool(created or updated or result['token_requested'])
        return result
    finally:
        api.close()
