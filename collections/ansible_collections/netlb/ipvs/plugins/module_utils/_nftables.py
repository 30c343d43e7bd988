# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The nft program, as every nftables table of this collection uses it.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Each table we load is ours alone and is replaced as a whole, atomically, in one
`nft -f -` run (replace_script). Users: the Kubernetes packet rules
(_k8s/node/packet_rules.py) and the scheduler-change hold (_ipvs/hold.py).
Runs go through _command.Runner; errors are its CommandError.
"""

from __future__ import annotations


def program(runner):
    """Absolute path of nft; raises _command.CommandError (rc 127) when not installed."""
    return runner.which('nft')


def replace_script(table, text):
    """The `nft -f` input replacing table ('inet NAME') with definition text in one
    transaction: the empty `table` first makes the `delete` valid when the table does
    not exist yet."""
    return 'table %s {\n}\ndelete table %s\n%s' % (table, table, text)
