# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Netlink: the shared floor under _ipvs (the IPVS family) and _k8s/node (links,
addresses, the nf_tables generation).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

core.py       framing, attributes, errors, the socket, batches of plain requests
generic.py    generic netlink: the family lookup, dumps, batches built in a thread
route.py      rtnetlink: links, addresses, routes
netfilter.py  nfnetlink: the socket and the nf_tables generation messages

Stdlib only; nothing here knows IPVS or Kubernetes, and nothing here imports them.
"""
