# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watch loop against scripted streams (lists, adds, modifies, deletes, bookmarks,
410 Gone, a dropped connection, malformed objects), syncing through the node's real
sync (_watch/node.py: pipeline, run lock, status) onto the in-memory kernel and node
doubles: the table it reaches is the one a fresh sync of the final cluster makes."""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import re
import socket
import threading
import time

import pytest

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.plan import apply_to_table
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy, translate, translate_service
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import Gone, Stream, StreamError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import run
from ansible_collections.netlb.ipvs.plugins.module_utils._watch import loop, node as watch_node
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.store import Store, slim
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.table import RememberedTable
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s import snapshots
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FOREIGN, OPTIONS, FakeHost
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import Node, parse_logfmt

SERVICES, SLICES, NODE = Stream('Service', None), Stream('EndpointSlice', None), Stream('Node', None)
WITHIN = 10.0


def versioned(obj, version):
    obj = copy.deepcopy(obj)
    obj['metadata']['resourceVersion'] = str(version)
    return obj


def web(version=1):
    return versioned(objects.service('web', cluster_ip='10.96.0.20'), version)


def web_slice(addresses, version=1):
    return versioned(objects.endpoint_slice('web', [objects.endpoint(a) for a in addresses], name='web-abc'), version)


def api_service(version=1):
    return versioned(objects.service('api', cluster_ip='10.96.0.30'), version)


def api_slice(version=1):
    return versioned(objects.endpoint_slice('api', [objects.endpoint('10.244.3.31')], name='api-abc'), version)


def event(kind, obj):
    return {'type': kind, 'object': obj}


def bookmark(version):
    return {'type': 'BOOKMARK', 'object': {'kind': 'EndpointSlice', 'metadata': {'resourceVersion': str(version)}}}


class ScriptedSource(object):
    """Streams that play a script: per stream, steps consumed in order by list() and
    watch(): ('list', items, version), ('list', StreamError(...)), ('watch', events) or
    ('watch', events, error) raising error after the events; a callable among the
    events is called (and waited for) in its place. A stream whose script is
    over waits for finish(). calls: (stream, 'list' | 'watch', resourceVersion)."""

    origin = 'scripted'

    def __init__(self, scripts):
        self.scripts = dict((stream, list(steps)) for stream, steps in scripts.items())
        self.calls = []
        self.over = threading.Event()
        self.lock = threading.Lock()

    def streams(self):
        return list(self.scripts)

    def open(self, stream):
        return ScriptedChannel(self, stream)

    def step(self, stream, what, version):
        with self.lock:
            self.calls.append((stream, what, version))
            steps = self.scripts[stream]
            if steps:
                assert steps[0][0] == what, 'the loop called %s, the script has %s next' % (what, steps[0])
                return steps.pop(0)
        self.over.wait()
        return None

    def finish(self):
        self.over.set()

    def exhausted(self):
        with self.lock:
            return not any(self.scripts.values())


class ScriptedChannel(object):
    def __init__(self, source, stream):
        self.source, self.stream = source, stream

    def list(self):
        step = self.source.step(self.stream, 'list', None)
        if step is None:
            raise StreamError('over')
        if isinstance(step[1], Exception):
            raise step[1]
        return step[1], step[2]

    def watch(self, version, timeout):
        step = self.source.step(self.stream, 'watch', version)
        if step is None:
            return
        for item in step[1]:
            if callable(item):  # a pause in the stream until item() returns
                item()
                continue
            yield item
        if len(step) > 2:
            raise step[2]

    def close(self):
        pass


def kubernetes_section(tmp_path):
    return {'node_name': objects.NODE, 'node_zone': objects.ZONE, 'service_cidrs': ['10.96.0.0/12'],
            'cluster_cidrs': ['10.244.0.0/16'], 'state_path': str(tmp_path / 'proxy-state.json'),
            'drain_state_path': str(tmp_path / 'k8s-drain-state.json')}


@pytest.fixture
def node(tmp_path, monkeypatch):
    node = Node(tmp_path, monkeypatch)
    node.write_config(kubernetes=kubernetes_section(tmp_path))
    return node


def watcher_of(node, source, lines, **options):
    sync = watch_node.NodeSync(node_config.load(node.paths.config), node.runner, node.paths, lines.append,
                               backend=node.backend)
    options = dict({'min_sync': 0.02, 'interval': 3600.0, 'backoff_first': 0.01, 'backoff_max': 0.05}, **options)
    return watch_node.Watcher(source, sync, log=lines.append, **options), sync


def wait_for(predicate, within=WITHIN):
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('not reached within %s s' % within)
        time.sleep(0.01)


@contextlib.contextmanager
def running(watcher, source, stop=None):
    """The watcher running in a thread for the block; stopped (and joined) after it."""
    stop = stop or threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        source.finish()
        thread.join(WITHIN)
    assert not thread.is_alive()


def run_until(watcher, source, predicate, within=WITHIN):
    """Run the watcher in a thread until predicate() holds (after the script is over), then stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if source.exhausted() and predicate():
                break
            time.sleep(0.01)
        else:
            raise AssertionError('not reached within %s s' % within)
    finally:
        stop.set()
        source.finish()
        thread.join(WITHIN)
    assert not thread.is_alive()


def expected_table(*cluster, base=FOREIGN):
    """The kernel table a fresh sync of cluster makes on the same node (base: its table before)."""
    backend = FakeBackend(table(base) if base else {})
    snapshot = snapshots.snapshot(list(cluster))
    options = OPTIONS
    proxy.sync(snapshot, FakeHost(), backend, options, _memory_state(), node_name=objects.NODE, zone=objects.ZONE)
    return save_format.render(backend.table)


def _memory_state():
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import MemoryStateStore
    return MemoryStateStore()


def kernel(node):
    return save_format.render(node.backend.table)


def test_a_scripted_stream_reaches_the_table_of_the_final_cluster(node):
    """Adds, modifies, deletes, a bookmark, malformed events, 410 Gone (relist) and a
    dropped connection (resumed from the last version, no relist)."""
    source = ScriptedSource({
        SERVICES: [
            ('list', [web(10)], '100'),
            ('watch', [event('ADDED', api_service(101)), event('DELETED', api_service(103))]),
            ('watch', [bookmark(150)], Gone('too old')),
            ('list', [web(10), api_service(160)], '160'),  # the relist: api is back
            ('watch', [event('ADDED', {'kind': 'Service'}), 'not json {'], StreamError('connection reset')),
            ('watch', []),
        ],
        SLICES: [
            ('list', [web_slice(['10.244.1.11'], 20)], '100'),
            ('watch', [event('MODIFIED', web_slice(['10.244.1.11', '10.244.1.12'], 102)), bookmark(170)],
             StreamError('the connection broke off')),
            ('watch', [event('ADDED', api_slice(171)), event('MODIFIED', web_slice(['10.244.1.12'], 172))]),
        ],
    })
    lines = []
    watcher, _sync = watcher_of(node, source, lines)
    want = expected_table(web(), web_slice(['10.244.1.12']), api_service(), api_slice())
    run_until(watcher, source, lambda: kernel(node) == want)
    assert kernel(node) == want
    watches = [(str(stream), version) for stream, what, version in source.calls if what == 'watch']
    # A bookmark moves the version; a dropped connection resumes from it without a relist.
    assert ('EndpointSlices', '170') in watches
    assert [what for stream, what, _v in source.calls if stream == SLICES].count('list') == 1
    # 410 relists (and the relist's version is watched from).
    assert [what for stream, what, _v in source.calls if stream == SERVICES].count('list') == 2
    assert ('Services', '160') in watches
    assert watcher.counters.malformed == 2 and watcher.counters.relists == 1
    # The last Services watch ends at once without an event: a failure too (backoff, no hot loop).
    assert watcher.counters.restarts == {'gone': 1, 'error': 3}
    assert any('the watch ended as soon as it began' in line for line in lines)
    assert any('left out' in line for line in lines)
    # One journal line per sync, each a timer run's.
    journal = [dict(parse_logfmt(line)) for line in lines if line.startswith('result=')]
    assert len(journal) == watcher.counters.syncs >= 2
    assert all(entry['result'] == 'ok' for entry in journal)


def test_syncs_between_resyncs_plan_against_the_table_in_memory(node):
    source = ScriptedSource({
        SERVICES: [('list', [web(10)], '100'), ('watch', [])],
        SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100'),
                 ('watch', [lambda: wait_for(lambda: node.backend.applied)] + [
                     event('MODIFIED', web_slice(['10.244.1.11', '10.244.1.1%d' % i], 101 + i)) for i in range(2, 6)])],
    })
    watcher, sync = watcher_of(node, source, [])
    want = expected_table(web(), web_slice(['10.244.1.11', '10.244.1.15']))
    run_until(watcher, source, lambda: kernel(node) == want)
    assert watcher.counters.syncs >= 2
    assert node.backend.reads == 1 and sync.table.reads == 1  # the first (full) sync only
    # Kept between syncs: the one Service's piece and the rules rendered (proxy.SyncMemo).
    assert list(sync.memo.translation.entries) == ['default/web'] and sync.memo.rules is not None


def test_syncs_on_a_change_are_not_drift(node):
    """Each sync on a change applies a new input: its journal line names no drift, nor
    does the status count one (the watcher's change syncs take no fingerprint: two in a
    row once compared equal, '' == '', and every one after the first was told as drift)."""
    source = ScriptedSource({
        SERVICES: [('list', [web(10)], '100'), ('watch', [])],
        SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100'),
                 ('watch', [lambda: wait_for(lambda: node.backend.applied)] + [
                     item for i in range(2, 5) for item in (
                         event('MODIFIED', web_slice(['10.244.1.11', '10.244.1.1%d' % i], 101 + i)),
                         lambda i=i: wait_for(lambda: '10.244.1.1%d' % i in kernel(node)))])],
    })
    lines = []
    watcher, _sync = watcher_of(node, source, lines)
    run_until(watcher, source, lambda: kernel(node) == expected_table(web(), web_slice(['10.244.1.11', '10.244.1.14'])))
    changed = [line for line in lines if line.startswith('result=ok') and 'kubernetes=none' not in line]
    assert len(changed) >= 4, lines  # the first (full) sync and one per change
    assert not [line for line in changed if 'drift=' in line], changed
    assert node.status().drift_corrections.get('kubernetes', 0) == 0


def test_the_periodic_resync_reads_the_kernel_again_and_undoes_drift(node):
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    watcher, sync = watcher_of(node, source, [], interval=0.2)
    with running(watcher, source):
        wait_for(lambda: kernel(node) == expected_table(web(), web_slice(['10.244.1.11'])))
        node.backend.table = {}  # `ipvsadm -C` behind the watcher's back
        want = expected_table(web(), web_slice(['10.244.1.11']), base=None)
        wait_for(lambda: kernel(node) == want)
        reads = node.backend.reads
        wait_for(lambda: node.backend.reads > reads)  # one more resync, the node settled
    assert node.backend.reads >= 3
    assert node.host.address_forgets == node.backend.reads  # each resync reads the node's addresses again too
    # A resync keeps the memo's pure caches: the unchanged Service is not translated again.
    assert (sync.memo.translation.made, sync.memo.translation.reused) == (0, 1)
    assert sync.memo.rules is not None


def test_no_sync_before_every_stream_has_listed(node):
    calls = []
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100'), ('watch', [])],
                             SLICES: [('list', StreamError('refused')), ('list', StreamError('refused')),
                                      ('list', [web_slice(['10.244.1.11'], 20)], '100'), ('watch', [])]})
    watcher = loop.Watcher(source, lambda snapshot, full: calls.append(
        (len(snapshot.services), len(snapshot.endpoint_slices), full)) or True,
        min_sync=0.01, backoff_first=0.01, backoff_max=0.02)
    run_until(watcher, source, lambda: calls)
    assert calls[0] == (1, 1, True)


def test_a_failed_sync_is_tried_again_and_the_loop_lives(node):
    calls = []

    def sync(snapshot, full):
        calls.append(full)
        if len(calls) == 1:
            raise RuntimeError('boom')
        return len(calls) > 2  # the second: busy

    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')], SLICES: [('list', [], '100')]})
    lines = []
    watcher = loop.Watcher(source, sync, min_sync=0.01, log=lines.append)
    run_until(watcher, source, lambda: len(calls) >= 3)
    assert calls[:3] == [True, True, True]  # the first sync is full until one is done
    assert watcher.counters.sync_failures == 2 and watcher.counters.syncs >= 1
    assert 'sync failed: RuntimeError: boom' in lines


def test_stop_lets_the_sync_in_flight_finish_and_leaves_the_table(node):
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    stop = threading.Event()
    lines = []
    sync = watch_node.NodeSync(node_config.load(node.paths.config), node.runner, node.paths, lines.append,
                               backend=node.backend)
    finished = []

    def stopped_mid_sync(snapshot, full):
        stop.set()  # SIGTERM arrives while the sync runs
        done = sync(snapshot, full)
        finished.append(done)
        return done

    watcher = loop.Watcher(source, stopped_mid_sync, min_sync=0.01)
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    thread.join(WITHIN)
    source.finish()
    assert not thread.is_alive() and finished == [True]
    assert kernel(node) == expected_table(web(), web_slice(['10.244.1.11']))
    assert _run_lock.holder(node.paths.lock, check=True) == ''  # the lock was held for the sync only


def test_a_busy_lock_is_waited_for_then_tried_again(node, monkeypatch):
    monkeypatch.setattr(watch_node, 'LOCK_WAIT', 0.05)
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    lines = []
    watcher, _sync = watcher_of(node, source, lines)
    with contextlib.ExitStack() as playbook:
        playbook.enter_context(_run_lock.held('a playbook run', path=node.paths.lock))
        with running(watcher, source):
            time.sleep(0.5)
            assert kernel(node) == save_format.render(table(FOREIGN))  # nothing while another run holds it
            playbook.close()
            wait_for(lambda: kernel(node) == expected_table(web(), web_slice(['10.244.1.11'])))
    assert any('result=busy' in line and 'a playbook run' in line for line in lines)


def test_paused_changes_nothing(node):
    run.pause('maintenance', node.paths.pause)
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    lines = []
    watcher, _sync = watcher_of(node, source, lines)
    run_until(watcher, source, lambda: any('result=paused' in line for line in lines))
    assert kernel(node) == save_format.render(table(FOREIGN))


def test_the_delete_guard_refuses_an_emptied_cluster(node):
    source = ScriptedSource({
        SERVICES: [('list', [web(10)], '100'),
                   ('watch', [lambda: wait_for(lambda: node.backend.applied), event('DELETED', web(11))])],
        SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100'), ('watch', [])],
    })
    lines = []
    watcher, _sync = watcher_of(node, source, lines)
    want = expected_table(web(), web_slice(['10.244.1.11']))
    run_until(watcher, source, lambda: any('refusing to delete' in line for line in lines))
    assert kernel(node) == want
    # the resync's read, then the refused sync's: what it read of the node is lent to no later sync
    assert node.host.address_forgets == 2 and node.backend.reads == 1


def test_backoff_doubles_to_its_cap_with_jitter():
    watcher = loop.Watcher(ScriptedSource({}), None, backoff_first=0.5, backoff_max=30.0, rand=lambda: 0.5)
    assert [watcher.backoff(n) for n in (1, 2, 3, 8, 100)] == [0.5, 1.0, 2.0, 30.0, 30.0]
    low = loop.Watcher(ScriptedSource({}), None, backoff_first=1.0, rand=lambda: 0.0)
    high = loop.Watcher(ScriptedSource({}), None, backoff_first=1.0, rand=lambda: 0.999)
    assert low.backoff(1) == 0.5 and 1.49 < high.backoff(1) < 1.5


def test_store_node_heartbeats_do_not_count_labels_do():
    store = Store()
    node_obj = {'kind': 'Node', 'metadata': {'name': objects.NODE, 'resourceVersion': '1',
                                             'labels': {'topology.kubernetes.io/zone': objects.ZONE}}}
    assert store.apply('Node', 'ADDED', node_obj)
    heartbeat = versioned(node_obj, 2)
    heartbeat['status'] = {'conditions': [{'type': 'Ready', 'lastHeartbeatTime': 'now'}]}
    assert not store.apply('Node', 'MODIFIED', heartbeat)
    relabelled = versioned(node_obj, 3)
    relabelled['metadata']['labels'] = {'topology.kubernetes.io/zone': 'zone-b'}
    assert store.apply('Node', 'MODIFIED', relabelled)
    assert store.snapshot().node['metadata']['labels']['topology.kubernetes.io/zone'] == 'zone-b'


def test_store_a_namespaced_list_replaces_only_its_namespace():
    store = Store()
    store.replace('Service', None, [objects.service('a', namespace='one'), objects.service('b', namespace='two')])
    assert store.replace('Service', 'one', [objects.service('c', namespace='one'), {'metadata': {}}]) == [
        "a Service without metadata.name: {'metadata': {}}"]
    assert [s['metadata']['name'] for s in store.snapshot().services] == ['c', 'b']
    assert not store.apply('Service', 'MODIFIED', objects.service('c', namespace='one')) is None
    assert store.apply('Service', 'DELETED', objects.service('gone', namespace='one')) is False
    assert len(store) == 2


def _with_noise(obj):
    """obj as a real API server serves it: managedFields and foreign annotations."""
    obj = copy.deepcopy(obj)
    obj['metadata']['managedFields'] = [{'manager': 'kubectl', 'operation': 'Apply', 'fieldsV1': {'f:spec': {}}}]
    obj['metadata'].setdefault('annotations', {})['kubectl.kubernetes.io/last-applied-configuration'] = '{"x": 1}'
    return obj


def test_the_store_keeps_what_a_sync_reads_and_drops_the_rest():
    rr = objects.service('rr', cluster_ip='10.96.0.40', annotations={translate_service.SCHEDULER_ANNOTATION: 'rr'})
    cluster = [_with_noise(rr), _with_noise(web()), _with_noise(web_slice(['10.244.1.5', '10.244.2.6'])),
               _with_noise(objects.endpoint_slice('rr', [objects.endpoint('10.244.3.7')], name='rr-abc'))]
    originals = copy.deepcopy(cluster)
    store = Store()
    for obj in cluster[:2]:
        assert store.apply('Service', 'ADDED', obj)
    store.replace('EndpointSlice', None, cluster[2:])
    assert cluster == originals  # what the client decoded is not changed in place
    held = store.snapshot()
    for obj in held.services + held.endpoint_slices:
        assert 'managedFields' not in obj['metadata']
        assert 'kubectl.kubernetes.io/last-applied-configuration' not in obj['metadata'].get('annotations', {})
    for obj in held.endpoint_slices:
        assert all('targetRef' not in endpoint for endpoint in obj['endpoints'])
    assert [s['metadata'].get('annotations') for s in held.services] == [{translate_service.SCHEDULER_ANNOTATION: 'rr'}, None]
    # The table a sync makes from what the store holds is the one the whole objects make.
    whole = translate.translate(snapshots.snapshot(cluster), snapshots.node(), OPTIONS.proxy)
    kept = translate.translate(held, snapshots.node(), OPTIONS.proxy)
    assert whole.services and kept.services == whole.services
    assert [vs.scheduler for vs in kept.services if vs.key.address == '10.96.0.40'] == ['rr']
    assert (kept.warnings, kept.skipped, kept.local_endpoints) == (whole.warnings, whole.skipped, whole.local_endpoints)


def test_slim_leaves_an_object_with_nothing_to_drop_as_it_is():
    service = objects.service('web')
    assert slim('Service', service) is service
    bare = {'metadata': {'name': 's'}, 'endpoints': [{'addresses': ['10.0.0.1']}, 'odd']}
    assert slim('EndpointSlice', bare) is bare


def test_remembered_table_reads_once_applies_in_memory_and_forgets_on_failure():
    inner = FakeBackend(table(FOREIGN))
    remembered = RememberedTable(inner)
    before = remembered.read()
    assert remembered.read() == before and inner.reads == 1
    actions = []
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import plan as planner
    wanted = table('-A -t 10.96.0.99:80 -s rr\n-a -t 10.96.0.99:80 -r 10.244.0.9:80 -m -w 1')
    plan = planner.plan(wanted, before, _scope('10.96.0.0/12'))
    actions = plan.actions
    remembered.apply(actions)
    assert remembered.read() == inner.table == apply_to_table(before, actions) and inner.reads == 1
    inner.refuse = lambda action: 'Cannot allocate memory'
    with pytest.raises(Exception):
        remembered.apply(planner.plan({}, remembered.read(), _scope('10.96.0.0/12'), exclusive=True).actions)
    assert remembered.table is None
    remembered.read()
    assert inner.reads == 2


def _scope(network):
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation
    return validation.parse_request({'services': [], 'scope': [network]}).scope


def test_watch_refuses_a_config_without_an_api_source(node, tmp_path):
    node.write_config(kubernetes=dict(kubernetes_section(tmp_path), source='manifests', path=str(tmp_path)))
    errors = []
    code = watch_node.watch(node.runner, node.paths, [].append, errors.append, threading.Event())
    assert code == watch_node.EXIT_CONFIG
    assert errors == ['config: kubernetes: watch mode needs the kubernetes section with source api']


def test_watch_runs_until_stopped_and_says_so(node):
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    out = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: out.append(watch_node.watch(
        node.runner, node.paths, out.append, out.append, stop, min_sync=0.01, source=source, backend=node.backend,
        listen=('127.0.0.1', 0))))
    thread.start()
    want = expected_table(web(), web_slice(['10.244.1.11']))
    deadline = time.monotonic() + WITHIN
    while kernel(node) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    source.finish()
    thread.join(WITHIN)
    assert not thread.is_alive()
    assert kernel(node) == want
    assert out[0].startswith('watching Services, EndpointSlices from scripted: min_sync=0.01s')
    assert out[-2:] == ['stopped: the table is left as the last sync made it', 0]
    assert re.search(r' status=http://127[.]0[.]0[.]1:[0-9]+/$', out[0])
    assert json.loads(open(node.paths.status).read())['runs']['ok'] >= 1


def test_verbose_says_where_each_sync_spent_its_time(node):
    source = ScriptedSource({SERVICES: [('list', [web(10)], '100')],
                             SLICES: [('list', [web_slice(['10.244.1.11'], 20)], '100')]})
    lines = []
    sync = watch_node.NodeSync(node_config.load(node.paths.config), node.runner, node.paths, lines.append,
                               backend=node.backend, err=lines.append)
    watcher = watch_node.Watcher(source, sync, min_sync=0.02, interval=3600.0, log=lines.append)
    run_until(watcher, source, lambda: kernel(node) == expected_table(web(), web_slice(['10.244.1.11'])))
    first = lines.index(next(line for line in lines if line.startswith('result=ok')))
    # The journal line, then a line per part (the full sync's node part, then kubernetes).
    assert lines[first + 1].startswith('timings kubernetes: ') or lines[first + 1].startswith('timings node: ')
    kubernetes = next(line for line in lines if line.startswith('timings kubernetes: '))
    assert re.search(r' translate=[0-9.]+s', kubernetes) and re.search(r' total=[0-9.]+s', kubernetes)


def lb_local(name, port, health_check_port):
    service = objects.service(name, cluster_ip='10.96.0.40', type='LoadBalancer',
                              ports=[objects.service_port(port, node_port=30000 + port)])
    service['spec'].update(externalTrafficPolicy='Local', healthCheckNodePort=health_check_port)
    return service


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def get(port, path):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        connection.request('GET', path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def status_of(port, path):
    """The HTTP status, None while nothing listens."""
    try:
        return get(port, path)[0]
    except OSError:
        return None


def test_watch_serves_healthz_metrics_and_the_health_check_ports(node):
    check = free_port()
    shop = versioned(lb_local('shop', 80, check), 10)
    here = versioned(objects.endpoint_slice('shop', [objects.endpoint('10.244.1.11')], name='shop-abc'), 20)
    gone = versioned(objects.endpoint_slice('shop', [objects.endpoint('10.244.2.12', node='node-b')],
                                            name='shop-abc'), 21)
    source = ScriptedSource({SERVICES: [('list', [shop], '100'), ('watch', [])],
                             SLICES: [('list', [here], '100'), ('watch', [
                                 lambda: wait_for(lambda: status_of(check, '/') == 200), event('MODIFIED', gone)])]})
    out = []
    stop = threading.Event()
    status_port = free_port()
    thread = threading.Thread(target=watch_node.watch, args=(node.runner, node.paths, out.append, out.append, stop),
                              kwargs=dict(min_sync=0.01, source=source, backend=node.backend,
                                          listen=('127.0.0.1', status_port)))
    thread.start()
    try:
        wait_for(lambda: source.exhausted() and status_of(check, '/') == 503)
        status, body = get(check, '/healthz')
        assert json.loads(body) == {'service': {'namespace': 'default', 'name': 'shop'}, 'localEndpoints': 0,
                                    'serviceProxyHealthy': True}
        status, body = get(status_port, '/healthz')
        assert status == 200 and json.loads(body)['nodeEligible'] is True
        status, text = get(status_port, '/metrics')
        assert status == 200
        assert re.search(r'^netlb_ipvs_watch_syncs_total\{result="ok"\} [2-9]', text, re.M), text
        assert re.search(r'^netlb_ipvs_watch_table\{what="virtual_services"\} [1-9]', text, re.M), text
        assert 'netlb_ipvs_watch_sync_duration_seconds_bucket{' in text
    finally:
        stop.set()
        source.finish()
        thread.join(WITHIN)
    assert not thread.is_alive()
    with pytest.raises(OSError):  # the listeners went with the watcher
        get(check, '/')
