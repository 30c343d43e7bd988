# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The k8s_service_proxy options checked: module params -> SyncOptions (with the
translator's ProxyOptions inside).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The options' names, types, defaults and choices are option_table.py's OPTIONS, where
each default is written once (the module's argument spec is built there too).

Every problem names its option and all are reported at once (ValidationError), before
the cluster or the kernel is read. No I/O but the host name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ProxyOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.request_bounds import request_problems
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import (
    DEFAULT_SCHEDULER_FLAGS, DEFAULTS, DUMMY_INTERFACE, FAMILIES, MASQUERADE, NODE_PORT_RANGE, PRIMARY,
    RECORD_DEFAULTS, SCHEDULER_FLAG_CHOICES,
)

# Linux interface names: at most 15 bytes, no '/', no whitespace, not '.' or '..'.
_INTERFACE = re.compile(r'^(?!\.{1,2}$)[^/\s:]{1,15}$')


def _range(text):
    first, last = text.split('-')
    return (int(first), int(last))


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """Everything a sync needs besides the cluster and the node (validated before).

    service_cidrs: ip_network objects; node_port_range: (first, last); masquerade:
    'external', 'all' or 'none'; cluster_cidrs: ip_network objects (sources inside are
    pods); max_delete_ratio: 0..1; force: skip the delete guard; allow_kube_proxy: run
    beside a kube-proxy in IPVS mode; drain_timeout: seconds (0: drain until idle);
    scheduler_hold: hold new connections while a scheduler is swapped (host.scheduler_hold()).
    """

    proxy: ProxyOptions = ProxyOptions()
    service_cidrs: tuple = ()  # none (no default: a sync is given the cluster's)
    node_port_range: tuple = _range(NODE_PORT_RANGE)
    masquerade: str = DEFAULTS['masquerade']
    cluster_cidrs: tuple = RECORD_DEFAULTS['cluster_cidrs']  # () as ip_network objects
    max_delete_ratio: float = DEFAULTS['max_delete_ratio']
    force: bool = DEFAULTS['force']
    allow_kube_proxy: bool = DEFAULTS['allow_kube_proxy']
    drain_timeout: int = DEFAULTS['drain_timeout']
    scheduler_hold: bool = DEFAULTS['scheduler_hold']


def node_name_default():
    """kube-proxy's default: the host name, trimmed and lower-cased."""
    return socket.gethostname().strip().lower()


def _networks(values, option, problems):
    networks = []
    for index, value in enumerate(values or ()):
        text = str(value).strip()
        try:
            # ipaddress keeps an IPv6 zone id ('%eth0') in the network's text, and nft would get it.
            network = None if '%' in text else ipaddress.ip_network(text, strict=False)
        except ValueError:
            network = None
        if network is None:
            problems.append('%s[%d]: %r is not a CIDR' % (option, index, value))
        else:
            networks.append(network)
    return tuple(networks)


def _port_range(text, problems):
    match = re.match(r'^\s*(\d+)\s*-\s*(\d+)\s*$', str(text))
    if not match:
        problems.append('node_port_range: %r is not FIRST-LAST, e.g. %s' % (text, NODE_PORT_RANGE))
        return (0, 0)
    first, last = int(match.group(1)), int(match.group(2))
    if not 1 <= first <= last <= 65535:
        problems.append('node_port_range: %r must satisfy 1 <= first <= last <= 65535' % (text,))
    return (first, last)


def _node_port_addresses(values, problems):
    values = [str(value).strip() for value in values or ()]
    if PRIMARY in values:
        if len(values) > 1:
            problems.append("node_port_addresses: 'primary' must be the only value")
        return (PRIMARY,)
    return tuple(str(network) for network in _networks(values, 'node_port_addresses', problems))


def _scheduler_flags(values, problems):
    if values is None:
        return DEFAULT_SCHEDULER_FLAGS
    if not isinstance(values, (list, tuple)):
        problems.append('scheduler_flags: %r is not a list' % (values,))
        return ()
    flags = []
    for index, flag in enumerate(values):
        if flag not in SCHEDULER_FLAG_CHOICES:
            problems.append('scheduler_flags[%d]: %r is not one of %s' % (index, flag, ', '.join(SCHEDULER_FLAG_CHOICES)))
        elif flag not in flags:
            flags.append(flag)
    return tuple(sorted(flags))


def parse_options(params):
    """Module params -> (SyncOptions, node name). Raises ValidationError listing every
    problem, each starting with the option's name."""
    problems = []
    scheduler = params.get('scheduler') or DEFAULTS['scheduler']
    if scheduler not in SCHEDULERS:
        problems.append('scheduler: %r is not one of %s' % (scheduler, ', '.join(SCHEDULERS)))
    families = []
    for index, family in enumerate(params.get('families') or DEFAULTS['families']):
        if family not in FAMILIES:
            problems.append('families[%d]: %r is not ipv4 or ipv6' % (index, family))
        elif FAMILIES[family] not in families:
            families.append(FAMILIES[family])
    interface = params.get('dummy_interface') or DUMMY_INTERFACE
    if not _INTERFACE.match(interface):
        problems.append('dummy_interface: %r is not an interface name (1-15 characters, no "/", ":" or spaces)'
                        % (interface,))
    masquerade = params.get('masquerade') or DEFAULTS['masquerade']
    if masquerade not in MASQUERADE:
        problems.append('masquerade: %r is not one of %s' % (masquerade, ', '.join(MASQUERADE)))
    ratio = params.get('max_delete_ratio')
    ratio = DEFAULTS['max_delete_ratio'] if ratio is None else ratio
    if not 0 <= ratio <= 1:
        problems.append('max_delete_ratio: %s is not between 0 and 1' % ratio)
    drain_timeout = params.get('drain_timeout') or DEFAULTS['drain_timeout']
    if drain_timeout < 0:
        problems.append('drain_timeout: %d is negative' % drain_timeout)
    problems.extend(request_problems(params))
    service_cidrs = _networks(params.get('service_cidrs'), 'service_cidrs', problems)
    if not params.get('service_cidrs'):
        problems.append('service_cidrs: give the cluster\'s service CIDR(s) (kube-apiserver '
                        '--service-cluster-ip-range)')
    allowed = _networks(params.get('external_ips_allowed_cidrs'), 'external_ips_allowed_cidrs', problems)
    proxy = ProxyOptions(scheduler=scheduler, families=tuple(sorted(families)),
                         node_port_addresses=_node_port_addresses(params.get('node_port_addresses'), problems),
                         scheduler_flags=_scheduler_flags(params.get('scheduler_flags'), problems),
                         dummy_interface=interface,
                         service_cidrs=tuple(str(network) for network in service_cidrs),
                         external_ips_allowed_cidrs=tuple(str(network) for network in allowed))
    options = SyncOptions(
        proxy=proxy,
        service_cidrs=service_cidrs,
        node_port_range=_port_range(params.get('node_port_range') or NODE_PORT_RANGE, problems),
        masquerade=masquerade,
        cluster_cidrs=_networks(params.get('cluster_cidrs'), 'cluster_cidrs', problems),
        max_delete_ratio=float(ratio),
        force=bool(params.get('force')),
        allow_kube_proxy=bool(params.get('allow_kube_proxy')),
        drain_timeout=int(drain_timeout),
        scheduler_hold=params.get('scheduler_hold', DEFAULTS['scheduler_hold']) is not False,
    )
    if problems:
        raise ValidationError(problems)
    return options, (params.get('node_name') or node_name_default()).strip().lower()
