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
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    FWMARK_MAX,
    PROTOCOLS,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    SERVER_FIELD,
    SERVER_SETTING_NAMES,
    SERVER_SETTINGS,
    SERVICE_FIELD,
    SERVICE_SETTING_NAMES,
    RealServer,
    Scope,
    ServiceKey,
    VirtualService,
)

# What names a service, then its settings (model.SERVICE_SETTINGS), then its real servers.
KEY_FIELDS = ('protocol', 'address', 'port', 'fwmark', 'family')
SERVICE_FIELDS = KEY_FIELDS + SERVICE_SETTING_NAMES + ('real_servers',)
SERVER_FIELDS = ('address', 'port') + SERVER_SETTING_NAMES
# What the fast paths take: a service named by protocol, address and port, with the
# settings every big table has; a real server without tunnel settings. Anything else
# goes to the field-by-field checks.
_PLAIN_SERVICE_FIELDS = frozenset(['protocol', 'address', 'port', 'scheduler', 'scheduler_flags',
                                   'persistence_timeout', 'persistence_netmask', 'real_servers'])
_PLAIN_SERVER_FIELDS = frozenset(['address', 'port', 'weight', 'forwarding', 'upper_threshold', 'lower_threshold'])
# Defaults and ranges of those, from the field table.
_WEIGHT, _FORWARDING = SERVER_FIELD['weight'], SERVER_FIELD['forwarding']
_THRESHOLD_MAX = SERVER_FIELD['upper_threshold'].high
# Exact types for the fast paths (a bool is an int, a str or dict subclass could be anything:
# the full checks decide those).
_DICT = frozenset([dict])
_INT = frozenset([int])
_STR = frozenset([str])

DEFAULT_SCHEDULER = SERVICE_FIELD['scheduler'].default  # what ipvsadm and the kernel pick when none is named
FAMILIES = {'ipv4': 4, 'ipv6': 6}
FWMARK_SCOPE_PREFIX = 'fwmark:'
_FLAG_OWNER = dict((flag, owner) for owner, flags in SCHEDULER_FLAGS.items() for flag in flags)


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated call: what to converge to and what may be touched."""

    services: tuple
    scope: Scope
    exclusive: bool = True
    allow_empty: bool = False


class _Problems(object):
    def __init__(self):
        self.items = []

    def add(self, path, message):
        self.items.append('%s: %s' % (path, message))

    def raise_if_any(self):
        if self.items:
            raise ValidationError(self.items)


def _join(prefix, field):
    return '%s.%s' % (prefix, field) if prefix else field


def _int(value, path, problems, low, high, range_text=None, text=False):
    """An integer in [low, high] or None (problem recorded). Whole floats (80.0) are
    integers, as JSON may spell them; a bool is not, nor is text (``'80'``: a quoted number
    in a table is a mistake upstream, reported rather than guessed at), except where the
    input is text by nature (text=True: a scope entry)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and text:
        digits = value.strip()
        if not digits.lstrip('-').isdigit():
            problems.add(path, '%r is not an integer' % (value,))
            return None
        value = int(digits)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, '%s is not an integer' % _shown(value))
        return None
    if not low <= value <= high:
        problems.add(path, '%d is out of range %s' % (value, range_text or '%d-%d' % (low, high)))
        return None
    return value


def _shown(value):
    """A wrong value as a message shows it: text with its quotes and type named, so
    ``'80' (text)`` cannot be mistaken for the number."""
    if isinstance(value, str):
        return '%r (text)' % (value,)
    if isinstance(value, (list, tuple)):
        return '%r (a list)' % (value,)
    if isinstance(value, dict):
        return '%r (a dictionary)' % (value,)
    if isinstance(value, bool):
        return '%r (a boolean)' % (value,)
    return repr(value)


def _wanted_text(value):
    """A value where text was wanted: text as is (quoted), anything else with its type."""
    return repr(value) if isinstance(value, str) else _shown(value)


def _choice(value, path, problems, choices):
    """value when it is one of choices (text), else None with the problem recorded."""
    if isinstance(value, str) and value in choices:
        return value
    problems.add(path, '%s is not one of %s' % (_wanted_text(value), ', '.join(choices)))
    return None


def _bool(value, path, problems):
    if isinstance(value, bool):
        return value
    problems.add(path, '%s is not a boolean (true or false)' % _shown(value))
    return None


def _setting(field, params, path, problems):
    """The value of a plain setting (int with a range, str with choices, bool) of
    params, its default when absent or null; None with the problem recorded."""
    value = params.get(field.name)
    if value is None:
        return field.default
    path = _join(path, field.name)
    if field.kind == 'int':
        return _int(value, path, problems, field.low, field.high)
    if field.kind == 'bool':
        return _bool(value, path, problems)
    return _choice(value, path, problems, field.choices)


def _address(value, path, problems):
    """Canonical address text or None. Scoped, unspecified and prefixed forms are refused:
    the kernel has no use for them and they are easy typos."""
    text = str(value).strip() if value is not None else ''
    if value is not None and not isinstance(value, str):
        problems.add(path, '%s is not an IP address (text)' % _shown(value))
        return None
    if '%' in text:
        problems.add(path, '%r: scoped IPv6 addresses are not supported' % (value,))
        return None
    fast = _plain_ipv4(text)
    if fast is not None and fast != '0.0.0.0':
        return fast
    try:
        address = ipaddress.ip_address(text.strip('[]'))
    except ValueError:
        problems.add(path, '%r is not a valid IP address' % (value,))
        return None
    if address.is_unspecified:
        problems.add(path, '%s is the unspecified address' % address)
        return None
    return str(address)


def _plain_ipv4(text):
    """text when it is an IPv4 address already in canonical form, else None (then
    ipaddress decides). The common case, checked at a fraction of ipaddress's cost,
    which a table of 50,000 real servers feels (seconds on a small node)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    return text if socket.inet_ntop(socket.AF_INET, packed) == text else None


def _family_name(family):
    return 'IPv%d' % family


def _check_keys(params, fields, path, problems):
    if not isinstance(params, dict):
        problems.add(path or '(top)', 'expected a dictionary, got %s' % _shown(params))
        return False
    for name in sorted(set(params) - set(fields)):
        problems.add(_join(path, name), 'unknown option')
    return True


def _list(value, path, problems):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        problems.add(path, 'expected a list, got %s' % _shown(value))
        return []
    return list(value)


def parse_service(params, path, problems):
    """One service dict -> VirtualService, or None when it has problems (recorded)."""
    if not _check_keys(params, SERVICE_FIELDS, path, problems):
        return None
    before = len(problems.items)
    key, port = _service_key(params, path, problems)
    family = key.family if key else 4

    # Every setting of the field table: the plain ones by their kind, range and choices;
    # scheduler_flags and persistence_netmask also depend on the scheduler and family.
    settings = {}
    for name in SERVICE_SETTING_NAMES:
        if name not in _SERVICE_SPECIAL:
            settings[name] = _setting(SERVICE_FIELD[name], params, path, problems)
    settings['scheduler_flags'] = tuple(_scheduler_flags(params.get('scheduler_flags'), settings['scheduler'],
                                                         _join(path, 'scheduler_flags'), problems))
    full = 32 if family == 4 else 128
    netmask = params.get('persistence_netmask')
    if netmask is not None:
        netmask = _int(netmask, _join(path, 'persistence_netmask'), problems, 1, full,
                       '1-%d for %s' % (full, _family_name(family)))
    settings['persistence_netmask'] = netmask
    timeout = settings['persistence_timeout']
    if key is not None and port == 0 and not key.is_fwmark and timeout == 0:
        problems.add(_join(path, 'port'), '0 (all ports) needs persistence_timeout > 0')
    if settings['persistence_engine'] and timeout == 0:
        # The engine only finds the server of a persistence template: without one it does nothing.
        problems.add(_join(path, 'persistence_engine'), '%s needs persistence_timeout > 0'
                     % settings['persistence_engine'])

    servers = _real_servers(params.get('real_servers'), key, _join(path, 'real_servers'), problems)
    if len(problems.items) > before:
        return None
    return VirtualService(key=key, real_servers=tuple(servers), **settings)


# Settings parse_service checks by hand (they depend on other fields).
_SERVICE_SPECIAL = frozenset(['scheduler_flags', 'persistence_netmask'])


def _plain_service(params):
    """The VirtualService of an unremarkable table entry (known keys only; protocol,
    canonical IPv4 address, port 1-65535, scheduler, no flags, no persistence, plain real
    servers), or None as soon as anything is not: then parse_service checks it field by
    field and reports. A big table is all such entries, and the per-service part of the
    full check (field paths, defaults one by one) is half of its time. Whatever this
    accepts, parse_service accepts with the same result; tests/unit hold the two together."""
    if type(params) not in _DICT or not _PLAIN_SERVICE_FIELDS.issuperset(params):
        return None
    get = params.get
    protocol = get('protocol', 'tcp')
    address = get('address')
    port = get('port')
    scheduler = get('scheduler', DEFAULT_SCHEDULER)
    if (type(protocol) not in _STR or protocol not in PROTOCOLS or type(port) not in _INT or not 1 <= port <= 65535
            or type(scheduler) not in _STR or scheduler not in SCHEDULERS
            or get('scheduler_flags', []) != [] or type(get('persistence_timeout', 0)) not in _INT
            or get('persistence_timeout', 0) != 0 or get('persistence_netmask') is not None):
        return None
    if type(address) not in _STR or _plain_ipv4(address) is None or address == '0.0.0.0':
        return None
    key = ServiceKey(protocol, address, port, 0, 4)
    servers = _plain_real_servers(get('real_servers', []), key)
    if servers is None:
        return None
    return VirtualService(key=key, scheduler=scheduler, real_servers=tuple(servers))


def _service_key(params, path, problems):
    """(ServiceKey or None, port) from protocol/address/port or fwmark/family."""
    fwmark = params.get('fwmark')
    family_name = params.get('family')
    family = None
    if family_name is not None:
        family = FAMILIES.get(family_name) if isinstance(family_name, str) else None
        if family is None:
            _choice(family_name, _join(path, 'family'), problems, tuple(FAMILIES))
    if fwmark is not None:
        clash = [name for name in ('protocol', 'address', 'port') if params.get(name) is not None]
        if clash:
            problems.add(_join(path, 'fwmark'), 'cannot be combined with %s' % ', '.join(clash))
        mark = _int(fwmark, _join(path, 'fwmark'), problems, 1, FWMARK_MAX)
        if family is None:
            # Unnamed: the family of the real servers, IPv4 when there are none.
            family = _first_server_family(params.get('real_servers')) or 4
        return (ServiceKey.mark(mark, family) if mark is not None and not clash else None), 0

    protocol = params.get('protocol')
    if protocol is None:
        protocol = 'tcp'
    else:
        protocol = _choice(protocol, _join(path, 'protocol'), problems, PROTOCOLS)
    address = params.get('address')
    if address is None:
        problems.add(_join(path, 'address'), 'required (or give fwmark)')
    else:
        address = _address(address, _join(path, 'address'), problems)
    port = params.get('port')
    if port is None:
        problems.add(_join(path, 'port'), 'required with address')
    else:
        port = _int(port, _join(path, 'port'), problems, 0, 65535, '1-65535')
    if address is None or port is None or protocol is None:
        return None, port
    # address is canonical text already: ServiceKey.tcp_udp would parse it twice more.
    key = ServiceKey(protocol, address, port, 0, 6 if ':' in address else 4)
    if family is not None and family != key.family:
        problems.add(_join(path, 'family'), '%s does not match address %s' % (family_name, address))
    return key, port


def _first_server_family(servers):
    if not isinstance(servers, (list, tuple)):
        return None
    for server in servers:
        if isinstance(server, dict) and isinstance(server.get('address'), str):
            try:
                return ipaddress.ip_address(server['address'].strip().strip('[]')).version
            except ValueError:
                continue
    return None


# The kernel's three scheduler flag bits by number (ipvsadm -b flag-N), for any scheduler.
_GENERIC_FLAGS = ('flag-1', 'flag-2', 'flag-3')


def _scheduler_flags(value, scheduler, path, problems):
    """Flags by name. flag-N is the kernel's bit N, which any scheduler may carry (ipvsadm
    -b flag-N); it is spelled as the scheduler's own name where it has one (flag-1 of sh
    is sh-fallback), as a read spells it, so the two compare equal."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(',') if part.strip()]
    flags = []
    for index, flag in enumerate(_list(value, path, problems)):
        item = '%s[%d]' % (path, index)
        if flag in _GENERIC_FLAGS and isinstance(flag, str):
            names = SCHEDULER_FLAGS.get(scheduler, ())
            number = _GENERIC_FLAGS.index(flag)
            flags.append(names[number] if number < len(names) else flag)
            continue
        owner = _FLAG_OWNER.get(flag) if isinstance(flag, str) else None
        if owner is None:
            problems.add(item, '%s is not a scheduler flag (%s)' % (
                _wanted_text(flag), ', '.join(sorted(_FLAG_OWNER) + list(_GENERIC_FLAGS))))
        elif scheduler is not None and owner != scheduler:
            problems.add(item, '%s applies only to scheduler %s, not %s' % (flag, owner, scheduler))
        else:
            flags.append(flag)
    return flags


def _real_servers(value, key, path, problems):
    servers = _plain_real_servers(value, key)
    if servers is not None:
        return servers
    servers = []
    seen = {}
    for index, params in enumerate(_list(value, path, problems)):
        item = '%s[%d]' % (path, index)
        server = _real_server(params, key, item, problems)
        if server is None:
            continue
        if server.key in seen:
            problems.add(item, 'duplicate of %s[%d] (%s)' % (path, seen[server.key], server.endpoint))
            continue
        seen[server.key] = index
        servers.append(server)
    return servers


def _plain_real_servers(items, key):
    """The RealServers of a list of unremarkable entries (known keys only, IPv4 addresses
    in canonical form, exact ints in range, no duplicates), or None as soon as one entry
    is not: then _real_server checks each field by field and reports. A table of 50,000
    real servers is all such entries, and one tight loop without field paths takes half
    the time. Whatever this accepts, the full check accepts with the same result;
    tests/unit hold the two together."""
    if key is None or key.family != 4 or not isinstance(items, (list, tuple)):
        return None
    service_port = 0 if key.is_fwmark else key.port
    low = 0 if service_port == 0 else 1
    fields, pton, ntop, inet = _PLAIN_SERVER_FIELDS, socket.inet_pton, socket.inet_ntop, socket.AF_INET
    weight_default, weight_max, forwarding_default = _WEIGHT.default, _WEIGHT.high, _FORWARDING.default
    forwardings, threshold_max, server_of = _FORWARDING.choices, _THRESHOLD_MAX, RealServer
    servers, seen = [], set()
    append, see = servers.append, seen.add
    for params in items:
        if type(params) not in _DICT or not fields.issuperset(params):
            return None
        get = params.get
        address = get('address')
        try:  # _plain_ipv4 inlined: a call per server is ~8% of this loop
            if ntop(inet, pton(inet, address)) != address or address == '0.0.0.0':
                return None
        except (OSError, TypeError, ValueError):
            return None
        forwarding = get('forwarding', forwarding_default)
        port = get('port', service_port)
        weight = get('weight', weight_default)
        upper = get('upper_threshold', 0)
        lower = get('lower_threshold', 0)
        # A null, a bool or a float fails here (not an int): the full check reports it.
        if not (type(port) in _INT and type(weight) in _INT and type(upper) in _INT and type(lower) in _INT
                and low <= port <= 65535 and 0 <= weight <= weight_max and 0 <= lower <= upper <= threshold_max):
            return None
        if forwarding != 'masq' and (type(forwarding) not in _STR or forwarding not in forwardings
                                     or port != service_port):
            return None  # route and tunnel cannot remap ports: _server_port says so
        # RealServer's own constructor, positionally (keywords cost a fifth of this loop);
        # the tunnel settings keep their defaults.
        append(server_of(address, port, weight, forwarding, upper, lower))
        see((address, port))
    if len(seen) != len(servers):
        return None  # the full check names the duplicates
    return servers


def _real_server(params, key, path, problems):
    """One real server dict -> RealServer or None. key may be None (service invalid):
    the server's own fields are still checked so every problem shows at once."""
    if not _check_keys(params, SERVER_FIELDS, path, problems):
        return None
    before = len(problems.items)
    address = params.get('address')
    if address is None:
        problems.add(_join(path, 'address'), 'required')
    else:
        address = _address(address, _join(path, 'address'), problems)
    # Every setting of the field table by its kind, range and choices, then the rules
    # between them.
    settings = dict((field.name, _setting(field, params, path, problems)) for field in SERVER_SETTINGS)
    forwarding = settings['forwarding']
    if address is not None and key is not None:
        family = 6 if ':' in address else 4  # address is canonical text here
        if family != key.family and forwarding != 'tunnel':
            problems.add(_join(path, 'address'), '%s is %s but the service is %s (only tunnel forwarding '
                         'crosses families)' % (address, _family_name(family), _family_name(key.family)))
    port = _server_port(params.get('port'), key, forwarding, _join(path, 'port'), problems)
    upper, lower = settings['upper_threshold'], settings['lower_threshold']
    if upper is not None and lower is not None and lower > upper:
        # upper 0 means "no limit": a server is then never overloaded and lower does nothing.
        problems.add(_join(path, 'lower_threshold'), '%d is above upper_threshold %d%s'
                     % (lower, upper, ' (0 = no limit, so lower_threshold has no effect)' if not upper else ''))
    if forwarding is not None:
        _tunnel_settings(params, settings, path, problems)
    if len(problems.items) > before or key is None:
        return None
    return RealServer(address=address, port=port, **settings)


# What each tunnel type takes (as ipvsadm checks it): a port (gue: required), checksums.
_TUNNEL_PORT = {'ipip': False, 'gue': True, 'gre': False}
_TUNNEL_CHECKSUMS = {'ipip': ('none',), 'gue': ('none', 'csum', 'remcsum'), 'gre': ('none', 'csum')}


def _tunnel_settings(params, settings, path, problems):
    """Tunnel settings only with forwarding tunnel, each only with a tunnel type that has it."""
    given = [name for name in ('tunnel_type', 'tunnel_port', 'tunnel_checksum') if params.get(name) is not None]
    if settings['forwarding'] != 'tunnel':
        for name in given:
            if settings[name] is not None and settings[name] != SERVER_FIELD[name].default:
                problems.add(_join(path, name), 'needs forwarding tunnel, not %s' % settings['forwarding'])
        return
    kind, port, checksum = settings['tunnel_type'], settings['tunnel_port'], settings['tunnel_checksum']
    if kind is None:
        return
    if port is not None:
        if _TUNNEL_PORT[kind] and not port:
            problems.add(_join(path, 'tunnel_port'), 'required (1-65535) with tunnel_type %s' % kind)
        elif port and not _TUNNEL_PORT[kind]:
            problems.add(_join(path, 'tunnel_port'), '%d cannot be used with tunnel_type %s' % (port, kind))
    if checksum is not None and checksum not in _TUNNEL_CHECKSUMS[kind]:
        problems.add(_join(path, 'tunnel_checksum'), '%s cannot be used with tunnel_type %s (%s)'
                     % (checksum, kind, ', '.join(_TUNNEL_CHECKSUMS[kind])))


def _server_port(value, key, forwarding, path, problems):
    """The real server port. Omitted = the service port (0 for fwmark: keep the packet's).

    route and tunnel cannot remap ports: the kernel keeps whatever port netlink sends but
    forwards to the packet's own port, and ipvsadm rewrites it to the service port. Only the
    service port is accepted, so what we ask for is what a dump shows and runs converge.
    """
    service_port = 0 if key is None or key.is_fwmark else key.port
    if value is None:
        return service_port
    low = 0 if service_port == 0 and key is not None else 1
    port = _int(value, path, problems, low, 65535)
    if port is None or key is None:
        return port
    if forwarding in ('route', 'tunnel') and port != service_port:
        if key.is_fwmark:
            problems.add(path, '%d cannot be used with forwarding %s in a fwmark service: the packet keeps its '
                         'destination port; omit port' % (port, forwarding))
        else:
            problems.add(path, '%d differs from the service port %d, but forwarding %s cannot remap ports '
                         '(the kernel ignores it); omit port or use %d' % (port, service_port, forwarding,
                                                                           service_port))
        return None
    return port


def parse_services(items, path='services'):
    """A list of service dicts -> list of VirtualService. Raises ValidationError."""
    problems = _Problems()
    indexed = _services(items, path, problems)
    problems.raise_if_any()
    return [service for _index, service in indexed]


def _services(items, path, problems):
    """[(index, VirtualService)] for the valid entries; problems recorded for the rest."""
    services = []
    seen = {}
    if isinstance(items, str):
        items = _json_text(items, path, problems)
    for index, params in enumerate(_list(items, path, problems)):
        service = _plain_service(params)
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
    return _service_key(params, '', _Problems())[0]


def parse_scope(items, path='scope'):
    """Scope entries -> Scope. Raises ValidationError. See _scope for the syntax."""
    problems = _Problems()
    scope = _scope(items, path, problems)
    problems.raise_if_any()
    return scope


def _scope(items, path, problems):
    """Entries are a network (``10.96.0.0/12``, ``fd00::/108``), a single address
    (``192.0.2.10`` = /32 or /128) or a firewall mark range (``fwmark:10``,
    ``fwmark:10-20``, both families). Host bits in a network are an error, not rounded."""
    networks = []
    fwmarks = []
    for index, entry in enumerate(_list(items, path, problems)):
        item = '%s[%d]' % (path, index)
        text = str(entry).strip()
        if text.lower().startswith(FWMARK_SCOPE_PREFIX):
            first, _sep, last = text[len(FWMARK_SCOPE_PREFIX):].partition('-')
            first = _int(first, item, problems, 1, FWMARK_MAX, text=True)
            last = first if not _sep else _int(last, item, problems, 1, FWMARK_MAX, text=True)
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
    problems = _Problems()
    absent = params.get('state') == 'absent'
    if params.get('drain_timeout') is not None:
        _int(params['drain_timeout'], 'drain_timeout', problems, 0, 2 ** 63 - 1, '0 or more')
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
