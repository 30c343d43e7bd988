# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""config_problems(): a rendered KubeProxyConfiguration handed back (the `config` option
of k8s_kube_proxy_configmap) is checked as render() checks its variables, each problem
named by its path in the document."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import config_problems, render
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kube_proxy.test_config import KUBEASZ_NODE


@pytest.mark.parametrize('variables', [
    pytest.param({}, id='defaults'),
    pytest.param(KUBEASZ_NODE, id='kubeasz-node'),
    pytest.param({'kube_proxy_mode': 'iptables', 'kube_proxy_masquerade_bit': 31, 'kube_proxy_sync_period': '45s'},
                 id='iptables'),
    pytest.param({'kube_proxy_mode': 'nftables', 'kube_proxy_nodeport_addresses': ['primary']}, id='nftables'),
    pytest.param({'kube_proxy_exclude_cidrs': ['10.0.0.0/8'], 'kube_proxy_strict_arp': True,
                  'kube_proxy_feature_gates': {'Foo': True}}, id='ipvs-lists'),
])
def test_whatever_render_writes_has_no_problem(variables):
    assert config_problems(render(variables).config) == []


@pytest.mark.parametrize('config, problems', [
    pytest.param(['mode: ipvs'], ["config: ['mode: ipvs'] is not a mapping"], id='not-a-mapping'),
    pytest.param({'apiVersion': 'v1', 'kind': 'KubeProxyConfiguration'},
                 ["config.apiVersion: 'v1' is not kubeproxy.config.k8s.io/v1alpha1"], id='api-version'),
    pytest.param(dict(render({}).config, mode='userspace'),
                 ["config.mode: 'userspace' is not a proxy mode (one of ipvs, iptables, nftables)"], id='mode'),
    pytest.param(dict(render({}).config, ipvs={'excludeCIDRs': ['10.0.0.0/33']}),
                 ["config.ipvs.excludeCIDRs[0]: '10.0.0.0/33' is not a CIDR (address/prefix length, e.g. "
                  "10.0.0.0/8)"], id='list-entry'),
    pytest.param(dict(render({}).config, iptables=[]), ['config.iptables: [] is not a mapping'],
                 id='section-once'),
    pytest.param(dict(render({'kube_proxy_mode': 'iptables'}).config, iptables={'syncPeriod': 'soon'}),
                 ["config.iptables.syncPeriod: 'soon' is not a duration (a number and a unit ns, us, ms, s, m or h, "
                  'e.g. "30s", "1m30s")'],
                 id='section-of-the-mode'),
])
def test_each_problem_is_named_by_its_path(config, problems):
    assert config_problems(config) == problems
