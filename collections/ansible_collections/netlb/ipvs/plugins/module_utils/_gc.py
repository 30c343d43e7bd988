# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Process-wide settings for one big step of work, opened by shells only.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Library code never changes the whole process: a module's main(), the entry point
(bin/netlb-ipvs) or the watcher's loop decides, around the work it runs, with tuned()
(or paused() for the collector alone). Both leave the process as they found it.

The collector: tens of thousands of new records (a table read from the kernel, a
translation, a validated request) wake the collector's full passes again and again, and
each walks every live container, the cluster snapshot or the module's parameters
included: in the lab VM a 5,000 x 10 netlink read went from 105 s to 64 s without them,
and half of a translation's time was theirs. Nothing built in that work forms reference
cycles, so reference counting frees all of it.

The thread switch interval: a netlink apply builds its next batch in a thread while the
kernel runs the one sent (_netlink/generic.py, GenlSocket.batch); Python's default interval (5 ms) is
about what a whole batch takes the kernel, so the sender would wait that long for the
GIL after every send. 1 ms gives it back soon after the kernel returns.
"""

from __future__ import annotations

import contextlib
import gc
import sys

SWITCH_INTERVAL = 0.001


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


@contextlib.contextmanager
def tuned(switch_interval=SWITCH_INTERVAL):
    """paused(), and the thread switch interval at most switch_interval, inside the
    block; both as found after it (also on an exception). For shells only."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, switch_interval))
    try:
        with paused():
            yield
    finally:
        sys.setswitchinterval(interval)
