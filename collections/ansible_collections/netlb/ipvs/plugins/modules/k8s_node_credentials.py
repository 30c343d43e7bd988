#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: k8s_node_credentials
short_description: A ServiceAccount bound to system:node-proxier, a bound token for it, and a node's kubeconfig
version_added: 0.3.0
description:
  - Gives a node what kube-proxy has, for M(netlb.ipvs.k8s_service_proxy) with O(netlb.ipvs.k8s_service_proxy#module:source=api)
    read access to Services, EndpointSlices and Nodes, nothing more.
  - Makes the ServiceAccount O(service_account) in O(namespace) and the ClusterRoleBinding O(binding) to the built-in
    ClusterRole O(cluster_role) when they are missing, and adds the ServiceAccount to the binding's subjects when it
    is not there. Nothing is written when both exist as wanted.
  - Asks the TokenRequest API for a bound token of O(token_lifetime) seconds only when the node's current
    kubeconfig (O(current_kubeconfig)) cannot be kept - none yet, another server, CA or ServiceAccount, a
    ServiceAccount re-created since, less than O(renew_before) seconds left, or O(rotate=true). Otherwise the same
    kubeconfig text is returned, so writing it to the node changes nothing.
  - Returns the kubeconfig's text (the API server's URL, its CA, the token); the caller writes it to the node
    root-owned with mode C(0600) - see the playbook C(playbooks/k8s-credentials.yml).
  - The result holds a credential, and so does O(current_kubeconfig) in its invocation, so the module's action plugin
    hides a successful result from the output as C(no_log) would, whatever the task says; the registered variable
    holds all of it. A failed result is shown without its invocation (its message names no credential). C(async)
    is refused (its status would show the result). Keep C(no_log) on the task that writes RV(kubeconfig).
  - O(kubeconfig) is C(no_log); of a kubeconfig given as a dict only its credentials (tokens, passwords, client
    keys) are masked in the output.
  - Runs where the admin connection is, usually the controller (C(delegate_to=localhost)), once per node.
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
    description: Reads what a real run reads and writes nothing; no token is requested and RV(kubeconfig) is then
      O(current_kubeconfig).
  diff_mode:
    support: none
    description: The kubeconfig holds a credential; the task that writes it to the node shows whether it changed.
  idempotent:
    support: full
    description: A second run with the node's kubeconfig as O(current_kubeconfig) sends no write request and returns
      the same kubeconfig, until the token is within O(renew_before) of its expiry.
options:
  current_kubeconfig:
    description:
      - The text of the node's current kubeconfig (for example slurped from the node), empty when there is none.
    type: str
    default: ''
  service_account:
    description: The ServiceAccount's name.
    type: str
    default: netlb-ipvs
  namespace:
    description: The ServiceAccount's namespace.
    type: str
    default: kube-system
  cluster_role:
    description: The ClusterRole bound; the built-in C(system:node-proxier) is what kube-proxy itself gets.
    type: str
    default: system:node-proxier
  binding:
    description: The ClusterRoleBinding's name.
    type: str
    default: netlb-ipvs
  token_lifetime:
    description:
      - Seconds a requested token is valid (TokenRequest C(expirationSeconds); at least 600). The API server may
        cap it (C(--service-account-max-token-expiration)); keep O(renew_before) below that cap.
    type: int
    default: 7776000
  renew_before:
    description: A token with fewer seconds than this left is replaced by a new one.
    type: int
    default: 2592000
  rotate:
    description: Request a new token whatever the current one (rotation; the old one stays valid until it expires).
    type: bool
    default: false
  server:
    description:
      - The API server's URL as the node reaches it, written into the kubeconfig. Default - the URL this connects to.
    type: str
  name:
    description: The name of the cluster, user and context in the kubeconfig.
    type: str
    default: netlb-ipvs
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
- name: Read the node's current kubeconfig
  ansible.builtin.slurp:
    path: /etc/netlb-ipvs/kubeconfig
  register: current
  failed_when: false

- name: Credentials for this node
  netlb.ipvs.k8s_node_credentials:
    current_kubeconfig: "{{ current.content | default('') | b64decode }}"
    server: https://192.0.2.10:6443
    kubeconfig: ~/.kube/admin.conf
  delegate_to: localhost
  become: false
  no_log: true
  register: credentials

- name: Write the node's kubeconfig
  ansible.builtin.copy:
    content: "{{ credentials.kubeconfig }}"
    dest: /etc/netlb-ipvs/kubeconfig
    owner: root
    group: root
    mode: '0600'
  no_log: true
'''

RETURN = r'''
kubeconfig:
  description:
    - The node's kubeconfig text (the same text as O(current_kubeconfig) when its token is kept).
    - Not shown in the output (the whole successful result is hidden); in the registered variable.
  returned: always
  type: str
created:
  description: The objects created (in check mode - that would be).
  returned: always
  type: list
  elements: str
  sample: [ServiceAccount kube-system/netlb-ipvs, ClusterRoleBinding netlb-ipvs]
updated:
  description: The objects changed (the binding, when the ServiceAccount was added to its subjects).
  returned: always
  type: list
  elements: str
token_requested:
  description: Whether a new token was requested (in check mode - would be).
  returned: always
  type: bool
reason:
  description: Why a new token was needed, or null when the current one is kept.
  returned: always
  type: str
  sample: the current token expires in 86400 s (renew_before 2592000 s)
expires:
  description: When the token in RV(kubeconfig) expires (UTC), null in check mode when a token would be requested.
  returned: always
  type: str
  sample: '2027-02-27T14:00:00Z'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import credentials, names, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC, module_connection

ARGUMENT_SPEC = dict(
    AUTH_ARG_SPEC,
    current_kubeconfig=dict(type='str', default='', no_log=False),
    service_account=dict(type='str', default='netlb-ipvs'),
    namespace=dict(type='str', default='kube-system'),
    cluster_role=dict(type='str', default='system:node-proxier'),
    binding=dict(type='str', default='netlb-ipvs'),
    token_lifetime=dict(type='int', default=7776000, no_log=False),
    renew_before=dict(type='int', default=2592000),
    rotate=dict(type='bool', default=False),
    server=dict(type='str'),
    name=dict(type='str', default='netlb-ipvs'),
    request_timeout=dict(type='int', default=30),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    # Every input problem at once, before the first request (the ServiceAccount would be
    # made before a bad binding name is refused).
    problems = names.problems([('service_account', names.NAME, params['service_account']),
                               ('namespace', names.NAMESPACE, params['namespace']),
                               ('cluster_role', names.ROLE, params['cluster_role']),
                               ('binding', names.NAME, params['binding']),
                               ('server', names.URL, params['server'])])
    if not params['name']:
        problems.append("name: '' is empty: the kubeconfig's cluster, user and context need a name")
    problems += request_bounds.request_problems(params)
    if problems:
        module.fail_json(msg='invalid parameters: %s' % '; '.join(problems), problems=problems)
    options = module_connection(module)
    wanted = credentials.Wanted(
        service_account=params['service_account'], namespace=params['namespace'], cluster_role=params['cluster_role'],
        binding=params['binding'], expiration_seconds=params['token_lifetime'], renew_before=params['renew_before'],
        rotate=params['rotate'], server=params['server'], user=params['name'])
    try:
        result = credentials.ensure(options, wanted, current_kubeconfig=params['current_kubeconfig'],
                                    check_mode=module.check_mode, request_timeout=params['request_timeout'])
    except SourceError as err:
        module.fail_json(msg=str(err))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
