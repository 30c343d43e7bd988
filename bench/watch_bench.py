#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""netlb-ipvs watch: how long an EndpointSlice change takes to reach the table, and
whether the watcher's memory stays flat.

Run from the repository root (.venv/bin/python bench/watch_bench.py --help). In this
process, no lab node: the stand-in API server (tests/kube_api) serves a generated cluster
(--services x --endpoints, ClusterIP, as k8s_proxy_bench.py's clusterip shape) over HTTPS;
the watcher (_watch/loop.py, the real list+watch client of _k8s/sources/watch.py) follows
it and syncs through proxy.sync onto the unit tests' in-memory kernel and node doubles
(tests/unit: FakeBackend, FakeHost), behind the watcher's own RememberedTable and with
its SyncMemo (forgotten at the full sync, as NodeSync does). So the
figures are the watcher's own cost - the API's event, the store, translation, plan,
guard - without the node's commands (nft, ip) and the kernel's writes, which a
one-endpoint change makes few of. Then --changes changes, each one endpoint of one
Service replaced, --gap seconds apart; each change's latency is from the API's write to
the in-memory kernel holding the new real server. Prints p50 / p95 / max, the goal
(min_sync + 0.5 s at p95), one sync's wall and CPU time (of the syncing thread: what the
code costs, whatever else runs on the host), the resident memory after the first sync
and at the end, and the host's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests'), os.path.join(REPO, 'collections')]

from kube_api import objects  # noqa: E402
from kube_api.server import KubeApiServer  # noqa: E402

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api as api_source  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import ApiSource  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import MemoryStateStore  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.loop import Watcher  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.table import RememberedTable  # noqa: E402
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend  # noqa: E402
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import (  # noqa: E402
    OPTIONS,
    FakeHost,
)

NODE = 'node-a'


def rss_mib():
    with open('/proc/self/status') as handle:
        for line in handle:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Kernel(FakeBackend):
    """The in-memory kernel; wakes whoever waits for an address to appear."""

    def __init__(self):
        super(Kernel, self).__init__()
        self.arrived = threading.Condition()
        self.addresses = set()

    def _apply(self, actions):
        super(Kernel, self)._apply(actions)
        with self.arrived:
            for action in actions:
                if action.server is not None and action.op == model.ADD_SERVER:
                    self.addresses.add(action.server.key[0])
            self.arrived.notify_all()

    def wait_for(self, address, timeout):
        with self.arrived:
            return self.arrived.wait_for(lambda: address in self.addresses, timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--services', type=int, default=5000)
    parser.add_argument('--endpoints', type=int, default=10)
    parser.add_argument('--changes', type=int, default=100)
    parser.add_argument('--gap', type=float, default=1.5, help='seconds between changes (default 1.5)')
    parser.add_argument('--min-sync', type=float, default=1.0)
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix='watch-bench-')
    server = KubeApiServer(workdir)
    server.copy_lists = False
    services, slices = objects.cluster(args.services, namespaces=tuple('team-%02d' % i for i in range(40)),
                                       endpoints_per_service=args.endpoints)
    server.add(services, slices)
    kubeconfig = server.write_kubeconfig(os.path.join(workdir, 'kubeconfig'))
    kernel = Kernel()
    table = RememberedTable(kernel)
    host = FakeHost()
    host.check_normalised = False  # as HostNode: the normalised text proxy.sync made is trusted
    state = MemoryStateStore()
    memo = proxy.SyncMemo()  # as NodeSync keeps it: forgotten at every full resync
    syncs = []

    def sync(snapshot, full):
        started, cpu = time.perf_counter(), time.thread_time()
        if full:
            table.forget()
            memo.forget()
        proxy.sync(snapshot, host, table, OPTIONS, state, node_name=NODE, want_diff=False, memo=memo)
        syncs.append((full, time.perf_counter() - started, time.thread_time() - cpu))
        return True

    source = ApiSource(api_source.connection_options_from_params({'kubeconfig': kubeconfig}), request_timeout=60)
    watcher = Watcher(source, sync, min_sync=args.min_sync, interval=3600.0, log=lambda line: print(line, file=sys.stderr))
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    load_start = os.getloadavg()
    begun = time.perf_counter()
    thread.start()
    first = slices[0]['endpoints'][0]['addresses'][0]  # in the table once the first sync is done
    if not kernel.wait_for(first, 600):
        sys.exit('the first sync did not happen within 600 s')
    loaded = time.perf_counter() - begun
    rss_start = rss_mib()
    latencies = []
    for change in range(args.changes):
        time.sleep(args.gap)
        item = slices[(change * 7919) % len(slices)]
        path = '/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/%s' % (
            item['metadata']['namespace'], item['metadata']['name'])
        address = '10.250.%d.%d' % divmod(change, 250)

        def replace(obj, address=address):
            obj['endpoints'][0] = dict(obj['endpoints'][0], addresses=[address])

        started = time.perf_counter()
        server.update(path, replace)
        if not kernel.wait_for(address, 60):
            sys.exit('change %d did not reach the table within 60 s' % change)
        latencies.append(time.perf_counter() - started)
    rss_end = rss_mib()
    load_end = os.getloadavg()
    stop.set()
    server.stop()
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    incremental = [(seconds, cpu) for full, seconds, cpu in syncs if not full]
    print('| what | value |')
    print('|---|---|')
    print('| cluster | %d Services x %d endpoints |' % (args.services, args.endpoints))
    print('| first list + full sync | %.2f s |' % loaded)
    print('| change to table, %d changes %.1f s apart: p50 / p95 / max | %.3f / %.3f / %.3f s |' % (
        len(latencies), args.gap, statistics.median(ordered), p95, ordered[-1]))
    print('| goal: p95 <= min_sync + 0.5 s = %.1f s | %s |' % (
        args.min_sync + 0.5, 'met' if p95 <= args.min_sync + 0.5 else 'NOT met'))
    print('| one sync on a change (median): wall / CPU of the syncing thread | %.3f / %.3f s |' % (
        statistics.median([wall for wall, _cpu in incremental]) if incremental else 0.0,
        statistics.median([cpu for _wall, cpu in incremental]) if incremental else 0.0))
    print('| kernel reads (full: 1 expected) | %d |' % table.reads)
    print('| resident memory after the first sync / after %d changes | %.0f / %.0f MiB |' % (
        len(latencies), rss_start, rss_end))
    print('| watch restarts, objects left out | %s, %d |' % (watcher.counters.restarts or 'none',
                                                           watcher.counters.malformed))
    print('| host load average (1, 5, 15 min) at the start / end | %s / %s |' % (
        ', '.join('%.1f' % value for value in load_start), ', '.join('%.1f' % value for value in load_end)))


if __name__ == '__main__':
    main()
