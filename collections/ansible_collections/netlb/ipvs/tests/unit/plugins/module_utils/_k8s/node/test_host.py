# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import addresses, host
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
