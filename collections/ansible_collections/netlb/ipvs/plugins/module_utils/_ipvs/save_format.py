# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ipvsadm's text formats as values: `-S -n` rules, `-R` scripts, `-L -n` listings.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Pure functions, no I/O:

- parse(text) reads `ipvsadm -S -n` output into a table (dict ServiceKey -> VirtualService);
- render(table) writes a table back in that format, canonical order, so
  render(parse(render(t))) == render(t);
- restore_script(actions) writes the input of one `ipvsadm -R`;
- parse_listing(text) reads `ipvsadm -L -n` (plain, --thresholds, --stats, --rate...)
  into per-server columns; with_listing() merges thresholds and counters into a table.

Format rules (ipvsadm 1.31, checked in the lab VM):
- `-S` never saves thresholds; a rule line carries them only when we write it (-x/-y).
- An IPv4 persistence netmask is dotted (`-M 255.255.255.0`), an IPv6 one a prefix
  length (`-M 64`); `-M` is printed only when it differs from the full length.
- A tunnel real server is saved with `--tun-type T`, a gue one with `--tun-port N`,
  gue and gre ones with their checksum option (`--tun-nocsum` included); we write
  the same, in rule lines and restore scripts alike (ipvsadm takes them since 1.30).
- One-packet scheduling is `-o`, a persistence engine `--pe NAME`.
- Every option is that of a field of model.SERVICE_SETTINGS / SERVER_SETTINGS (its
  ``ipvsadm`` entry); tests hold the spellings here to those.
- `-R` input has no comment syntax, and `-E`/`-e` replace the whole entry, so every
  line we write is complete (scheduler, flags, persistence; weight, forwarding,
  thresholds).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model

PROTOCOL_OPTION = {'tcp': '-t', 'udp': '-u', 'sctp': '--sctp-service'}
OPTION_PROTOCOL = {'-t': 'tcp', '--tcp-service': 'tcp', '-u': 'udp', '--udp-service': 'udp',
                   '--sctp-service': 'sctp'}
FORWARDING_OPTION = {'masq': '-m', 'route': '-g', 'tunnel': '-i'}
OPTION_FORWARDING = {'-m': 'masq', '--masquerading': 'masq', '-g': 'route', '--gatewaying': 'route',
                     '-i': 'tunnel', '--ipip': 'tunnel'}
LISTING_PROTOCOL = {'TCP': 'tcp', 'UDP': 'udp', 'SCTP': 'sctp', 'FWM': model.FWMARK}

CHECKSUM_OPTION = {'none': '--tun-nocsum', 'csum': '--tun-csum', 'remcsum': '--tun-remcsum'}
OPTION_CHECKSUM = dict((option, name) for name, option in CHECKSUM_OPTION.items())
ONE_PACKET_OPTIONS = ('-o', '--ops')

# Options that take a value, so the tokenizer knows what to skip over.
_VALUED = frozenset(('-t', '--tcp-service', '-u', '--udp-service', '--sctp-service', '-f',
                     '--fwmark-service', '-s', '--scheduler', '-p', '--persistent', '-M', '--netmask',
                     '-b', '--sched-flags', '--pe', '-r', '--real-server', '-w', '--weight',
                     '-x', '--u-threshold', '-y', '--l-threshold', '--tun-type', '--tun-port'))
# Options without a value.
_FLAGS = frozenset(('-6', '--ipv6') + ONE_PACKET_OPTIONS + tuple(OPTION_CHECKSUM) + tuple(OPTION_FORWARDING))


class FormatError(ValueError):
    """Text that is not what ipvsadm prints (or accepts)."""


# ---------------------------------------------------------------------------
# Small spellings


def split_host_port(text):
    """'10.0.0.1:80' -> ('10.0.0.1', 80); '[fd00::1]:53' -> ('fd00::1', 53); a bare
    address gives port 0. Raises FormatError."""
    host, port = text, '0'
    if text.startswith('['):
        close = text.find(']')
        if close < 0:
            raise FormatError('bad address %r' % text)
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(':'):
                raise FormatError('bad address %r' % text)
            port = rest[1:]
    elif text.count(':') == 1:
        host, port = text.split(':')
    try:
        return _canonical(host)[0], int(port)
    except ValueError:
        raise FormatError('bad address %r' % text)


# ipaddress is slow and a big table repeats its addresses (every real server line
# names its service): canonical text and family, by the text ipvsadm printed.
_ADDRESSES = {}


def _canonical(host):
    hit = _ADDRESSES.get(host)
    if hit is None:
        address = model.canonical_address(host)
        hit = _ADDRESSES[host] = (address, model.address_family(address))
    return hit


def prefix_to_netmask(prefix):
    """24 -> '255.255.255.0' (IPv4 persistence netmask as ipvsadm spells it)."""
    return str(ipaddress.IPv4Network('0.0.0.0/%d' % prefix).netmask)


def netmask_to_prefix(text, family):
    """'255.255.255.0' -> 24 (IPv4); '64' -> 64 (IPv6). Raises FormatError."""
    try:
        if family == 6 or '.' not in text:
            prefix = int(text)
        else:
            prefix = ipaddress.IPv4Network('0.0.0.0/%s' % text).prefixlen
    except ValueError:
        raise FormatError('bad netmask %r' % text)
    if not 0 <= prefix <= (32 if family == 4 else 128):
        raise FormatError('bad netmask %r' % text)
    return prefix


def service_option(key):
    """The ipvsadm words naming a service: ['-t', '10.0.0.1:80'], ['-f', '10', '-6']."""
    if key.is_fwmark:
        return ['-f', str(key.fwmark)] + (['-6'] if key.family == 6 else [])
    return [PROTOCOL_OPTION[key.protocol], key.endpoint]


def service_words(service):
    """The settings of a service as ipvsadm options (complete: -s always)."""
    words = ['-s', service.scheduler]
    if service.persistence_timeout:
        words += ['-p', str(service.persistence_timeout)]
        full = 32 if service.key.family == 4 else 128
        if service.persistence_netmask != full:
            words += ['-M', _netmask_text(service.persistence_netmask, service.key.family)]
    if service.persistence_engine:
        words += ['--pe', service.persistence_engine]
    if service.scheduler_flags:
        words += ['-b', ','.join(service.scheduler_flags)]
    if service.one_packet:
        words.append('-o')
    return words


def _netmask_text(prefix, family):
    return prefix_to_netmask(prefix) if family == 4 else str(prefix)


def server_words(server, thresholds=True):
    words = ['-r', server.endpoint, FORWARDING_OPTION[server.forwarding], '-w', str(server.weight)]
    if server.forwarding == 'tunnel':
        words += tunnel_words(server)
    if thresholds:
        words += ['-x', str(server.upper_threshold), '-y', str(server.lower_threshold)]
    return words


def tunnel_words(server):
    """A tunnel real server's options, as `ipvsadm -S` prints them (and -R takes them)."""
    words = ['--tun-type', server.tunnel_type]
    if server.tunnel_type == 'gue':
        words += ['--tun-port', str(server.tunnel_port)]
    if server.tunnel_type in ('gue', 'gre'):
        words.append(CHECKSUM_OPTION[server.tunnel_checksum])
    return words


# ---------------------------------------------------------------------------
# ipvsadm -S -n


def _tokens(line, number):
    """Split a rule line into (command, {option: value}), keeping a service's '-6'."""
    words = line.split()
    command, options = words[0], {}
    i = 1
    while i < len(words):
        word = words[i]
        if word in _VALUED:
            if i + 1 >= len(words):
                raise FormatError('line %d: %s needs a value' % (number, word))
            options[word] = words[i + 1]
            i += 2
        elif word in _FLAGS:
            options[word] = True
            i += 1
        else:
            raise FormatError('line %d: unknown option %r' % (number, word))
    return command, options


def _key_of(options, number):
    for option, protocol in OPTION_PROTOCOL.items():
        if option in options:
            address, port = split_host_port(options[option])
            return model.ServiceKey(protocol, address, port, family=_canonical(address)[1])
    mark = options.get('-f', options.get('--fwmark-service'))
    if mark is not None:
        family = 6 if ('-6' in options or '--ipv6' in options) else 4
        try:
            return model.ServiceKey.mark(int(mark), family)
        except ValueError:
            raise FormatError('line %d: bad fwmark %r' % (number, mark))
    raise FormatError('line %d: no service' % number)


def _int(options, names, default, number):
    for name in names:
        if name in options:
            try:
                return int(options[name])
            except ValueError:
                raise FormatError('line %d: %s wants a number, got %r' % (number, name, options[name]))
    return default


def _service_of(key, options, number):
    flags = options.get('-b', options.get('--sched-flags', ''))
    timeout = _int(options, ('-p', '--persistent'), 0, number)
    full = 32 if key.family == 4 else 128
    netmask = options.get('-M', options.get('--netmask'))
    return model.VirtualService(
        key=key,
        scheduler=options.get('-s', options.get('--scheduler', 'wlc')),
        scheduler_flags=tuple(f for f in flags.split(',') if f),
        persistence_timeout=timeout,
        persistence_netmask=netmask_to_prefix(netmask, key.family) if netmask else full,
        persistence_engine=options.get('--pe') or None,
        one_packet=any(option in options for option in ONE_PACKET_OPTIONS),
    )


def _server_of(options, number):
    target = options.get('-r', options.get('--real-server'))
    if target is None:
        raise FormatError('line %d: no real server' % number)
    address, port = split_host_port(target)
    forwarding = [OPTION_FORWARDING[o] for o in options if o in OPTION_FORWARDING]
    server = model.RealServer(
        address=address,
        port=port,
        weight=_int(options, ('-w', '--weight'), 1, number),
        forwarding=forwarding[0] if forwarding else 'route',  # ipvsadm's default is -g
        upper_threshold=_int(options, ('-x', '--u-threshold'), 0, number),
        lower_threshold=_int(options, ('-y', '--l-threshold'), 0, number),
    )
    if '--tun-type' in options:  # only tunnel servers have them (ipvsadm refuses them otherwise)
        server = _with_tunnel(server, options, number)
    return server


def _with_tunnel(server, options, number):
    tunnel_type = options['--tun-type']
    if tunnel_type not in model.TUNNEL_TYPES:
        raise FormatError('line %d: unknown tunnel type %r' % (number, tunnel_type))
    checksum = [OPTION_CHECKSUM[o] for o in options if o in OPTION_CHECKSUM]
    return server.replace(tunnel_type=tunnel_type, tunnel_port=_int(options, ('--tun-port',), 0, number),
                          tunnel_checksum=checksum[0] if checksum else 'none')


def parse(text):
    """Read `ipvsadm -S -n` output (or our own render) into a table.

    Lines are `-A <service> <settings>` and `-a <service> -r <server> <settings>`;
    a real server may only follow its service. Raises FormatError.
    """
    services, servers = {}, {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        command, options = _tokens(line, number)
        key = _key_of(options, number)
        if command in ('-A', '--add-service'):
            if key in services:
                raise FormatError('line %d: %s twice' % (number, key))
            services[key] = _service_of(key, options, number)
            servers[key] = []
        elif command in ('-a', '--add-server'):
            if key not in services:
                raise FormatError('line %d: real server of unknown service %s' % (number, key))
            servers[key].append(_server_of(options, number))
        else:
            raise FormatError('line %d: unexpected command %r' % (number, command))
    return dict((key, svc.replace(real_servers=tuple(servers[key]))) for key, svc in services.items())


def render_service(service, command='-A'):
    return ' '.join([command] + service_option(service.key) + service_words(service))


def render_server(service, server, command='-a', thresholds=True):
    return ' '.join([command] + service_option(service.key) + server_words(server, thresholds=thresholds))


def render(table):
    """A table in `ipvsadm -S -n` format, canonical order; thresholds (which -S never
    prints) appear as -x/-y only when set."""
    lines = []
    for key in sorted(table):
        service = table[key]
        lines.append(render_service(service))
        for server in service.real_servers:
            line = render_server(service, server, thresholds=False)
            if server.upper_threshold or server.lower_threshold:
                line += ' -x %d -y %d' % (server.upper_threshold, server.lower_threshold)
            lines.append(line)
    return ''.join(line + '\n' for line in lines)


# ---------------------------------------------------------------------------
# ipvsadm -R

_RESTORE_COMMAND = {
    model.ADD_SERVICE: '-A',
    model.EDIT_SERVICE: '-E',
    model.ADD_SERVER: '-a',
    model.EDIT_SERVER: '-e',
    model.DELETE_SERVER: '-d',
    model.DELETE_SERVICE: '-D',
}


def restore_line(action):
    """One `ipvsadm -R` line for an action; add/edit lines are complete entries."""
    command = _RESTORE_COMMAND[action.op]
    service = action.service
    if action.op in (model.ADD_SERVICE, model.EDIT_SERVICE):
        return render_service(service, command)
    if action.op == model.DELETE_SERVICE:
        return ' '.join([command] + service_option(service.key))
    if action.op == model.DELETE_SERVER:
        return ' '.join([command] + service_option(service.key) + ['-r', action.server.endpoint])
    return render_server(service, action.server, command)


def restore_script(actions):
    """The text for one `ipvsadm -R`, one line per action, in the given order."""
    return ''.join(restore_line(action) + '\n' for action in actions)


# ---------------------------------------------------------------------------
# ipvsadm -L -n [--thresholds|--stats|--rate|--persistent-conn|--exact]


def _listing_key(words, number):
    protocol = LISTING_PROTOCOL.get(words[0])
    if protocol is None or len(words) < 2:
        raise FormatError('line %d: not a service line' % number)
    if protocol == model.FWMARK:
        family = 6 if len(words) > 2 and words[2] == 'IPv6' else 4
        return model.ServiceKey.mark(int(words[1]), family)
    address, port = split_host_port(words[1])
    return model.ServiceKey(protocol, address, port, family=_canonical(address)[1])


def _value(word):
    return int(word) if word.isdigit() else word


def parse_listing(text):
    """Read `ipvsadm -L -n` in any of its column layouts.

    Returns dict ServiceKey -> dict (address, port) -> dict column -> value, with the
    column names of the header ('Forward', 'Weight', 'ActiveConn', 'Uthreshold',
    'InActConn', 'Conns', ...); numbers become ints, the rest stays text
    (e.g. '12K' without --exact).
    """
    listing, columns, key = {}, [], None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0] == 'IP':
            continue
        # Server columns head the '-> RemoteAddress:Port' line (plain -L) or, when that
        # line is bare, the 'Prot LocalAddress:Port' line (--thresholds, --stats).
        if words[0] == 'Prot':
            columns = words[2:]
            continue
        if words[0] == '->':
            if words[1] == 'RemoteAddress:Port':
                columns = words[2:] or columns
                continue
            if key is None:
                raise FormatError('line %d: real server before any service' % number)
            address, port = split_host_port(words[1])
            listing[key][(address, port)] = dict(zip(columns, [_value(w) for w in words[2:]]))
        else:
            key = _listing_key(words, number)
            listing[key] = {}
    return listing


def with_listing(table, listing):
    """The table with thresholds and connection counters taken from parse_listing()
    output; columns a listing lacks keep their current values."""
    result = {}
    for key, service in table.items():
        rows = listing.get(key, {})
        servers, connections = [], dict(service.connections)
        for server in service.real_servers:
            row = rows.get(server.key, {})
            upper, lower = row.get('Uthreshold', server.upper_threshold), row.get('Lthreshold', server.lower_threshold)
            if upper != server.upper_threshold or lower != server.lower_threshold:
                server = server._replace(upper_threshold=upper, lower_threshold=lower)
            servers.append(server)
            old = service.connections_of(server.key)
            connections[server.key] = (row.get('ActiveConn', old[0]), row.get('InActConn', old[1]))
        result[key] = service.replace(real_servers=tuple(servers), connections=connections)
    return result
