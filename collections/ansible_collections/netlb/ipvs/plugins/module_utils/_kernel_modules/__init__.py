# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kernel modules IPVS needs: what the running kernel has, loading, unloading, persisting.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

snapshot.py  the kernel's module files parsed (/proc/modules, modules.dep, .builtin,
             .alias) into a KernelSnapshot; names as the kernel spells them (pure)
request.py   the ipvs_modules parameters checked into a Request; the persist file (pure)
plan.py      what to load, what can be unloaded and in which order, what is missing (pure)
tree.py      KernelTree: reads those files under an injectable root (unit tests build a
             fake tree in tmp_path); the schedulers the kernel offers, read cheaply
ensure.py    ensure_modules(), the one flow the ipvs_modules module calls: modprobe, the
             persist file; it returns the result (never exits) and raises
             ValidationError or KernelModuleError

Rules:
  - A module compiled into the kernel (modules.builtin, or in /sys/module without a
    line in /proc/modules) counts as present: it never makes a run "changed".
  - Names are compared as the kernel does: '-' and '_' are the same character.
  - Check mode reads everything and writes nothing; the plan, the result and the diff
    are those of a real run.
"""
