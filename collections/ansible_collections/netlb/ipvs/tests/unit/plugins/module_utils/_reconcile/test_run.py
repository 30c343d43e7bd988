# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""run.reconcile end to end on one node (fakes.Node: the in-memory kernel table, the
node double, the stand-in API server): converging, staying converged, correcting drift
and counting it, and every refusal (paused, busy, bad config, unreachable cluster,
timeout) leaving the table as it was. FOREIGN, outside every scope, survives it all."""

from __future__ import annotations

import collections
import json
import socket

import pytest

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate, translate_service
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import kernel, run
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import key, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FOREIGN
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import (
    STATIC_SERVICES,
    sample,
)

CLUSTER_IPS = {'web': '10.96.0.20', 'api': '10.96.0.21', 'db': '10.96.0.22'}
ENDPOINTS = {'web': ('10.244.1.11', '10.244.1.12'), 'api': ('10.244.1.21', '10.244.1.22'), 'db': ('10.244.1.31',)}


def cluster():
    """Three ClusterIP Services with their slices."""
    result = []
    for name, address in CLUSTER_IPS.items():
        result += [objects.service(name, cluster_ip=address),
                   objects.endpoint_slice(name, [objects.endpoint(ip) for ip in ENDPOINTS[name]])]
    return result


def cluster_table():
    """What the cluster asks for: 'tcp IP:80' -> its real servers' endpoints."""
    return dict(('tcp %s:80' % CLUSTER_IPS[name], sorted('%s:80' % ip for ip in ENDPOINTS[name]))
                for name in CLUSTER_IPS)


def kernel_table(node, names):
    """The kernel table's services named like cluster_table() (None when absent)."""
    result = {}
    for name in names:
        service = node.backend.table.get(key(name))
        result[name] = None if service is None else sorted(rs.endpoint for rs in service.real_servers)
    return result


def static_counts():
    return (len(STATIC_SERVICES), sum(len(service['real_servers']) for service in STATIC_SERVICES))


def test_static_table_from_empty_then_converged(node):
    node.write_config(static=node.static())
    first = node.reconcile()
    assert first.result == 'ok' and first.errors == [], first
    applied = collections.Counter(action.op for action in node.backend.applied)
    assert applied and first.changes['static'] == dict(applied)
    assert first.tables['static'] == static_counts() and first.drift == ()
    counters = node.status()
    assert counters.runs['ok'] == 1 and counters.changes['static'] == sum(applied.values())
    metrics = node.metrics()
    assert sample(metrics, 'netlb_ipvs_virtual_servers', table='static') == static_counts()[0]
    assert sample(metrics, 'netlb_ipvs_real_servers', table='static') == static_counts()[1]
    assert sample(metrics, 'netlb_ipvs_reconcile_changes_total', part='static') == sum(applied.values())
    assert sample(metrics, 'netlb_ipvs_reconcile_last_run_success') == 1
    converged = node.in_scope()
    assert len(converged) == len(STATIC_SERVICES)

    second = node.reconcile()
    assert second.result == 'ok' and second.changes['static'] == {} and second.drift == ()
    assert len(node.backend.applied) == sum(applied.values())  # nothing more applied
    assert node.in_scope() == converged and node.foreign() == table(FOREIGN)
    assert node.status().runs['ok'] == 2 and node.status().drift_corrections['static'] == 0


def remove_a_real_server(node):
    service_key = key('tcp 198.51.100.10:80')
    service = node.backend.table[service_key]
    node.backend.table[service_key] = service.replace(real_servers=[
        server for server in service.real_servers if server.endpoint != '10.1.0.2:8080'])


def add_a_stray_service(node):
    node.backend.table.update(table('-A -t 198.51.100.99:443 -s rr\n-a -t 198.51.100.99:443 -r 10.1.0.9:443 -m -w 1'))


def clear_the_scope(node):
    for service_key in node.in_scope():
        del node.backend.table[service_key]


@pytest.mark.parametrize('tamper', [
    pytest.param(remove_a_real_server, id='a real server removed by hand'),
    pytest.param(add_a_stray_service, id='a stray service in scope'),
    pytest.param(clear_the_scope, id='the scope cleared (ipvsadm -C of our part)'),
])
def test_drift_is_corrected_and_counted(node, tamper):
    node.write_config(static=node.static())
    assert node.reconcile().result == 'ok'
    converged, applied_before = node.in_scope(), len(node.backend.applied)
    tamper(node)
    assert node.in_scope() != converged
    report = node.reconcile()
    assert report.result == 'ok' and report.drift == ('static',)
    corrections = len(node.backend.applied) - applied_before
    assert corrections > 0 and report.change_count('static') == corrections
    assert node.in_scope() == converged and node.foreign() == table(FOREIGN)
    assert node.status().drift_corrections['static'] == corrections
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_drift_corrections_total', part='static') == corrections
    assert 'drift=static' in run.status.journal_line(report)


def test_a_new_input_is_a_change_not_drift(node):
    node.write_config(static=node.static())
    node.reconcile()
    more = [dict(STATIC_SERVICES[0], real_servers=STATIC_SERVICES[0]['real_servers'] + [
        {'address': '10.1.0.4', 'port': 8080}])] + STATIC_SERVICES[1:]
    node.write_services(more)
    report = node.reconcile()
    assert report.result == 'ok' and report.changes['static'] == {'add_server': 1} and report.drift == ()
    assert node.status().drift_corrections['static'] == 0


def test_paused_reads_nothing_until_resumed(node):
    node.write_config(static=node.static())
    run.pause('kernel upgrade', node.paths.pause)
    assert run.paused(node.paths.pause) == 'kernel upgrade'
    report = node.reconcile()
    assert (report.result, report.paused) == ('paused', 'kernel upgrade')
    assert node.backend.reads == 0 and node.backend.table == table(FOREIGN)
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_paused') == 1
    assert node.status().runs['paused'] == 1
    assert 'reason="kernel upgrade"' in run.status.journal_line(report)

    assert run.resume(node.paths.pause) is True and run.resume(node.paths.pause) is False
    assert run.paused(node.paths.pause) is None
    report = node.reconcile()
    assert report.result == 'ok' and node.backend.reads > 0 and len(node.in_scope()) == len(STATIC_SERVICES)
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_paused') == 0


def test_busy_touches_nothing_but_is_counted(node):
    node.write_config(static=node.static())
    with _run_lock.held('netlb-ipvs pull (systemd)', path=node.paths.lock):
        report = node.reconcile()
    assert report.result == 'busy' and 'netlb-ipvs pull (systemd)' in report.errors[0]
    assert node.backend.reads == 0 and node.backend.table == table(FOREIGN)
    # The status has a lock of its own, so a busy tick is counted beside the holder's run.
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_runs_total', result='busy') == 1
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_runs_total', result='ok') == 0


def test_a_bad_services_file_fails_before_the_kernel_is_read(node):
    node.write_config(static=node.static())
    node.reconcile()
    node.backend.reads = 0
    node.write_services([dict(STATIC_SERVICES[0], port=70000)])
    report = node.reconcile()
    assert report.result == 'failed' and node.backend.reads == 0
    assert len(report.errors) == 1 and report.errors[0].startswith('config: ')
    assert 'static.services[0].port' in report.errors[0]
    counters = node.status()
    assert (counters.runs['ok'], counters.runs['failed'], counters.last_result) == (1, 1, 'failed')
    # The textfile says so too: the config is bad, but where the textfile goes is still known.
    metrics = node.metrics()
    assert sample(metrics, 'netlb_ipvs_reconcile_failures_total') == 1
    assert sample(metrics, 'netlb_ipvs_reconcile_last_run_success') == 0


def test_kubernetes_services_from_the_api(node, kube_api):
    kube_api.add(*cluster())
    node.write_config(kubernetes=node.kubernetes(kube_api))
    report = node.reconcile()
    assert report.result == 'ok' and report.errors == [], report
    assert kernel_table(node, cluster_table()) == cluster_table()
    assert report.tables['kubernetes'] == (len(CLUSTER_IPS), sum(map(len, ENDPOINTS.values())))
    assert report.inputs['kubernetes'] and node.status().inputs == report.inputs
    assert node.foreign() == table(FOREIGN)
    again = node.reconcile()
    assert again.result == 'ok' and again.change_count('kubernetes') == 0 and again.drift == ()
    # A Service deleted from the kernel by hand, the cluster unchanged: drift.
    del node.backend.table[key('tcp 10.96.0.21:80')]
    corrected = node.reconcile()
    assert corrected.drift == ('kubernetes',) and kernel_table(node, cluster_table()) == cluster_table()


def _no_translation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('translated on the short way')
    monkeypatch.setattr(translate, 'translate', refuse)


def converge_and_mark(node, kube_api):
    """Load the cluster (a change), then a whole sync that finds nothing to change (the Mark)."""
    kube_api.add(*cluster())
    node.write_config(kubernetes=node.kubernetes(kube_api))
    assert node.reconcile().change_count('kubernetes') > 0
    marking = node.reconcile()
    assert marking.change_count('kubernetes') == 0 and 'translate' in marking.timings['kubernetes'], marking
    return node.kubernetes(kube_api)['state_path']


def test_a_converged_node_is_checked_without_translating(node, kube_api, monkeypatch):
    converge_and_mark(node, kube_api)
    table_before, rules_before = dict(node.backend.table), node.host.rules
    rule_reads = node.host.rule_reads
    _no_translation(monkeypatch)
    for _tick in range(2):
        short = node.reconcile()
        assert short.result == 'ok' and short.errors == [] and short.change_count('kubernetes') == 0, short
        assert 'converged_check' in short.timings['kubernetes'] and 'translate' not in short.timings['kubernetes']
        assert 'converged_ipvs_read' in short.timings['kubernetes']
        assert short.tables['kubernetes'] == (len(CLUSTER_IPS), sum(map(len, ENDPOINTS.values())))
        assert short.inputs == node.status().inputs and short.drift == ()
    assert node.backend.table == table_before and node.host.rules == rules_before
    # The ruleset's generation did not move: the rules were not listed again.
    assert node.host.rule_reads == rule_reads


def _lists(kube_api):
    """(metadata-only, whole) lists of Services and EndpointSlices the API answered."""
    lists = [request for request in kube_api.requests
             if request.method == 'GET' and request.path.endswith(('/services', '/endpointslices'))]
    metadata = [request for request in lists if 'as=PartialObjectMetadataList' in request.headers.get('accept', '')]
    return len(metadata), len(lists) - len(metadata)


def test_a_converged_node_lists_names_and_versions_not_the_objects(node, kube_api, monkeypatch):
    """The short way reads the cluster as metadata alone; any new resourceVersion there
    (an EndpointSlice changed) takes the whole read and sync, and the run after marks again."""
    converge_and_mark(node, kube_api)
    translator = translate.translate
    _no_translation(monkeypatch)
    del kube_api.requests[:]
    short = node.reconcile()
    assert short.change_count('kubernetes') == 0 and 'read_versions' in short.timings['kubernetes'], short
    assert 'read_cluster' not in short.timings['kubernetes'] and _lists(kube_api) == (2, 0)
    assert short.inputs == node.status().inputs  # the same fingerprint as the whole read's
    monkeypatch.setattr(translate, 'translate', translator)
    change_an_endpoint_slice(node, None, kube_api)
    del kube_api.requests[:]
    whole = node.reconcile()
    assert whole.changes['kubernetes'].get('add_server') == 1 and _lists(kube_api) == (2, 2), whole
    assert 'translate' in node.reconcile().timings['kubernetes']  # it changed something: no Mark
    assert 'translate' not in node.reconcile().timings['kubernetes']


def test_legacy_endpoints_keep_the_whole_read_and_still_the_short_way(node, kube_api, monkeypatch):
    """A selector-less Service's Endpoints are read only by the whole read: its names and
    versions alone cannot give that fingerprint, so the Mark says so and no run tries."""
    kube_api.add(objects.service('ext', cluster_ip='10.96.0.30', selector=None),
                 objects.endpoints('ext', ['10.244.1.41']))
    converge_and_mark(node, kube_api)
    _no_translation(monkeypatch)
    del kube_api.requests[:]
    short = node.reconcile()
    assert short.change_count('kubernetes') == 0 and 'translate' not in short.timings['kubernetes'], short
    assert 'read_versions' not in short.timings['kubernetes'] and _lists(kube_api) == (0, 2)


def test_a_new_generation_or_none_lists_the_rules_and_still_takes_the_short_way(node, kube_api, monkeypatch):
    """Another table's change raises the generation (our rules the same), and a kernel
    that cannot tell it: the rules are listed and compared, and they hold."""
    converge_and_mark(node, kube_api)
    _no_translation(monkeypatch)
    node.host.generation += 5
    for unknown in (False, True):
        if unknown:
            node.host.generation = None
        reads = node.host.rule_reads
        short = node.reconcile()
        assert short.result == 'ok' and short.change_count('kubernetes') == 0, short
        assert 'translate' not in short.timings['kubernetes'] and node.host.rule_reads == reads + 1


def remove_a_cluster_real_server(node, state_path, kube_api):
    service = node.backend.table[key('tcp 10.96.0.21:80')]
    node.backend.table[service.key] = service.replace(real_servers=service.real_servers[1:])


def add_a_stray_cluster_ip_service(node, state_path, kube_api):
    node.backend.table.update(table('-A -t 10.96.0.99:80 -s rr'))


def reweight_a_real_server(node, state_path, kube_api):
    service = node.backend.table[key('tcp 10.96.0.20:80')]
    servers = (service.real_servers[0]._replace(weight=0),) + service.real_servers[1:]
    node.backend.table[service.key] = service.replace(real_servers=servers)


def delete_a_rule(node, state_path, kube_api):
    node.host.rules = node.host.rules.replace('10.96.0.21', '10.96.0.250', 1)


def remove_a_dummy_address(node, state_path, kube_api):
    node.host.on_dummy.discard('10.96.0.22')


def edit_the_state(node, state_path, kube_api):
    with open(state_path) as handle:
        document = json.load(handle)
    document['services'] = document['services'][1:]
    with open(state_path, 'w') as handle:
        json.dump(document, handle)


def change_an_endpoint_slice(node, state_path, kube_api):
    # Stored again: a new resourceVersion, one more endpoint.
    kube_api.add(objects.endpoint_slice('db', [objects.endpoint(ip) for ip in ENDPOINTS['db'] + ('10.244.1.32',)]))


@pytest.mark.parametrize('change, drift', [
    pytest.param(remove_a_cluster_real_server, True, id='a real server removed by hand'),
    pytest.param(add_a_stray_cluster_ip_service, True, id='a stray service in the service CIDR'),
    pytest.param(reweight_a_real_server, True, id='a real server reweighted by hand'),
    pytest.param(delete_a_rule, True, id='a packet rule changed by hand'),
    pytest.param(remove_a_dummy_address, True, id='a dummy address removed by hand'),
    pytest.param(edit_the_state, False, id='the state file changed'),
    pytest.param(change_an_endpoint_slice, False, id='an EndpointSlice changed in the API'),
])
def test_anything_a_mark_does_not_hold_takes_the_whole_sync(node, kube_api, change, drift):
    state_path = converge_and_mark(node, kube_api)
    wanted, rules, on_dummy = dict(node.backend.table), node.host.rules, set(node.host.on_dummy)
    change(node, state_path, kube_api)
    report = node.reconcile()
    assert report.result == 'ok' and report.errors == [], report
    assert 'translate' in report.timings['kubernetes'], 'the short way missed: %s' % report.timings
    if change is change_an_endpoint_slice:
        assert report.changes['kubernetes'].get('add_server') == 1 and report.drift == ()
        return
    if drift:
        assert report.drift == ('kubernetes',) and report.change_count('kubernetes') > 0
    assert node.backend.table == wanted and node.host.rules == rules and node.host.on_dummy == on_dummy
    # Converged again: a sync that changed something leaves no Mark (the next one is whole
    # and marks); one that changed nothing (the state rewritten) marks at once.
    if report.change_count('kubernetes'):
        assert 'translate' in node.reconcile().timings['kubernetes']
    assert 'translate' not in node.reconcile().timings['kubernetes']


def test_a_sync_that_changes_something_leaves_no_mark(node, kube_api, monkeypatch):
    converge_and_mark(node, kube_api)
    remove_a_cluster_real_server(node, None, kube_api)
    assert node.reconcile().drift == ('kubernetes',)
    # The correcting sync dropped the Mark: the next one is whole again, even unchanged.
    assert 'translate' in node.reconcile().timings['kubernetes']


def test_kube_proxy_appearing_on_a_converged_node_is_refused_not_skipped(node, kube_api):
    converge_and_mark(node, kube_api)
    node.host.kube_proxy = 'kube-proxy pid 4242 (mode ipvs)'
    report = node.reconcile()
    assert report.result == 'failed' and 'kube-proxy runs on this node in IPVS mode' in report.errors[0], report


def closed_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def api_500(node, kube_api):
    kube_api.fault('status', path='/api/v1/services', code=500, message='etcd timeout', times=None)


def api_unreachable(node, kube_api):
    path = node.tmp / 'kubeconfig'
    kubeconfig = json.loads(path.read_text())
    kubeconfig['clusters'][0]['cluster']['server'] = 'https://127.0.0.1:%d' % closed_port()
    path.write_text(json.dumps(kubeconfig))


@pytest.mark.parametrize('break_api, words', [
    pytest.param(api_500, '500', id='the API answers 500'),
    pytest.param(api_unreachable, '127.0.0.1', id='the API is unreachable'),
])
def test_a_cluster_that_cannot_be_read_changes_nothing_of_it(node, kube_api, break_api, words):
    kube_api.add(*cluster())
    node.write_config(static=node.static(), kubernetes=node.kubernetes(kube_api, request_timeout=5))
    break_api(node, kube_api)
    report = node.reconcile()
    assert report.result == 'failed'
    assert [error.split(': ', 1)[0] for error in report.errors] == ['kubernetes'], report.errors
    assert report.errors[0].startswith('kubernetes: cannot read the cluster, nothing was changed: ')
    assert words in report.errors[0]
    # Nothing of the cluster's on the node; the static part ran all the same.
    assert kernel_table(node, cluster_table()) == dict.fromkeys(cluster_table())
    assert (node.host.on_dummy, node.host.rules) == (set(), '')
    assert len(node.in_scope()) == len(STATIC_SERVICES) and report.tables['static'] == static_counts()
    assert node.foreign() == table(FOREIGN)
    assert node.status().runs['failed'] == 1


def stop_in_the_kernel_part(node, monkeypatch):
    def ensure(*args, **kwargs):
        raise run.RunTimeout('the run took more than 300 s')
    monkeypatch.setattr(kernel, 'ensure', ensure)


def stop_reading_the_table(node, monkeypatch):
    def read():
        raise run.RunTimeout('the run took more than 300 s')
    monkeypatch.setattr(node.backend, 'read', read)


def stop_translating_a_service(node, monkeypatch):
    """SIGALRM landing while the second Service is read: the translator's guard against
    a malformed Service must not take it for one (that Service would be deleted)."""
    real, calls = translate_service.read_service, []

    def read_service(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise run.RunTimeout('the run took more than 300 s')
        return real(*args, **kwargs)
    monkeypatch.setattr(translate_service, 'read_service', read_service)


@pytest.mark.parametrize('stop', [
    pytest.param(stop_in_the_kernel_part, id='node part'),
    pytest.param(stop_reading_the_table, id='static part'),
    pytest.param(stop_translating_a_service, id='kubernetes part, inside the translator'),
])
def test_a_timeout_inside_a_part_fails_the_run_and_is_recorded(node, kube_api, monkeypatch, stop):
    kube_api.add(*cluster())
    node.write_config(static=node.static(), kubernetes=node.kubernetes(kube_api))
    assert node.reconcile().result == 'ok'
    before = dict(node.backend.table)
    stop(node, monkeypatch)
    report = node.reconcile()
    assert report.result == 'failed'
    assert report.errors == ['timeout: the run took more than 300 s; the next run converges from what the kernel holds']
    assert node.backend.table == before
    counters = node.status()
    assert (counters.runs['ok'], counters.runs['failed'], counters.last_result) == (1, 1, 'failed')
    assert sample(node.metrics(), 'netlb_ipvs_reconcile_failures_total') == 1
    assert _run_lock.holder(node.paths.lock) == ''  # let go


def test_the_lock_is_held_during_the_run(node, monkeypatch):
    seen = []

    def ensure(modules, sysctls, runner, **kwargs):
        seen.append(_run_lock.holder(node.paths.lock))
        return kernel.KernelResult()

    node.write_config()
    monkeypatch.setattr(kernel, 'ensure', ensure)
    report = node.reconcile(what='netlb-ipvs reconcile (test)')
    assert report.result == 'ok' and seen[0].startswith('pid ') and ', netlb-ipvs reconcile (test), ' in seen[0]
    assert _run_lock.holder(node.paths.lock) == ''


def test_a_kernel_error_fails_the_run_and_the_other_parts_still_run(node):
    node.write_config(static=node.static(), node={'modules': ['ip_vs', 'ip_vs_mh'], 'sysctl': {}})
    node.runner.answers['modprobe'] = (1, '', 'modprobe: FATAL: Module ip_vs_mh not found')
    report = node.reconcile()
    assert report.result == 'failed'
    assert report.errors == ['node: kernel modules ip_vs_mh would not load: /usr/sbin/modprobe -a ip_vs_mh failed '
                             '(rc=1): modprobe: FATAL: Module ip_vs_mh not found']
    assert len(node.in_scope()) == len(STATIC_SERVICES)
