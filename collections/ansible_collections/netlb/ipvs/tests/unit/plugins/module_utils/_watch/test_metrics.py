# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_watch.metrics: the Prometheus text exposition (format 0.0.4), labels, bounds, threads."""

from __future__ import annotations

import collections
import math
import threading

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._watch import metrics


def test_counter_and_gauge_exposition():
    registry = metrics.Registry()
    syncs = registry.counter('netlb_ipvs_watch_syncs_total', 'Reconciles by result.', ('result',))
    services = registry.gauge('netlb_ipvs_watch_virtual_servers', 'Virtual services in the table.')
    syncs.inc(result='ok')
    syncs.inc(2, result='ok')
    syncs.inc(result='failed')
    services.set(12)
    assert registry.render() == (
        '# HELP netlb_ipvs_watch_syncs_total Reconciles by result.\n'
        '# TYPE netlb_ipvs_watch_syncs_total counter\n'
        'netlb_ipvs_watch_syncs_total{result="failed"} 1\n'
        'netlb_ipvs_watch_syncs_total{result="ok"} 3\n'
        '# HELP netlb_ipvs_watch_virtual_servers Virtual services in the table.\n'
        '# TYPE netlb_ipvs_watch_virtual_servers gauge\n'
        'netlb_ipvs_watch_virtual_servers 12\n')
    assert metrics.CONTENT_TYPE == 'text/plain; version=0.0.4; charset=utf-8'


def test_histogram_exposition_is_cumulative_with_sum_and_count():
    registry = metrics.Registry()
    latency = registry.histogram('sync_seconds', 'Sync latency.', buckets=(0.01, 0.1, 1))
    for value in (0.005, 0.01, 0.05, 2.0):  # 0.01 sits on a bound: "le" counts it there
        latency.observe(value)
    assert registry.render() == (
        '# HELP sync_seconds Sync latency.\n'
        '# TYPE sync_seconds histogram\n'
        'sync_seconds_bucket{le="0.01"} 2\n'
        'sync_seconds_bucket{le="0.1"} 3\n'
        'sync_seconds_bucket{le="1.0"} 3\n'
        'sync_seconds_bucket{le="+Inf"} 4\n'
        'sync_seconds_sum 2.065\n'
        'sync_seconds_count 4\n')


def test_histogram_with_labels_and_default_buckets():
    registry = metrics.Registry()
    latency = registry.histogram('sync_seconds', 'Sync latency.', ('kind',))
    latency.observe(0.0005, kind='partial')
    latency.observe(45, kind='full')
    text = registry.render()
    assert 'sync_seconds_bucket{kind="partial",le="0.001"} 1\n' in text
    assert 'sync_seconds_bucket{kind="full",le="30.0"} 0\n' in text
    assert 'sync_seconds_bucket{kind="full",le="60.0"} 1\n' in text
    assert 'sync_seconds_count{kind="full"} 1\n' in text
    # The default buckets span a one-service change to a slow full resync.
    assert metrics.LATENCY_BUCKETS[0] == 0.001 and metrics.LATENCY_BUCKETS[-1] == 60.0
    assert list(metrics.LATENCY_BUCKETS) == sorted(set(metrics.LATENCY_BUCKETS))


def test_label_values_and_help_are_escaped():
    registry = metrics.Registry()
    traffic = registry.counter('bytes_total', 'Bytes "in" \\ out\nof a Service.', ('namespace', 'name'))
    traffic.set(7, namespace='a"b', name='back\\slash\nnewline')
    lines = registry.render().split('\n')
    assert lines[0] == '# HELP bytes_total Bytes "in" \\\\ out\\nof a Service.'
    assert lines[2] == 'bytes_total{namespace="a\\"b",name="back\\\\slash\\nnewline"} 7'


@pytest.mark.parametrize('value, text', [
    (3, '3'), (True, '1'), (0.25, '0.25'), (1e-07, '1e-07'),
    (math.inf, '+Inf'), (-math.inf, '-Inf'), (math.nan, 'NaN'),
])
def test_format_value(value, text):
    assert metrics.format_value(value) == text


def test_forget_drops_a_services_series_in_every_family():
    registry = metrics.Registry()
    conns = registry.counter('conns_total', 'Connections.', ('namespace', 'name', 'port'))
    pkts = registry.counter('packets_total', 'Packets.', ('namespace', 'name', 'port', 'direction'))
    syncs = registry.counter('syncs_total', 'Syncs.', ('result',))
    for port in ('http', 'https'):
        conns.set(1, namespace='shop', name='web', port=port)
        pkts.set(2, namespace='shop', name='web', port=port, direction='in')
    conns.set(5, namespace='shop', name='api', port='http')
    syncs.inc(result='ok')
    assert registry.forget(namespace='shop', name='web') == 4
    assert list(conns.series()) == [('shop', 'api', 'http')]
    assert pkts.series() == {}
    assert syncs.series() == {('ok',): 1}  # a family without those labels is left alone
    with pytest.raises(ValueError, match='at least one label'):
        registry.forget()


def test_retain_keeps_only_the_given_series():
    registry = metrics.Registry()
    gauge = registry.gauge('local_endpoints', 'Local endpoints.', ('namespace', 'name'))
    for name in ('a', 'b', 'c'):
        gauge.set(1, namespace='ns', name=name)
    gauge.retain([('ns', 'b')])
    assert gauge.series() == {('ns', 'b'): 1}
    assert gauge.remove(namespace='ns', name='b') == 1
    assert registry.render() == '# HELP local_endpoints Local endpoints.\n# TYPE local_endpoints gauge\n'


def test_bounded_over_many_services_coming_and_going():
    registry = metrics.Registry()
    conns = registry.counter('conns_total', 'Connections.', ('namespace', 'name'))
    latency = registry.histogram('seconds', 'Latency.', ('namespace', 'name'))
    for index in range(300):
        conns.set(index, namespace='ns', name='svc-%d' % index)
        latency.observe(0.01, namespace='ns', name='svc-%d' % index)
        if index >= 10:
            registry.forget(namespace='ns', name='svc-%d' % (index - 10))
    assert len(conns.series()) == 10 and len(latency.series()) == 10


@pytest.mark.parametrize('make, message', [
    (lambda r: r.counter('bad-name', 'x'), 'metric name'),
    (lambda r: r.counter('ok', 'x', ('__reserved',)), 'label name'),
    (lambda r: r.histogram('ok', 'x', ('le',)), 'label name'),
    (lambda r: r.gauge('ok', 'x', ('a', 'a')), 'repeat'),
    (lambda r: r.histogram('ok', 'x', buckets=(1, 0.5)), 'increasing'),
])
def test_bad_definitions_are_refused_naming_the_metric(make, message):
    with pytest.raises(ValueError, match=message):
        make(metrics.Registry())


def test_wrong_labels_and_negative_counters_are_refused():
    registry = metrics.Registry()
    counter = registry.counter('c_total', 'C.', ('result',))
    with pytest.raises(ValueError, match=r'c_total takes the labels \(result\), got \(reason\)'):
        counter.inc(reason='x')
    with pytest.raises(ValueError, match='cannot go down'):
        counter.inc(-1, result='ok')
    with pytest.raises(ValueError, match='registered already'):
        registry.gauge('c_total', 'again')
    assert counter.value(result='ok') is None


def test_threads_lose_no_increment():
    registry = metrics.Registry()
    counter = registry.counter('c_total', 'C.', ('worker',))
    latency = registry.histogram('h', 'H.')

    def work(worker):
        for _round in range(1000):
            counter.inc(worker=worker % 2)
            latency.observe(0.002)
            if not worker:
                registry.render()  # a reader while the writers write

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.series() == {('0',): 2000, ('1',): 2000}
    assert latency.value()[2] == 4000


Counts = collections.namedtuple('Counts', 'connections packets_in packets_out bytes_in bytes_out')
Port = collections.namedtuple('Port', 'kind protocol address port service')


def test_traffic_of_managed_virtual_services_by_service():
    registry = metrics.Registry()
    traffic = metrics.TrafficMetrics(registry)
    web, node_port, foreign = 'web-key', 'np-key', 'keepalived-key'
    ports = {web: Port('cluster_ip', 'tcp', '10.96.0.10', 80, 'shop/web'),
             node_port: Port('node_port', 'tcp', '192.168.10.11', 30080, 'shop/web')}
    traffic.update({web: Counts(5, 100, 90, 6400, 120000), node_port: Counts(1, 2, 3, 4, 5),
                    foreign: Counts(9, 9, 9, 9, 9)}, ports)
    text = registry.render()
    labels = 'namespace="shop",name="web",kind="cluster_ip",protocol="tcp",address="10.96.0.10",port="80"'
    assert 'netlb_ipvs_service_connections_total{%s} 5\n' % labels in text
    assert 'netlb_ipvs_service_packets_total{%s,direction="in"} 100\n' % labels in text
    assert 'netlb_ipvs_service_bytes_total{%s,direction="out"} 120000\n' % labels in text
    assert '# TYPE netlb_ipvs_service_bytes_total counter\n' in text
    values = [int(line.rsplit(' ', 1)[1]) for line in text.splitlines() if not line.startswith('#')]
    assert 9 not in values  # not a managed virtual service: not exported
    assert len(traffic.connections.series()) == 2 and len(traffic.bytes.series()) == 4
    # The NodePort goes (the Service changed type): its series go, the others stay.
    traffic.update({web: Counts(6, 101, 91, 6500, 120100)}, ports)
    assert list(traffic.connections.series().values()) == [6]
    assert len(traffic.packets.series()) == 2 and len(traffic.bytes.series()) == 2
