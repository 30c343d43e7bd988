#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: k8s_kube_proxy_leftovers
short_description: Remove kube-proxy's iptables chains, ipsets and nftables tables once k8s_service_proxy has converged
version_added: 0.3.0
description:
  - The last, explicit step of the hand-over from kube-proxy to M(netlb.ipvs.k8s_service_proxy). Removes what
    kube-proxy (IPVS mode, and iptables, nftables or userspace mode from earlier in the node's life) leaves behind
    - its iptables chains (nat C(KUBE-SERVICES), C(KUBE-POSTROUTING), C(KUBE-NODE-PORT), C(KUBE-LOAD-BALANCER),
    C(KUBE-MARK-MASQ), C(KUBE-NODEPORTS), C(KUBE-SVC-*), C(KUBE-SEP-*), C(KUBE-EXT-*), C(KUBE-FW-*), C(KUBE-SVL-*),
    C(KUBE-XLB-*), ...; filter C(KUBE-FORWARD), C(KUBE-NODE-PORT), C(KUBE-PROXY-FIREWALL),
    C(KUBE-SOURCE-RANGES-FIREWALL), C(KUBE-IPVS-FILTER), C(KUBE-IPVS-OUT-FILTER), ...; the C(KUBE-PROXY-CANARY)
    chains) with the jumps to them from the built-in chains, its ipsets (C(KUBE-CLUSTER-IP), C(KUBE-LOOP-BACK),
    C(KUBE-NODE-PORT-TCP), ... and their C(KUBE-6-) IPv6 twins), and the tables C(ip kube-proxy) and
    C(ip6 kube-proxy).
  - Only those exact names. kubelet's chains (C(KUBE-KUBELET-CANARY), C(KUBE-IPTABLES-HINT), C(KUBE-MARK-DROP),
    filter C(KUBE-FIREWALL)), other programs' C(KUBE-) chains and sets (kube-router), the IPVS table and
    C(kube-ipvs0) are never touched (C(kube-proxy --cleanup) would flush IPVS, which is why it is not used).
  - Refuses while a kube-proxy process runs on the node, and unless M(netlb.ipvs.k8s_service_proxy) has converged
    here - its state file (O(state_path)) exists and names at least one virtual service, its nftables table
    C(inet netlb_ipvs) is loaded, and every virtual service of the state file is in the kernel's IPVS table.
    O(force=true) skips the second check, never the first.
  - A chain of kube-proxy's that a chain which stays still jumps to stays too (with what it jumps to), as does a set
    a rule that stays matches; each is a warning.
  - Runs one C(iptables-restore --noflush) per iptables backend (nft, legacy) and family that has something to
    remove, one C(ipset restore) and one C(nft -f -). Then reads again and fails if anything is left.
  - A missing C(iptables-save), C(ipset) or C(nft) is fine when the kernel shows nothing it would read; otherwise
    the task fails naming the package to install.
author:
  - netlb.ipvs developers (@netlb)
attributes:
  check_mode:
    support: full
    description: Runs the same checks and reads, plans as a real run would, and removes nothing.
  diff_mode:
    support: full
    description: Lists kube-proxy's leftovers found before, and those that stay after.
  idempotent:
    support: full
    description: A second run finds nothing to remove and reports no change.
options:
  keep_forward:
    description:
      - Whether the filter chain C(KUBE-FORWARD) and its jump from C(FORWARD) stay. Its C(RELATED,ESTABLISHED) accept
        may be what lets replies of IPVS services and pod traffic through a C(FORWARD) chain whose policy is C(DROP)
        (Docker sets it so), and M(netlb.ipvs.k8s_service_proxy) adds no forward rules.
      - V(auto) keeps it, with a warning, when the filter C(FORWARD) policy is C(DROP), and removes it otherwise.
    type: str
    choices: [auto, always, never]
    default: auto
  state_path:
    description: The state file of M(netlb.ipvs.k8s_service_proxy) on the node (its O(netlb.ipvs.k8s_service_proxy#module:state_path)).
    type: path
    default: /var/lib/netlb-ipvs/k8s-service-proxy.json
  force:
    description: Remove them without the evidence that M(netlb.ipvs.k8s_service_proxy) converged (a node leaving
      Kubernetes). A running kube-proxy is refused all the same.
    type: bool
    default: false
seealso:
  - module: netlb.ipvs.k8s_service_proxy
  - module: netlb.ipvs.k8s_kube_proxy_handover
'''

EXAMPLES = r'''
- name: Remove kube-proxy's iptables rules and ipsets after the hand-over
  netlb.ipvs.k8s_kube_proxy_leftovers:
  become: true

- name: See what would go, without removing it
  netlb.ipvs.k8s_kube_proxy_leftovers:
  check_mode: true
  diff: true
  become: true
'''

RETURN = r'''
removed:
  description: What was removed (in check mode - what would be).
  returned: always
  type: dict
  contains:
    iptables:
      description: Per backend, family and table, each jump rule deleted from a built-in chain and each chain deleted.
      type: list
      elements: str
      sample: ["iptables-nft nat: -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
               "iptables-nft nat: chain KUBE-SERVICES"]
    ipsets:
      description: The ipsets destroyed.
      type: list
      elements: str
      sample: [KUBE-CLUSTER-IP, KUBE-LOOP-BACK]
    nft_tables:
      description: The nftables tables deleted.
      type: list
      elements: str
      sample: [ip kube-proxy]
kept:
  description: kube-proxy's chains and sets that stay, each with why.
  returned: always
  type: list
  elements: str
  sample: ["iptables-nft filter: chain KUBE-FORWARD: the filter FORWARD policy is DROP: ..."]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils import _gc
from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers import (
    KEEP_FORWARD_CHOICES,
    LeftoversError,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers_node import Node, Options, remove
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import DEFAULT_PATH

ARGUMENT_SPEC = dict(
    keep_forward=dict(type='str', choices=list(KEEP_FORWARD_CHOICES), default='auto'),
    state_path=dict(type='path', default=DEFAULT_PATH),
    force=dict(type='bool', default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if not os.path.isabs(params['state_path']):
        module.fail_json(msg='invalid parameters: state_path: %r is not an absolute path' % params['state_path'],
                         problems=['state_path: %r is not an absolute path' % params['state_path']])
    options = Options(state_path=params['state_path'], keep_forward=params['keep_forward'], force=params['force'])
    try:
        # kube-proxy's whole IPVS table is read: no collector passes while it is built (see _gc).
        with _gc.paused():
            result = remove(Node(Runner(module)), options, check_mode=module.check_mode)
    except LeftoversError as exc:
        module.fail_json(msg=str(exc))
    for warning in result['warnings']:
        module.warn(warning)
    module.exit_json(changed=result['changed'], removed=result['removed'], kept=result['kept'],
                     **({'diff': result['diff'].diff()} if module._diff else {}))


if __name__ == '__main__':
    main()
