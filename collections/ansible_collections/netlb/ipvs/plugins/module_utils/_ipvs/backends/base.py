# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one seam between the engine and the kernel.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import abc


class Backend(abc.ABC):
    """Reads the whole IPVS table and applies an ordered list of actions.

    Check mode lives here and only here: a backend in check mode reads but never
    writes, so the planner's output (and the diff) is the same in both modes.
    """

    name = 'abstract'

    def __init__(self, check_mode=False):
        self.check_mode = check_mode

    @abc.abstractmethod
    def read(self):
        """Return the kernel table: dict ServiceKey -> VirtualService, with counters."""

    def read_counters(self, keys):
        """The connection counters of the real servers of the services keys, read now:
        {ServiceKey: {(address, port): (active, inactive)}}, every real server the kernel
        holds for such a service; a service the kernel does not hold is absent.

        What a run re-reads once it has drained servers (engine: settle). This fallback
        reads the whole table; backends override it with something cheaper.
        """
        table = self.read()
        return dict((key, dict((rs.key, table[key].connections_of(rs.key)) for rs in table[key].real_servers))
                    for key in keys if key in table)

    def apply(self, actions):
        """Apply actions in order. Raises ApplyError naming what was applied."""
        if self.check_mode or not actions:
            return
        self._apply(list(actions))

    @abc.abstractmethod
    def _apply(self, actions):
        """Write actions to the kernel."""

    def close(self):
        """Release what the backend holds open (the netlink socket); a later call opens
        it again. A long-running process closes what it no longer uses."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
