# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_service_proxy end to end on the controller: the real module, the real kubernetes
client against the stand-in API server (kube_api) or a manifest file, an
in-memory kernel table and node. Every failure is fail_json with a clear message and
leaves the table as it was."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from ansible.module_utils.common.parameters import PASS_VARS

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline, state
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api
from ansible_collections.netlb.ipvs.plugins.modules import k8s_service_proxy
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, no_ipvs_error, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FOREIGN, FakeHost


@pytest.fixture
def node(monkeypatch, tmp_path):
    """One kernel table and one node double shared by every module call of a test."""
    backend, host = FakeBackend(table(FOREIGN)), FakeHost()

    def get_backend(name, runner=None, check_mode=False):
        if backend.refuse == 'unreachable':
            raise no_ipvs_error()
        backend.check_mode = check_mode
        return backend

    monkeypatch.setattr(pipeline, 'get_backend', get_backend)
    monkeypatch.setattr(pipeline, 'HostNode', lambda runner: host)
    backend.host = host
    backend.paths = {'state_path': str(tmp_path / 'proxy.json'), 'drain_state_path': str(tmp_path / 'drain.json')}
    return backend


def call(node, args, capsys, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, **node.paths)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            k8s_service_proxy.main()
    return json.loads(capsys.readouterr().out)


def api_args(kube_api, tmp_path, **extra):
    return dict(kubeconfig=kube_api.write_kubeconfig(str(tmp_path / 'kubeconfig')), node_name=objects.NODE,
                service_cidrs=['10.96.0.0/12'], cluster_cidrs=['10.244.0.0/16'], **extra)


@pytest.fixture
def manifest(tmp_path):
    """A manifest file of cluster_objects(): a source that needs no API server."""
    path = tmp_path / 'cluster.yaml'
    path.write_text(yaml.safe_dump_all(cluster_objects()))
    return str(path)


def cluster_objects():
    return [objects.service('web', cluster_ip='10.96.0.20'),
            objects.endpoint_slice('web', [objects.endpoint('10.244.1.11'), objects.endpoint('10.244.1.12')]),
            objects.service('db', cluster_ip='None')]


@pytest.mark.parametrize('client_installed', [True, False], ids=['client', 'no-client'])
def test_api_source_syncs_then_is_idempotent(node, kube_api, capsys, tmp_path, monkeypatch, client_installed):
    # The stand-in's kubeconfig holds a static token: the module's own HTTPS serves it, no client needed.
    monkeypatch.setattr(api, 'HAS_KUBERNETES', client_installed)
    kube_api.add(*cluster_objects())
    args = api_args(kube_api, tmp_path, node_zone='zone-a')
    result = call(node, args, capsys, diff=True)
    assert result['changed'] is True, result
    assert result['summary']['services_seen'] == 2 and result['skipped_services'] == {'headless': ['default/db']}
    # Keys Ansible reads itself: a dict under `skipped` made every run a skipped task (found on the lab VM).
    assert not set(result) & {'skipped', 'failed', 'unreachable', 'ansible_facts'}, sorted(result)
    assert result['summary']['actions'] == {'add_service': 1, 'add_server': 2}
    assert result['addresses'] == {'added': ['10.96.0.20'], 'removed': []}
    assert [entry['before_header'] for entry in result['diff']][0].startswith('ipvsadm -S -n')
    assert 'read_cluster' in result['timings']
    # The watch cache was asked, and the Node was not (node_zone given).
    assert any(req.query.get('resourceVersion') == '0' for req in kube_api.requests_to('/api/v1/services'))
    assert not kube_api.requests_to('/api/v1/nodes/%s' % objects.NODE)
    again = call(node, args, capsys)
    assert again['changed'] is False and again['summary']['actions'] == {}


@pytest.mark.parametrize('fault, params, words', [
    ('status', {'code': 403, 'message': 'services is forbidden'}, '403'),
    ('status', {'code': 500, 'message': 'etcd timeout'}, '500'),
    ('truncate', {}, 'Services'),
    ('empty', {}, 'refusing to delete'),
])
def test_a_failed_or_suspicious_read_changes_nothing(node, kube_api, capsys, tmp_path, fault, params, words):
    kube_api.add(*cluster_objects())
    args = api_args(kube_api, tmp_path, node_zone='zone-a')
    call(node, args, capsys)
    kernel, dummy, rules = dict(node.table), set(node.host.on_dummy), node.host.rules
    kube_api.fault(fault, path='/api/v1/services', **params)
    failed = call(node, args, capsys)
    assert failed.get('failed') is True, failed
    assert words in failed['msg']
    assert (node.table, node.host.on_dummy, node.host.rules) == (kernel, dummy, rules)


def test_unauthorised_is_a_clear_failure(node, kube_api, capsys, tmp_path):
    args = api_args(kube_api, tmp_path)
    args['kubeconfig'] = kube_api.write_kubeconfig(str(tmp_path / 'bad'), token='wrong')
    failed = call(node, args, capsys)
    assert failed['failed'] is True and failed['msg'].startswith('cannot read the cluster, nothing was changed')
    assert '401' in failed['msg']


def test_primary_node_ports_from_the_node_object_and_health_check_ports(node, kube_api, capsys, tmp_path):
    """node_port_addresses primary: the Node object's InternalIP (kube-proxy's node IP), not
    the default route's source (192.168.10.11 on the double), read even with node_zone
    given; the healthCheckNodePort of a
    Local load balancer is returned."""
    lb = objects.service('lb', cluster_ip='10.96.0.30', type='LoadBalancer', external_policy='Local',
                         ports=[objects.service_port(80, node_port=30080)], lb_ingress=[{'ip': '203.0.113.10'}])
    lb['spec']['healthCheckNodePort'] = 32100
    kube_api.add(lb, objects.node_object(addresses=(('ExternalIP', '198.51.100.9'), ('InternalIP', '10.0.0.99'))))
    # node_zone given: the Node is read all the same, for its addresses.
    result = call(node, api_args(kube_api, tmp_path, node_port_addresses=['primary'], node_zone='zone-a'), capsys)
    assert result['changed'] is True, result
    assert sorted(str(key) for key in node.table if str(key).endswith(':30080')) == ['tcp 10.0.0.99:30080']
    assert result['health_check_node_ports'] == {'default/lb': 32100}
    assert kube_api.requests_to('/api/v1/nodes/%s' % objects.NODE)


def test_bad_options_are_named(node, manifest, capsys):
    failed = call(node, dict(source='manifests', path=manifest, service_cidrs=['10.96.0.0/33'],
                             node_port_range='1-2-3'), capsys)
    assert failed['failed'] is True
    assert [problem.split(':')[0] for problem in failed['problems']] == ['service_cidrs[0]', 'node_port_range']


def test_a_missing_manifest_is_a_clear_failure(node, capsys, tmp_path):
    failed = call(node, dict(source='manifests', path=str(tmp_path / 'nope.yaml')), capsys)
    assert failed['failed'] is True and 'nope.yaml' in failed['msg'] and node.table == table(FOREIGN)


def test_no_ipvs_on_the_node_is_a_clear_failure(node, manifest, capsys):
    node.refuse = 'unreachable'
    failed = call(node, dict(source='manifests', path=manifest, node_name=objects.NODE), capsys)
    assert failed['failed'] is True and 'exception' not in failed
    assert failed['msg'] == ('the kernel has no IPVS generic netlink family: the ip_vs module is not loaded '
                             '(modprobe ip_vs) or IPVS is not built in')
    assert node.table == table(FOREIGN)


def test_without_the_kubernetes_client_the_module_names_the_package(node, capsys, monkeypatch):
    """Only a connection that needs the client (here in-cluster configuration) asks for it."""
    monkeypatch.setattr(api, 'HAS_KUBERNETES', False)
    for name in ('KUBECONFIG', 'K8S_AUTH_KUBECONFIG', 'K8S_AUTH_HOST', 'K8S_AUTH_API_KEY', 'K8S_AUTH_CONTEXT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('KUBERNETES_SERVICE_HOST', '10.96.0.1')
    failed = call(node, dict(), capsys)
    assert failed['failed'] is True and 'nothing was changed' in failed['msg']
    assert 'incluster' in failed['msg'] and 'python3-kubernetes' in failed['msg']


def test_endpoints_all_gone_is_refused_then_forced(node, kube_api, capsys, tmp_path):
    """An EndpointSlice answer without endpoints takes every real server away: refused with
    the counts said, the node untouched; force applies it."""
    kube_api.add(*cluster_objects())
    args = api_args(kube_api, tmp_path, node_zone='zone-a')
    call(node, args, capsys)
    kernel = dict(node.table)
    kube_api.add(objects.endpoint_slice('web', []))
    failed = call(node, args, capsys)
    assert failed['failed'] is True and not failed.get('changed')
    assert failed['msg'].startswith('refusing to take 2 of the 2 serving real servers away from the virtual services '
                                    'this node keeps (max_delete_ratio=0.5; tcp 10.96.0.20:80 loses 2)'), failed['msg']
    assert node.table == kernel
    forced = call(node, dict(args, force=True), capsys)
    assert forced['changed'] is True and forced['summary']['real_servers'] == 0


def test_a_held_state_lock_fails_naming_its_holder(node, manifest, capsys, monkeypatch):
    monkeypatch.setattr(state, 'LOCK_WAIT', 0.2)
    kernel = dict(node.table)
    with _run_lock.held('a stuck run', path=node.paths['state_path'] + '.lock'):
        failed = call(node, dict(source='manifests', path=manifest, node_name=objects.NODE), capsys)
    assert failed['failed'] is True and 'Traceback' not in failed['msg']
    assert failed['msg'].startswith('another run holds %s.lock: pid %d, a stuck run, since '
                                    % (node.paths['state_path'], os.getpid())), failed['msg']
    assert node.table == kernel and node.host.rules == ''


@pytest.mark.parametrize('args, problem', [
    ({'return_limit': -1}, 'return_limit: -1 is out of range 0 or more'),
    ({'request_timeout': -1}, 'request_timeout: -1 is out of range (more than 0, at most 3600 seconds)'),
    ({'page_size': 0}, 'page_size: 0 is out of range 1-10000'),
])
def test_bounds_out_of_range_are_named_not_a_traceback(node, manifest, capsys, args, problem):
    failed = call(node, dict(source='manifests', path=manifest, node_name=objects.NODE, **args), capsys)
    assert failed['failed'] is True and failed['msg'] == 'invalid parameters: %s' % problem
    assert node.table == table(FOREIGN)


def test_a_kubeconfig_dict_masks_its_token_not_its_names(node, kube_api, capsys, tmp_path):
    """kubeconfig is no_log; of a dict only the token is masked, not a name the result also
    holds ('default': here the kubeconfig's cluster and context, and the Services' namespace)."""
    kube_api.add(*cluster_objects())
    with open(kube_api.write_kubeconfig(str(tmp_path / 'kubeconfig'), context='default')) as handle:
        kubeconfig = json.load(handle)
    kubeconfig['clusters'][0]['name'] = kubeconfig['contexts'][0]['context']['cluster'] = 'default'
    args = dict(api_args(kube_api, tmp_path, node_zone='zone-a'), kubeconfig=kubeconfig)
    if 'inject_invocation' in PASS_VARS:
        args['_ansible_inject_invocation'] = True
    result = call(node, args, capsys)
    assert result['skipped_services'] == {'headless': ['default/db']}
    assert kube_api.token not in json.dumps(result)
