# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One sync of this node from k8s_service_proxy's options, as steps both shells call: the
k8s_service_proxy module and the node's entry points (netlb-ipvs reconcile on a timer,
netlb-ipvs watch), so a run without Ansible is the module's run.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    node = prepare(params, runner)                 # options checked (ValidationError), before any read
    snapshot = read(node)                          # the cluster (SourceError); node.timings['read_cluster']
    versions = read_versions(node, warnings)       # its names and resourceVersions only (a timer run's check)
    translation, services = translate_only(node, snapshot)    # apply: false (nothing on the node changes)
    result = apply(node, snapshot, backend)        # translate, plan, guard, apply: proxy.sync, its order
    result = run(params, runner)                   # the three above, as a module run does them

read -> translate -> plan -> apply: read is this module's, the rest proxy.sync's (its
order keeps a run stopped anywhere safe; the engine plans and the guard reviews before
the first write). Every step is timed by timed() into one timings dict. The watcher
(_watch/loop.py) keeps its own snapshot and calls prepare() once and apply() per change.

params: the module's parameters (a dict with every option; missing ones take the
module's defaults from DEFAULTS). Errors are the edges' own (ValidationError, SourceError,
RefusedError, ApplyError, CommandError, FileError, NodeError): the caller words them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import HostNode
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import DEFAULTS as OPTION_DEFAULTS
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import parse_options
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import StateStore

# The options the pipeline reads itself (parse_options applies the rest), with their
# defaults from the option table.
DEFAULTS = dict((name, OPTION_DEFAULTS[name]) for name in (
    'source', 'path', 'namespaces', 'label_selector', 'request_timeout', 'page_size', 'node_name', 'node_zone',
    'backend', 'state_path', 'drain_state_path'))


def read_cluster(params, node_name, warnings):
    """The ClusterSnapshot from the chosen source; SourceError on any failure."""
    # Imported here: a manifests run never loads the API source, and the reverse.
    if params['source'] == 'manifests':
        from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import manifests
        snapshot, _ignored = manifests.read_manifests(params['path'], node_name=node_name)
        return snapshot
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api
    connection = api.connection_options_from_params(params)
    warnings.extend(api.connection_warnings(connection))
    return api.read_cluster(connection, namespaces=params['namespaces'], label_selector=params['label_selector'],
                            node_name=node_name, need_node=not params['node_zone'] or _primary(params),
                            request_timeout=params['request_timeout'], page_size=params['page_size'])


def read_versions(node, warnings):
    """The cluster's names and resourceVersions (sources/api.read_versions), timed as
    read_versions; None for manifests or a connection that needs the kubernetes client.
    Its fingerprint() equals the whole read's while nothing changed (_k8s/converged.py).
    The connection's warnings go to warnings (read() puts them in node.warnings)."""
    params = node.params
    if params['source'] == 'manifests':
        return None
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api
    connection = api.connection_options_from_params(params)
    warnings.extend(api.connection_warnings(connection))
    with timed(node.timings, 'read_versions'):
        return api.read_versions(connection, namespaces=params['namespaces'],
                                 label_selector=params['label_selector'], node_name=node.node_name,
                                 need_node=not params['node_zone'] or _primary(params),
                                 request_timeout=params['request_timeout'], page_size=params['page_size'])


def _primary(params):
    """node_port_addresses [primary]: the Node object's addresses are needed (translate.py)."""
    return [str(value).strip() for value in params.get('node_port_addresses') or ()] == ['primary']


def fingerprint(snapshot, params):
    """A digest of what a sync is made from: every object's kind, namespace, name and
    resourceVersion, and the options. The same digest on two runs means the cluster
    asked for the same table both times (a change there would be drift on the node).
    Objects without a resourceVersion (manifests) are digested whole. Of the Node only its
    labels (the zone) and addresses (node_port_addresses primary) count: the kubelet
    rewrites the rest of its status every few seconds."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode('utf-8'))
    node = (snapshot.node or {}).get('metadata') or {}
    digest.update(json.dumps(node.get('labels') or {}, sort_keys=True).encode('utf-8'))
    status = (snapshot.node or {}).get('status')
    digest.update(json.dumps(status.get('addresses') if isinstance(status, dict) else None,
                             sort_keys=True, default=str).encode('utf-8'))
    for kind, objects in (('Service', snapshot.services), ('EndpointSlice', snapshot.endpoint_slices),
                          ('Endpoints', snapshot.endpoints)):
        keys = []
        for obj in objects:
            metadata = obj.get('metadata') or {}
            version = metadata.get('resourceVersion')
            keys.append('%s/%s/%s@%s' % (kind, metadata.get('namespace', ''), metadata.get('name', ''), version)
                        if version else json.dumps(obj, sort_keys=True, default=str))
        keys.sort()
        digest.update('\n'.join(keys).encode('utf-8'))
    return digest.hexdigest()


def with_defaults(params):
    """params with the pipeline's defaults filled in where missing or None."""
    merged = dict(DEFAULTS)
    merged.update((name, value) for name, value in params.items() if value is not None)
    return merged


def timed(timings, name):
    """with timed(timings, 'read_cluster'): ... records the step's seconds (the one clock
    of the pipeline, the engine's and the proxy's)."""
    return engine.clock(timings, name)


@dataclasses.dataclass
class Node:
    """What every step of one node's sync needs: the params with their defaults, the
    checked options, the node's name and host, the warnings so far (the connection's)
    and the steps' timings."""

    params: dict
    options: object  # options.SyncOptions
    node_name: str
    host: object  # node.host.HostNode or a double
    warnings: list = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)


def prepare(params, runner, host=None):
    """Defaults filled in, the options checked (ValidationError, before any read), the
    host (a HostNode on runner unless given)."""
    params = with_defaults(params)
    options, node_name = parse_options(params)
    return Node(params=params, options=options, node_name=node_name,
                host=host if host is not None else HostNode(runner))


def read(node):
    """The ClusterSnapshot from the node's source, timed as read_cluster."""
    with timed(node.timings, 'read_cluster'):
        return read_cluster(node.params, node.node_name, node.warnings)


def translate_only(node, snapshot):
    """Translate only (apply: false): the Translation and the desired table as
    ipvs_virtual_server's services list."""
    context = proxy.node_context(node.node_name, node.host, snapshot, node.params['node_zone'])
    return proxy.desired_table(snapshot, context, node.options)


def apply(node, snapshot, backend, want_diff=False, take_lock=True, holder='ansible netlb.ipvs.k8s_service_proxy',
          lock_path=None, lock_wait=_run_lock.MODULE_WAIT, drain_store=None, memo=None):
    """Translate, plan, guard and apply (proxy.sync) under the node's run lock
    (_run_lock.py, as holder; take_lock False: the caller holds it; never in check
    mode). Returns the proxy.SyncResult with the node's warnings first and its timings.
    drain_store: the drain state (default: the file at params drain_state_path). memo: a
    proxy.SyncMemo the caller keeps between syncs (the watcher; proxy.sync)."""
    params = node.params
    if drain_store is None:
        drain_store = DrainStore(params['drain_state_path'])
    held = backend.check_mode or not take_lock
    with contextlib.nullcontext() if held else _run_lock.held(holder, path=lock_path, wait=lock_wait):
        result = proxy.sync(snapshot, node.host, backend, node.options, StateStore(params['state_path']),
                            drain_store=drain_store, node_name=node.node_name, zone=params['node_zone'],
                            want_diff=want_diff, memo=memo)
    result.timings.update(node.timings)
    result.warnings[:0] = node.warnings
    return result


def translate(params, runner):
    """apply: false: options checked, the cluster read and translated, nothing changed.
    Returns the SyncResult (translation and the read's timing) and the desired table as
    ipvs_virtual_server's services list."""
    node = prepare(params, runner)
    snapshot = read(node)
    translation, services = translate_only(node, snapshot)
    return proxy.SyncResult(translation=translation, timings=node.timings, warnings=node.warnings), services


def run(params, runner, check_mode=False, want_diff=False, take_lock=True, holder='ansible netlb.ipvs.k8s_service_proxy'):
    """Check, read, sync. Returns the proxy.SyncResult; its warnings include the
    connection's. Nothing changed when an error is raised before the IPVS apply.
    take_lock: hold the node's run lock (_run_lock.py) for the sync, as holder;
    False when the caller holds it already (netlb-ipvs reconcile)."""
    node = prepare(params, runner)
    snapshot = read(node)
    backend = get_backend(node.params['backend'], runner=runner, check_mode=check_mode)
    result = apply(node, snapshot, backend, want_diff=want_diff, take_lock=take_lock, holder=holder)
    result.fingerprint = fingerprint(snapshot, node.params)
    return result
