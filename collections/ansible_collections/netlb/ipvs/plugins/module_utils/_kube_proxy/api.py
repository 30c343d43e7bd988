# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Kubernetes API calls of kube-proxy's objects: its ConfigMap, its DaemonSet, the
nodes. Shared by configmap.py (the kubeadm ConfigMap) and handover.py (the node label
and the DaemonSet's affinity).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.connection import ApiCalls

try:
    import kubernetes
except ImportError:  # connection.HAS_KUBERNETES says so; callers refuse to run without it
    pass


class Api(ApiCalls):
    """The ConfigMap, DaemonSet and Node calls (connection.ApiCalls: one client, errors as
    SourceError lines)."""

    def __init__(self, options, request_timeout):
        super(Api, self).__init__(options, request_timeout)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)

    def patch_daemonset(self, what, name, namespace, body, content_type='application/strategic-merge-patch+json',
                        conflict_ok=False):
        # Newer clients pick the first JSON content type (json-patch, which needs a list)
        # unless told; older ones have no _content_type and send a merge patch for a dict.
        try:
            return self.call(what, self.apps.patch_namespaced_daemon_set, accept=(409,) if conflict_ok else (), name=name,
                             namespace=namespace, body=body, _content_type=content_type)
        except TypeError:
            return self.call(what, self.apps.patch_namespaced_daemon_set, accept=(409,) if conflict_ok else (), name=name,
                             namespace=namespace, body=body)

    def patch_node(self, what, name, body):
        # A JSON merge patch: labels is a map, so this adds one label and keeps the others.
        try:
            return self.call(what, self.core.patch_node, name=name, body=body,
                             _content_type='application/merge-patch+json')
        except TypeError:
            return self.call(what, self.core.patch_node, name=name, body=body)
