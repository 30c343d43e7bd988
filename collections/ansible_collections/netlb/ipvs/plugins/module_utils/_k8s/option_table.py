# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_service_proxy's options as data: each one's name, type, default and choices,
written here once.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Everything else reads these values: the module's argument spec (argument_spec()), the
records' defaults (cluster.ProxyOptions, options.SyncOptions), the pipeline's DEFAULTS,
the state paths; unit tests hold the module's DOCUMENTATION, the playbooks' options and
the roles' defaults equal to it, and refuse a second literal in the records. (The drain
state's path is ipvs_virtual_server's option too: written once in _ipvs/drain_state.py.)
The connection options are module_connection's AUTH_ARG_SPEC.

A leaf: it imports no other module of _k8s, so the seams (cluster.py) can read it while
options.py, which checks the values, imports the seams.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import BACKEND_CHOICES
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DEFAULT_PATH as DRAIN_STATE_PATH
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULER_FLAGS, SCHEDULERS

MASQUERADE = ('external', 'all', 'none')
FAMILIES = {'ipv4': 4, 'ipv6': 6}
PRIMARY = 'primary'
SCHEDULER_FLAG_CHOICES = tuple(flag for flags in SCHEDULER_FLAGS.values() for flag in flags)  # sh-*, mh-*
# kube-proxy sets mh-port on its mh services: the hash takes the source port too.
DEFAULT_SCHEDULER_FLAGS = ('mh-port',)
DUMMY_INTERFACE = 'kube-ipvs0'  # kube-proxy's IPVS mode's
NODE_PORT_RANGE = '30000-32767'  # kube-apiserver's --service-node-port-range default
SERVICE_CIDRS = ('10.96.0.0/12',)  # kubeadm's --service-cidr default
STATE_PATH = '/var/lib/netlb-ipvs/k8s-service-proxy.json'


@dataclasses.dataclass(frozen=True)
class Option:
    """One module option: default None means none (the option is then optional and unset);
    a tuple default or choices become lists in the argument spec."""

    name: str
    type: str
    default: object = None
    choices: tuple = None
    elements: str = None

    def spec(self):
        spec = {'type': self.type}
        if self.elements is not None:
            spec['elements'] = self.elements
        if self.choices is not None:
            spec['choices'] = list(self.choices)
        if self.default is not None:
            spec['default'] = list(self.default) if isinstance(self.default, tuple) else self.default
        return spec


OPTIONS = (
    Option('source', 'str', 'api', choices=('api', 'manifests')),
    Option('path', 'path'),
    Option('namespaces', 'list', (), elements='str'),
    Option('label_selector', 'str'),
    Option('request_timeout', 'int', 30),
    Option('page_size', 'int', 500),
    Option('node_name', 'str'),
    Option('node_zone', 'str'),
    Option('service_cidrs', 'list', SERVICE_CIDRS, elements='str'),
    Option('cluster_cidrs', 'list', (), elements='str'),
    Option('node_port_range', 'str', NODE_PORT_RANGE),
    Option('node_port_addresses', 'list', (), elements='str'),
    Option('external_ips_allowed_cidrs', 'list', (), elements='str'),
    Option('scheduler', 'str', 'rr', choices=SCHEDULERS),
    Option('scheduler_flags', 'list', DEFAULT_SCHEDULER_FLAGS, choices=SCHEDULER_FLAG_CHOICES, elements='str'),
    Option('families', 'list', tuple(FAMILIES), choices=tuple(FAMILIES), elements='str'),
    Option('dummy_interface', 'str', DUMMY_INTERFACE),
    Option('masquerade', 'str', 'external', choices=MASQUERADE),
    Option('max_delete_ratio', 'float', 0.5),
    Option('force', 'bool', False),
    Option('allow_kube_proxy', 'bool', False),
    Option('scheduler_hold', 'bool', True),
    Option('drain_timeout', 'int', 0),
    Option('apply', 'bool', True),
    Option('backend', 'str', 'auto', choices=BACKEND_CHOICES),
    Option('state_path', 'path', STATE_PATH),
    Option('drain_state_path', 'path', DRAIN_STATE_PATH),
    Option('return_services', 'str', 'none', choices=('all', 'changed', 'none')),
    Option('return_actions', 'bool', False),
    Option('return_limit', 'int', 20),
)
# name -> default (None: none), as the module's params hold them when not given.
DEFAULTS = dict((option.name, option.spec().get('default')) for option in OPTIONS)
# name -> the default as a record holds it (a tuple for a list; None: none).
RECORD_DEFAULTS = dict((option.name, option.default) for option in OPTIONS)


def argument_spec():
    """The module's argument spec of these options (a new dict each call: Ansible may change it)."""
    return dict((option.name, option.spec()) for option in OPTIONS)
