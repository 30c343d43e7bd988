# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kubeadm hand-over: kube-proxy's DaemonSet kept off handed-over nodes by a node label,
not by deleting it.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    result = apply(options, nodes=['node-1'], namespace='kube-system', daemonset='kube-proxy',
                   label=LABEL, check_mode=False)

Rules:
- The DaemonSet's pod template gets, once, a required node affinity
  `<label> NotIn [absent]`, added to every nodeSelectorTerm it already has (terms are ORed,
  expressions in a term ANDed: adding it to each keeps every existing constraint and adds
  ours). nodeSelector, preferred affinity and everything else stay. Once it is there,
  nothing is written: handing over more nodes only labels them.
- The affinity is written by a JSON merge patch carrying the resourceVersion read (a 409
  starts again from a fresh read, at most ATTEMPTS reads), as configmap.py writes the ConfigMap.
- Each node gets the label <label>=absent by a merge patch of metadata.labels, only when it
  does not have it already.
- Every object is read before anything is written: a missing DaemonSet or node fails the run
  with nothing changed.
- Check mode reads and plans as a real run and writes nothing.
- restore() is the way back (kube_proxy_state=present): the label is removed from the nodes
  that carry it (a merge patch with the label null), so the DaemonSet schedules kube-proxy
  there again. The affinity stays: it keeps off labelled nodes only. A node the API does not
  know has no label to remove and is skipped.
"""

from __future__ import annotations

import copy
import json

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.api import Api
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.configmap import ATTEMPTS, DEFAULT_REQUEST_TIMEOUT

LABEL = 'netlb.io/kube-proxy'
ABSENT = 'absent'


def expression(label=LABEL):
    """The matchExpression that keeps the DaemonSet's pods off handed-over nodes."""
    return {'key': label, 'operator': 'NotIn', 'values': [ABSENT]}


def with_affinity(template_spec, label=LABEL):
    """(changed, pod spec) with our expression in every required nodeSelectorTerm (pure)."""
    spec = copy.deepcopy(template_spec or {})
    ours = expression(label)
    required = (spec.setdefault('affinity', {}).setdefault('nodeAffinity', {})
                .setdefault('requiredDuringSchedulingIgnoredDuringExecution', {}))
    terms = required.get('nodeSelectorTerms') or []
    if not terms:
        required['nodeSelectorTerms'] = [{'matchExpressions': [ours]}]
        return True, spec
    changed = False
    for term in terms:
        expressions = term.setdefault('matchExpressions', [])
        if ours not in expressions:
            expressions.append(copy.deepcopy(ours))
            changed = True
    return changed, spec


def affinity_text(template_spec):
    """The pod template's affinity as YAML-ish JSON text, for the diff."""
    return json.dumps((template_spec or {}).get('affinity') or {}, indent=2, sort_keys=True) + '\n'


def apply(options, nodes=(), namespace='kube-system', daemonset='kube-proxy', label=LABEL, check_mode=False,
          request_timeout=DEFAULT_REQUEST_TIMEOUT):
    """Put the affinity on the DaemonSet (daemonset None: leave it) and label the nodes.

    Returns {changed, daemonset_changed, labelled (node names written or to write),
    diff (a DiffTracker: the affinity texts before and after), attempts}. Raises SourceError.
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    api = Api(options, request_timeout)
    ds_name = 'DaemonSet %s/%s' % (namespace, daemonset)
    result = {'changed': False, 'daemonset_changed': False, 'labelled': [], 'attempts': 0}
    texts = ['', '']  # the affinity before and after
    try:
        # Read everything first: a missing node fails before the DaemonSet is touched.
        to_label = []
        for node in nodes:
            current = api.call('reading Node %s' % node, api.core.read_node, name=node)
            if ((current.get('metadata') or {}).get('labels') or {}).get(label) != ABSENT:
                to_label.append(node)
        if daemonset:
            for attempt in range(1, ATTEMPTS + 1):
                result['attempts'] = attempt
                current = api.call('reading ' + ds_name, api.apps.read_namespaced_daemon_set,
                                   name=daemonset, namespace=namespace)
                template_spec = ((current.get('spec') or {}).get('template') or {}).get('spec') or {}
                changed, after = with_affinity(template_spec, label)
                result['daemonset_changed'] = changed
                texts = [affinity_text(template_spec), affinity_text(after)]
                if not changed or check_mode:
                    break
                # A JSON merge patch of the whole affinity (its lists replaced as computed, the
                # rest of the object untouched - no full PUT a typed client might refuse), with
                # the resourceVersion read as a precondition: a stale one gets 409.
                body = {'metadata': {'resourceVersion': (current.get('metadata') or {}).get('resourceVersion')},
                        'spec': {'template': {'spec': {'affinity': after['affinity']}}}}
                written = api.patch_daemonset('writing the node affinity of ' + ds_name, daemonset, namespace, body,
                                              content_type='application/merge-patch+json', conflict_ok=True)
                if written is not None:
                    break
            else:
                raise SourceError('writing the node affinity of %s: 409 Conflict %d times in a row; nothing was '
                                  'written' % (ds_name, ATTEMPTS))
        for node in to_label:
            if not check_mode:
                api.patch_node('labelling Node %s %s=%s' % (node, label, ABSENT), node,
                               {'metadata': {'labels': {label: ABSENT}}})
            result['labelled'].append(node)
        result['changed'] = result['daemonset_changed'] or bool(result['labelled'])
        result['diff'] = DiffTracker()
        result['diff'].add_text('DaemonSet %s/%s affinity' % (namespace, daemonset or ''), *texts)
        return result
    finally:
        api.close()


def restore(options, nodes=(), label=LABEL, check_mode=False, request_timeout=DEFAULT_REQUEST_TIMEOUT):
    """Remove <label> from the nodes that carry it (the DaemonSet is neither read nor changed).

    Returns apply()'s keys (daemonset_changed False, labelled [], attempts 0; diff: the
    '<node> <label>=<value>' lines of the nodes to unlabel before, and none after), plus unlabelled
    (node names written or to write) and missing (not in the API). Raises SourceError.
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    api = Api(options, request_timeout)
    result = {'changed': False, 'daemonset_changed': False, 'labelled': [], 'unlabelled': [], 'missing': [],
              'attempts': 0}
    labelled = []  # '<node> <label>=<value>' lines
    try:
        for node in nodes:
            current = api.call('reading Node %s' % node, api.core.read_node, accept=(404,), name=node)
            labels = ((current or {}).get('metadata') or {}).get('labels') or {}
            if current is None:
                result['missing'].append(node)
            elif label in labels:
                result['unlabelled'].append(node)
                labelled.append('%s %s=%s\n' % (node, label, labels[label]))
        for node in result['unlabelled']:
            if not check_mode:
                # A JSON merge patch: null removes the key, the other labels stay.
                api.patch_node('removing label %s from Node %s' % (label, node), node,
                               {'metadata': {'labels': {label: None}}})
        result['changed'] = bool(result['unlabelled'])
        result['diff'] = DiffTracker()
        result['diff'].add_text('Node labels %s' % label, ''.join(labelled), '')
        return result
    finally:
        api.close()
