# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""nfnetlink (NETLINK_NETFILTER): the socket and the nf_tables generation messages.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. Requests are core's (nlmsghdr + a body: here nfgenmsg and attributes), the
same dumps, single requests and ACKs as rtnetlink's. Constants come from
<linux/netfilter/nfnetlink.h> and <linux/netfilter/nf_tables.h>. Used by
_k8s/node/rules_generation.py.
"""

from __future__ import annotations

import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1

GETGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
NEWGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN
NFGENMSG = struct.Struct('=BBH')  # family, version (NFNETLINK_V0), res_id


class NfnlSocket(core.RequestSocket):
    """Dumps, single requests and batches over one netfilter netlink socket."""

    protocol, protocol_name = NETLINK_NETFILTER, 'netfilter'
