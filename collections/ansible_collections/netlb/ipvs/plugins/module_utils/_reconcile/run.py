# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One reconcile run of the node, without Ansible: the same engine, scope, ownership and
safety refusals as the modules, from the config the ipvs_reconcile role rendered.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Order, and why:
1. Paused (the maintenance switch, a file) -> nothing read or changed, said so.
2. The lock (../_run_lock.py): one run at a time; busy -> exit without touching anything.
3. The config, checked whole (config.py): a bad one fails the run, the table untouched.
4. The kernel modules, sysctls and IPVS timeouts (kernel.py): IPVS needs them before anything else.
5. The static table (ipvs_virtual_server's engine call, within its scope).
6. The Kubernetes Services (k8s_service_proxy's pipeline: its delete guard refuses an
   empty or partial answer from the cluster, an unreachable API changes nothing).
7. The counters, the textfile and one journal line (status.py).
Parts 4-6 are independent: one failing does not stop the others, and fails the run.
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import time

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._command import CommandError
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError, ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import (
    FileError,
    ensure_absent,
    make_parent_directory,
    read_text,
    write_atomic,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.hold import NftHold
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ApplyError, RefusedError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import kernel, status

PAUSE_PATH = '/var/lib/netlb-ipvs/reconcile.paused'
_OP = operator.attrgetter('op')


class ClusterUnread(IpvsError):
    """The Kubernetes source failed (its SourceError, which a director's run never imports)."""


class RunTimeout(BaseException):
    """The run outlived its timeout (the shell raises it from a signal handler). Not an
    Exception, like KeyboardInterrupt: the guards that catch any Exception (the
    translator's per Service) would take it for a malformed Service and delete it."""


@dataclasses.dataclass(frozen=True)
class Paths:
    config: str = node_config.DEFAULT_PATH
    lock: str = None  # _run_lock.DEFAULT_PATH
    status: str = status.DEFAULT_PATH
    pause: str = PAUSE_PATH


def paused(path=PAUSE_PATH):
    """The pause reason ('' when none was given), or None when not paused."""
    try:
        text = read_text(path)
    except FileError:
        return 'pause file unreadable'
    return None if text is None else ' '.join(text.split())[:200]


def pause(reason, path=PAUSE_PATH):
    """Pause reconciling on this node until resume(); reason says why (journal, metrics)."""
    make_parent_directory(path)
    write_atomic(path, (reason or '') + '\n', mode=0o644)


def resume(path=PAUSE_PATH):
    """True when a pause was lifted."""
    return ensure_absent(path).changed


def reconcile(runner, paths=Paths(), wait=0.0, what='netlb-ipvs reconcile', now=time.time, clock=time.perf_counter):
    """One run. Returns the status.Report; writes the status and the textfile. Never raises
    for what a run can meet (bad config, unreachable API, a refusing kernel, a timeout,
    another run holding the lock): the report says it."""
    report = status.Report(result='ok', started=now())
    begun = clock()
    config = None
    try:
        reason = paused(paths.pause)
        if reason is not None:  # before the config: a paused tick costs nothing
            report.result, report.paused = 'paused', reason
            return _finish(report, config, paths, begun, clock)
        with _run_lock.held(what, path=paths.lock, wait=wait):
            try:
                config, config_error = _load(paths.config)
                if config_error is not None:
                    report.errors.append('config: %s' % config_error)
                else:
                    run_parts(config, runner, report, status.load(paths.status))
            except RunTimeout as exc:
                report.errors.append('timeout: %s; the next run converges from what the kernel holds' % exc)
            return _finish(report, config, paths, begun, clock)
    except _run_lock.LockBusy as exc:
        report.result = 'busy'
        report.errors.append(str(exc))
        return _finish(report, config, paths, begun, clock)
    except RunTimeout as exc:  # before the lock: nothing was changed
        report.errors.append('timeout: %s' % exc)
        return _finish(report, config, paths, begun, clock)
    except FileError as exc:
        report.errors.append('lock: %s' % exc)
        return _finish(report, config, paths, begun, clock)


def _load(path):
    try:
        return node_config.load(path), None
    except ValidationError as exc:
        return None, exc


def run_parts(config, runner, report, previous, sync_kubernetes=None, node=True):
    """The parts of a run (order 4-6) into report. sync_kubernetes: what the Kubernetes
    part calls instead of reading the cluster and syncing (the watcher: its own snapshot),
    returning the proxy.SyncResult; node: False leaves the kernel and static parts out."""
    if node:
        _part(report, 'node', lambda: _kernel(config, runner, report))
        if config.static is not None:
            _part(report, 'static', lambda: _static(config.static, runner, report, previous))
    if config.kubernetes is not None:
        _part(report, 'kubernetes', lambda: _kubernetes(config.kubernetes, runner, report, previous, sync_kubernetes))


def _part(report, name, step):
    """Run one part; its known failures become a line of the report."""
    try:
        step()
    except ValidationError as exc:
        report.errors.append('%s: invalid parameters: %s' % (name, exc))
    except ClusterUnread as exc:
        report.errors.append('%s: cannot read the cluster, nothing was changed: %s' % (name, exc))
    except ApplyError as exc:
        report.errors.append('%s: %s (%d actions applied before it; the next run converges)'
                             % (name, exc, len(exc.applied)))
        report.changes.setdefault(name, {}).update(collections.Counter(map(_OP, exc.applied)))
    except RefusedError as exc:
        report.errors.append('%s: %s (a timer run never forces: if the cluster really lost them, run the playbook '
                             'once with -e k8s_service_proxy_force=true)' % (name, exc))
    except (IpvsError, CommandError, FileError) as exc:
        report.errors.append('%s: %s' % (name, exc))


def _kernel(config, runner, report):
    result = kernel.ensure(config.modules, config.sysctl, runner, ipvs_timeouts=config.ipvs_timeouts)
    report.changes['node'] = {'modules': len(result.loaded), 'sysctls': len(result.sysctls),
                              'ipvs_timeouts': int(bool(result.ipvs_timeouts))}
    if result.changed:
        report.drift += ('node',)  # ipvs_node set them up: any change here is drift


def _static(static, runner, report, previous):
    request = static.request
    options = engine.ReconcileOptions(
        exclusive=request.exclusive, purge_real_servers=static.purge_real_servers, graceful=static.graceful,
        drain_timeout=static.drain_timeout, allow_empty=request.allow_empty,
        hold=NftHold(runner) if static.scheduler_hold else None)
    engine.check_input(request.services, request.scope, options)
    backend = get_backend(static.backend, runner=runner)
    result = engine.reconcile(backend, request.services, request.scope, options,
                              drain_store=DrainStore(static.drain_state_path))
    report.warnings.extend(result.warnings)
    report.changes['static'] = dict(collections.Counter(map(_OP, result.actions)))
    summary = result.summary()
    report.tables['static'] = (summary['services'], summary['real_servers'])
    report.timings['static'] = dict(result.timings)
    report.inputs['static'] = static.fingerprint
    if result.actions and previous.inputs.get('static') == report.inputs['static']:
        report.drift += ('static',)


def _kubernetes(params, runner, report, previous, sync_kubernetes=None):
    if sync_kubernetes is not None:  # the watcher: its own snapshot, in memory
        _report_sync(sync_kubernetes(), report, previous)
        return
    # Imported here: a director's run never loads the Kubernetes side.
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import converged, pipeline
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
    node = pipeline.prepare(params, runner)
    marks = converged.MarkStore(converged.path_beside(node.params['state_path']))
    backend = get_backend(node.params['backend'], runner=runner)
    with engine.clock(node.timings, 'converged_mark_load'):
        mark = marks.load()
    try:
        if mark is not None and mark.versions:
            # The names and resourceVersions tell an unchanged cluster without its objects.
            warnings = []
            versions = pipeline.read_versions(node, warnings)
            if versions is not None:
                fingerprint = pipeline.fingerprint(versions, node.params)
                with engine.clock(node.timings, 'converged_check'):
                    _key, held = _converged(node, versions, fingerprint, mark, backend)
                if held is not None:
                    report.warnings.extend(warnings)
                    _report_short(node, held, fingerprint, report)
                    return
                mark = None  # not converged: the whole read and sync, without a second check
        snapshot = pipeline.read(node)
    except SourceError as exc:
        raise ClusterUnread(str(exc))
    fingerprint = pipeline.fingerprint(snapshot, node.params)
    with engine.clock(node.timings, 'converged_check'):
        key, held = _converged(node, snapshot, fingerprint, mark, backend)
    if held is not None:  # the short way: nothing to translate, nothing to change
        _report_short(node, held, fingerprint, report)
        return
    result = pipeline.apply(node, snapshot, backend, take_lock=False)  # reconcile() holds the run lock
    result.fingerprint = fingerprint
    _report_sync(result, report, previous)
    _mark(node, result, key, marks, versions=not snapshot.endpoints)


def _report_short(node, mark, fingerprint, report):
    report.warnings.extend(node.warnings + list(mark.warnings))
    report.changes['kubernetes'] = {}
    report.tables['kubernetes'] = mark.counts
    report.timings['kubernetes'] = dict(node.timings)
    report.inputs['kubernetes'] = fingerprint


def _report_sync(result, report, previous):
    report.warnings.extend(result.warnings)
    changes = dict(collections.Counter(map(_OP, result.reconcile.actions)))
    changes['addresses'] = len(result.addresses_added) + len(result.addresses_removed)
    changes['rules'] = int(result.rules_changed)
    changes['udp_flows'] = len(result.udp_flows)
    report.changes['kubernetes'] = changes
    summary = result.summary()
    report.tables['kubernetes'] = (summary['virtual_services'], summary['real_servers'])
    report.timings['kubernetes'] = dict(result.timings)
    report.inputs['kubernetes'] = result.fingerprint
    # No fingerprint (the watcher's sync on a change takes none): its input is new, never drift.
    if result.changed and result.fingerprint and previous.inputs.get('kubernetes') == result.fingerprint:
        report.drift += ('kubernetes',)


def _converged(node, snapshot, fingerprint, mark, backend):
    """(inputs key, mark when the node still holds exactly what it marked, else None):
    the short way of _k8s/converged.py (mark None: the key alone). Reads what a whole
    sync reads (the state, the IPVS table, the rules unless their generation is the
    Mark's) and changes nothing. Each part is timed (converged_*: where a short run's
    time goes)."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import converged, proxy
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import state as proxy_state
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import Translation
    host, options, timings = node.host, node.options, node.timings
    with engine.clock(timings, 'converged_inputs'):  # the node's addresses, zone, schedulers
        context = proxy.node_context(node.node_name, host, snapshot, node.params['node_zone'],
                                     options.proxy.dummy_interface)
        key = converged.inputs_key(fingerprint, context, host.schedulers(), converged.code_digest())
    if mark is None or mark.key != key or (not options.allow_kube_proxy and host.kube_proxy_ipvs()):
        return key, None  # the whole sync refuses a kube-proxy in IPVS mode, and says so
    state_text = read_text(node.params['state_path']) or ''
    state = proxy_state.loads(state_text) if state_text else proxy_state.ProxyState()
    owned = proxy.proxy_scope(options, context, state, Translation(services=[])).test()
    with engine.clock(timings, 'converged_ipvs_read'):
        table = dict((service_key, service) for service_key, service in backend.read().items() if owned(service_key))
    with engine.clock(timings, 'converged_rules'):
        rules = None if mark.rules_unchanged(host.rules_generation()) else host.read_rules()
    with engine.clock(timings, 'converged_compare'):
        holds = mark.holds(key, table, rules, state_text.encode('utf-8'))
    return key, (mark if holds else None)


def _mark(node, result, key, marks, versions=False):
    """Mark the node converged when this whole sync found nothing to change and leaves
    nothing pending (no drain, no flow to clear); else drop an old Mark. versions: a
    read of names and versions alone has this sync's fingerprint (no legacy Endpoints)."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import converged
    reconcile = result.reconcile
    pending = reconcile.draining or any(entry[0] in reconcile.before for entry in reconcile.drain_state)
    if result.changed or result.udp_flows or pending:
        marks.clear()
        return
    state_text = read_text(node.params['state_path']) or ''
    # The generation before the rules are listed: a change between the two makes the
    # next run list them again, never trust a listing older than its generation.
    generation = node.host.rules_generation()
    # The sync's own warnings (translation, scheduler fallback), not the connection's: a
    # short run says those afresh.
    marks.save(converged.Mark.of(key, reconcile.before, node.host.read_rules(), state_text.encode('utf-8'),
                                 result.warnings[len(node.warnings):], generation, versions))


def _finish(report, config, paths, begun, clock):
    report.duration = clock() - begun
    return record(report, config, paths)


def record(report, config, paths):
    """The run's result (failed when it met errors), counters and textfile; returns report."""
    if report.result == 'ok' and report.errors:
        report.result = 'failed'
    try:
        # Its own short lock: a busy tick records beside the run that holds the run lock.
        with status.locked(paths.status):
            recorded = status.load(paths.status).record(report)
            status.save(recorded, paths.status)
        metrics_dir = config.metrics_dir if config is not None else node_config.metrics_dir_of(paths.config)
        if metrics_dir:  # a bad config's failure goes to the textfile too
            status.write_metrics(metrics_dir, recorded, report.paused)
    except FileError as exc:
        report.warnings.append('status or metrics not written: %s' % exc)
    return report
