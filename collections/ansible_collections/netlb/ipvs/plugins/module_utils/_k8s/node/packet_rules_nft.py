# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The packet rules on the node: `nft` reads, checks, loads (atomically) and deletes
the table packet_rules.py renders. The only I/O of the packet rules.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import collections

from ansible_collections.netlb.ipvs.plugins.module_utils import _command, _nftables
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.packet_rules import TABLE, TABLE_FAMILY, TABLE_NAME, PacketRulesError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.packet_rules_text import normalise


class ApplyResult(collections.namedtuple('ApplyResult', ('changed', 'before', 'after'))):
    """changed: the table differs (or would, in check mode); before/after: the table
    in normalised text ('' = no table), for the diff."""

    __slots__ = ()


def script(text):
    """The `nft -f` input replacing the table atomically with definition text: the
    empty `table` makes the `delete` valid when the table does not exist yet."""
    return _nftables.replace_script(TABLE, text)


def _nft(runner):
    try:
        return _nftables.program(runner)
    except _command.CommandError as exc:
        raise PacketRulesError('%s (install nftables)' % exc)


def read(runner):
    """The table as nft lists it, normalised; '' when it does not exist."""
    nft = _nft(runner)
    try:
        result = runner.run([nft, 'list', 'table', TABLE_FAMILY, TABLE_NAME], check=False,
                            timeout=_command.NODE_TIMEOUT)
    except _command.CommandError as exc:
        raise PacketRulesError('cannot read table %s: %s' % (TABLE, exc))
    if result.rc == 0:
        return normalise(result.stdout)
    if 'No such file or directory' in result.stderr:
        return ''
    error = _command.CommandError(result.argv, result.rc, result.stdout, result.stderr)
    raise PacketRulesError('cannot read table %s: %s' % (TABLE, error))


def apply(runner, text, check_mode=False, before=None, normalised=None):
    """Make table inet netlb_ipvs hold text (render()'s output) in one nft transaction.

    before: what read() returned just now, if the caller has it (None: read it here);
    normalised: normalise(text), if the caller has it.
    Returns ApplyResult; in check mode nothing is loaded and the result is the one a
    real run would give. Raises PacketRulesError with nft's message.
    """
    if before is None:
        before = read(runner)
    after = normalise(text) if normalised is None else normalised
    if before == after:
        return ApplyResult(False, before, after)
    if not check_mode:
        try:
            runner.run([_nft(runner), '-f', '-'], data=script(text), timeout=_command.NODE_TIMEOUT)
        except _command.CommandError as exc:
            raise PacketRulesError('cannot load table %s: %s' % (TABLE, exc))
    return ApplyResult(True, before, after)


def check(runner, text):
    """Have nft check text (render()'s output) without loading it (`nft -c`), so a rule
    set the kernel would refuse fails a run before anything changed."""
    try:
        runner.run([_nft(runner), '-c', '-f', '-'], data=script(text), timeout=_command.NODE_TIMEOUT)
    except _command.CommandError as exc:
        raise PacketRulesError('nft refuses the rules for table %s: %s' % (TABLE, exc))


def remove(runner, check_mode=False):
    """Delete the table if it exists (the proxy is removed from the node)."""
    before = read(runner)
    if not before:
        return ApplyResult(False, '', '')
    if not check_mode:
        try:
            runner.run([_nft(runner), 'delete', 'table', TABLE_FAMILY, TABLE_NAME], timeout=_command.NODE_TIMEOUT)
        except _command.CommandError as exc:
            raise PacketRulesError('cannot delete table %s: %s' % (TABLE, exc))
    return ApplyResult(True, before, '')
