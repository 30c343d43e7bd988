# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's own inputs of the Kubernetes side, for its tests: a ClusterSnapshot
of API objects (built with kube_api.objects, the one builder of those) and this node's
NodeContext."""

from __future__ import annotations

from kube_api.objects import NODE, ZONE

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot, NodeContext


def snapshot(objects):
    """A ClusterSnapshot of a mixed list of Services, EndpointSlices, Endpoints and at most
    one Node (this node's)."""
    by_kind = {'Service': [], 'EndpointSlice': [], 'Endpoints': [], 'Node': []}
    for obj in objects:
        by_kind[obj['kind']].append(obj)
    return ClusterSnapshot(services=by_kind['Service'], endpoint_slices=by_kind['EndpointSlice'],
                           endpoints=by_kind['Endpoints'], node=(by_kind['Node'] or [None])[0], origin='test')


def node(name=NODE, zone=ZONE, addresses=None, primary=('192.168.10.11', 'fd00:10::11')):
    """This node: two IPv4 addresses (eth0, eth1), IPv6 global and link-local, loopback,
    and a cluster IP already on the dummy interface (as the previous run left it)."""
    if addresses is None:
        addresses = (('eth0', '192.168.10.11/24'), ('eth0', 'fd00:10::11/64'), ('eth0', 'fe80::5054:ff:fe12:3456/64'),
                     ('eth1', '10.0.0.11/24'), ('lo', '127.0.0.1/8'), ('lo', '::1/128'),
                     ('kube-ipvs0', '10.96.0.10/32'))
    return NodeContext(name=name, zone=zone, addresses=tuple(addresses), primary=tuple(primary))
