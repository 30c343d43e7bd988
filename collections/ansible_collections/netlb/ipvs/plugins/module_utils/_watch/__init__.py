# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The long-running watcher (`netlb-ipvs watch`): follows the cluster and keeps the
node's table converged between timer runs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

metrics.py  counters, gauges and histograms with labels, Prometheus text exposition
serve.py    the HTTP side: /healthz, /livez and /metrics on a loopback address, and one
            listener per externalTrafficPolicy: Local LoadBalancer Service's
            healthCheckNodePort, answering as kube-proxy's service health server does

Stdlib only; nothing here changes the process (signals, the garbage collector, the
thread switch interval belong to the entry point, bin/netlb-ipvs).
"""
