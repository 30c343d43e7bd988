#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: k8s_kube_proxy_configmap
short_description: Merge settings into kubeadm's kube-proxy ConfigMap and restart its pods once
version_added: 0.3.0
description:
  - Reads the ConfigMap that holds kube-proxy's configuration in a kubeadm cluster (C(kube-system/kube-proxy),
    key C(config.conf)), merges O(config) into it - dicts key by key, other values replaced - and keeps every
    field it does not set.
  - Writes the ConfigMap back only when the merged configuration differs from what was read (compared as data,
    not as text), with the C(resourceVersion) it read, so a concurrent edit is never lost; a 409 Conflict starts
    again from a fresh read.
  - kube-proxy reads its configuration only at start and a changed ConfigMap does not restart its pods, so after
    a write the pods of O(daemonset) are restarted once, as C(kubectl rollout restart) does (the
    C(kubectl.kubernetes.io/restartedAt) annotation of the pod template).
  - The DaemonSet is read before anything is written; a missing one fails the task with nothing changed.
  - Usually called by the C(kube_proxy) role (C(kube_proxy_deploy=configmap)) with the output of the
    P(netlb.ipvs.kube_proxy_config#filter) filter, once per cluster, from the controller.
extends_documentation_fragment:
  - netlb.ipvs.k8s_auth
author:
  - netlb.ipvs developers (@netlb)
requirements:
  - The Python C(kubernetes) client (Debian package C(python3-kubernetes)).
  - PyYAML.
attributes:
  check_mode:
    support: full
    description: Reads the ConfigMap and the DaemonSet, merges as a real run would, and writes nothing.
  diff_mode:
    support: full
    description: Shows C(config.conf) before and after.
  idempotent:
    support: full
    description: A second run with the same O(config) writes nothing and restarts nothing.
options:
  config:
    description:
      - The managed fields of the C(KubeProxyConfiguration), e.g. C(kube_proxy_rendered.config) from the
        P(netlb.ipvs.kube_proxy_config#filter) filter. Its C(apiVersion) and C(kind) must match those in the
        ConfigMap (when it has them).
    type: dict
    required: true
  namespace:
    description: The namespace of the ConfigMap and the DaemonSet.
    type: str
    default: kube-system
  name:
    description: The ConfigMap's name.
    type: str
    default: kube-proxy
  daemonset:
    description: The DaemonSet whose pods are restarted after a write. Empty - no restart.
    type: str
    default: kube-proxy
  request_timeout:
    description:
      - Seconds each API request may take in all - connecting, sending and the whole answer - 1 to 3600. An answer
        is also refused past 256 MiB.
    type: int
    default: 30
seealso:
  - module: netlb.ipvs.k8s_service_proxy
'''

EXAMPLES = r'''
- name: Strict ARP and ipvs mode in kubeadm's kube-proxy configuration, pods restarted once
  netlb.ipvs.k8s_kube_proxy_configmap:
    config:
      apiVersion: kubeproxy.config.k8s.io/v1alpha1
      kind: KubeProxyConfiguration
      mode: ipvs
      ipvs:
        strictARP: true
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
restarted:
  description: Whether the DaemonSet's pods were restarted (in check mode - whether they would be).
  returned: always
  type: bool
resource_version:
  description: The ConfigMap's C(resourceVersion) after the run.
  returned: always
  type: str
attempts:
  description: How many reads it took (more than 1 after a 409 Conflict).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import names, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC, module_connection
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import configmap
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import config_problems

ARGUMENT_SPEC = dict(
    AUTH_ARG_SPEC,
    config=dict(type='dict', required=True),
    namespace=dict(type='str', default='kube-system'),
    name=dict(type='str', default='kube-proxy'),
    daemonset=dict(type='str', default='kube-proxy'),
    request_timeout=dict(type='int', default=30),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    # Every input problem at once, before the first request.
    problems = (names.problems([('namespace', names.NAMESPACE, params['namespace']),
                                ('name', names.NAME, params['name']),
                                ('daemonset', names.NAME, params['daemonset'] or None)])
                + config_problems(params['config']) + request_bounds.request_problems(params))
    if problems:
        module.fail_json(msg='invalid parameters: %s' % '; '.join(problems), problems=problems)
    options = module_connection(module)
    try:
        result = configmap.apply(options, params['config'], namespace=params['namespace'], name=params['name'],
                                 daemonset=params['daemonset'] or None, check_mode=module.check_mode,
                                 request_timeout=params['request_timeout'])
    except SourceError as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=result['changed'], restarted=result['restarted'],
                     resource_version=result['resource_version'], attempts=result['attempts'],
                     **({'diff': result['diff'].diff()} if module._diff else {}))


if __name__ == '__main__':
    main()
