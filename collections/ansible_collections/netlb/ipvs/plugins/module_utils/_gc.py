# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The cyclic garbage collector held asleep while big tables are built.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Tens of thousands of new records (a table read from the kernel, a translation, a
validated request) wake the collector's full passes again and again, and each walks
every live container, the cluster snapshot or the module's parameters included: in the
lab VM a 5,000 x 10 netlink read went from 105 s to 64 s without them, and half of a
translation's time was theirs. Nothing built under paused() forms reference cycles, so
reference counting frees all of it. The switch is process-wide: hold it for one step of
work (a long-running process keeps its collector the rest of the time).
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused():
    """The collector asleep inside the block, and left as found (on or off) after it,
    also on an exception; nested blocks are fine."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
