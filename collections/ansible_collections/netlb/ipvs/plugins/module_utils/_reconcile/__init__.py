# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node keeping itself converged: what `netlb-ipvs reconcile` runs on a timer.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

config.py   the node's config (rendered by the ipvs_reconcile role), checked field by field
kernel.py   the kernel modules and sysctls ipvs_node set up, re-asserted cheaply
run.py      one run: lock, pause, config, kernel, the static table, the Kubernetes Services
status.py   counters kept between runs, the Prometheus textfile and the journal line
cli.py      the commands (reconcile, pull, watch, pause, resume, status); the launcher
            (bin/netlb-ipvs) is the shell that owns the process

The run lock they share with the modules is on the shared floor (../_run_lock.py).
No Ansible here: the node runs it with its own Python, from the files the role copied.
"""
