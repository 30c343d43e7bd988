# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_service_proxy's options: defaults, and every bad value named by its option."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import options as proxy_options
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ProxyOptions


def test_defaults_are_kube_proxys():
    options, node_name = proxy_options.parse_options({'node_name': ' Node-A ', 'service_cidrs': ['10.96.0.0/12']})
    assert node_name == 'node-a'  # trimmed and lower-cased, as kube-proxy does
    assert options.proxy.scheduler == 'rr'
    assert options.proxy.families == (4, 6)
    assert options.proxy.dummy_interface == 'kube-ipvs0'
    assert options.proxy.node_port_addresses == ()
    assert options.service_cidrs == (ipaddress.ip_network('10.96.0.0/12'),)
    assert options.proxy.service_cidrs == ('10.96.0.0/12',)  # never an external IP
    assert options.proxy.external_ips_allowed_cidrs == ()  # no external IP (DenyServiceExternalIPs)
    assert options.node_port_range == (30000, 32767)
    assert (options.masquerade, options.max_delete_ratio, options.force) == ('external', 0.5, False)
    assert options.proxy.scheduler_flags == ('mh-port',)  # kube-proxy's on its mh services


@pytest.mark.parametrize('flags, expected', [
    pytest.param([], (), id='none'),
    pytest.param(['sh-port', 'mh-fallback', 'sh-port', 'sh-fallback'], ('mh-fallback', 'sh-fallback', 'sh-port'),
                 id='sorted-once-each'),
])
def test_scheduler_flags(flags, expected):
    options, _name = proxy_options.parse_options({'node_name': 'n', 'service_cidrs': ['10.96.0.0/12'],
                                                  'scheduler_flags': flags})
    assert options.proxy.scheduler_flags == expected


def test_node_name_defaults_to_the_host_name(monkeypatch):
    monkeypatch.setattr(proxy_options.socket, 'gethostname', lambda: 'Worker-3\n')
    assert proxy_options.parse_options({'service_cidrs': ['10.96.0.0/12']})[1] == 'worker-3'


def test_values_are_normalised():
    options, _name = proxy_options.parse_options({
        'service_cidrs': ['10.96.0.1/12', 'fd00:10:96::/112'], 'families': ['ipv6', 'ipv4', 'ipv6'],
        'node_port_addresses': ['192.168.10.0/24'], 'node_port_range': ' 30000 - 30100 ',
        'cluster_cidrs': ['10.244.0.0/16'], 'scheduler': 'lc', 'masquerade': 'all', 'node_name': 'n',
        'external_ips_allowed_cidrs': [' 198.51.100.7/24', '2001:db8::1/64']})
    assert options.service_cidrs == (ipaddress.ip_network('10.96.0.0/12'), ipaddress.ip_network('fd00:10:96::/112'))
    assert options.proxy.families == (4, 6)
    assert options.proxy.node_port_addresses == ('192.168.10.0/24',)
    assert options.proxy.service_cidrs == ('10.96.0.0/12', 'fd00:10:96::/112')
    assert options.proxy.external_ips_allowed_cidrs == ('198.51.100.0/24', '2001:db8::/64')
    assert options.node_port_range == (30000, 30100)
    assert options.proxy.scheduler == 'lc' and options.masquerade == 'all'


def test_primary_alone():
    options, _name = proxy_options.parse_options({'node_port_addresses': ['primary'], 'node_name': 'n',
                                                  'service_cidrs': ['10.96.0.0/12']})
    assert options.proxy.node_port_addresses == ('primary',)


BAD = [
    # (option, value, words the problem must contain)
    ('service_cidrs', ['10.96.0.0/33'], "service_cidrs[0]: '10.96.0.0/33' is not a CIDR"),
    ('service_cidrs', [], 'service_cidrs: give'),
    ('cluster_cidrs', ['pods'], "cluster_cidrs[0]: 'pods' is not a CIDR"),
    ('cluster_cidrs', ['fd00:244::%eth0/56'], "cluster_cidrs[0]: 'fd00:244::%eth0/56' is not a CIDR"),
    ('external_ips_allowed_cidrs', ['198.51.100.0/24', 'lb.example.com'],
     "external_ips_allowed_cidrs[1]: 'lb.example.com' is not a CIDR"),
    ('external_ips_allowed_cidrs', ['fd00::%eth0/64'], "external_ips_allowed_cidrs[0]: 'fd00::%eth0/64' is not a CIDR"),
    ('node_port_addresses', ['primary', '10.0.0.0/8'], "node_port_addresses: 'primary' must be the only value"),
    ('node_port_addresses', ['10.0.0.300/8'], 'node_port_addresses[0]:'),
    ('node_port_range', '30000', "node_port_range: '30000' is not FIRST-LAST"),
    ('node_port_range', '32767-30000', 'node_port_range: '),
    ('node_port_range', '0-10', 'node_port_range: '),
    ('scheduler', 'fastest', "scheduler: 'fastest' is not one of"),
    ('families', ['ipv5'], "families[0]: 'ipv5' is not ipv4 or ipv6"),
    ('dummy_interface', 'a-very-long-interface-name', 'dummy_interface:'),
    ('dummy_interface', 'kube/ipvs0', 'dummy_interface:'),
    ('masquerade', 'some', "masquerade: 'some' is not one of"),
    ('max_delete_ratio', 1.5, 'max_delete_ratio: 1.5 is not between 0 and 1'),
    ('drain_timeout', -1, 'drain_timeout: -1 is negative'),
    ('scheduler_flags', ['mh-port', 'flag-1'], "scheduler_flags[1]: 'flag-1' is not one of sh-fallback, sh-port, "
                                               'mh-fallback, mh-port'),
    ('scheduler_flags', 'mh-port', "scheduler_flags: 'mh-port' is not a list"),
]


@pytest.mark.parametrize('option, value, expected', BAD, ids=['%s=%r' % (row[0], row[1]) for row in BAD])
def test_a_bad_value_is_named(option, value, expected):
    params = {'node_name': 'n', 'service_cidrs': ['10.96.0.0/12'], option: value}
    with pytest.raises(ValidationError) as caught:
        proxy_options.parse_options(params)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_at_once():
    with pytest.raises(ValidationError) as caught:
        proxy_options.parse_options({'node_name': 'n', 'service_cidrs': ['x'], 'scheduler': 'y', 'masquerade': 'z'})
    named = [problem.split(':')[0] for problem in caught.value.problems]
    assert named == ['scheduler', 'masquerade', 'service_cidrs[0]']


@pytest.mark.parametrize('name, value, problem', [
    ('request_timeout', -1, 'request_timeout: -1 is out of range (more than 0, at most 3600 seconds)'),
    ('request_timeout', 0, 'request_timeout: 0 is out of range (more than 0, at most 3600 seconds)'),
    ('request_timeout', 'soon', "request_timeout: 'soon' is not a number of seconds"),
    ('page_size', 0, 'page_size: 0 is out of range 1-10000'),
    ('page_size', 50000, 'page_size: 50000 is out of range 1-10000'),
])
def test_request_bounds_are_named_before_any_read(name, value, problem):
    with pytest.raises(ValidationError) as caught:
        proxy_options.parse_options({'service_cidrs': ['10.96.0.0/12'], name: value})
    assert caught.value.problems == [problem]


# The option table's own tests (where each default is written, and nowhere else):
# test_option_table.py.

def test_the_option_records_default_to_the_table():
    # parse_options of the table's defaults is SyncOptions() and ProxyOptions() (but for the
    # service CIDRs, which a sync must be given), and so is parse_options of nothing at all:
    # the records' defaults convert the table's values (families by number) as parse_options does.
    given = dict(proxy_options.DEFAULTS, node_name='n')
    parsed, _name = proxy_options.parse_options(given)
    bare, _name = proxy_options.parse_options({'node_name': 'n', 'service_cidrs': given['service_cidrs']})
    assert parsed == bare
    assert parsed.proxy.dummy_interface == proxy_options.DUMMY_INTERFACE
    assert dataclasses.replace(parsed.proxy, service_cidrs=()) == ProxyOptions()
    assert dataclasses.replace(parsed, proxy=ProxyOptions(), service_cidrs=()) == proxy_options.SyncOptions()
