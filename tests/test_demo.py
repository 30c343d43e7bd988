# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's sample cluster (demo/cluster.yaml, what `make demo` serves) as
k8s_service_proxy reads it: the table it would program on the demo's node, with the
module's unit-test doubles (an in-memory kernel table and node). A repository test: it
holds the demo and the module to each other."""

import os

from ansible_collections.netlb.ipvs.tests.unit.plugins.conftest import run_lock  # noqa: F401 (autouse)
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FOREIGN
from ansible_collections.netlb.ipvs.tests.unit.plugins.modules.test_k8s_service_proxy import (  # noqa: F401 (fixture)
    call, node,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLUSTER = os.path.join(REPO, 'demo', 'cluster.yaml')


def test_manifests_apply_false_returns_the_table_ipvs_virtual_server_takes(node, capsys):
    result = call(node, dict(source='manifests', path=DEMO_CLUSTER, node_name='node1', apply=False,
                             external_ips_allowed_cidrs=['192.0.2.50/32']), capsys)
    assert result['changed'] is False and node.table == table(FOREIGN)
    services = dict(('%s %s:%d' % (s['protocol'], s['address'], s['port']), s) for s in result['services'])
    assert sorted(services) == sorted([
        'tcp 10.96.0.20:80', 'tcp 10.96.0.20:9090', 'tcp 10.96.0.21:80', 'tcp 192.168.10.11:30080',
        'tcp 10.96.0.22:80', 'tcp 192.168.10.11:30081', 'tcp 192.0.2.100:80', 'tcp 10.96.0.23:80',
        'tcp 192.0.2.50:80', 'udp 10.96.0.10:53', 'tcp 10.96.0.10:53', 'tcp 10.96.0.10:9153', 'tcp 10.96.0.24:80'])
    # externalTrafficPolicy Local: this node's pod only on the LB IP and NodePort; all on the cluster IP.
    assert [rs['address'] for rs in services['tcp 192.0.2.100:80']['real_servers']] == ['10.244.1.11']
    assert [rs['address'] for rs in services['tcp 10.96.0.22:80']['real_servers']] == ['10.244.1.11', '10.244.2.13']
    assert services['tcp 10.96.0.23:80']['persistence_timeout'] == 600
    assert services['udp 10.96.0.10:53']['scheduler'] == 'lc'
    assert sorted(result['skipped_services']) == ['external_name', 'headless', 'service_proxy_name']
    assert 'skipped' not in result

