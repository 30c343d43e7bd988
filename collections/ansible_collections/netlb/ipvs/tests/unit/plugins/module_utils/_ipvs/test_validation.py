# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""User parameters -> model: every problem, with its field path, all at once."""

from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    RealServer,
    Scope,
    ServiceKey,
    VirtualService,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.params import service_to_params
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation import (
    parse_request,
    parse_scope,
    parse_services,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fast import plain_real_servers, plain_service
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_fields import Problems
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation_service import _real_server, parse_service

TCP80 = ServiceKey.tcp_udp('tcp', '10.96.0.10', 80)


def web(**changes):
    """A valid table-form service, with changes (a value of None removes the key)."""
    params = {'protocol': 'tcp', 'address': '10.96.0.10', 'port': 80, 'scheduler': 'rr',
              'real_servers': [{'address': '10.244.1.2', 'port': 8080}]}
    params.update(changes)
    return dict((name, value) for name, value in params.items() if value is not None)


def server(**changes):
    params = {'address': '10.244.1.2', 'port': 8080}
    params.update(changes)
    return dict((name, value) for name, value in params.items() if value is not None)


# Columns: the services list, the problems reported (exactly, in order).
PROBLEM_CASES = [
    pytest.param([web(address='10.96.0.300')], ["services[0].address: '10.96.0.300' is not a valid IP address"],
                 id='bad-vip'),
    pytest.param([web(real_servers=[server(address='nope')])],
                 ["services[0].real_servers[0].address: 'nope' is not a valid IP address"], id='bad-real-server-ip'),
    pytest.param([web(address='0.0.0.0')], ['services[0].address: 0.0.0.0 is the unspecified address'],
                 id='unspecified-vip'),
    pytest.param([web(address='fe80::1%eth0')],
                 ["services[0].address: 'fe80::1%eth0': scoped IPv6 addresses are not supported"], id='scoped-v6'),
    pytest.param([web(real_servers=[server(address='fd00::2')])],
                 ['services[0].real_servers[0].address: fd00::2 is IPv6 but the service is IPv4 (only tunnel forwarding '
                  'crosses families)'], id='mixed-family'),
    pytest.param([web(address='fd00::10', real_servers=[server(address='10.244.1.2')])],
                 ['services[0].real_servers[0].address: 10.244.1.2 is IPv4 but the service is IPv6 (only tunnel forwarding '
                  'crosses families)'],
                 id='mixed-family-v6-service'),
    pytest.param([web(port=65536)], ['services[0].port: 65536 is out of range 1-65535'], id='port-too-big'),
    pytest.param([web(port=-1)], ['services[0].port: -1 is out of range 1-65535'], id='port-negative'),
    pytest.param([web(port=0)], ['services[0].port: 0 (all ports) needs persistence_timeout > 0'],
                 id='port-0-without-persistence'),
    pytest.param([web(real_servers=[server(port=0)])],
                 ['services[0].real_servers[0].port: 0 is out of range 1-65535'], id='server-port-0'),
    pytest.param([web(real_servers=[server(port=70000)])],
                 ['services[0].real_servers[0].port: 70000 is out of range 1-65535'], id='server-port-too-big'),
    pytest.param([web(port='http')], ["services[0].port: 'http' (text) is not an integer"], id='port-not-integer'),
    pytest.param([web(port='80')], ["services[0].port: '80' (text) is not an integer"], id='port-number-as-text'),
    pytest.param([web(port=True)], ['services[0].port: True (a boolean) is not an integer'], id='port-bool'),
    pytest.param([web(real_servers=[server(weight=False)])],
                 ['services[0].real_servers[0].weight: False (a boolean) is not an integer'], id='weight-bool'),
    pytest.param([web(address=['10.96.0.10'])],
                 ["services[0].address: ['10.96.0.10'] (a list) is not an IP address (text)"], id='address-list'),
    pytest.param([web(one_packet='yes')], ["services[0].one_packet: 'yes' (text) is not a boolean (true or false)"],
                 id='one-packet-text'),
    pytest.param([web(persistence_engine='sip')], ['services[0].persistence_engine: sip needs persistence_timeout > 0'],
                 id='engine-without-persistence'),
    pytest.param([web(persistence_timeout=60, persistence_engine='h323')],
                 ["services[0].persistence_engine: 'h323' is not one of sip"], id='unknown-engine'),
    pytest.param([web(real_servers=[server(tunnel_type='gue')])],
                 ['services[0].real_servers[0].tunnel_type: needs forwarding tunnel, not masq'], id='tunnel-type-masq'),
    pytest.param([web(real_servers=[server(port=None, forwarding='tunnel', tunnel_type='gue')])],
                 ['services[0].real_servers[0].tunnel_port: required (1-65535) with tunnel_type gue'],
                 id='gue-without-port'),
    pytest.param([web(real_servers=[server(port=None, forwarding='tunnel', tunnel_port=6080)])],
                 ['services[0].real_servers[0].tunnel_port: 6080 cannot be used with tunnel_type ipip'],
                 id='ipip-with-port'),
    pytest.param([web(real_servers=[server(port=None, forwarding='tunnel', tunnel_type='gre',
                                           tunnel_checksum='remcsum')])],
                 ['services[0].real_servers[0].tunnel_checksum: remcsum cannot be used with tunnel_type gre '
                  '(none, csum)'], id='gre-remcsum'),
    pytest.param([web(real_servers=[server(port=None, forwarding='tunnel', tunnel_type='vxlan', tunnel_port='6080')])],
                 ["services[0].real_servers[0].tunnel_type: 'vxlan' is not one of ipip, gue, gre",
                  "services[0].real_servers[0].tunnel_port: '6080' (text) is not an integer"], id='tunnel-wrong-values'),
    pytest.param([web(port=80.5)], ['services[0].port: 80.5 is not an integer'], id='port-fraction'),
    pytest.param([web(real_servers=[server(weight='heavy', port=[8080])])],
                 ["services[0].real_servers[0].weight: 'heavy' (text) is not an integer",
                  "services[0].real_servers[0].port: [8080] (a list) is not an integer"], id='server-wrong-types'),
    pytest.param([web(real_servers='10.244.1.2')],
                 ["services[0].real_servers: expected a list, got '10.244.1.2' (text)"], id='servers-not-a-list'),
    pytest.param([web(real_servers=['address=10.244.1.2'])],
                 ["services[0].real_servers[0]: expected a dictionary, got 'address=10.244.1.2' (text)"],
                 id='server-not-a-dict'),
    pytest.param([web(scheduler_flags={'sh-port': True})],
                 ["services[0].scheduler_flags: expected a list, got {'sh-port': True} (a dictionary)"], id='flags-not-a-list'),
    pytest.param([web(family=6)], ["services[0].family: 6 is not one of ipv4, ipv6"], id='family-not-text'),
    pytest.param([web(scheduler='round-robin')],
                 ["services[0].scheduler: 'round-robin' is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, "
                  "nq, mh, fo, ovf, twos"], id='unknown-scheduler'),
    pytest.param([web(protocol='icmp')], ["services[0].protocol: 'icmp' is not one of tcp, udp, sctp"],
                 id='unknown-protocol'),
    pytest.param([web(scheduler='rr', scheduler_flags=['sh-port'])],
                 ['services[0].scheduler_flags[0]: sh-port applies only to scheduler sh, not rr'],
                 id='flag-of-another-scheduler'),
    pytest.param([web(scheduler='sh', scheduler_flags=['sh-port', 'mh-fallback'])],
                 ['services[0].scheduler_flags[1]: mh-fallback applies only to scheduler mh, not sh'],
                 id='flag-of-mh-on-sh'),
    pytest.param([web(scheduler_flags=['flag-4'])],
                 ["services[0].scheduler_flags[0]: 'flag-4' is not a scheduler flag (mh-fallback, mh-port, "
                  "sh-fallback, sh-port, flag-1, flag-2, flag-3)"], id='unknown-flag'),
    pytest.param([web(real_servers=[server(weight=70000)])],
                 ['services[0].real_servers[0].weight: 70000 is out of range 0-65535'], id='weight-too-big'),
    pytest.param([web(real_servers=[server(weight=-1)])],
                 ['services[0].real_servers[0].weight: -1 is out of range 0-65535'], id='weight-negative'),
    pytest.param([web(real_servers=[server(upper_threshold=10, lower_threshold=20)])],
                 ['services[0].real_servers[0].lower_threshold: 20 is above upper_threshold 10'],
                 id='lower-above-upper'),
    pytest.param([web(real_servers=[server(lower_threshold=5)])],
                 ['services[0].real_servers[0].lower_threshold: 5 is above upper_threshold 0 '
                  '(0 = no limit, so lower_threshold has no effect)'], id='lower-without-upper'),
    pytest.param([web(real_servers=[server(upper_threshold=2 ** 32)])],
                 ['services[0].real_servers[0].upper_threshold: 4294967296 is out of range 0-4294967295'],
                 id='threshold-too-big'),
    pytest.param([web(real_servers=[server(forwarding='nat')])],
                 ["services[0].real_servers[0].forwarding: 'nat' is not one of masq, route, tunnel"],
                 id='unknown-forwarding'),
    pytest.param([web(real_servers=[server(forwarding='route')])],
                 ['services[0].real_servers[0].port: 8080 differs from the service port 80, but forwarding route '
                  'cannot remap ports (the kernel ignores it); omit port or use 80'], id='route-port-remap'),
    pytest.param([web(real_servers=[server(forwarding='tunnel', port=81)])],
                 ['services[0].real_servers[0].port: 81 differs from the service port 80, but forwarding tunnel '
                  'cannot remap ports (the kernel ignores it); omit port or use 80'], id='tunnel-port-remap'),
    pytest.param([{'fwmark': 10, 'real_servers': [server(forwarding='route', port=80)]}],
                 ['services[0].real_servers[0].port: 80 cannot be used with forwarding route in a fwmark service: '
                  'the packet keeps its destination port; omit port'], id='fwmark-route-port'),
    pytest.param([web(real_servers=[server(), server(weight=3)])],
                 ['services[0].real_servers[1]: duplicate of services[0].real_servers[0] (10.244.1.2:8080)'],
                 id='duplicate-real-server'),
    pytest.param([web(), web(scheduler='wlc')], ['services[1]: duplicate of services[0] (tcp 10.96.0.10:80)'],
                 id='duplicate-service'),
    pytest.param([web(), web(address=' 10.96.0.10 ', port=80.0)],
                 ['services[1]: duplicate of services[0] (tcp 10.96.0.10:80)'], id='duplicate-spelled-differently'),
    pytest.param([web(port=99999), web(port=99999)],
                 ['services[0].port: 99999 is out of range 1-65535', 'services[1].port: 99999 is out of range 1-65535'],
                 id='invalid-copies-each-reported'),
    pytest.param([web(address='fd00::10', real_servers=[]), web(address='fd00:0::10', real_servers=[], weight=1)],
                 ['services[1].weight: unknown option',
                  'services[1]: duplicate of services[0] (tcp [fd00::10]:80)'], id='duplicate-with-other-problem'),
    pytest.param([{'fwmark': 10, 'address': '10.96.0.10', 'port': 80}],
                 ['services[0].fwmark: cannot be combined with address, port'], id='fwmark-with-address-port'),
    pytest.param([{'fwmark': 10, 'protocol': 'udp'}], ['services[0].fwmark: cannot be combined with protocol'],
                 id='fwmark-with-protocol'),
    pytest.param([{'fwmark': 0}], ['services[0].fwmark: 0 is out of range 1-4294967295'], id='fwmark-0'),
    pytest.param([{'fwmark': 10, 'family': 'ipv4', 'real_servers': [server(address='fd00::2')]}],
                 ['services[0].real_servers[0].address: fd00::2 is IPv6 but the service is IPv4 (only tunnel '
                  'forwarding crosses families)'], id='fwmark-family-mismatch'),
    pytest.param([web(family='ipv6')], ['services[0].family: ipv6 does not match address 10.96.0.10'],
                 id='family-contradicts-address'),
    pytest.param([web(persistence_timeout=60, persistence_netmask=33)],
                 ['services[0].persistence_netmask: 33 is out of range 1-32 for IPv4'], id='netmask-v4-range'),
    pytest.param([web(address='fd00::10', real_servers=[], persistence_timeout=60, persistence_netmask=129)],
                 ['services[0].persistence_netmask: 129 is out of range 1-128 for IPv6'], id='netmask-v6-range'),
    pytest.param([web(persistence_netmask=0)],
                 ['services[0].persistence_netmask: 0 is out of range 1-32 for IPv4'], id='netmask-0'),
    pytest.param([web(persistence_timeout=-5)],
                 ['services[0].persistence_timeout: -5 is out of range 0-4294967'], id='timeout-negative'),
    pytest.param([{'protocol': 'tcp', 'real_servers': []}],
                 ['services[0].address: required (or give fwmark)', 'services[0].port: required with address'],
                 id='no-address-no-port'),
    pytest.param([web(real_servers=[{'port': 80}])], ['services[0].real_servers[0].address: required'],
                 id='server-without-address'),
    pytest.param([web(vip='10.0.0.1')], ['services[0].vip: unknown option'], id='unknown-option'),
    pytest.param([web(real_servers=[server(wieght=2)])], ['services[0].real_servers[0].wieght: unknown option'],
                 id='unknown-server-option'),
    pytest.param(['10.96.0.10:80'], ["services[0]: expected a dictionary, got '10.96.0.10:80' (text)"], id='not-a-dict'),
    pytest.param([web(), web(address='10.96.0.11', real_servers=[server(weight=70000), server(address='x')]),
                  web(address='10.96.0.12', scheduler='nope')],
                 ['services[1].real_servers[0].weight: 70000 is out of range 0-65535',
                  "services[1].real_servers[1].address: 'x' is not a valid IP address",
                  "services[2].scheduler: 'nope' is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, "
                  "fo, ovf, twos"], id='all-problems-at-once'),
]


@pytest.mark.parametrize('services, problems', PROBLEM_CASES)
def test_problems_name_their_field(services, problems):
    with pytest.raises(ValidationError) as caught:
        parse_services(services)
    assert caught.value.problems == problems


# Columns: one service's parameters, the VirtualService it becomes.
GOOD_CASES = [
    pytest.param({'address': '10.96.0.10', 'port': 80}, VirtualService(TCP80, 'wlc'), id='defaults'),
    pytest.param(web(), VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 8080),)), id='web'),
    pytest.param(web(real_servers=[{'address': '10.244.1.2'}]),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 80),)),
                 id='server-port-defaults-to-service-port'),
    pytest.param(web(real_servers=[{'address': '10.244.1.2', 'forwarding': 'route'}]),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 80, forwarding='route'),)),
                 id='route-gets-service-port'),
    pytest.param(web(real_servers=[{'address': '10.244.1.2', 'port': 80, 'forwarding': 'tunnel'}]),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 80, forwarding='tunnel'),)),
                 id='tunnel-same-port-is-fine'),
    pytest.param({'address': '10.96.0.10', 'port': 0, 'persistence_timeout': 300,
                  'real_servers': [{'address': '10.244.1.2', 'forwarding': 'route'}]},
                 VirtualService(ServiceKey.tcp_udp('tcp', '10.96.0.10', 0), persistence_timeout=300,
                                real_servers=(RealServer('10.244.1.2', 0, forwarding='route'),)),
                 id='all-ports-persistent'),
    pytest.param({'fwmark': 10, 'real_servers': [{'address': 'fd00::2', 'forwarding': 'route'}]},
                 VirtualService(ServiceKey.mark(10, 6), real_servers=(RealServer('fd00::2', 0, forwarding='route'),)),
                 id='fwmark-family-from-servers'),
    pytest.param({'fwmark': 10, 'family': 'ipv6'}, VirtualService(ServiceKey.mark(10, 6)), id='fwmark-family-named'),
    pytest.param({'fwmark': 10.0, 'real_servers': [{'address': '10.0.0.2', 'port': 8080}]},
                 VirtualService(ServiceKey.mark(10), real_servers=(RealServer('10.0.0.2', 8080),)),
                 id='fwmark-masq-may-map-port'),
    pytest.param({'protocol': 'udp', 'address': '[FD00:0::10]', 'port': 53, 'persistence_timeout': 60,
                  'persistence_netmask': 64},
                 VirtualService(ServiceKey.tcp_udp('udp', 'fd00::10', 53), persistence_timeout=60,
                                persistence_netmask=64), id='ipv6-canonical'),
    pytest.param(web(port=80.0, real_servers=[server(port=8080.0, weight=2.0)]),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 8080, weight=2),)),
                 id='whole-floats-as-json-may-spell-them'),
    pytest.param({'protocol': 'udp', 'address': '10.96.0.10', 'port': 5060, 'persistence_timeout': 60,
                  'persistence_engine': 'sip', 'one_packet': True},
                 VirtualService(ServiceKey.tcp_udp('udp', '10.96.0.10', 5060), persistence_timeout=60,
                                persistence_engine='sip', one_packet=True), id='sip-one-packet'),
    pytest.param(web(real_servers=[{'address': '10.244.1.2', 'forwarding': 'tunnel', 'tunnel_type': 'gue',
                                    'tunnel_port': 6080, 'tunnel_checksum': 'remcsum'},
                                   {'address': '10.244.1.3', 'forwarding': 'tunnel', 'tunnel_type': 'gre',
                                    'tunnel_checksum': 'csum'}]),
                 VirtualService(TCP80, 'rr', real_servers=(
                     RealServer('10.244.1.2', 80, forwarding='tunnel', tunnel_type='gue', tunnel_port=6080,
                                tunnel_checksum='remcsum'),
                     RealServer('10.244.1.3', 80, forwarding='tunnel', tunnel_type='gre', tunnel_checksum='csum'))),
                 id='gue-gre-tunnels'),
    pytest.param({'address': 'fd00::10', 'port': 80, 'real_servers': [{'address': '10.244.1.2', 'forwarding': 'tunnel'}]},
                 VirtualService(ServiceKey.tcp_udp('tcp', 'fd00::10', 80),
                                real_servers=(RealServer('10.244.1.2', 80, forwarding='tunnel'),)),
                 id='ipv4-server-of-ipv6-service-through-a-tunnel'),
    pytest.param(web(scheduler='mh', scheduler_flags='mh-port,mh-fallback'),
                 VirtualService(TCP80, 'mh', scheduler_flags=('mh-fallback', 'mh-port'),
                                real_servers=(RealServer('10.244.1.2', 8080),)), id='flags-as-text'),
    pytest.param(web(scheduler='rr', scheduler_flags=['flag-3', 'flag-1'], real_servers=[]),
                 VirtualService(TCP80, 'rr', scheduler_flags=('flag-1', 'flag-3')), id='flag-bits-of-any-scheduler'),
    pytest.param(web(scheduler='sh', scheduler_flags=['flag-1', 'flag-3'], real_servers=[]),
                 VirtualService(TCP80, 'sh', scheduler_flags=('sh-fallback', 'flag-3')), id='flag-bits-named-as-read'),
    pytest.param(web(real_servers=[server(upper_threshold=10, lower_threshold=10, weight=0)]),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 8080, weight=0, upper_threshold=10,
                                                                      lower_threshold=10),)), id='thresholds'),
    pytest.param(dict(web(), scheduler_flags=None, persistence_timeout=None, persistence_netmask=None, family=None,
                      fwmark=None, protocol=None),
                 VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 8080),)),
                 id='ansible-style-nones'),
]


@pytest.mark.parametrize('params, expected', GOOD_CASES)
def test_valid_service(params, expected):
    (service,) = parse_services([params])
    assert service == expected


@pytest.mark.parametrize('service', [case.values[1] for case in GOOD_CASES])
def test_return_shape_reads_back(service):
    params = service_to_params(service)
    for rs in params['real_servers']:
        del rs['active_connections'], rs['inactive_connections']
    assert parse_services([params]) == [service]


# Columns: scope entries, networks, fwmark ranges.
SCOPE_CASES = [
    pytest.param(['10.96.0.0/12', 'fd00::/108'], ('10.96.0.0/12', 'fd00::/108'), (), id='networks'),
    pytest.param(['192.0.2.10'], ('192.0.2.10/32',), (), id='single-address'),
    pytest.param(['fwmark:10', 'FWMARK:20-30'], (), ((10, 10), (20, 30)), id='fwmarks'),
]


@pytest.mark.parametrize('entries, networks, fwmarks', SCOPE_CASES)
def test_scope(entries, networks, fwmarks):
    assert parse_scope(entries) == Scope(networks=tuple(ipaddress.ip_network(n) for n in networks), fwmarks=fwmarks)


@pytest.mark.parametrize('entries, problems', [
    pytest.param(['10.96.0.1/12'], ["scope[0]: '10.96.0.1/12' is not a network, address or fwmark:N[-M] range: "
                                    "10.96.0.1/12 has host bits set (did you mean 10.96.0.0/12?)"], id='host-bits'),
    pytest.param(['kube'], ["scope[0]: 'kube' is not a network, address or fwmark:N[-M] range: 'kube' does not "
                            "appear to be an IPv4 or IPv6 network"], id='garbage'),
    pytest.param(['fwmark:20-10'], ["scope[0]: 'fwmark:20-10': range is backwards"], id='backwards'),
    pytest.param(['fwmark:0-10', 'fwmark:x'], ['scope[0]: 0 is out of range 1-4294967295',
                                               "scope[1]: 'x' is not an integer"], id='bad-marks'),
])
def test_scope_problems(entries, problems):
    with pytest.raises(ValidationError) as caught:
        parse_scope(entries)
    assert caught.value.problems == problems


def test_request_table_form():
    request = parse_request({'services': [web()], 'scope': ['10.96.0.0/12'], 'exclusive': False,
                             'allow_empty': None, 'state': 'present'})
    assert request.services == tuple(parse_services([web()]))
    assert request.scope == parse_scope(['10.96.0.0/12'])
    assert (request.exclusive, request.allow_empty) == (False, False)


def test_request_table_form_as_json_text_equals_the_list():
    table = [web(), web(address='10.96.0.11', real_servers=[server(weight=3), server(address='10.244.1.3')])]
    as_list = parse_request({'services': table, 'scope': ['10.96.0.0/12']})
    as_text = parse_request({'services': json.dumps(table), 'scope': ['10.96.0.0/12']})
    assert as_text == as_list and len(as_text.services) == 2


@pytest.mark.parametrize('text, problem', [
    pytest.param('', 'services: a string must be the JSON text of a list of services: '
                 'Expecting value: line 1 column 1 (char 0)', id='empty-lookup'),
    pytest.param('[{"address": "10.96.0.1",}]', 'services: a string must be the JSON text of a list of services: '
                 'Expecting property name enclosed in double quotes: line 1 column 26 (char 25)', id='bad-json'),
    pytest.param('{"address": "10.96.0.1"}', 'services: the JSON text must hold a list of services, not dict',
                 id='not-a-list'),
    pytest.param('null', 'services: the JSON text must hold a list of services, not NoneType', id='null'),
    pytest.param('[{"address": "10.96.0.1", "port": 80, "real_servers": [{"address": "10.244.1.2", "weight": -1}]}]',
                 'services[0].real_servers[0].weight: -1 is out of range 0-65535', id='paths-inside-the-text'),
])
def test_request_json_text_problems(text, problem):
    with pytest.raises(ValidationError) as caught:
        parse_request({'services': text, 'scope': ['10.96.0.0/12']})
    assert caught.value.problems == [problem]


def test_request_table_form_without_scope_owns_what_it_lists():
    request = parse_request({'services': [web()]})
    assert request.scope == Scope(keys=frozenset([TCP80]))
    assert request.exclusive is True


def test_request_table_form_absent_deletes_the_listed():
    request = parse_request({'services': [web()], 'scope': ['10.0.0.0/8'], 'state': 'absent'})
    assert request.services == ()
    assert request.scope == Scope(keys=frozenset([TCP80]))


def test_request_service_outside_scope():
    with pytest.raises(ValidationError) as caught:
        parse_request({'services': [web(), web(address='192.0.2.1')], 'scope': ['10.96.0.0/12', 'fwmark:1-5'],
                       'drain_timeout': -1})
    assert caught.value.problems == ['drain_timeout: -1 is out of range 0 or more',
                                     'services[1]: tcp 192.0.2.1:80 is outside scope']


@pytest.mark.parametrize('params, services, state_absent', [
    pytest.param(web(), (VirtualService(TCP80, 'rr', real_servers=(RealServer('10.244.1.2', 8080),)),), False,
                 id='present'),
    pytest.param(dict(web(), state='absent'), (), True, id='absent'),
])
def test_request_single_form(params, services, state_absent):
    request = parse_request(params)
    assert request.services == services
    assert request.scope == Scope(keys=frozenset([TCP80]))
    assert request.allow_empty is True


@pytest.mark.parametrize('params, problems', [
    pytest.param({'state': 'present'},
                 ['address: give services (table form), or address and port, or fwmark (one service)'], id='nothing'),
    pytest.param({'address': '10.0.0.1', 'port': 80, 'real_servers': [server(weight=65536)]},
                 ['real_servers[0].weight: 65536 is out of range 0-65535'], id='single-form-paths'),
    pytest.param({'services': [], 'address': '10.0.0.1'},
                 ['address: cannot be combined with services (give it per service)'], id='both-forms'),
])
def test_request_problems(params, problems):
    with pytest.raises(ValidationError) as caught:
        parse_request(params)
    assert caught.value.problems == problems


FWMARK10 = ServiceKey.mark(10)
V6 = ServiceKey.tcp_udp('tcp', 'fd00::10', 80)

# Columns: the service key, one real server's parameters, whether the fast path takes it.
# Whatever it takes must come out exactly as the field-by-field check makes it; whatever it
# declines goes to that check, which accepts it or reports the problem.
PLAIN_SERVER_CASES = [
    pytest.param(TCP80, server(), True, id='plain'),
    pytest.param(TCP80, {'address': '10.244.1.2'}, True, id='defaults'),
    pytest.param(TCP80, server(weight=0, upper_threshold=10, lower_threshold=10), True, id='all-fields'),
    pytest.param(TCP80, server(port=None, forwarding='route'), True, id='route-service-port'),
    pytest.param(TCP80, server(port=80, forwarding='tunnel'), True, id='tunnel-same-port'),
    pytest.param(FWMARK10, server(port=None), True, id='fwmark-keeps-port'),
    pytest.param(FWMARK10, server(port=0), True, id='fwmark-port-0'),
    pytest.param(TCP80, server(forwarding='route'), False, id='route-remaps'),
    pytest.param(FWMARK10, server(port=80, forwarding='route'), False, id='fwmark-route-port'),
    pytest.param(TCP80, server(port=0), False, id='port-0'),
    pytest.param(TCP80, server(port='8080'), False, id='port-text'),
    pytest.param(TCP80, server(weight=2.0), False, id='weight-float'),
    pytest.param(TCP80, server(weight=True), False, id='weight-bool'),
    pytest.param(TCP80, server(weight=65536), False, id='weight-range'),
    pytest.param(TCP80, server(upper_threshold=2 ** 32), False, id='upper-range'),
    pytest.param(TCP80, server(lower_threshold=1), False, id='lower-above-upper'),
    pytest.param(TCP80, server(forwarding='nat'), False, id='forwarding-unknown'),
    pytest.param(TCP80, server(forwarding=['masq']), False, id='forwarding-list'),
    pytest.param(TCP80, server(address=' 10.244.1.2'), False, id='address-spaces'),
    pytest.param(TCP80, server(address='010.244.1.2'), False, id='address-not-canonical'),
    pytest.param(TCP80, server(address='0.0.0.0'), False, id='address-unspecified'),
    pytest.param(TCP80, server(address='fd00::2'), False, id='address-v6'),
    pytest.param(TCP80, server(address=None), False, id='address-missing'),
    pytest.param(TCP80, server(wieght=2), False, id='unknown-key'),
    pytest.param(TCP80, server(port=80, forwarding='tunnel', tunnel_type='gre'), False, id='tunnel-settings'),
    pytest.param(TCP80, server(tunnel_checksum='none'), False, id='tunnel-setting-at-default'),
    pytest.param(V6, server(address='fd00::2'), False, id='v6-service'),
    pytest.param(None, server(), False, id='service-invalid'),
    pytest.param(TCP80, 'address=10.244.1.2', False, id='not-a-dict'),
]


@pytest.mark.parametrize('key, params, taken', PLAIN_SERVER_CASES)
def test_plain_real_servers_agree_with_the_full_check(key, params, taken):
    problems = Problems()
    checked = _real_server(params, key, 'rs', problems)
    plain = plain_real_servers([params], key)
    assert (plain is not None) is taken
    if taken:
        assert plain == [checked] and problems.items == []


@pytest.mark.parametrize('servers', [
    pytest.param([server(), server(weight=2)], id='duplicate'),
    pytest.param([server(), server(address='10.244.1.3', weight='2')], id='one-not-plain'),
    pytest.param('10.244.1.2', id='not-a-list'),
    pytest.param(None, id='none'),
])
def test_plain_real_servers_leave_lists_to_the_full_check(servers):
    assert plain_real_servers(servers, TCP80) is None


@pytest.mark.parametrize('scope, address, inside', [
    pytest.param(['10.96.0.0/12'], '10.111.255.255', True, id='last-address'),
    pytest.param(['10.96.0.0/12'], '10.112.0.0', False, id='next-network'),
    pytest.param(['fd00::/8', '192.0.2.10'], '192.0.2.10', True, id='single-address'),
    pytest.param(['fd00::/8'], '10.96.0.10', False, id='other-family-only'),
    pytest.param(['10.0.0.0/8'], 'fd00::10', False, id='v6-vip-v4-scope'),
])
def test_request_scope_check_matches_scope(scope, address, inside):
    params = {'services': [web(address=address, real_servers=[])], 'scope': scope}
    key = ServiceKey.tcp_udp('tcp', address, 80)
    assert parse_scope(scope).contains(key) is inside
    if inside:
        assert parse_request(params).services[0].key == key
    else:
        with pytest.raises(ValidationError) as caught:
            parse_request(params)
        assert caught.value.problems == ['services[0]: %s is outside scope' % (key,)]


# Columns: one service entry, whether the fast path takes it. Whatever it takes must come out
# exactly as parse_service makes it; whatever it declines goes to parse_service.
PLAIN_SERVICE_CASES = [
    pytest.param(web(), True, id='plain'),
    pytest.param({'address': '10.96.0.10', 'port': 80}, True, id='defaults'),
    pytest.param(web(protocol='udp', scheduler='sh', scheduler_flags=[], persistence_timeout=0), True,
                 id='explicit-empty-settings'),
    pytest.param(web(real_servers=[]), True, id='no-servers'),
    pytest.param(web(real_servers=[server(address='10.244.1.3'), server()]), True, id='servers-sorted'),
    pytest.param(web(protocol='sctp', port=65535), True, id='sctp-top-port'),
    pytest.param(web(scheduler_flags=['sh-port'], scheduler='sh'), False, id='flags'),
    pytest.param(web(scheduler_flags=0), False, id='flags-not-a-list'),
    pytest.param(web(scheduler_flags=''), False, id='flags-empty-text'),
    pytest.param(web(persistence_timeout=300), False, id='persistence'),
    pytest.param(web(persistence_timeout=False), False, id='persistence-bool'),
    pytest.param(web(persistence_timeout=0.0), False, id='persistence-float'),
    pytest.param(web(persistence_netmask=24), False, id='netmask'),
    pytest.param(web(port=0), False, id='port-0'),
    pytest.param(web(port='80'), False, id='port-text'),
    pytest.param(web(port=True), False, id='port-bool'),
    pytest.param(web(port=70000), False, id='port-range'),
    pytest.param(web(protocol='TCP'), False, id='protocol-case'),
    pytest.param(web(protocol=['tcp']), False, id='protocol-list'),
    pytest.param(web(scheduler='round-robin'), False, id='scheduler-unknown'),
    pytest.param(web(address='fd00::10'), False, id='ipv6'),
    pytest.param(web(address='10.96.0.010'), False, id='address-not-canonical'),
    pytest.param(web(address='0.0.0.0'), False, id='address-unspecified'),
    pytest.param(web(address=None), False, id='address-missing'),
    pytest.param(web(port=None), False, id='port-missing'),
    pytest.param(dict(web(), fwmark=5), False, id='fwmark'),
    pytest.param(dict(web(), family='ipv4'), False, id='family'),
    pytest.param(dict(web(), one_packet=False), False, id='one-packet'),
    pytest.param(dict(web(), persistence_engine=None), False, id='persistence-engine'),
    pytest.param(dict(web(), vip='x'), False, id='unknown-key'),
    pytest.param(web(real_servers=[server(weight='2')]), False, id='server-not-plain'),
    pytest.param(web(real_servers=[server(), server(weight=2)]), False, id='server-duplicate'),
    pytest.param(dict(web(), real_servers=None), False, id='servers-null'),
    pytest.param(['tcp', '10.96.0.10', 80], False, id='not-a-dict'),
]


@pytest.mark.parametrize('params, taken', PLAIN_SERVICE_CASES)
def test_plain_service_agrees_with_the_full_check(params, taken):
    problems = Problems()
    checked = parse_service(params, 'services[0]', problems)
    plain = plain_service(params)
    assert (plain is not None) is taken
    if taken:
        assert plain == checked and problems.items == []
        assert plain.real_servers == checked.real_servers  # equality of the service compares them too


def test_big_tables_take_the_fast_paths(monkeypatch):
    """The benchmark's kind of table never reaches the field-by-field checks."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation, validation_service

    def refuse(*args):
        raise AssertionError('field-by-field check called')
    monkeypatch.setattr(validation, 'parse_service', refuse)
    monkeypatch.setattr(validation_service, '_real_server', refuse)
    table = [web(address='10.96.0.%d' % n, real_servers=[server(address='10.244.%d.%d' % (n, m)) for m in range(4)])
             for n in range(1, 30)]
    request = parse_request({'services': json.dumps(table), 'scope': ['10.96.0.0/12']})
    assert len(request.services) == 29 and all(len(service.real_servers) == 4 for service in request.services)
