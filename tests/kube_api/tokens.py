# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TokenRequest API on the stand-in server (POST .../serviceaccounts/<name>/token).

install(server) registers it once per session. Each request returns a fresh JWT-shaped
token (claims as the real API server writes them: sub, exp, iat, the ServiceAccount's
name and uid; the signature is a placeholder) and the server accepts it as a bearer
token until reset(). The ServiceAccount must exist (404 otherwise, as the real server).
"""

import base64
import datetime
import itertools
import json
import time

PATH = r'/api/v1/namespaces/(?P<namespace>[^/]+)/serviceaccounts/(?P<name>[^/]+)/token'
_serial = itertools.count(1)


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data, sort_keys=True).encode()).decode().rstrip('=')


def make_token(namespace, name, uid, expiration_seconds, now=None):
    now = int(now if now is not None else time.time())
    claims = {'iss': 'https://kubernetes.default.svc', 'aud': ['https://kubernetes.default.svc'],
              'sub': 'system:serviceaccount:%s:%s' % (namespace, name), 'iat': now, 'nbf': now,
              'exp': now + int(expiration_seconds), 'jti': 'stand-in-%d' % next(_serial),
              'kubernetes.io': {'namespace': namespace, 'serviceaccount': {'name': name, 'uid': uid}}}
    return '%s.%s.%s' % (_b64({'alg': 'RS256', 'kid': 'stand-in'}), _b64(claims), 'c2lnbmF0dXJl')


def _token_request(server, request, match):
    namespace, name = match.group('namespace'), match.group('name')
    account = server.get('/api/v1/namespaces/%s/serviceaccounts/%s' % (namespace, name))
    if account is None:
        return 404, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'NotFound', 'code': 404,
                     'message': 'serviceaccounts "%s" not found' % name}
    spec = (request.body or {}).get('spec') or {}
    seconds = int(spec.get('expirationSeconds') or 3600)
    token = make_token(namespace, name, account['metadata']['uid'], seconds)
    server.tokens.add(token)
    expires = datetime.datetime.fromtimestamp(time.time() + seconds, datetime.timezone.utc)
    return 201, {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest', 'spec': spec,
                 'status': {'token': token, 'expirationTimestamp': expires.strftime('%Y-%m-%dT%H:%M:%SZ')}}


def install(server):
    """Answer TokenRequests on server (once: handlers live as long as the server)."""
    if not any(function is _token_request for _method, _regex, function in server._handlers):
        server.handle('POST', PATH, _token_request)
    return server
