# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`netlb-ipvs watch` on a node: the node's config, the watch loop, and a sync per change
with the same scope, ownership, delete guard and run lock as `netlb-ipvs reconcile`.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    code = watch(runner, paths, out, err, stop, min_sync=1.0, interval=300.0, listen=('127.0.0.1', 10266))

Each sync: paused -> nothing; the run lock (_run_lock.py) taken for the sync only (a
module or a manual run gets in between syncs; busy: tried again after min_sync); a sync
on a change plans against the table kept in memory (_watch/table.py) and translates,
renders and binds only what the change touched (proxy.SyncMemo: the Services whose
objects changed are translated again, the packet rules rendered again only when their
inputs changed). A full resync (every interval, and the first) is there to undo drift
on the host: it re-asserts the kernel modules and sysctls and the static table, and
forgets everything it trusts about the node (the remembered table, the dummy interface
as the last sync left it: SyncMemo.forget_host; the node's addresses), so it reads the
kernel table, the interface and the addresses afresh, lists the packet rules unless the
ruleset's generation says no rule changed since they were listed, and corrects what
differs; it keeps the memo's pure caches of the inputs (translation pieces, rendered
rules), which are the same whoever made them, so with unchanged objects it translates
no Service again. Any failure forgets both (and the node's addresses), and the next
sync is whole. The Kubernetes part is k8s_service_proxy's pipeline.apply on the
watcher's snapshot. Each sync records the status and the textfile and prints one
journal line, as a timer run does.

Served (serve.py, metrics.py): /healthz, /livez and /metrics on listen (loopback), and
each externalTrafficPolicy: Local LoadBalancer Service's healthCheckNodePort, answered
from this node's ready endpoints of it as kube-proxy does. The metrics: syncs by result,
their latency, watch restarts, relists and objects left out, the table's size, the objects
held, and per-Service traffic from the kernel's IPVS counters (read at each scrape).
"""

from __future__ import annotations

import time

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError, ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline, proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import ApiSource, StreamError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import run, status
from ansible_collections.netlb.ipvs.plugins.module_utils._watch import metrics, serve
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.loop import Watcher
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.table import RememberedTable

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
# How long a sync waits for another run's lock before it is tried again (after min_sync).
LOCK_WAIT = 5.0
HOLDER = 'netlb-ipvs watch'


class NodeSync(object):
    """sync(snapshot, full) for the Watcher: one node's sync, recorded and told."""

    def __init__(self, config, runner, paths, out, node=None, backend=None, what=HOLDER, now=time.time,
                 clock=time.perf_counter, on_synced=None, err=None):
        self.config = config
        self.runner = runner
        self.paths = paths
        self.out = out
        self.node = node if node is not None else pipeline.prepare(config.kubernetes, runner)
        params = self.node.params
        self.table = RememberedTable(backend if backend is not None else get_backend(params['backend'], runner=runner))
        self.memo = proxy.SyncMemo()  # what a sync on a change reuses of the last one
        self.drain_store = DrainStore(params['drain_state_path'])
        self.what = what
        self.now, self.clock = now, clock
        self.last = None  # the last status.Report
        self.result = None  # the last proxy.SyncResult (its translation: the table's ports)
        self.on_synced = on_synced  # on_synced(report, full, snapshot) after each sync
        self.err = err  # given (--verbose): each part's step timings after each sync's line

    def __call__(self, snapshot, full):
        report = status.Report(result='ok', started=self.now())
        begun = self.clock()
        done = True
        reason = run.paused(self.paths.pause)
        try:
            if reason is not None:
                report.result, report.paused = 'paused', reason
            else:
                with _run_lock.held(self.what, path=self.paths.lock, wait=LOCK_WAIT):
                    self._sync(snapshot, full, report)
        except _run_lock.LockBusy as exc:
            report.result = 'busy'
            report.errors.append(str(exc))
            done = False
        except IpvsError as exc:  # the lock file (FileError is one)
            report.errors.append('lock: %s' % exc)
            done = False
        report.duration = self.clock() - begun
        self.last = run.record(report, self.config, self.paths)
        self.out(status.journal_line(report))
        if self.err is not None:
            for line in status.timing_lines(report):
                self.err(line)
        if self.on_synced is not None:
            self.on_synced(report, full, snapshot)
        return done

    def _sync(self, snapshot, full, report):
        if full:  # drift: read the host afresh; the translation and the rules text are the inputs' own
            self.table.forget()
            self.memo.forget_host()
            self.node.host.forget_addresses()  # the node's addresses too (NodePorts, the primary address)
        previous = status.load(self.paths.status)

        def sync_kubernetes():
            self.node.warnings[:] = []
            self.node.timings.clear()
            try:
                result = pipeline.apply(self.node, snapshot, self.table, take_lock=False, drain_store=self.drain_store,
                                        memo=self.memo)
            except BaseException:
                self.table.forget()  # refused or failed: the next sync reads the kernel and the host
                self.memo.forget()
                self.node.host.forget_addresses()
                raise
            if full:  # drift is told at resyncs only: a sync on a change has a new input by definition
                result.fingerprint = pipeline.fingerprint(snapshot, self.node.params)
            self.result = result
            return result

        run.run_parts(self.config, self.runner, report, previous, sync_kubernetes=sync_kubernetes, node=full)


def node_eligible(snapshot):
    """Whether this node may take traffic: not being deleted (kube-proxy's healthz)."""
    return not ((snapshot.node or {}).get('metadata') or {}).get('deletionTimestamp')


class Served(object):
    """The watcher's HTTP side and metrics (serve.py, metrics.py), fed by its syncs."""

    def __init__(self, watcher, sync, listen, interval, runner, err):
        self.watcher, self.sync, self.err = watcher, sync, err
        self.runner = runner
        self.registry = registry = metrics.Registry()
        self.syncs = registry.counter('netlb_ipvs_watch_syncs_total', 'Syncs of the watcher by result.', ('result',))
        self.latency = registry.histogram('netlb_ipvs_watch_sync_duration_seconds',
                                          'Seconds a sync took (full: a periodic resync).', ('full',))
        self.restarts = registry.counter('netlb_ipvs_watch_restarts_total',
                                         'Watch streams restarted, by why (gone: 410, a relist; error).', ('why',))
        self.events = registry.counter('netlb_ipvs_watch_events_total', 'Watch events received.')
        self.malformed = registry.counter('netlb_ipvs_watch_malformed_total', 'Objects and events left out.')
        self.objects = registry.gauge('netlb_ipvs_watch_objects', 'Cluster objects the watcher holds.')
        self.table = registry.gauge('netlb_ipvs_watch_table', 'The synced table: virtual services and real servers.',
                                    ('what',))
        self.traffic = metrics.TrafficMetrics(registry)
        self.traffic_backend = None
        self.health = serve.Health(max_age=2 * interval + 60)
        self.status = serve.StatusServer(self.health, registry, listen, on_scrape=self.scrape) if listen else None
        self.services = serve.ServiceHealthServer(self.health)

    def synced(self, report, full, snapshot):
        self.syncs.inc(result=report.result)
        self.latency.observe(report.duration, full=str(bool(full)).lower())
        if report.result == 'ok':
            self.health.synced()
            table = report.tables.get('kubernetes')
            if table:
                self.table.set(table[0], what='virtual_services')
                self.table.set(table[1], what='real_servers')
        self.health.set_node_eligible(node_eligible(snapshot))
        # The ports of the last translation applied, the counts of the objects now.
        ports = self.sync.result.translation.health_check_node_ports if self.sync.result is not None else {}
        checks = serve.health_check_services(ports, serve.local_ready_endpoints(snapshot.endpoint_slices,
                                                                                self.sync.node.node_name))
        for port, why in sorted(self.services.update(checks).items()):
            self.err('health check port %d: %s' % (port, why))

    def scrape(self):
        counters = self.watcher.counters
        for why, count in list(counters.restarts.items()):
            self.restarts.set(count, why=why)
        self.events.set(counters.events)
        self.malformed.set(counters.malformed)
        self.objects.set(len(self.watcher.store))
        result = self.sync.result
        if result is None:
            return
        try:
            if self.traffic_backend is None:  # its own netlink socket: the syncs use theirs at the same time
                self.traffic_backend = get_backend('netlink', runner=self.runner)
            read_traffic = getattr(self.traffic_backend, 'read_traffic', None)
            if read_traffic is not None:
                owners = dict(((port.protocol, port.address, port.port), port) for port in result.translation.ports)
                ports = dict((service.key, owners[service.key[:3]]) for service in result.translation.services
                             if service.key[:3] in owners)
                self.traffic.update(read_traffic(), ports)
        except (IpvsError, OSError) as exc:
            self.err('metrics: the IPVS counters are not readable: %s' % exc)

    def close(self):
        self.services.close()
        if self.status is not None:
            self.status.close()
        close = getattr(self.traffic_backend, 'close', None)
        if close is not None:
            close()


def source_of(params, node_name):
    """The ApiSource of the node's Kubernetes options (StreamError when the connection
    cannot be made). node_name: the node's, as parse_options resolved it (the option, else
    the host's name): its Node is watched for the zone unless node_zone is given."""
    connection = api.connection_options_from_params(params)
    return ApiSource(connection, namespaces=params['namespaces'], label_selector=params['label_selector'],
                     node_name=node_name if not params['node_zone'] else None,
                     request_timeout=params['request_timeout'], page_size=params['page_size'])


def watch(runner, paths, out, err, stop, min_sync=1.0, interval=300.0, source=None, backend=None,
          listen=serve.DEFAULT_ADDRESS, verbose=False):
    """Watch and sync until stop is set. Returns the exit code: 0 stopped, 2 the config is
    bad or not a Kubernetes node's reading the API, 1 the API connection cannot be made or
    the status address cannot be listened on. listen: (address, port) of /healthz and
    /metrics, None: not served. verbose: each sync's step timings to err after its line."""
    try:
        config = node_config.load(paths.config)
        params = config.kubernetes
        if params is None or params['source'] != 'api':
            raise ValidationError('kubernetes: watch mode needs the kubernetes section with source api')
        node = pipeline.prepare(params, runner)
    except ValidationError as exc:
        err('config: %s' % exc)
        return EXIT_CONFIG
    for warning in api.connection_warnings(api.connection_options_from_params(node.params)):
        err('warning: %s' % warning)
    try:
        source = source if source is not None else source_of(node.params, node.node_name)
    except StreamError as exc:
        err('cannot watch the cluster: %s' % exc)
        return EXIT_FAILED
    sync = NodeSync(config, runner, paths, out, node=node, backend=backend, err=err if verbose else None)
    watcher = Watcher(source, sync, min_sync=min_sync, interval=interval, log=err)
    try:
        served = Served(watcher, sync, listen, interval, runner, err)
    except OSError as exc:
        err('cannot serve /healthz and /metrics on %s:%s: %s' % (listen[0], listen[1], exc.strerror or exc))
        return EXIT_FAILED
    sync.on_synced = served.synced
    out('watching %s from %s: min_sync=%ss interval=%ss%s' % (
        ', '.join(str(stream) for stream in watcher.streams), source.origin, min_sync, interval,
        ' status=http://%s:%d/' % tuple(served.status.address) if served.status is not None else ''))
    try:
        watcher.run(stop)
    finally:
        served.close()
        sync.table.close()
    out('stopped: the table is left as the last sync made it')
    return EXIT_OK
