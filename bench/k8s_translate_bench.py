#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long the Kubernetes translator takes against json.loads of the same objects.

Generates a cluster (seeded: the same arguments give the same objects) of Services and
EndpointSlices shaped like a real one - ~10 endpoints per Service in 1-2 slices, 1-2
ports, mostly ClusterIP with some NodePort (a few with externalTrafficPolicy Local), a
few not-ready and terminating pods - writes it as JSON text, then times, median of
--repeat rounds, json.loads of that text and translate() of the loaded objects, one
after the other in each round and under the same garbage-collector setting (--gc: off,
as the module runs the translator, or on for both). Prints a markdown table; the goal is translate <= 3x json.loads in wall time,
judged on the median of the rounds' ratios (min / median / max beside it; CPU time is
shown, not judged), and a peak RSS under 500 MB. Stdlib only; runs on the controller,
no lab needed:

    .venv/bin/python bench/k8s_translate_bench.py --services 10000 --endpoints-per-service 10
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'collections'))

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import (  # noqa: E402
    ClusterSnapshot,
    NodeContext,
    ProxyOptions,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate import translate  # noqa: E402
from _common import spread  # noqa: E402

NODES = 100
ZONES = ('zone-a', 'zone-b', 'zone-c')
NODE_PORTS = range(30000, 32768)  # the API's default NodePort range: at most 2,768 of them


def _ip(first, index):
    """first.x.y.z with x.y.z the 24 low bits of index."""
    return '%d.%d.%d.%d' % (first, (index >> 16) & 255, (index >> 8) & 255, index & 255)


def generate(services, per_service, seed):
    """(Services, EndpointSlices) as the API would list them."""
    rng = random.Random(seed)
    node_ports = iter(NODE_PORTS)
    svc_list, slice_list = [], []
    pod = 0
    for i in range(services):
        namespace = 'team-%02d' % (i % 40)
        name = 'svc-%05d' % i
        two_ports = rng.random() < 0.4
        ports = [{'name': 'http', 'protocol': 'TCP', 'port': 80, 'targetPort': 'http'}]
        if two_ports:
            ports.append({'name': 'metrics', 'protocol': 'TCP', 'port': 9090, 'targetPort': 9090})
        kind = 'ClusterIP'
        if rng.random() < 0.2:
            try:
                for port in ports:
                    port['nodePort'] = next(node_ports)
                kind = 'NodePort'
            except StopIteration:
                for port in ports:
                    port.pop('nodePort', None)
        cluster_ip = _ip(10, 0x600000 + i)  # 10.96.0.0/12 and up
        spec = {
            'type': kind, 'clusterIP': cluster_ip, 'clusterIPs': [cluster_ip], 'ipFamilies': ['IPv4'],
            'ipFamilyPolicy': 'SingleStack', 'ports': ports, 'selector': {'app': name},
            'sessionAffinity': 'None', 'internalTrafficPolicy': 'Cluster',
        }
        if kind == 'NodePort':
            spec['externalTrafficPolicy'] = 'Local' if rng.random() < 0.1 else 'Cluster'
        svc_list.append({
            'apiVersion': 'v1', 'kind': 'Service',
            'metadata': {'name': name, 'namespace': namespace, 'uid': 'uid-svc-%d' % i, 'resourceVersion': str(i),
                         'labels': {'app': name, 'app.kubernetes.io/part-of': namespace},
                         'creationTimestamp': '2026-01-01T00:00:00Z'},
            'spec': spec, 'status': {'loadBalancer': {}},
        })
        slice_ports = [{'name': 'http', 'protocol': 'TCP', 'port': 8080}]
        if two_ports:
            slice_ports.append({'name': 'metrics', 'protocol': 'TCP', 'port': 9090})
        count = per_service
        split = count // 2 if rng.random() < 0.3 else count  # 30% of the Services in two slices
        chunks = [range(0, split), range(split, count)] if split < count else [range(count)]
        for c, chunk in enumerate(chunks):
            endpoints = []
            for _ in chunk:
                pod += 1
                node = rng.randrange(NODES)
                roll = rng.random()
                ready, terminating = (False, True) if roll < 0.03 else ((False, False) if roll < 0.05 else (True, False))
                endpoints.append({
                    'addresses': [_ip(10, 0x800000 + pod)],  # 10.128.0.0/9
                    'conditions': {'ready': ready, 'serving': ready or terminating, 'terminating': terminating},
                    'nodeName': 'node-%d' % node, 'zone': ZONES[node % 3],
                    'targetRef': {'kind': 'Pod', 'namespace': namespace, 'name': '%s-%d' % (name, pod),
                                  'uid': 'uid-pod-%d' % pod},
                })
            slice_list.append({
                'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice',
                'metadata': {'name': '%s-%d' % (name, c), 'namespace': namespace, 'generateName': name + '-',
                             'labels': {'kubernetes.io/service-name': name,
                                        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'},
                             'uid': 'uid-slice-%d-%d' % (i, c), 'resourceVersion': str(i)},
                'addressType': 'IPv4', 'ports': slice_ports, 'endpoints': endpoints,
            })
    return svc_list, slice_list


@contextlib.contextmanager
def collector(enabled):
    """The cyclic garbage collector on or off for the block, left as found after it (the
    translator itself never touches it: the module's main() decides, and holds it off)."""
    was_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        yield
    finally:
        (gc.enable if was_enabled else gc.disable)()


def timed(func, enabled):
    """(wall seconds, CPU seconds, result) of one call after a full collection, under
    the collector setting. CPU time (this process only) is what a busy host disturbs least."""
    gc.collect()
    with collector(enabled):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = func()
        cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    return wall, cpu, result


def rounds(text, node, options, repeat, enabled):
    """Per round: json.loads of text, then translate() of what it loaded, both under the
    same collector setting. Returns ([(load wall, load CPU, translate wall, translate CPU)],
    the last translation, the last snapshot)."""
    found, result, snapshot = [], None, None
    for _ in range(repeat):
        result = snapshot = None
        load_wall, load_cpu, objects = timed(lambda: json.loads(text), enabled)
        snapshot = ClusterSnapshot(services=objects['services'], endpoint_slices=objects['endpointSlices'],
                                   origin='bench')
        del objects
        translate_wall, translate_cpu, result = timed(lambda: translate(snapshot, node, options), enabled)
        found.append((load_wall, load_cpu, translate_wall, translate_cpu))
    return found, result, snapshot


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--services', type=int, default=10000)
    parser.add_argument('--endpoints-per-service', type=int, default=10)
    parser.add_argument('--repeat', type=int, default=5, help='rounds; the median is reported (default 5)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--gc', choices=('off', 'on'), default='off',
                        help='the garbage collector for both json.loads and translate: off (default, as the '
                             'module runs the translator) or on')
    parser.add_argument('--no-tracemalloc', action='store_true', help='skip the (slow) traced translate run')
    args = parser.parse_args()

    services, slices = generate(args.services, args.endpoints_per_service, args.seed)
    text = json.dumps({'services': services, 'endpointSlices': slices})
    endpoints = sum(len(s['endpoints']) for s in slices)
    del services, slices
    gc.collect()

    node = NodeContext(name='node-7', zone='zone-b',
                       addresses=(('eth0', '192.168.10.17/24'), ('eth1', '10.0.0.17/24'), ('lo', '127.0.0.1/8'),
                                  ('eth0', 'fe80::5054:ff:fe00:17/64')),
                       primary=('192.168.10.17',))
    options = ProxyOptions()

    found, result, snapshot = rounds(text, node, options, args.repeat, args.gc == 'on')
    load_time, load_cpu, translate_time, translate_cpu = (statistics.median(column) for column in zip(*found))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    virtual = len(result.services)
    servers = sum(len(vs.real_servers) for vs in result.services)
    warnings = len(result.warnings)
    traced = '-'
    if not args.no_tracemalloc:
        result = None
        gc.collect()
        tracemalloc.start()
        translate(snapshot, node, options)
        traced = '%.0f' % (tracemalloc.get_traced_memory()[1] / 1048576.0)
        tracemalloc.stop()

    ratios = [translate_wall / load_wall for load_wall, _, translate_wall, _ in found]
    ratios_cpu = [translate_cpu / load_cpu for _, load_cpu, _, translate_cpu in found]
    ratio = statistics.median(ratios)
    print('| services | endpoints | JSON text MB | collector | json.loads s | translate s '
          '| translate / json.loads, wall, per round (goal <= 3x) | the same in CPU time (shown, not judged) '
          '| virtual services | real servers | warnings | peak RSS MB (goal < 500) | translate alone, traced peak MB |')
    print('|---:|---:|---:|---|---:|---:|---|---|---:|---:|---:|---:|---:|')
    print('| {:,} | {:,} | {:.0f} | {} for both | {:.3f} (CPU {:.3f}) | {:.3f} (CPU {:.3f}) | {:.2f}x {} ({}) '
          '| {:.2f}x ({}) | {:,} | {:,} | {} | {:.0f} {} | {} |'.format(
              args.services, endpoints, len(text) / 1048576.0, args.gc, load_time, load_cpu, translate_time,
              translate_cpu, ratio, 'met' if ratio <= 3 else '**NOT met**', spread(ratios),
              statistics.median(ratios_cpu), spread(ratios_cpu), virtual, servers, warnings,
              rss, 'met' if rss < 500 else '**NOT met**', traced))
    print()
    print('medians of %d rounds; Python %s on %s, %d CPUs; load average %s; %s' % (
        args.repeat, platform.python_version(), platform.machine(), os.cpu_count(),
        ' / '.join('%.2f' % x for x in os.getloadavg()), time.strftime('%Y-%m-%d', time.gmtime())))


if __name__ == '__main__':
    main()
