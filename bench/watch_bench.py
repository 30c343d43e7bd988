#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""netlb-ipvs watch: how long an EndpointSlice change takes to reach the table, and
whether the watcher's memory stays flat.

Run from the repository root (.venv/bin/python bench/watch_bench.py --help). No lab node:
the stand-in API server (tests/kube_api) runs in a child process and serves a generated
cluster (--services x --endpoints, ClusterIP, as k8s_proxy_bench.py's clusterip shape)
over HTTPS; the watcher (_watch/loop.py, the real list+watch client of
_k8s/sources/watch.py) runs in this process and syncs through proxy.sync onto the unit
tests' in-memory kernel and node doubles (tests/unit: FakeBackend, FakeHost), behind the
watcher's own RememberedTable and with its SyncMemo (forgotten at the full sync, as
NodeSync does). The server has a process of its own so that its threads share no
interpreter lock with the watcher (they would slow a sync down and the figures with it)
and this process's resident memory is the watcher's. So the figures are the watcher's
own cost - the API's event, the store, translation, plan, guard - without the node's
commands (nft, ip) and the kernel's writes, which a one-endpoint change makes few of.

Then --changes changes, each one endpoint of one Service replaced, --gap seconds apart;
each change's latency is from the request to the server to write it to the in-memory
kernel holding the new real server. Prints p50 / p95 / max, the goal (min_sync + 0.5 s at
p95), one sync's wall and CPU time (of the syncing thread: what the code costs, whatever
else runs on the host), the resident memory before the watcher starts, after the first
sync and at the end, beside the size of the cluster's objects: as the API serves them
(JSON), decoded whole in memory (the goal: resident memory under 3x that), and what the
watcher's store keeps of them; and the host's load average. The
in-memory kernel (a copy of the table the real kernel would hold) counts in the resident
memory: the figure overstates the watcher's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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


def deep_size(root):
    """Bytes of root and everything it holds (dicts, lists, tuples, sets, strings,
    numbers), each object counted once: the in-memory size of the watcher's store."""
    seen, todo, total = set(), [root], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
    return total


class Kernel(FakeBackend):
    """The in-memory kernel; wakes whoever waits for an address to appear (and forgets
    it once seen)."""

    def __init__(self):
        super(Kernel, self).__init__()
        self.arrived = threading.Condition()
        self.addresses = set()

    def _apply(self, actions):
        super(Kernel, self)._apply(actions)
        # The unit tests' double keeps every action it applied (and with it each sync's
        # VirtualServices): memory a real kernel does not charge to the watcher.
        self.applied.clear()
        with self.arrived:
            for action in actions:
                if action.server is not None and action.op == model.ADD_SERVER:
                    self.addresses.add(action.server.key[0])
            self.arrived.notify_all()

    def wait_for(self, address, timeout):
        with self.arrived:
            arrived = self.arrived.wait_for(lambda: address in self.addresses, timeout)
            self.addresses.discard(address)
            return arrived


def serve(conn, workdir, count, endpoints):
    """The child process: the stand-in API server with the generated cluster. Sends
    (kubeconfig, the first endpoint's address, the slices' paths, the size of the stored
    objects as JSON and decoded from it, whole, in memory), then applies ('update', path, address) until ('stop',)."""
    server = KubeApiServer(workdir)
    server.copy_lists = False
    services, slices = objects.cluster(count, namespaces=tuple('team-%02d' % i for i in range(40)),
                                       endpoints_per_service=endpoints)
    server.add(services, slices)
    paths = ['/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/%s' % (
        item['metadata']['namespace'], item['metadata']['name']) for item in slices]
    texts = [json.dumps(obj, separators=(',', ':')) for obj in server.objects.values()]
    sizes = (sum(len(text) for text in texts), deep_size([json.loads(text) for text in texts]))
    del texts
    conn.send((server.write_kubeconfig(os.path.join(workdir, 'kubeconfig')),
               slices[0]['endpoints'][0]['addresses'][0], paths, sizes))
    del services, slices
    while True:
        message = conn.recv()
        if message[0] == 'stop':
            break
        _op, path, address = message

        def replace(obj, address=address):
            obj['endpoints'][0] = dict(obj['endpoints'][0], addresses=[address])

        server.update(path, replace)
    server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--services', type=int, default=5000)
    parser.add_argument('--endpoints', type=int, default=10)
    parser.add_argument('--changes', type=int, default=100)
    parser.add_argument('--gap', type=float, default=1.5, help='seconds between changes (default 1.5)')
    parser.add_argument('--min-sync', type=float, default=1.0)
    args = parser.parse_args(argv)

    rss_base = rss_mib()
    workdir = tempfile.mkdtemp(prefix='watch-bench-')
    conn, child_conn = multiprocessing.Pipe()
    child = multiprocessing.Process(target=serve, args=(child_conn, workdir, args.services, args.endpoints),
                                    daemon=True)
    child.start()
    kubeconfig, first, paths, (cluster_bytes, decoded_bytes) = conn.recv()
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
    if not kernel.wait_for(first, 600):
        sys.exit('the first sync did not happen within 600 s')
    loaded = time.perf_counter() - begun
    rss_start = rss_mib()
    latencies, rss_series = [], []
    for change in range(args.changes):
        if change and change % 100 == 0:
            rss_series.append(rss_mib())
        time.sleep(args.gap)
        path = paths[(change * 7919) % len(paths)]
        address = '10.%d.%d.%d' % (250 + change // 62500, change // 250 % 250, change % 250)
        started = time.perf_counter()
        conn.send(('update', path, address))
        if not kernel.wait_for(address, 60):
            sys.exit('change %d did not reach the table within 60 s' % change)
        latencies.append(time.perf_counter() - started)
    rss_end = rss_mib()
    load_end = os.getloadavg()
    stop.set()
    conn.send(('stop',))
    child.join(30)
    held = deep_size(watcher.store.objects) / 1048576.0
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    incremental = [(seconds, cpu) for full, seconds, cpu in syncs if not full]
    print('| what | value |')
    print('|---|---|')
    print('| cluster | %d Services x %d endpoints |' % (args.services, args.endpoints))
    print('| first list + full sync | %.2f s |' % loaded)
    print('| change to table, %d changes %g s apart: p50 / p95 / max | %.3f / %.3f / %.3f s |' % (
        len(latencies), args.gap, statistics.median(ordered), p95, ordered[-1]))
    print('| goal: p95 <= min_sync + 0.5 s = %.1f s | %s |' % (
        args.min_sync + 0.5, 'met' if p95 <= args.min_sync + 0.5 else 'NOT met'))
    print('| one sync on a change (median): wall / CPU of the syncing thread | %.3f / %.3f s |' % (
        statistics.median([wall for wall, _cpu in incremental]) if incremental else 0.0,
        statistics.median([cpu for _wall, cpu in incremental]) if incremental else 0.0))
    print('| kernel reads (full: 1 expected) | %d |' % table.reads)
    print('| the cluster\'s objects as the API serves them (JSON) | %.1f MiB |' % (cluster_bytes / 1048576.0))
    print('| resident memory before the watcher / after the first sync / after %d changes | %.0f / %.0f / %.0f MiB |' % (
        len(latencies), rss_base, rss_start, rss_end))
    decoded = decoded_bytes / 1048576.0
    if rss_series:
        print('| resident memory every 100 changes | %s MiB |' % ', '.join('%.0f' % value for value in rss_series))
    print('| the same objects decoded, whole, in memory (as a client holds them) | %.1f MiB |' % decoded)
    print('| what the watcher keeps of them (its store, slimmed, in memory) | %.1f MiB |' % held)
    print('| goal: resident memory after the changes < 3x the objects decoded (%.0f MiB) | %s (%.1fx; %.1fx the JSON) |' % (
        3 * decoded, 'met' if rss_end < 3 * decoded else 'NOT met', rss_end / decoded,
        rss_end * 1048576.0 / cluster_bytes))
    print('| watch restarts, objects left out | %s, %d |' % (watcher.counters.restarts or 'none',
                                                           watcher.counters.malformed))
    print('| host load average (1, 5, 15 min) at the start / end | %s / %s |' % (
        ', '.join('%.1f' % value for value in load_start), ', '.join('%.1f' % value for value in load_end)))


if __name__ == '__main__':
    main()
