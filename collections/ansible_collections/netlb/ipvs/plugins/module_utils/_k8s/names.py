# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kubernetes names, label keys and server URLs as the API server accepts them, checked
before a module sends its first request.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Why: the API server refuses a bad name only at the request that carries it, after the
writes before it went through (a ServiceAccount made, then its binding refused), and an
empty namespace even turns a namespaced path into another one. The rules are the API
server's (k8s.io/apimachinery validation): a namespace is an RFC 1123 label, most other
object names an RFC 1123 subdomain, a ClusterRole name any path segment, a label key a
qualified name.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
_QUALIFIED_NAME = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')

NAMESPACE = 'namespace'
NAME = 'name'
ROLE = 'role'
LABEL_KEY = 'label_key'
URL = 'url'

_WHAT = {
    NAMESPACE: 'a namespace name (RFC 1123 label: at most 63 lowercase letters, digits and "-", '
               'starting and ending with a letter or digit)',
    NAME: 'an object name (RFC 1123 subdomain: at most 253 lowercase letters, digits, "-" and ".", '
          'each part starting and ending with a letter or digit)',
    ROLE: 'a ClusterRole name (not empty, no "/" or "%", not "." or "..")',
    LABEL_KEY: 'a label key ([prefix/]name: the name at most 63 letters, digits, "-", "_" and ".", starting and '
               'ending with a letter or digit; the prefix an RFC 1123 subdomain)',
    URL: 'an http or https URL with a host (e.g. https://192.0.2.10:6443)',
}


def _subdomain(value):
    return len(value) <= 253 and all(_LABEL.match(part) for part in value.split('.'))


def _valid(kind, value):
    if not isinstance(value, str):
        return False
    if kind == NAMESPACE:
        return len(value) <= 63 and bool(_LABEL.match(value))
    if kind == NAME:
        return _subdomain(value)
    if kind == ROLE:
        return value not in ('', '.', '..') and '/' not in value and '%' not in value
    if kind == LABEL_KEY:
        prefix, _slash, name = value.rpartition('/')
        return (not _slash or _subdomain(prefix)) and len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))
    if kind == URL:
        parsed = urlparse(value)
        return parsed.scheme in ('http', 'https') and bool(parsed.hostname)
    raise ValueError('no check for kind %r' % kind)


def problems(checks):
    """One line per (field, kind, value) of checks whose value the API server would
    refuse, naming the field; a value None is not checked (an option left out)."""
    return ['%s: %r is not %s' % (field, value, _WHAT[kind])
            for field, kind, value in checks if value is not None and not _valid(kind, value)]
