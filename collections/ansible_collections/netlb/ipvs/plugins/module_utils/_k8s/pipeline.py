# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One sync of this node from k8s_service_proxy's options: check them, read the cluster,
sync (proxy.sync). The k8s_service_proxy module and the node's entry point
(netlb-ipvs reconcile) both call it, so a timer run is the module's run without Ansible.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    options, node_name = parse_options(params)            # ValidationError, before any read
    result = run(params, runner, check_mode=False)       # proxy.SyncResult, warnings on it

params: the module's parameters (a dict with every option; missing ones take the
module's defaults from DEFAULTS). Errors are the edges' own (ValidationError, SourceError,
RefusedError, ApplyError, CommandError, FileError, NodeError): the caller words them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DEFAULT_PATH as DRAIN_PATH
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import HostNode
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import parse_options
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import DEFAULT_PATH as STATE_PATH
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import StateStore
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import lock

# The defaults of the options the pipeline reads itself (parse_options applies the rest).
DEFAULTS = {
    'source': 'api',
    'path': None,
    'namespaces': [],
    'label_selector': None,
    'request_timeout': 30,
    'page_size': 500,
    'node_name': None,
    'node_zone': None,
    'backend': 'auto',
    'state_path': STATE_PATH,
    'drain_state_path': DRAIN_PATH,
}


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
                            node_name=node_name, need_node=not params['node_zone'],
                            request_timeout=params['request_timeout'], page_size=params['page_size'])


def fingerprint(snapshot, params):
    """A digest of what a sync is made from: every object's kind, namespace, name and
    resourceVersion, and the options. The same digest on two runs means the cluster
    asked for the same table both times (a change there would be drift on the node).
    Objects without a resourceVersion (manifests) are digested whole. Of the Node only its
    labels count (the zone): the kubelet rewrites its status every few seconds."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode('utf-8'))
    node = (snapshot.node or {}).get('metadata') or {}
    digest.update(json.dumps(node.get('labels') or {}, sort_keys=True).encode('utf-8'))
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


def _read(params, runner):
    """The opening both shells share: defaults, options checked (before any read), the
    node, the cluster read and timed. Returns (params, options, node_name, host, snapshot,
    read_seconds, warnings)."""
    params = with_defaults(params)
    options, node_name = parse_options(params)
    host = HostNode(runner)
    warnings = []
    started = time.perf_counter()
    snapshot = read_cluster(params, node_name, warnings)
    return params, options, node_name, host, snapshot, round(time.perf_counter() - started, 6), warnings


def translate(params, runner):
    """apply: false: options checked, the cluster read and translated, nothing changed.
    Returns the SyncResult (translation and the read's timing) and the desired table as
    ipvs_virtual_server's services list."""
    params, options, node_name, host, snapshot, read_seconds, warnings = _read(params, runner)
    context = proxy.node_context(node_name, host, snapshot, params['node_zone'])
    translation, services = proxy.desired_table(snapshot, context, options)
    result = proxy.SyncResult(translation=translation, timings={'read_cluster': read_seconds}, warnings=warnings)
    return result, services


def run(params, runner, check_mode=False, want_diff=False, take_lock=True, holder='ansible netlb.ipvs.k8s_service_proxy'):
    """Check, read, sync. Returns the proxy.SyncResult; its warnings include the
    connection's. Nothing changed when an error is raised before the IPVS apply.
    take_lock: hold the node's run lock (_reconcile/lock.py) for the sync, as holder;
    False when the caller holds it already (netlb-ipvs reconcile)."""
    params, options, node_name, host, snapshot, read_seconds, warnings = _read(params, runner)
    backend = get_backend(params['backend'], runner=runner, check_mode=check_mode)
    with contextlib.nullcontext() if check_mode or not take_lock else lock.held(holder, wait=lock.MODULE_WAIT):
        result = proxy.sync(snapshot, host, backend, options, StateStore(params['state_path']),
                            drain_store=DrainStore(params['drain_state_path']), node_name=node_name,
                            zone=params['node_zone'], want_diff=want_diff)
    result.timings['read_cluster'] = read_seconds
    result.warnings[:0] = warnings
    result.fingerprint = fingerprint(snapshot, params)
    return result
