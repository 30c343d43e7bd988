# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kube_proxy_* variables -> KubeProxyConfiguration: the golden kubeasz node, where each
mode's settings go, and one case per validation rule (each problem names its variable)."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import config as kp
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import ConfigError, render, to_yaml

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')

# A kubeasz-style binary node (see fixtures/README.md).
KUBEASZ_NODE = {
    'kube_proxy_mode': 'ipvs',
    'kube_proxy_cluster_cidr': '172.20.0.0/16',
    'kube_proxy_hostname_override': 'k8s-node-1',
    'kube_proxy_sync_period': '30s',
    'kube_proxy_strict_arp': False,
    'kube_proxy_conntrack_max_per_core': 32768,
    'kube_proxy_conntrack_min': 131072,
    'kube_proxy_client_kubeconfig': '/etc/kubernetes/kube-proxy.kubeconfig',
    'kube_proxy_metrics_bind_address': '0.0.0.0:10249',
}


def test_the_kubeasz_node_renders_as_the_golden_file():
    text = to_yaml(render(KUBEASZ_NODE).config)
    path = os.path.join(FIXTURES, 'kubeasz-node.yaml')
    if os.environ.get('NETLB_REGOLDEN'):
        with open(path, 'w') as handle:
            handle.write(text)
    with open(path) as handle:
        assert text == handle.read()
    assert yaml.safe_load(text) == render(KUBEASZ_NODE).config


# Columns: mode, the sections written, where syncPeriod / minSyncPeriod / masqueradeAll are.
MODE_CASES = [
    pytest.param('ipvs', {'iptables', 'ipvs'}, ('ipvs', '0s'), 'iptables', id='ipvs'),
    pytest.param('iptables', {'iptables'}, ('iptables', '1s'), 'iptables', id='iptables'),
    pytest.param('nftables', {'nftables'}, ('nftables', '1s'), 'nftables', id='nftables'),
]


@pytest.mark.parametrize('mode, sections, sync, masquerade', MODE_CASES)
def test_each_mode_writes_its_own_section_only(mode, sections, sync, masquerade):
    config = render({'kube_proxy_mode': mode, 'kube_proxy_sync_period': '45s', 'kube_proxy_masquerade_all': True}).config
    assert {key for key in ('iptables', 'ipvs', 'nftables') if key in config} == sections
    section, default_min_sync = sync
    assert (config[section]['syncPeriod'], config[section]['minSyncPeriod']) == ('45s', default_min_sync)
    assert config[masquerade]['masqueradeAll'] is True
    other = [name for name in sections if name != section]
    assert all('syncPeriod' not in config[name] for name in other)


def test_empty_strings_and_dicts_are_left_out_lists_are_written():
    config = render({}).config
    for key in ('hostnameOverride', 'clusterCIDR', 'detectLocalMode', 'detectLocal', 'featureGates', 'logging'):
        assert key not in config
    assert 'kubeconfig' not in config['clientConnection']
    assert (config['nodePortAddresses'], config['ipvs']['excludeCIDRs']) == ([], [])


def test_values_from_templating_and_kubespray_forms_are_taken():
    config = render({
        'kube_proxy_conntrack_min': '1000', 'kube_proxy_strict_arp': 'true', 'kube_proxy_client_qps': '7.5',
        'kube_proxy_cluster_cidr': ['10.244.0.0/16', 'fd00:10:244::/56'], 'kube_proxy_exclude_cidrs': '10.0.0.0/8, 192.0.2.0/24',
        'kube_proxy_feature_gates': ['TopologyAwareHints=true', 'Foo=False'], 'kube_proxy_nodeport_addresses': 'primary',
        'kube_proxy_min_sync_period': None, 'unrelated': object(),
    }).config
    assert config['conntrack']['min'] == 1000 and config['ipvs']['strictARP'] is True
    assert config['clientConnection']['qps'] == 7.5
    assert config['clusterCIDR'] == '10.244.0.0/16,fd00:10:244::/56'
    assert config['ipvs']['excludeCIDRs'] == ['10.0.0.0/8', '192.0.2.0/24']
    assert config['featureGates'] == {'Foo': False, 'TopologyAwareHints': True}
    assert config['nodePortAddresses'] == ['primary']
    assert config['ipvs']['minSyncPeriod'] == '0s'


# Columns: the variables, the problem reported (exactly one, naming its variable).
RULES = [
    pytest.param({'kube_proxy_mode': 'userspace'},
                 "kube_proxy_mode: 'userspace' is not a proxy mode (one of ipvs, iptables, nftables)", id='mode'),
    pytest.param({'kube_proxy_sync_period': '0s'}, 'kube_proxy_sync_period: 0s must be greater than 0', id='sync>0'),
    pytest.param({'kube_proxy_min_sync_period': '-1s'}, 'kube_proxy_min_sync_period: -1s must be >= 0',
                 id='min-sync>=0'),
    pytest.param({'kube_proxy_min_sync_period': '31s'},
                 'kube_proxy_min_sync_period: 31s is longer than kube_proxy_sync_period (30s); kube-proxy needs '
                 '0 <= min sync period <= sync period', id='min-sync<=sync'),
    pytest.param({'kube_proxy_sync_period': '30'},
                 "kube_proxy_sync_period: '30' is not a duration (a number and a unit ns, us, ms, s, m or h, "
                 'e.g. "30s", "1m30s")', id='duration-syntax'),
    pytest.param({'kube_proxy_conntrack_tcp_close_wait_timeout': '1 h'},
                 "kube_proxy_conntrack_tcp_close_wait_timeout: '1 h' is not a duration (a number and a unit ns, us, "
                 'ms, s, m or h, e.g. "30s", "1m30s")', id='duration-syntax-conntrack'),
    pytest.param({'kube_proxy_tcp_fin_timeout': '-5s'}, 'kube_proxy_tcp_fin_timeout: -5s must be >= 0',
                 id='ipvs-timeout>=0'),
    pytest.param({'kube_proxy_config_sync_period': '0'}, 'kube_proxy_config_sync_period: 0 must be greater than 0',
                 id='config-sync>0'),
    pytest.param({'kube_proxy_masquerade_bit': 32}, 'kube_proxy_masquerade_bit: 32 is not a fwmark bit (0-31)',
                 id='masquerade-bit'),
    pytest.param({'kube_proxy_conntrack_max_per_core': -1}, 'kube_proxy_conntrack_max_per_core: -1 must be >= 0',
                 id='conntrack>=0'),
    pytest.param({'kube_proxy_conntrack_min': 'lots'}, "kube_proxy_conntrack_min: 'lots' is not an integer",
                 id='conntrack-int'),
    pytest.param({'kube_proxy_conntrack_udp_timeout': '-1s'}, 'kube_proxy_conntrack_udp_timeout: -1s must be >= 0',
                 id='conntrack-duration>=0'),
    pytest.param({'kube_proxy_oom_score_adj': -1001}, 'kube_proxy_oom_score_adj: -1001 is outside -1000..1000',
                 id='oom-score-adj'),
    pytest.param({'kube_proxy_client_burst': -1}, 'kube_proxy_client_burst: -1 must be >= 0', id='burst>=0'),
    pytest.param({'kube_proxy_bind_address': '0.0.0.0:80'},
                 "kube_proxy_bind_address: '0.0.0.0:80' is not a bare IP address (no port, no brackets)",
                 id='bind-address'),
    pytest.param({'kube_proxy_healthz_bind_address': '0.0.0.0'},
                 "kube_proxy_healthz_bind_address: '0.0.0.0' is not IP:port (an IPv6 address in brackets, "
                 'e.g. [::1]:10249)', id='healthz-ip:port'),
    pytest.param({'kube_proxy_metrics_bind_address': '::1:10249'},
                 "kube_proxy_metrics_bind_address: '::1:10249' is not IP:port (an IPv6 address in brackets, "
                 'e.g. [::1]:10249)', id='metrics-ipv6-brackets'),
    pytest.param({'kube_proxy_metrics_bind_address': 'localhost:10249'},
                 "kube_proxy_metrics_bind_address: 'localhost:10249': 'localhost' is not an IP address",
                 id='metrics-not-ip'),
    pytest.param({'kube_proxy_healthz_bind_address': '[::]:0'},
                 "kube_proxy_healthz_bind_address: '[::]:0': '0' is not a port (1-65535)", id='healthz-port'),
    pytest.param({'kube_proxy_cluster_cidr': '10.0.0.0/16,fd00::/64,10.1.0.0/16'},
                 'kube_proxy_cluster_cidr: 10.0.0.0/16,fd00::/64,10.1.0.0/16 has 3 CIDRs: give one, or an IPv4 and '
                 'an IPv6 one (dual-stack)', id='cluster-cidr-at-most-2'),
    pytest.param({'kube_proxy_cluster_cidr': ['10.0.0.0/16', '10.1.0.0/16']},
                 'kube_proxy_cluster_cidr: 10.0.0.0/16,10.1.0.0/16 are both IPv4: two CIDRs must be one IPv4 and one '
                 'IPv6 (dual-stack)', id='cluster-cidr-one-per-family'),
    pytest.param({'kube_proxy_cluster_cidr': '10.0.0.0'},
                 "kube_proxy_cluster_cidr: '10.0.0.0' is not a CIDR (address/prefix length, e.g. 10.0.0.0/8)",
                 id='cluster-cidr-valid'),
    pytest.param({'kube_proxy_exclude_cidrs': ['10.0.0.0/8', '10.300.0.0/16']},
                 "kube_proxy_exclude_cidrs[1]: '10.300.0.0/16' is not a CIDR (address/prefix length, e.g. "
                 '10.0.0.0/8)', id='exclude-cidrs'),
    pytest.param({'kube_proxy_nodeport_addresses': ['192.0.2.0/24', 'eth0']},
                 "kube_proxy_nodeport_addresses[1]: 'eth0' is not a CIDR (address/prefix length, e.g. 10.0.0.0/8) "
                 "(or the single word 'primary')", id='nodeport-cidrs'),
    pytest.param({'kube_proxy_nodeport_addresses': ['primary', '192.0.2.0/24']},
                 "kube_proxy_nodeport_addresses: 'primary' must be the only entry, not mixed with CIDRs "
                 '(primary, 192.0.2.0/24)', id='nodeport-primary-alone'),
    pytest.param({'kube_proxy_detect_local_mode': 'PodCIDR'},
                 "kube_proxy_detect_local_mode: 'PodCIDR' is not a detectLocalMode (one of ClusterCIDR, NodeCIDR, "
                 'BridgeInterface, InterfaceNamePrefix, or empty for ClusterCIDR)', id='detect-local-mode'),
    pytest.param({'kube_proxy_detect_local_mode': 'BridgeInterface'},
                 'kube_proxy_detect_local_bridge_interface: detectLocalMode BridgeInterface needs the interface in '
                 'kube_proxy_detect_local_bridge_interface', id='detect-local-bridge'),
    pytest.param({'kube_proxy_detect_local_mode': 'InterfaceNamePrefix'},
                 'kube_proxy_detect_local_interface_name_prefix: detectLocalMode InterfaceNamePrefix needs the '
                 'interface in kube_proxy_detect_local_interface_name_prefix', id='detect-local-prefix'),
    pytest.param({'kube_proxy_arp_load_balancer': True},
                 'kube_proxy_strict_arp: must be true in ipvs mode with an ARP-announcing load balancer '
                 '(kube_proxy_arp_load_balancer is true: MetalLB L2, kube-vip ARP): without strict ARP every node '
                 'answers ARP for the addresses on kube-ipvs0', id='strict-arp-with-metallb'),
    pytest.param({'kube_proxy_feature_gates': {'Foo': 'maybe'}},
                 "kube_proxy_feature_gates.Foo: 'maybe' is not a boolean", id='feature-gate-bool'),
    pytest.param({'kube_proxy_logging': 'json'}, "kube_proxy_logging: 'json' is not a dict", id='logging-dict'),
    pytest.param({'kube_proxy_strict_arp': 'perhaps'}, "kube_proxy_strict_arp: 'perhaps' is not a boolean",
                 id='bool'),
]


@pytest.mark.parametrize('variables, problem', RULES)
def test_each_rule_names_its_variable(variables, problem):
    with pytest.raises(ConfigError) as caught:
        render(variables)
    assert caught.value.problems == [problem]
    assert problem.split(':')[0].split('[')[0].split('.')[0] in kp.DEFAULTS


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        render({'kube_proxy_masquerade_bit': 99, 'kube_proxy_oom_score_adj': 5000, 'kube_proxy_sync_period': 'x'})
    assert [line.split(':')[0] for line in caught.value.problems] == [
        'kube_proxy_masquerade_bit', 'kube_proxy_sync_period', 'kube_proxy_oom_score_adj']


# Columns: the variables, whether they pass, the warnings (beyond the IPVS deprecation).
SETTLED = [
    pytest.param({'kube_proxy_arp_load_balancer': True, 'kube_proxy_strict_arp': True}, [], id='metallb-strict-arp'),
    pytest.param({'kube_proxy_arp_load_balancer': True, 'kube_proxy_mode': 'iptables'}, [], id='metallb-iptables'),
    pytest.param({'kube_proxy_min_sync_period': '30s'}, [], id='min-sync-equal-sync'),
    pytest.param({'kube_proxy_metrics_bind_address': '[::1]:10249', 'kube_proxy_bind_address': '::'}, [],
                 id='ipv6-addresses'),
    pytest.param({'kube_proxy_scheduler': 'mh'}, [], id='known-scheduler'),
    pytest.param({'kube_proxy_scheduler': 'wrrr'},
                 ["kube_proxy_scheduler: 'wrrr' is not a scheduler of the Linux IPVS code (rr wrr lc wlc lblc lblcr "
                  'dh sh sed nq mh fo ovf twos); kube-proxy no longer checks the name and the kernel will refuse it'],
                 id='unknown-scheduler-warns'),
    pytest.param({'kube_proxy_sync_period': '1.5m', 'kube_proxy_min_sync_period': '90s'}, [], id='fractions'),
]


@pytest.mark.parametrize('variables, warnings', SETTLED)
def test_accepted_values_and_their_warnings(variables, warnings):
    rendered = render(variables)
    ipvs = rendered.config['mode'] == 'ipvs'
    assert rendered.warnings == warnings + ([kp.IPVS_DEPRECATION] if ipvs else [])


def test_the_ipvs_deprecation_warning_only_in_ipvs_mode():
    assert kp.IPVS_DEPRECATION in render({}).warnings
    assert render({'kube_proxy_mode': 'nftables'}).warnings == []


def test_every_field_has_a_check_and_a_place():
    paths = [field.path for field in kp.FIELDS]
    assert len(set(paths)) == len(paths)
    assert len(kp.FIELD_BY_VARIABLE) == len(kp.FIELDS)
    for mode in kp.MODES:
        render({'kube_proxy_mode': mode})  # every kind has a check (AssertionError otherwise)
