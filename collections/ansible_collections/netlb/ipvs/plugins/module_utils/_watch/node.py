# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`netlb-ipvs watch` on a node: the node's config, the watch loop, and a sync per change
with the same scope, ownership, delete guard and run lock as `netlb-ipvs reconcile`.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    code = watch(runner, paths, out, err, stop, min_sync=1.0, interval=300.0)

Each sync: paused -> nothing; the run lock (_reconcile/lock.py) taken for the sync only
(a module or a manual run gets in between syncs; busy: tried again after min_sync);
a full resync (every interval, and the first) re-asserts the kernel modules and
sysctls and the static table, and reads the kernel table afresh; a sync on a change plans
against the table kept in memory (_watch/table.py). The Kubernetes part is
k8s_service_proxy's pipeline.apply on the watcher's snapshot. Each sync records the
status and the textfile and prints one journal line, as a timer run does.
"""

from __future__ import annotations

import time

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import IpvsError, ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import ApiSource, StreamError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import lock, run, status
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.loop import Watcher
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.table import RememberedTable

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
# How long a sync waits for another run's lock before it is tried again (after min_sync).
LOCK_WAIT = 5.0
HOLDER = 'netlb-ipvs watch'


class NodeSync(object):
    """sync(snapshot, full) for the Watcher: one node's sync, recorded and told."""

    def __init__(self, config, runner, paths, out, node=None, backend=None, what=HOLDER, now=time.time,
                 clock=time.perf_counter):
        self.config = config
        self.runner = runner
        self.paths = paths
        self.out = out
        self.node = node if node is not None else pipeline.prepare(config.kubernetes, runner)
        params = self.node.params
        self.table = RememberedTable(backend if backend is not None else get_backend(params['backend'], runner=runner))
        self.drain_store = DrainStore(params['drain_state_path'])
        self.what = what
        self.now, self.clock = now, clock
        self.last = None  # the last status.Report

    def __call__(self, snapshot, full):
        report = status.Report(result='ok', started=self.now())
        begun = self.clock()
        done = True
        reason = run.paused(self.paths.pause)
        try:
            if reason is not None:
                report.result, report.paused = 'paused', reason
            else:
                with lock.held(self.what, path=self.paths.lock, wait=LOCK_WAIT):
                    self._sync(snapshot, full, report)
        except lock.LockBusy as exc:
            report.result = 'busy'
            report.errors.append(str(exc))
            done = False
        except IpvsError as exc:  # the lock file (FileError is one)
            report.errors.append('lock: %s' % exc)
            done = False
        report.duration = self.clock() - begun
        self.last = run.record(report, self.config, self.paths)
        self.out(status.journal_line(report))
        return done

    def _sync(self, snapshot, full, report):
        if full:
            self.table.forget()
        previous = status.load(self.paths.status)

        def sync_kubernetes():
            self.node.warnings[:] = []
            self.node.timings.clear()
            try:
                result = pipeline.apply(self.node, snapshot, self.table, take_lock=False, drain_store=self.drain_store)
            except BaseException:
                self.table.forget()  # refused or failed: the next sync reads the kernel
                raise
            if full:  # drift is told at resyncs only: a sync on a change has a new input by definition
                result.fingerprint = pipeline.fingerprint(snapshot, self.node.params)
            return result

        run.run_parts(self.config, self.runner, report, previous, sync_kubernetes=sync_kubernetes, node=full)


def source_of(params):
    """The ApiSource of the node's Kubernetes options (StreamError when the connection
    cannot be made)."""
    connection = api.connection_options_from_params(params)
    return ApiSource(connection, namespaces=params['namespaces'], label_selector=params['label_selector'],
                     node_name=params['node_name'] if not params['node_zone'] else None,
                     request_timeout=params['request_timeout'], page_size=params['page_size'])


def watch(runner, paths, out, err, stop, min_sync=1.0, interval=300.0, source=None, backend=None):
    """Watch and sync until stop is set. Returns the exit code: 0 stopped, 2 the config is
    bad or not a Kubernetes node's reading the API, 1 the API connection cannot be made."""
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
        source = source if source is not None else source_of(node.params)
    except StreamError as exc:
        err('cannot watch the cluster: %s' % exc)
        return EXIT_FAILED
    sync = NodeSync(config, runner, paths, out, node=node, backend=backend)
    watcher = Watcher(source, sync, min_sync=min_sync, interval=interval, log=err)
    out('watching %s from %s: min_sync=%ss interval=%ss' % (
        ', '.join(str(stream) for stream in watcher.streams), source.origin, min_sync, interval))
    watcher.run(stop)
    out('stopped: the table is left as the last sync made it')
    return EXIT_OK
