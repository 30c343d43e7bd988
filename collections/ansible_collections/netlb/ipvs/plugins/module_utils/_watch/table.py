# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kernel table the watcher last read and applied, kept between its syncs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    table = RememberedTable(get_backend('auto', runner))
    engine.reconcile(table, ...)   # the first read asks the kernel, the next ones get the table
    table.forget()                 # the periodic resync: the next read asks the kernel again

A sync on one endpoint change plans against the table in memory instead of dumping the
kernel (seconds at 5,000 services on a slow node): what the kernel holds is what the
last read found plus every action applied since (both backends account for each
action). Whatever could make the two differ forgets it: a failed apply, and the resync
every interval (another owner of the table, a drain's counters). The counters of
drained real servers stay those of the last read until then, so a drained server idle
since goes at the next resync, never earlier.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.base import Backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.plan import apply_to_table


class RememberedTable(Backend):
    """A Backend over backend: reads from memory once the kernel was read, writes
    through. reads: how many times the kernel was read."""

    def __init__(self, backend):
        super(RememberedTable, self).__init__(check_mode=backend.check_mode)
        self.backend = backend
        self.name = backend.name
        self.table = None
        self.reads = 0

    def forget(self):
        """The next read asks the kernel."""
        self.table = None

    def read(self):
        if self.table is None:
            self.table = self.backend.read()
            self.reads += 1
        return dict(self.table)

    def read_counters(self, keys):
        return self.backend.read_counters(keys)

    def _apply(self, actions):
        try:
            self.backend.apply(actions)
        except BaseException:
            self.table = None  # some of them took: only the kernel knows which
            raise
        if self.table is not None:
            self.table = apply_to_table(self.table, actions)

    def close(self):
        close = getattr(self.backend, 'close', None)
        if close is not None:
            close()
