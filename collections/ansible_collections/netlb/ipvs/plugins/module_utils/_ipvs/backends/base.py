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

    def apply(self, actions):
        """Apply actions in order. Raises ApplyError naming what was applied."""
        if self.check_mode or not actions:
            return
        self._apply(list(actions))

    @abc.abstractmethod
    def _apply(self, actions):
        """Write actions to the kernel."""
