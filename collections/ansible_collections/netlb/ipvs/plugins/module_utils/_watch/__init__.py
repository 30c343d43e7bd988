# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The long-running watcher (`netlb-ipvs watch`): follows the cluster and keeps the
node's table converged between timer runs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

node.py     `netlb-ipvs watch` on a node: config, the loop, one sync per change
loop.py     list, then watch Services, EndpointSlices and the Node; syncs coalesced
store.py    the watcher's copy of the cluster objects, kept from lists and events
table.py    the kernel table last read and applied, kept between syncs
metrics.py  counters, gauges and histograms with labels, Prometheus text exposition;
            TrafficMetrics: per-Service IPVS counters
serve.py    the HTTP side: /healthz, /livez and /metrics on a loopback address, and one
            listener per externalTrafficPolicy: Local LoadBalancer Service's
            healthCheckNodePort, answering as kube-proxy's service health server does

Nothing here changes the process (signals, the garbage collector, the thread switch
interval belong to the entry point, bin/netlb-ipvs; _gc.tuned() is its tool).
"""
