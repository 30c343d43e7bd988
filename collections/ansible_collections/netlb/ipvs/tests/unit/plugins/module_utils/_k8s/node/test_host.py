# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import addresses, dummy, host
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core


def _node(address):
    """What addresses.read() finds on a node whose eth0 holds address."""
    return addresses.Snapshot([addresses.Address('eth0', 'ipv4', address, 24, 0, 0)], [], {2: 'eth0'})


def test_the_addresses_are_read_once_until_forgotten(monkeypatch):
    found = [_node('192.0.2.10')]
    reads = []
    monkeypatch.setattr(addresses, 'read', lambda: reads.append(1) or found[-1])
    node = host.HostNode(runner=None)
    assert node.addresses() == node.addresses() == (('eth0', '192.0.2.10'),)
    assert len(reads) == 1  # one dump per sync, whatever asks
    found.append(_node('192.0.2.11'))  # the address moved (DHCP, an operator)
    assert node.addresses() == (('eth0', '192.0.2.10'),)  # trusted until forgotten
    node.forget_addresses()
    assert node.addresses() == (('eth0', '192.0.2.11'),) and len(reads) == 2


def test_the_dummy_takes_its_addresses_from_the_node_read_of_the_same_sync_only(monkeypatch):
    read = addresses.Snapshot([addresses.Address('eth0', 4, '192.0.2.10', 24, 0, 0),
                               addresses.Address('kube-ipvs0', 4, '10.96.0.1', 32, 0, 0),
                               addresses.Address('kube-ipvs0', 6, 'fd00::1', 128, 0, 0)], [], {2: 'eth0', 9: 'kube-ipvs0'})
    monkeypatch.setattr(addresses, 'read', lambda: read)
    given = []
    monkeypatch.setattr(dummy, 'ensure', lambda desired, owned, interface, check_mode, current: given.append(current))
    node = host.HostNode(runner=None)
    node.sync_dummy('kube-ipvs0', ['10.96.0.1'], [], False)  # nothing read yet in this sync: the dummy dumps
    node.addresses()
    node.sync_dummy('kube-ipvs0', ['10.96.0.1'], [], False)  # the same sync's read lends its addresses
    node.sync_dummy('kube-ipvs0', ['10.96.0.1'], [], False)  # once: a later sync keeps the node's addresses
    node.forget_addresses()
    node.primary_addresses('kube-ipvs0')
    node.forget_addresses()  # a failed sync forgets what it read: nothing of it is lent
    node.sync_dummy('kube-ipvs0', ['10.96.0.1'], [], False)
    assert given == [None, {'10.96.0.1', 'fd00::1'}, None, None]


def test_a_failed_read_names_what_failed(monkeypatch):
    def refused():
        raise core.NetlinkError(1, 'Operation not permitted')

    monkeypatch.setattr(addresses, 'read', refused)
    try:
        host.HostNode(runner=None).addresses()
    except host.NodeError as exc:
        assert str(exc).startswith("reading the node's addresses: "), exc
    else:
        raise AssertionError('no NodeError')
