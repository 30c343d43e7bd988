#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: k8s_kube_proxy_handover
short_description: Keep kubeadm's kube-proxy DaemonSet off handed-over nodes with a node label
version_added: 0.3.0
description:
  - The kubeadm side of the hand-over to M(netlb.ipvs.k8s_service_proxy) - kube-proxy's DaemonSet is kept, and
    its pods stay off the nodes labelled O(label)C(=absent).
  - Gives the pod template of O(daemonset), once, a required node affinity O(label) C(NotIn [absent]), added to
    every C(nodeSelectorTerm) it already has; its C(nodeSelector) and other affinities stay. This change restarts
    kube-proxy's pods on every node once (a DaemonSet rolling update). Once it is there, nothing is written to the
    DaemonSet.
  - Labels each of O(nodes) with O(label)C(=absent) (only those without it); the DaemonSet controller then
    removes kube-proxy's pod from them. The IPVS table and addresses kube-proxy leaves stay in the kernel.
  - Writes the affinity with the C(resourceVersion) it read (a 409 Conflict starts again from a fresh read). Every
    node and the DaemonSet are read before anything is written; a missing one fails the task with nothing
    changed.
  - The way back for a node is to remove its label - O(state=restored) (or C(kubectl label node NAME
    netlb.io/kube-proxy-)); the DaemonSet then runs kube-proxy there again. The affinity stays (it only keeps kube-proxy
    off labelled nodes); a node the API does not know is skipped.
  - Usually called by the C(kube_proxy) role (C(kube_proxy_deploy=configmap); C(kube_proxy_state=absent) hands over,
    C(kube_proxy_state=present) restores).
extends_documentation_fragment:
  - netlb.ipvs.k8s_auth
author:
  - netlb.ipvs developers (@netlb)
requirements:
  - The Python C(kubernetes) client (Debian package C(python3-kubernetes)).
attributes:
  check_mode:
    support: full
    description: Reads the DaemonSet and the nodes, plans as a real run would, and writes nothing.
  diff_mode:
    support: full
    description: Shows the pod template's affinity before and after (O(state=restored) - the labels removed).
  idempotent:
    support: full
    description: A second run writes nothing.
options:
  state:
    description:
      - V(handed_over) - the DaemonSet's affinity and the label on O(nodes).
      - V(restored) - the label removed from O(nodes) that carry it; O(daemonset) is neither read nor changed.
    type: str
    choices: [handed_over, restored]
    default: handed_over
  nodes:
    description: The names of the Node objects to label (handed over) or unlabel (restored). Empty - only the
      DaemonSet's affinity.
    type: list
    elements: str
    default: []
  namespace:
    description: The DaemonSet's namespace.
    type: str
    default: kube-system
  daemonset:
    description: The kube-proxy DaemonSet. Empty - the DaemonSet is neither read nor changed, only nodes labelled.
    type: str
    default: kube-proxy
  label:
    description: The node label key; handed-over nodes carry it with the value C(absent).
    type: str
    default: netlb.io/kube-proxy
  request_timeout:
    description:
      - Seconds each API request may take in all - connecting, sending and the whole answer - 1 to 3600. An answer
        is also refused past 256 MiB.
    type: int
    default: 30
seealso:
  - module: netlb.ipvs.k8s_kube_proxy_configmap
  - module: netlb.ipvs.k8s_service_proxy
'''

EXAMPLES = r'''
- name: Let kube-proxy's DaemonSet run on node-1 again
  netlb.ipvs.k8s_kube_proxy_handover:
    state: restored
    nodes: [node-1]
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: localhost

- name: Keep kube-proxy's pods off node-1 (the affinity is written on the first run only)
  netlb.ipvs.k8s_kube_proxy_handover:
    nodes: [node-1]
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: localhost
'''

RETURN = r'''
daemonset_changed:
  description: Whether the DaemonSet's affinity was written (in check mode - whether it would be).
  returned: always
  type: bool
labelled:
  description: The nodes that got the label (in check mode - that would get it).
  returned: always
  type: list
  elements: str
unlabelled:
  description: O(state=restored) - the nodes whose label was removed (in check mode - would be).
  returned: always
  type: list
  elements: str
attempts:
  description: How many reads of the DaemonSet it took (more than 1 after a 409 Conflict; 0 without O(daemonset)).
  returned: always
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import names, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC, module_connection
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import handover

ARGUMENT_SPEC = dict(
    AUTH_ARG_SPEC,
    state=dict(type='str', choices=['handed_over', 'restored'], default='handed_over'),
    nodes=dict(type='list', elements='str', default=[]),
    namespace=dict(type='str', default='kube-system'),
    daemonset=dict(type='str', default='kube-proxy'),
    label=dict(type='str', default=handover.LABEL),
    request_timeout=dict(type='int', default=30),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    # Every input problem at once, before the first request.
    problems = (names.problems([('nodes[%d]' % index, names.NAME, node) for index, node in enumerate(params['nodes'])]
                               + [('namespace', names.NAMESPACE, params['namespace']),
                                  ('daemonset', names.NAME, params['daemonset'] or None),
                                  ('label', names.LABEL_KEY, params['label'])])
                + request_bounds.request_problems(params))
    if problems:
        module.fail_json(msg='invalid parameters: %s' % '; '.join(problems), problems=problems)
    options = module_connection(module)
    try:
        if params['state'] == 'restored':
            result = handover.restore(options, nodes=params['nodes'], label=params['label'],
                                      check_mode=module.check_mode, request_timeout=params['request_timeout'])
        else:
            result = handover.apply(options, nodes=params['nodes'], namespace=params['namespace'],
                                    daemonset=params['daemonset'] or None, label=params['label'],
                                    check_mode=module.check_mode, request_timeout=params['request_timeout'])
    except SourceError as err:
        module.fail_json(msg=str(err))
    for node in result.get('missing', ()):
        module.warn('Node %s is not in the cluster: no label to remove' % node)
    module.exit_json(changed=result['changed'], daemonset_changed=result['daemonset_changed'],
                     labelled=result['labelled'], unlabelled=result.get('unlabelled', []), attempts=result['attempts'],
                     **({'diff': result['diff'].diff()} if module._diff else {}))


if __name__ == '__main__':
    main()
