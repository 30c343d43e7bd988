# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Per-Service pieces of a translation, and the cache a long-running caller keeps of
them between translations (translate.translate(..., cache=)).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The translator makes every Service's piece (a Fragment: what that Service alone
contributes, in order) from the Service, its EndpointSlices and legacy Endpoints and the
node's context, and then assembles the table from the pieces in namespace/name order
(the claims of rule 10 are made there: they are the only thing one Service's piece
depends on another's for). A whole translation and one from the cache run the same
assembly over the same pieces, so they are the same by construction; the cache only
decides which pieces are made again.

Rules of the cache:
- A piece is reused only when its inputs are the very objects it was made from (`is`:
  the watcher's store replaces an object on every change and never edits one in place)
  and the context (options, the node's name, zone and addresses, the CIDRs) is equal to
  the last translation's; any other context empties the cache (a whole translation).
- Bounded by the cluster: each translation keeps the pieces of the Services it saw and
  only those, so a deleted Service's piece goes with the next translation.
- The assembly too is kept (Assembly): when a translation's pieces are the very pieces
  of the last one, in the same order (nothing a piece depends on changed: a periodic
  resync), its assembly is the last one's, by the same construction.
- Pure: no I/O, no clock; it holds references to the objects it was given, never copies.
"""

from __future__ import annotations


class Fragment(object):
    """What one Service contributes to a translation, recorded in order.

    events: warnings (str) and round-one claims ((ServiceKey, VirtualService,
    ServicePort): cluster IPs and NodePorts) in the order the Service made them;
    deferred: round-two claims (external and load-balancer IPs); skipped: [(reason,
    ref)]; local: addresses of this node's endpoints; health: {ref: healthCheckNodePort}.
    """

    __slots__ = ('events', 'deferred', 'skipped', 'local', 'health')

    def __init__(self):
        self.events = []
        self.deferred = []
        self.skipped = []
        self.local = set()
        self.health = {}

    def skip(self, reason, ref):
        self.skipped.append((reason, ref))


class Assembly(object):
    """What assembling a translation's pieces made, in the Translation's terms before the
    node's own addresses are taken out: services and ports sorted by key, the dummy's and
    the local endpoints' addresses (frozensets), skipped ({reason: sorted refs}), health
    ({ref: port}) and the warnings the pieces and claims added. Never changed once made."""

    __slots__ = ('services', 'ports', 'dummy', 'local', 'skipped', 'health', 'warnings')

    def __init__(self, services, ports, dummy, local, skipped, health, warnings):
        self.services, self.ports, self.dummy, self.local = services, ports, dummy, local
        self.skipped, self.health, self.warnings = skipped, health, warnings


class _Entry(object):
    __slots__ = ('service', 'slices', 'endpoints', 'fragment')

    def __init__(self, service, slices, endpoints, fragment):
        self.service, self.slices, self.endpoints, self.fragment = service, slices, endpoints, fragment


def _same(old, new):
    """Whether two lists (or None) hold the very same objects in the same order."""
    if old is None or new is None:
        return old is new
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


class TranslationCache(object):
    """The Fragments of the last translation, by Service (see the rules at the top).
    made / reused: pieces made and reused by the last translation; assembled: whether it
    assembled them (False: the last assembly was reused)."""

    def __init__(self):
        self.context = None
        self.entries = {}
        self.made = self.reused = 0
        self.assembled = True
        self._previous = {}
        self._assembly = None  # (the pieces in order, their Assembly)

    def clear(self):
        """Forget every piece: the next translation is whole."""
        self.context = None
        self.entries = {}
        self._previous = {}
        self._assembly = None

    def begin(self, context):
        """Start a translation in context (a tuple of everything a piece depends on
        besides its own objects)."""
        if context != self.context:
            self.entries = {}
            self._assembly = None
            self.context = context
        self._previous, self.entries = self.entries, {}
        self.made = self.reused = 0
        self.assembled = True

    def assembly(self, pieces):
        """The Assembly of the last translation when pieces are its very pieces in its
        order, else None."""
        if self._assembly is not None and _same(self._assembly[0], pieces):
            self.assembled = False
            return self._assembly[1]
        return None

    def keep_assembly(self, pieces, assembly):
        self._assembly = (pieces, assembly)

    def end(self):
        self._previous = {}

    def get(self, ref, service, slices, endpoints):
        """The Fragment made from exactly these objects, or None."""
        entry = self._previous.get(ref)
        if (entry is not None and entry.service is service and _same(entry.slices, slices)
                and _same(entry.endpoints, endpoints)):
            self.entries[ref] = entry
            self.reused += 1
            return entry.fragment
        return None

    def put(self, ref, service, slices, endpoints, fragment):
        self.entries[ref] = _Entry(service, None if slices is None else list(slices),
                                   None if endpoints is None else list(endpoints), fragment)
        self.made += 1
