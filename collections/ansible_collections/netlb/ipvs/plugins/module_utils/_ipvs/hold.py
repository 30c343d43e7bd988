# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hold new connections to virtual services while the kernel swaps their scheduler.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Why: to change a live service's scheduler the kernel (ip_vs_edit_service) unbinds the
old one, waits for an RCU grace period and binds the new one. A new connection that
arrives in between finds no scheduler and is refused (port unreachable), as if the
service had no real servers. For that moment a hold drops - never rejects - the packets
that open a connection to those services, so the client's retransmission (TCP: one
second later) meets the new scheduler. engine.reconcile() places the hold around the
scheduler edits only (ReconcileOptions.hold); at any other time a service answers as
it always does (one with no real servers still refuses at once).

Rules (what render() writes):

- One table, `inet netlb_ipvs_hold` (both families), ours alone. place() loads it in
  one `nft -f -` run, replacing any leftover atomically; placing again replaces the
  held services in one step; release() deletes the table.
- Chain input at filter priority (0): before IPVS's LOCAL_IN hooks
  (NF_IP_PRI_NAT_SRC - 2 = 98). Chain output at mangle + 10 (-140), for clients on
  the director itself: after the marks iptables/nft set in mangle OUTPUT, before
  IPVS's LOCAL_OUT hooks (NF_IP_PRI_NAT_DST + 1 = -99). A SYN dropped on output
  is retransmitted by the local TCP stack like one lost on the wire.
- Matched: TCP SYN without ACK and SCTP packets with verification tag 0 (only an
  INIT carries it), to the address . port of each held service (sets per protocol
  and family) or with the firewall mark of a held fwmark service (set per family).
  Packets of established connections never match. The rule count is fixed: any
  number of services is one nft run.
- UDP is not held: without conntrack no rule can tell the datagram that opens a flow
  from those of flows IPVS already forwards, and making the node track connections
  for this would change it for good. A datagram opening a flow during the swap is
  answered with port unreachable, as before.
- Every element times out after TIMEOUT seconds: if the process dies between place()
  and release(), the hold lapses by itself (the empty table stays until the next
  hold replaces it).

render() is pure; NftHold is the only I/O, through _command.Runner.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils import _command, _nftables

TABLE_FAMILY = 'inet'
TABLE_NAME = 'netlb_ipvs_hold'
TABLE = '%s %s' % (TABLE_FAMILY, TABLE_NAME)
COMMENT = 'netlb.ipvs: new connections held while schedulers change; deleted right after'
TIMEOUT = 10  # seconds; a swap takes milliseconds per service

# What opens a connection, per protocol (as nft matches it).
OPENS = {'tcp': 'tcp flags & (syn | ack) == syn', 'sctp': 'sctp vtag 0'}
# Per family: the address type and match keyword, the nfproto name.
_FAMILY = {4: ('ipv4_addr', 'ip', 'ipv4'), 6: ('ipv6_addr', 'ip6', 'ipv6')}


class HoldError(Exception):
    """The hold could not be placed or removed; carries nft's message."""


def render(keys, timeout=TIMEOUT):
    """The table definition holding ServiceKeys keys (nft syntax). UDP services are
    left out (see the rules above); no holdable key gives a table with no rules."""
    sets, rules = [], []
    for family in (4, 6):
        kind, match, nfproto = _FAMILY[family]
        for protocol in ('tcp', 'sctp'):
            elements = sorted('%s . %d' % (key.address, key.port) for key in keys
                              if key.family == family and key.protocol == protocol)
            if elements:
                name = '%s%d' % (protocol, family)
                sets.append((name, '%s . inet_service' % kind, elements))
                rules.append('%s daddr . %s dport @%s %s drop' % (match, protocol, name, OPENS[protocol]))
        marks = sorted('0x%08x' % key.fwmark for key in keys if key.family == family and key.is_fwmark)
        if marks:
            name = 'mark%d' % family
            sets.append((name, 'mark', marks))
            rules.extend('meta nfproto %s meta mark @%s %s drop' % (nfproto, name, OPENS[protocol])
                         for protocol in ('tcp', 'sctp'))
    lines = ['table %s {' % TABLE, '\tcomment "%s"' % COMMENT]
    for name, kind, elements in sets:
        lines.extend(['\tset %s {' % name, '\t\ttype %s' % kind, '\t\tflags timeout', '\t\ttimeout %ds' % timeout,
                      '\t\telements = { %s }' % ', '.join(elements), '\t}'])
    for chain, hook, priority in (('input', 'input', 'filter'), ('output', 'output', 'mangle + 10')):
        lines.extend(['\tchain %s {' % chain,
                      '\t\ttype filter hook %s priority %s; policy accept;' % (hook, priority)])
        lines.extend('\t\t' + rule for rule in rules)
        lines.append('\t}')
    lines.append('}')
    return '\n'.join(lines) + '\n'


def holdable(key):
    """Whether a hold can keep new connections of the service key from being refused."""
    return key.protocol != 'udp'


class NftHold(object):
    """The hold as nftables rules. runner: a _command.Runner.

    check() says whether a hold could be placed (nft installed), without changing
    anything; place(keys) holds the services keys (replacing what was held);
    release() lets everything through again. Each raises HoldError.
    """

    def __init__(self, runner, timeout=TIMEOUT):
        self.runner = runner
        self.timeout = timeout

    def _nft(self):
        try:
            return _nftables.program(self.runner)
        except _command.CommandError as exc:
            raise HoldError('%s (install nftables)' % exc)

    def check(self):
        self._nft()

    def place(self, keys):
        script = _nftables.replace_script(TABLE, render(keys, self.timeout))
        try:
            self.runner.run([self._nft(), '-f', '-'], data=script, timeout=_command.NODE_TIMEOUT)
        except _command.CommandError as exc:
            raise HoldError('cannot load table %s: %s' % (TABLE, exc))

    def release(self):
        try:
            self.runner.run([self._nft(), 'delete', 'table', TABLE_FAMILY, TABLE_NAME], timeout=_command.NODE_TIMEOUT)
        except _command.CommandError as exc:
            raise HoldError('cannot delete table %s (its entries expire within %d s): %s'
                            % (TABLE, self.timeout, exc))
