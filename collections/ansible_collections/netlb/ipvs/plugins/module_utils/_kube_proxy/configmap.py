# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kube-proxy's settings merged into a kubeadm cluster's ConfigMap (kube-system/kube-proxy,
key config.conf), and the DaemonSet's pods restarted once.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    result = apply(options, managed, namespace='kube-system', name='kube-proxy',
                   daemonset='kube-proxy', check_mode=False)

Rules:
- merge_config is pure: the managed fields go over config.conf (dicts merged key by key,
  everything else replaced); fields it does not manage stay as they are. Unchanged
  content (compared parsed, not as text) means no write, and the text is left as it was.
- A write is a PUT of the ConfigMap with the resourceVersion that was read, so a
  concurrent edit is never overwritten: a 409 Conflict starts again from a fresh read
  (at most ATTEMPTS reads).
- The DaemonSet is read before anything is written (a missing one fails the run with
  nothing changed), and its pods are restarted once, only after a write, as
  `kubectl rollout restart` does: spec.template.metadata.annotations
  kubectl.kubernetes.io/restartedAt = now.
- Check mode reads and plans exactly as a real run and writes nothing.
- Every failure is one SourceError line naming the object, the server and why.
"""

from __future__ import annotations

import copy
import datetime

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KUBERNETES_REQUIREMENT,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.api import Api

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

CONFIG_KEY = 'config.conf'
RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt'
ATTEMPTS = 3
DEFAULT_REQUEST_TIMEOUT = 30


def merge(current, managed):
    """current with managed laid over it: dicts key by key, other values replaced."""
    if not isinstance(current, dict) or not isinstance(managed, dict):
        return copy.deepcopy(managed)
    result = copy.deepcopy(current)
    for key, value in managed.items():
        result[key] = merge(current.get(key), value)
    return result


def dump(document):
    """config.conf text as kubeadm writes it (sorted keys, block style)."""
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=True, allow_unicode=True)


def merge_config(text, managed, where='config.conf'):
    """(changed, after text) for config.conf text with the managed fields merged in.

    Raises SourceError when the text is not a KubeProxyConfiguration this can merge into.
    """
    try:
        current = yaml.safe_load(text) if text and text.strip() else {}
    except yaml.YAMLError as err:
        raise SourceError('%s is not valid YAML: %s' % (where, ' '.join(str(err).split())))
    if not isinstance(current, dict):
        raise SourceError('%s is not a YAML mapping (a KubeProxyConfiguration)' % where)
    for key in ('apiVersion', 'kind'):
        if current.get(key) not in (None, managed.get(key)):
            raise SourceError('%s has %s %s; this writes %s %s and will not merge into another one'
                              % (where, key, current.get(key), key, managed.get(key)))
    after = merge(current, managed)
    if after == current:
        return False, text
    return True, dump(after)


def apply(options, managed, namespace='kube-system', name='kube-proxy', daemonset='kube-proxy', check_mode=False,
          request_timeout=DEFAULT_REQUEST_TIMEOUT, now=None):
    """Merge managed into the ConfigMap's config.conf, write it if it changed, restart the
    DaemonSet's pods once after a write (daemonset None: no restart).

    Returns {changed, restarted, diff, resource_version, attempts}; diff: a DiffTracker
    holding the config.conf texts before and after. Raises SourceError.
    """
    if not HAS_KUBERNETES:
        raise SourceError('the Kubernetes API needs the Python library %s: %s'
                          % (KUBERNETES_REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    if not HAS_YAML:
        raise SourceError('merging config.conf needs PyYAML (Debian: python3-yaml)')
    api = Api(options, request_timeout)
    configmap_name = 'ConfigMap %s/%s' % (namespace, name)
    try:
        if daemonset:
            api.call('reading DaemonSet %s/%s' % (namespace, daemonset), api.apps.read_namespaced_daemon_set,
                     name=daemonset, namespace=namespace)
        for attempt in range(1, ATTEMPTS + 1):
            configmap = api.call('reading ' + configmap_name, api.core.read_namespaced_config_map,
                                 name=name, namespace=namespace)
            data = configmap.get('data') or {}
            if CONFIG_KEY not in data:
                raise SourceError('%s has no %s key (is this a kubeadm cluster?)' % (configmap_name, CONFIG_KEY))
            before = data[CONFIG_KEY]
            changed, after = merge_config(before, managed, where='%s %s' % (configmap_name, CONFIG_KEY))
            version = configmap.get('metadata', {}).get('resourceVersion')
            diff = DiffTracker()
            diff.add_text('%s/%s %s' % (namespace, name, CONFIG_KEY), before, after)
            result = {'changed': changed, 'restarted': False, 'diff': diff, 'resource_version': version,
                      'attempts': attempt}
            if not changed or check_mode:
                result['restarted'] = bool(changed and daemonset)  # what a real run would do
                return result
            body = copy.deepcopy(configmap)
            body['data'][CONFIG_KEY] = after  # metadata.resourceVersion stays: the server refuses a stale one
            written = api.call('writing ' + configmap_name, api.core.replace_namespaced_config_map, accept=(409,),
                               name=name, namespace=namespace, body=body)
            if written is None:
                continue  # 409: someone else wrote in between; start again from their version
            result['resource_version'] = written.get('metadata', {}).get('resourceVersion')
            if daemonset:
                stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime('%Y-%m-%dT%H:%M:%SZ')
                patch = {'spec': {'template': {'metadata': {'annotations': {RESTARTED_AT: stamp}}}}}
                api.patch_daemonset('restarting the pods of DaemonSet %s/%s' % (namespace, daemonset),
                                    daemonset, namespace, patch)
                result['restarted'] = True
            return result
        raise SourceError('writing %s: 409 Conflict %d times in a row (the ConfigMap keeps changing under us); '
                          'nothing was written' % (configmap_name, ATTEMPTS))
    finally:
        api.close()
