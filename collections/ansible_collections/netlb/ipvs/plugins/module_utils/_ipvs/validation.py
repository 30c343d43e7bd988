# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""User parameters -> model values, with every problem reported by field path.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Callers are the ipvs_virtual_server module and plain Python (a watcher): no Ansible
imports here, and defaults live here, not in an argument_spec, so both get the same
result. Nothing is raised until the whole input has been read: ValidationError carries
every problem, each starting with its path (``services[3].real_servers[1].weight``).

Here: the request (single or table form, scope, state) and the table's list of services.
One service and its real servers: validation_service.py; the fast paths a big table
takes: validation_fast.py; the checks of one field: validation_fields.py.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import FWMARK_MAX, Scope
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fast import plain_service
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fields import Problems, int_field, list_field
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_service import SERVICE_FIELDS, parse_service, service_key

FWMARK_SCOPE_PREFIX = 'fwmark:'


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated call: what to converge to and what may be touched."""

    services: tuple
    scope: Scope
    exclusive: bool = True
    allow_empty: bool = False


def parse_services(items, path='services'):
    """A list of service dicts -> list of VirtualService. Raises ValidationError."""
    problems = Problems()
    indexed = _services(items, path, problems)
    problems.raise_if_any()
    return [service for _index, service in indexed]


def _services(items, path, problems):
    """[(index, VirtualService)] for the valid entries; problems recorded for the rest."""
    services = []
    seen = {}
    if isinstance(items, str):
        items = _json_text(items, path, problems)
    for index, params in enumerate(list_field(items, path, problems)):
        service = plain_service(params)
        if service is None:
            service = parse_service(params, '%s[%d]' % (path, index), problems)
        # The key alone, so a duplicate shows even when either copy has other problems.
        key = service.key if service is not None else _key_only(params)
        if key is not None and key in seen:
            problems.add('%s[%d]' % (path, index), 'duplicate of %s[%d] (%s)' % (path, seen[key], key))
            continue
        if key is not None:
            seen[key] = index
        if service is not None:
            services.append((index, service))
    return services


def _json_text(text, path, problems):
    """The table given as JSON text (one string is far cheaper for Ansible to hand over
    than 50,000 dicts): its value, or None with the problem recorded."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        problems.add(path, 'a string must be the JSON text of a list of services: %s' % exc)
        return None
    if not isinstance(value, list):
        problems.add(path, 'the JSON text must hold a list of services, not %s' % type(value).__name__)
        return None
    return value


def _key_only(params):
    if not isinstance(params, dict):
        return None
    return service_key(params, '', Problems())[0]


def parse_scope(items, path='scope'):
    """Scope entries -> Scope. Raises ValidationError. See _scope for the syntax."""
    problems = Problems()
    scope = _scope(items, path, problems)
    problems.raise_if_any()
    return scope


def _scope(items, path, problems):
    """Entries are a network (``10.96.0.0/12``, ``fd00::/108``), a single address
    (``192.0.2.10`` = /32 or /128) or a firewall mark range (``fwmark:10``,
    ``fwmark:10-20``, both families). Host bits in a network are an error, not rounded."""
    networks = []
    fwmarks = []
    for index, entry in enumerate(list_field(items, path, problems)):
        item = '%s[%d]' % (path, index)
        text = str(entry).strip()
        if text.lower().startswith(FWMARK_SCOPE_PREFIX):
            first, _sep, last = text[len(FWMARK_SCOPE_PREFIX):].partition('-')
            first = int_field(first, item, problems, 1, FWMARK_MAX, text=True)
            last = first if not _sep else int_field(last, item, problems, 1, FWMARK_MAX, text=True)
            if first is not None and last is not None:
                if first > last:
                    problems.add(item, '%r: range is backwards' % text)
                else:
                    fwmarks.append((first, last))
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            hint = ''
            try:
                hint = ' (did you mean %s?)' % ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            problems.add(item, '%r is not a network, address or fwmark:N[-M] range: %s%s' % (entry, exc, hint))
    return Scope(networks=tuple(networks), fwmarks=tuple(fwmarks))


def parse_request(params):
    """The module's (or a watcher's) parameters -> Request. Raises ValidationError.

    Single form (address/port or fwmark at top level): the task owns exactly that
    service. Table form (``services``): it owns ``scope``, or when scope is empty only
    the services it lists, so ``exclusive`` then cannot delete anything. state=absent
    deletes the named or listed services (their real servers are ignored).
    """
    problems = Problems()
    absent = params.get('state') == 'absent'
    if params.get('drain_timeout') is not None:
        int_field(params['drain_timeout'], 'drain_timeout', problems, 0, 2 ** 63 - 1, '0 or more')
    if params.get('services') is not None:
        for name in SERVICE_FIELDS:
            if params.get(name) is not None:
                problems.add(name, 'cannot be combined with services (give it per service)')
        indexed = _services(params.get('services'), 'services', problems)
        scope = _scope(params.get('scope'), 'scope', problems) if params.get('scope') else None
        contains = scope.test() if scope is not None else None
        for index, service in indexed:
            if contains is not None and not contains(service.key):
                problems.add('services[%d]' % index, '%s is outside scope' % (service.key,))
        problems.raise_if_any()
        services = tuple(service for _index, service in indexed)
        keys = Scope(keys=frozenset(service.key for service in services))
        if absent:
            return Request(services=(), scope=keys, exclusive=True, allow_empty=True)
        return Request(services=services, scope=scope or keys, exclusive=_flag(params, 'exclusive', True),
                       allow_empty=_flag(params, 'allow_empty', False))

    single = dict((name, params.get(name)) for name in SERVICE_FIELDS)
    if single['address'] is None and single['fwmark'] is None:
        problems.add('address', 'give services (table form), or address and port, or fwmark (one service)')
        problems.raise_if_any()
    service = parse_service(single, '', problems)
    problems.raise_if_any()
    # A single-form task names its service, so deleting it (state=absent) is explicit.
    scope = Scope(keys=frozenset([service.key]))
    return Request(services=() if absent else (service,), scope=scope, exclusive=True, allow_empty=True)


def _flag(params, name, default):
    value = params.get(name)
    return default if value is None else bool(value)
