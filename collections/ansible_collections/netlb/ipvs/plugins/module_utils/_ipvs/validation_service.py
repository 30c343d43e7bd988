# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One service of user input -> VirtualService: its key (protocol, address, port or
fwmark, family), its settings by the model's field table, scheduler flags, and its real
servers with the rules between their fields (forwarding, ports, tunnels, thresholds).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The field-by-field checks, each problem recorded with its path; validation_fast.py
takes the plain entries first. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    FWMARK_MAX,
    PROTOCOLS,
    SCHEDULER_FLAGS,
    SERVER_FIELD,
    SERVER_SETTING_NAMES,
    SERVER_SETTINGS,
    SERVICE_FIELD,
    SERVICE_SETTING_NAMES,
    RealServer,
    ServiceKey,
    VirtualService,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fast import plain_real_servers
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fields import (
    address_field, check_keys, choice_field, int_field, ip_version_name, join_path, list_field, setting_field, wanted_text)

# What names a service, then its settings (model.SERVICE_SETTINGS), then its real servers.
KEY_FIELDS = ('protocol', 'address', 'port', 'fwmark', 'family')
SERVICE_FIELDS = KEY_FIELDS + SERVICE_SETTING_NAMES + ('real_servers',)
SERVER_FIELDS = ('address', 'port') + SERVER_SETTING_NAMES
FAMILIES = {'ipv4': 4, 'ipv6': 6}
_FLAG_OWNER = dict((flag, owner) for owner, flags in SCHEDULER_FLAGS.items() for flag in flags)


def parse_service(params, path, problems):
    """One service dict -> VirtualService, or None when it has problems (recorded)."""
    if not check_keys(params, SERVICE_FIELDS, path, problems):
        return None
    before = len(problems.items)
    key, port = service_key(params, path, problems)
    family = key.family if key else 4

    # Every setting of the field table: the plain ones by their kind, range and choices;
    # scheduler_flags and persistence_netmask also depend on the scheduler and family.
    settings = {}
    for name in SERVICE_SETTING_NAMES:
        if name not in _SERVICE_SPECIAL:
            settings[name] = setting_field(SERVICE_FIELD[name], params, path, problems)
    settings['scheduler_flags'] = tuple(_scheduler_flags(params.get('scheduler_flags'), settings['scheduler'],
                                                         join_path(path, 'scheduler_flags'), problems))
    full = 32 if family == 4 else 128
    netmask = params.get('persistence_netmask')
    if netmask is not None:
        netmask = int_field(netmask, join_path(path, 'persistence_netmask'), problems, 1, full,
                            '1-%d for %s' % (full, ip_version_name(family)))
    settings['persistence_netmask'] = netmask
    timeout = settings['persistence_timeout']
    if key is not None and port == 0 and not key.is_fwmark and timeout == 0:
        problems.add(join_path(path, 'port'), '0 (all ports) needs persistence_timeout > 0')
    if settings['persistence_engine'] and timeout == 0:
        # The engine only finds the server of a persistence template: without one it does nothing.
        problems.add(join_path(path, 'persistence_engine'), '%s needs persistence_timeout > 0'
                     % settings['persistence_engine'])

    servers = _real_servers(params.get('real_servers'), key, join_path(path, 'real_servers'), problems)
    if len(problems.items) > before:
        return None
    return VirtualService(key=key, real_servers=tuple(servers), **settings)


# Settings parse_service checks by hand (they depend on other fields).
_SERVICE_SPECIAL = frozenset(['scheduler_flags', 'persistence_netmask'])


def service_key(params, path, problems):
    """(ServiceKey or None, port) from protocol/address/port or fwmark/family."""
    fwmark = params.get('fwmark')
    family_name = params.get('family')
    family = None
    if family_name is not None:
        family = FAMILIES.get(family_name) if isinstance(family_name, str) else None
        if family is None:
            choice_field(family_name, join_path(path, 'family'), problems, tuple(FAMILIES))
    if fwmark is not None:
        clash = [name for name in ('protocol', 'address', 'port') if params.get(name) is not None]
        if clash:
            problems.add(join_path(path, 'fwmark'), 'cannot be combined with %s' % ', '.join(clash))
        mark = int_field(fwmark, join_path(path, 'fwmark'), problems, 1, FWMARK_MAX)
        if family is None:
            # Unnamed: the family of the real servers, IPv4 when there are none.
            family = _first_server_family(params.get('real_servers')) or 4
        return (ServiceKey.mark(mark, family) if mark is not None and not clash else None), 0

    protocol = params.get('protocol')
    if protocol is None:
        protocol = 'tcp'
    else:
        protocol = choice_field(protocol, join_path(path, 'protocol'), problems, PROTOCOLS)
    address = params.get('address')
    if address is None:
        problems.add(join_path(path, 'address'), 'required (or give fwmark)')
    else:
        address = address_field(address, join_path(path, 'address'), problems)
    port = params.get('port')
    if port is None:
        problems.add(join_path(path, 'port'), 'required with address')
    else:
        port = int_field(port, join_path(path, 'port'), problems, 0, 65535, '1-65535')
    if address is None or port is None or protocol is None:
        return None, port
    # address is canonical text already: ServiceKey.tcp_udp would parse it twice more.
    key = ServiceKey(protocol, address, port, 0, 6 if ':' in address else 4)
    if family is not None and family != key.family:
        problems.add(join_path(path, 'family'), '%s does not match address %s' % (family_name, address))
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
    for index, flag in enumerate(list_field(value, path, problems)):
        item = '%s[%d]' % (path, index)
        if flag in _GENERIC_FLAGS and isinstance(flag, str):
            names = SCHEDULER_FLAGS.get(scheduler, ())
            number = _GENERIC_FLAGS.index(flag)
            flags.append(names[number] if number < len(names) else flag)
            continue
        owner = _FLAG_OWNER.get(flag) if isinstance(flag, str) else None
        if owner is None:
            problems.add(item, '%s is not a scheduler flag (%s)' % (
                wanted_text(flag), ', '.join(sorted(_FLAG_OWNER) + list(_GENERIC_FLAGS))))
        elif scheduler is not None and owner != scheduler:
            problems.add(item, '%s applies only to scheduler %s, not %s' % (flag, owner, scheduler))
        else:
            flags.append(flag)
    return flags


def _real_servers(value, key, path, problems):
    servers = plain_real_servers(value, key)
    if servers is not None:
        return servers
    servers = []
    seen = {}
    for index, params in enumerate(list_field(value, path, problems)):
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


def _real_server(params, key, path, problems):
    """One real server dict -> RealServer or None. key may be None (service invalid):
    the server's own fields are still checked so every problem shows at once."""
    if not check_keys(params, SERVER_FIELDS, path, problems):
        return None
    before = len(problems.items)
    address = params.get('address')
    if address is None:
        problems.add(join_path(path, 'address'), 'required')
    else:
        address = address_field(address, join_path(path, 'address'), problems)
    # Every setting of the field table by its kind, range and choices, then the rules
    # between them.
    settings = dict((field.name, setting_field(field, params, path, problems)) for field in SERVER_SETTINGS)
    forwarding = settings['forwarding']
    if address is not None and key is not None:
        family = 6 if ':' in address else 4  # address is canonical text here
        if family != key.family and forwarding != 'tunnel':
            problems.add(join_path(path, 'address'), '%s is %s but the service is %s (only tunnel forwarding '
                         'crosses families)' % (address, ip_version_name(family), ip_version_name(key.family)))
    port = _server_port(params.get('port'), key, forwarding, join_path(path, 'port'), problems)
    upper, lower = settings['upper_threshold'], settings['lower_threshold']
    if upper is not None and lower is not None and lower > upper:
        # upper 0 means "no limit": a server is then never overloaded and lower does nothing.
        problems.add(join_path(path, 'lower_threshold'), '%d is above upper_threshold %d%s'
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
                problems.add(join_path(path, name), 'needs forwarding tunnel, not %s' % settings['forwarding'])
        return
    kind, port, checksum = settings['tunnel_type'], settings['tunnel_port'], settings['tunnel_checksum']
    if kind is None:
        return
    if port is not None:
        if _TUNNEL_PORT[kind] and not port:
            problems.add(join_path(path, 'tunnel_port'), 'required (1-65535) with tunnel_type %s' % kind)
        elif port and not _TUNNEL_PORT[kind]:
            problems.add(join_path(path, 'tunnel_port'), '%d cannot be used with tunnel_type %s' % (port, kind))
    if checksum is not None and checksum not in _TUNNEL_CHECKSUMS[kind]:
        problems.add(join_path(path, 'tunnel_checksum'), '%s cannot be used with tunnel_type %s (%s)'
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
    port = int_field(value, path, problems, low, 65535)
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
