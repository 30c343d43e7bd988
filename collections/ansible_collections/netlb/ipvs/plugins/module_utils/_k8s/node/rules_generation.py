# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The nftables ruleset's generation, read over nfnetlink without running nft.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

nf_tables raises one number with every committed change to any table of the network
namespace (NFT_MSG_GETGEN answers it; nft and iptables-nft change rules only through such
commits). Beside the boot's id (the number starts again at boot), an unchanged pair
means no rule changed since it was read: a converged timer run need not list and
normalise its table again (_k8s/converged.py). Any doubt (no nf_tables, no permission,
an answer without the number) is None, and the caller lists the rules.
The messages and the socket are _netlink/netfilter.py's.
"""

from __future__ import annotations

import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, netfilter

_BE32 = struct.Struct('>I')

BOOT_ID = '/proc/sys/kernel/random/boot_id'


def read(sock=None, boot_id_path=BOOT_ID):
    """[boot id, generation] now, or None when either cannot be told.

    sock: a netfilter.NfnlSocket (a new one when None, closed afterwards)."""
    try:
        with open(boot_id_path) as handle:
            boot = handle.read().strip()
    except OSError:
        return None
    own = sock is None
    try:
        sock = netfilter.NfnlSocket() if own else sock
        try:
            replies = sock.get(netfilter.GETGEN, netfilter.NFGENMSG.pack(socket.AF_UNSPEC, 0, 0))
        finally:
            if own:
                sock.close()
        for kind, body in replies:
            if kind == netfilter.NEWGEN:
                value = core.parse_attrs(body, netfilter.NFGENMSG.size).get(netfilter.NFTA_GEN_ID)
                if boot and value is not None and len(value) >= 4:
                    return [boot, _BE32.unpack(value[:4])[0]]
    except (core.NetlinkError, core.ProtocolError, OSError):
        pass
    return None


def unchanged(now, then):
    """True when now (read() just now) is then (read() before the rules were listed): no
    rule of any table changed since, so that listing is the rules now. Either unknown
    (None): False, and the caller lists them."""
    return bool(now) and bool(then) and tuple(now) == tuple(then)
