# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node as proxy.sync() sees it: one object over the edges in this folder.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Addresses and the dummy interface over rtnetlink, packet rules with nft, stale UDP
flows with conntrack, kube-proxy from /proc, the kernel's IPVS schedulers from /proc and
/lib/modules. Every failure of these edges becomes a NodeError naming what failed, so
callers handle one error type. Tests drive sync() with a double that has the same methods.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import hold
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import (
    addresses,
    conntrack,
    dummy,
    kube_proxy,
    packet_rules,
    packet_rules_nft,
    rules_generation,
)

EDGE_ERRORS = (core.NetlinkError, core.ProtocolError, dummy.DummyError, packet_rules.PacketRulesError,
               conntrack.ConntrackError, OSError)


class NodeError(IpvsError):
    """The node refused or could not do something (an address, the rules, conntrack)."""


class _Edge(object):
    """with _Edge('what'): turn an edge's failure into a NodeError starting with what."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is not None and isinstance(exc, EDGE_ERRORS):
            raise NodeError('%s: %s' % (self.what, exc)) from exc
        return False


class HostNode(object):
    """This machine. runner: a _command.Runner (nft, conntrack)."""

    def __init__(self, runner):
        self.runner = runner
        self._found = None
        self._unused = None  # the last read, until sync_dummy takes the dummy's addresses from it

    def _snapshot(self):
        if self._found is None:
            with _Edge('reading the node\'s addresses'):
                self._found = self._unused = addresses.read()
        return self._found

    def forget_addresses(self):
        """The next addresses() or primary_addresses() reads the node again (a long-running
        caller's resync: an address added or moved since is seen; after a failed sync:
        nothing read in it is lent to a later one)."""
        self._found = self._unused = None

    def addresses(self):
        """Every local address as (interface, address)."""
        return self._snapshot().local()

    def primary_addresses(self, dummy_interface):
        """The node's primary address per family."""
        return self._snapshot().primary(dummy_interface)

    def kube_proxy_ipvs(self):
        """A description when kube-proxy runs here in IPVS mode, or in a mode that could
        not be found (refusing is the safe answer); None otherwise."""
        status = kube_proxy.detect()
        return None if status.ipvs is False else status.detail

    def check_rules(self, text):
        with _Edge('checking the packet rules'):
            packet_rules_nft.check(self.runner, text)

    def sync_dummy(self, interface, desired, owned, check_mode):
        """dummy.DummyResult of making interface hold desired (removing only owned).

        The first call after the node's addresses were read takes the interface's
        addresses from that read, made at the start of this sync: one dump of every
        address per sync instead of two (the dummy holds one per Service IP). Later calls
        (a watcher's syncs on a change, which keep the addresses) dump the interface."""
        read, self._unused = self._unused, None
        current = read.on_interface(interface) if read is not None else None
        with _Edge('dummy interface %s' % interface):
            return dummy.ensure(desired, owned, interface=interface, check_mode=check_mode, current=current)

    def read_rules(self):
        """Our nft table as it is now, normalised ('' when absent)."""
        with _Edge('reading the packet rules'):
            return packet_rules_nft.read(self.runner)

    def rules_generation(self):
        """[boot id, nftables generation]: unchanged while no rule of any table changes;
        None when it cannot be told (rules_generation.read)."""
        return rules_generation.read()

    def sync_rules(self, text, check_mode, before=None, normalised=None):
        """packet_rules_nft.ApplyResult of replacing our nft table with text (before: what
        read_rules() returned, if known; normalised: packet_rules_text.normalise(text), if known)."""
        with _Edge('packet rules'):
            return packet_rules_nft.apply(self.runner, text, check_mode=check_mode, before=before, normalised=normalised)

    def scheduler_hold(self):
        """What holds new connections while IPVS swaps a service's scheduler
        (engine.ReconcileOptions.hold)."""
        return hold.NftHold(self.runner)

    def clear_udp_flows(self, flows, check_mode):
        """The conntrack Flows flows (of UDP real servers that went), deleted."""
        with _Edge('stale UDP flows'):
            return conntrack.clear_flows(self.runner, flows, check_mode=check_mode)

    def schedulers(self):
        """The IPVS schedulers the kernel offers (a frozenset), or None when it cannot
        be told (no modules directory)."""
        return KernelTree().offered_schedulers()
