# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The packet rules next to the IPVS table: one nftables table this toolkit owns.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Rules (what render() writes, per family; the rule count never grows with services:
services are elements of sets keyed by address . protocol . port):

- One `table inet netlb_ipvs`: one name to own and replace, both families in one
  transaction. Nothing else is ever touched: apply() loads `table {}; delete table;
  table {...}` in one `nft -f -` run, so the swap is atomic and works whether or not
  the table existed.
- Return path (chain postrouting, nat, srcnat): IPVS rewrites the destination in its
  LOCAL_IN/LOCAL_OUT hooks, after nat prerouting, so postrouting no longer sees the
  VIP in the packet. Conntrack still has it: with net.ipv4.vs.conntrack=1 (which NAT
  after IPVS needs anyway, kube-proxy sets it too) the entry's original tuple keeps
  client -> VIP:port. So postrouting matches `ct original ip daddr . meta l4proto .
  ct original proto-dst` in a set: no packet mark is claimed, nothing can collide
  with kube-proxy's 0x4000/0x8000 or a CNI's marks. nft only types proto-dst after a
  protocol match, hence one rule per protocol (tcp, udp, sctp). Proven on the lab:
  tests/vm/test_k8s_node.py (no rule: the backend's reply is lost; rule: it works).
  masquerade 'external' (default, kube-proxy's semantics): NodePort, external IP and
  LoadBalancer services unless local (externalTrafficPolicy Local keeps the client
  address); cluster IPs from sources outside cluster_cidrs. Without cluster_cidrs of
  a family, cluster-IP traffic of that family is masqueraded only when its source is
  a cluster IP (kube-proxy without clusterCIDR/detectLocal and without masqueradeAll:
  KUBE-CLUSTER-IP matched `src,dst`): the node's own connections, since the kernel
  picks the destination itself as the source toward a local (dummy) address; unmasked,
  a real server on another node answers a cluster IP that is local there, and the
  reply never comes back. The rule matches `ct original saddr . l4proto . ct original
  proto-dst` in the cluster_ip set, as kube-proxy does. Pods' traffic is left alone,
  as kube-proxy leaves it. 'all': every service, local ones too. 'none': no
  postrouting chain. Proven on the lab (test_k8s_node.py test_node_to_remote_endpoint).
- Hairpin (same chain; 'external' only, 'all' masquerades it already): a pod that
  reaches itself through a service (IPVS chose that pod as the real server) sends, once
  IPVS rewrote the destination, from its own address to its own address; unless the
  source becomes the node's, the pod answers itself directly and the connection never
  completes. kube-proxy's KUBE-LOOP-BACK: masquerade when source == destination == an
  endpoint on this node. nft cannot compare two fields of a packet, so the set
  hairpin4/6 holds one `ep . ep` pair per address of render()'s local_endpoints and
  the rule matches `ip saddr . ip daddr`. The node's own addresses are never in it (a
  packet from the node to itself crosses postrouting too; the translator leaves them
  out). Not keyed by protocol and port as kube-proxy's set is: a pod that loops back
  through any DNAT needs the same, and the set stays one element per pod. Proven on the
  lab (tests/vm/test_k8s_node.py test_hairpin: with the pair the pod reaches itself
  through a cluster IP; without it, or with 'none', it does not).
- loadBalancerSourceRanges (chain input, filter priority 0: before IPVS's LOCAL_IN
  hook at NF_IP_PRI_NAT_SRC - 2 = 98): packets to a restricted LB address . protocol .
  port from a source outside its ranges are dropped. No ranges of the port's family:
  everyone (kube-proxy filters the ranges by family the same way).
- The node's own connections to a restricted LB address . protocol . port never reach
  input: IPVS takes them in its LOCAL_OUT hook (NF_IP_PRI_NAT_DST + 2 = -98). Chain
  output, at mangle + 10 (-140: before that hook and before nat output, as
  _ipvs/hold.py), drops them by the same rule and sets. Allowed: a source inside the
  ranges (a program bound to such an address), and, when a range of the family holds
  one of the node's addresses (render()'s node_addresses), the LB address itself as the
  source, which is what the kernel picks for a connection to a local address: one more
  element `lb . protocol . port . lb` in lb_allowed (kube-proxy's allowFromNode, the
  KUBE-LOAD-BALANCER-SOURCE-IP set; kube-proxy tests its one primary node IP, this any
  address of the node but loopback, IPv6 link-local and the dummy interface's). An
  arriving packet with that source is a martian the kernel drops before input, so the
  element lets nobody else in. Proven on the lab (test_source_ranges_from_the_node:
  without the output chain the node passes ranges that hold no address of it; with it
  the node is dropped, and let through only by the LB-as-source element).
- Dummy addresses (kubernetes#72236): a new connection to an address of the dummy
  interface on a protocol/port that is no service of it is rejected (port
  unreachable; TCP clients see "connection refused" at once), so the node's own
  daemons (sshd on 0.0.0.0:22) do not answer on every cluster IP. ICMP/ICMPv6 stay
  allowed: ping to a service address is a harmless, common diagnostic.

- Changing the table while services come and go (transition(), proxy.py's order): a
  run loads the new table before it changes IPVS, with the elements the old table held
  for what goes kept (its source-range restriction and allowed ranges, the rejects and
  services on the dummy addresses, masquerade and hairpin), and loads exactly the new
  table once IPVS and the dummy interface let go of them. So a new load-balancer
  address is restricted before it is bound and served, and one that goes stays
  restricted as long as its virtual service exists, whatever step a run stops at.

Where it lives: render() and render_lines() here (pure); transition() in
packet_rules_transition.py (pure); the text forms and normalise() (one form for our
text and `nft list table` output) in packet_rules_text.py; read(), check(), apply() and
remove() in packet_rules_nft.py, the only I/O.
"""

from __future__ import annotations

import bisect
import collections
import ipaddress

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import cluster
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.packet_rules_text import (
    Elements, by_family, canonical_text, fast_address, lines_normalised, lines_text, texts_by_family)

TABLE_FAMILY = 'inet'
TABLE_NAME = 'netlb_ipvs'
TABLE = '%s %s' % (TABLE_FAMILY, TABLE_NAME)
COMMENT = 'netlb.ipvs k8s_service_proxy: replaced as a whole on every run'

MASQUERADE_EXTERNAL = 'external'
MASQUERADE_ALL = 'all'
MASQUERADE_NONE = 'none'
MASQUERADE_MODES = (MASQUERADE_EXTERNAL, MASQUERADE_ALL, MASQUERADE_NONE)
PROTOCOLS = ('tcp', 'udp', 'sctp')

# Per family: the nft address type, the match keyword, the ICMP protocol name, the
# reject type (written as nft lists it, so an unchanged table compares equal).
_FAMILY = {
    4: ('ipv4_addr', 'ip', 'icmp', 'icmp'),
    6: ('ipv6_addr', 'ip6', 'ipv6-icmp', 'icmpv6'),
}


class PacketRulesError(Exception):
    """The rules could not be rendered, read or loaded; carries nft's message."""


class Options(collections.namedtuple('Options', ('masquerade', 'cluster_cidrs'))):
    """masquerade: one of MASQUERADE_MODES; cluster_cidrs: CIDR texts (both families
    mixed) whose sources need no masquerade toward cluster IPs."""

    __slots__ = ()

    def __new__(cls, masquerade=MASQUERADE_EXTERNAL, cluster_cidrs=()):
        return super(Options, cls).__new__(cls, masquerade, tuple(cluster_cidrs))


def _networks(texts, family):
    for text in texts:
        if '%' in text:  # ipaddress keeps an IPv6 zone id in the network's text: nft would get it
            raise ValueError('%r has a zone id (%%), not a CIDR' % (text,))
    nets = [ipaddress.ip_network(text, strict=False) for text in texts]
    return list(ipaddress.collapse_addresses(net for net in nets if net.version == family))


def _net_text(net):
    # nft lists a full-length prefix as the bare address.
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _set(lines, name, kind, elements, interval=False):
    lines.append('\tset %s {' % name)
    lines.append('\t\ttype %s' % kind)
    if interval:
        lines.append('\t\tflags interval')
    if elements:
        lines.append(Elements(elements))
    lines.append('\t}')


class _Hairpin(int):
    """Where a family's hairpin elements go among _render()'s lines (its template): the
    one part of the table that this node's endpoints alone decide."""

    __slots__ = ()


class Rendered(object):
    """What render_lines() made: text (render()'s), normalised (normalise() of it),
    lines (for transition_lines()), and what the next render_lines() may reuse: the
    template of everything but this node's endpoints, with its inputs, and the
    endpoint addresses known canonical."""

    __slots__ = ('text', 'normalised', 'lines', 'template', 'template_inputs', 'hairpin')

    def __init__(self, text, normalised, lines, template, template_inputs, hairpin):
        self.text, self.normalised, self.lines = text, normalised, lines
        self.template, self.template_inputs, self.hairpin = template, template_inputs, hairpin


def render(ports, dummy_addresses, options=Options(), local_endpoints=(), node_addresses=()):
    """The table definition (nft syntax, in the form `nft list table` prints it) for
    ServicePorts ports, the dummy interface's addresses, Options options, the addresses
    of this node's endpoints (hairpin) and the node's own addresses (a source range that
    holds one lets the node itself through); see the rules at the top.

    Raises PacketRulesError for an unknown masquerade mode or an invalid address.
    """
    return lines_text(_lines(ports, dummy_addresses, options, local_endpoints, node_addresses))


def render_lines(ports, dummy_addresses, options=Options(), local_endpoints=(), node_addresses=(), previous=None):
    """The Rendered of render()'s arguments: its text, normalise() of it written directly
    rather than parsed back, and its lines for transition_lines(). previous: an earlier
    Rendered whose template is reused when ports, dummy addresses, options and node
    addresses are equal (an endpoint on this node came or went: only the hairpin
    elements are made again)."""
    inputs = (ports, dummy_addresses, options, node_addresses)
    if previous is not None and previous.template_inputs == inputs:
        template = previous.template
    else:
        template = _template(ports, dummy_addresses, options, node_addresses)
    hairpin = _Hairpins.of(local_endpoints, previous.hairpin if previous is not None else None)
    lines = _fill(template, hairpin.elements)
    return Rendered(lines_text(lines), lines_normalised(lines), lines, template, inputs, hairpin)


def _lines(ports, dummy_addresses, options, local_endpoints, node_addresses):
    template = _template(ports, dummy_addresses, options, node_addresses)
    return _fill(template, _Hairpins.of(local_endpoints).elements)


HAIRPIN_STEPS = 256  # endpoints coming and going that _Hairpins.of() applies one by one


class _Hairpins(object):
    """The hairpin elements of this node's endpoints, per family: elements (an Elements
    in address order), and what lets the next call change them one endpoint at a time:
    the endpoints (a frozenset) and per family their (packed, text) in address order."""

    __slots__ = ('endpoints', 'pairs', 'elements')

    def __init__(self, endpoints, pairs, elements):
        self.endpoints, self.pairs, self.elements = endpoints, pairs, elements

    @classmethod
    def of(cls, endpoints, previous=None):
        """The _Hairpins of endpoints (address texts); from previous when few differ.
        PacketRulesError for one that is not an address."""
        endpoints = endpoints if isinstance(endpoints, frozenset) else frozenset(endpoints)
        if previous is not None:
            removed, added = previous.endpoints - endpoints, endpoints - previous.endpoints
            if len(removed) + len(added) <= HAIRPIN_STEPS:
                changed = previous.changed(endpoints, removed, added)
                if changed is not None:
                    return changed
        try:
            by_family = texts_by_family(endpoints)
        except ValueError as exc:
            raise PacketRulesError('packet rules: %s' % exc)
        pairs, elements = {}, {}
        for family, texts in by_family.items():
            pairs[family] = [(None, text) for text in texts]  # packed unknown: ipaddress's way, or not asked yet
            elements[family] = Elements('%s . %s' % (text, text) for text in texts)
        if all(fast_address(text) is not None for text in endpoints):
            for family, texts in by_family.items():
                pairs[family] = [(fast_address(text)[1], text) for text in texts]
        else:
            pairs = None  # a text ipaddress had to read: the next call starts over
        return cls(endpoints, pairs, elements)

    def changed(self, endpoints, removed, added):
        """A _Hairpins of endpoints made from this one, or None when it cannot be (an
        address not already canonical, or this one not made from canonical texts)."""
        if self.pairs is None:
            return None
        pairs = dict((family, list(found)) for family, found in self.pairs.items())
        elements = dict((family, list(found)) for family, found in self.elements.items())
        ordered = dict((family, list(found.ordered())) for family, found in self.elements.items())
        for texts, adding in ((removed, False), (added, True)):
            for text in texts:
                found = fast_address(text)
                if found is None:
                    return None
                family, packed = found
                element = '%s . %s' % (text, text)
                at = bisect.bisect_left(pairs[family], (packed, text))
                where = bisect.bisect_left(ordered[family], element)
                if adding:
                    pairs[family].insert(at, (packed, text))
                    elements[family].insert(at, element)
                    ordered[family].insert(where, element)
                else:
                    del pairs[family][at], elements[family][at], ordered[family][where]
        return _Hairpins(endpoints, pairs, dict((family, Elements(elements[family], ordered=ordered[family]))
                                                for family in elements))


def _template(ports, dummy_addresses, options, node_addresses):
    if options.masquerade not in MASQUERADE_MODES:
        raise PacketRulesError('masquerade: %r is not one of %s' % (options.masquerade, ', '.join(MASQUERADE_MODES)))
    try:
        return _render(ports, dummy_addresses, options, by_family(node_addresses))
    except ValueError as exc:
        raise PacketRulesError('packet rules: %s' % exc)


def _fill(template, local_endpoints):
    """The lines of template with each family's hairpin elements (local_endpoints: texts
    by family, in address order)."""
    lines = []
    for line in template:
        if isinstance(line, _Hairpin):
            if local_endpoints[line]:
                lines.append(local_endpoints[line])
        else:
            lines.append(line)
    return lines


def _render(ports, dummy_addresses, options, node_addresses):
    # Each address is parsed once (a node has ~10 ports per address at scale); elements
    # are sorted as text: deterministic, and nft does not care.
    canonical = {}

    def _element(port):
        address = canonical.get(port.address)
        if address is None:
            address = canonical[port.address] = canonical_text(port.address)
        return '%s . %s . %d' % (address, port.protocol, port.port)

    by_family = dict((family, [p for p in ports if p.family == family and p.protocol in PROTOCOLS])
                     for family in (4, 6))
    dummies = texts_by_family(dummy_addresses)
    lines = ['table %s {' % TABLE, '\tcomment "%s"' % COMMENT]
    input_rules, output_rules, post_rules = [], [], []
    for family in (4, 6):
        kind, match, icmp, reject = _FAMILY[family]
        suffix = str(family)
        family_ports = by_family[family]
        concat = '%s . inet_proto . inet_service' % kind
        _set(lines, 'services' + suffix, concat, _unique(_element(p) for p in family_ports))
        _set(lines, 'dummy' + suffix, kind, _unique(str(a) for a in dummies[family]))
        # Source ranges, as kube-proxy reads them: only LB ports; ranges of the other
        # family are ignored; none left, or 0.0.0.0/0 / ::/0 among them: everyone.
        restricted, allowed = [], []
        for port in family_ports:
            if port.kind != cluster.LOAD_BALANCER or not port.source_ranges:
                continue
            nets = _networks(port.source_ranges, family)
            if not nets or any(net.prefixlen == 0 for net in nets):
                continue
            element = _element(port)
            restricted.append(element)
            allowed.extend('%s . %s' % (element, _net_text(net)) for net in nets)
            # The node, from the LB address; not when a range holds that address already
            # (nft refuses overlapping intervals).
            lb_address = ipaddress.ip_address(canonical[port.address])
            if (any(address in net for net in nets for address in node_addresses[family])
                    and not any(lb_address in net for net in nets)):
                allowed.append('%s . %s' % (element, lb_address))
        _set(lines, 'lb_restricted' + suffix, concat, _unique(restricted))
        _set(lines, 'lb_allowed' + suffix, '%s . %s' % (concat, kind), _unique(allowed), interval=True)
        tuple_match = '%s daddr . meta l4proto . th dport' % match
        source_ranges = ('%s @lb_restricted%s %s . %s saddr != @lb_allowed%s drop'
                         % (tuple_match, suffix, tuple_match, match, suffix))
        input_rules.append(source_ranges)
        output_rules.append(source_ranges)
        input_rules.append('ct state new %s daddr @dummy%s meta l4proto != %s %s != @services%s reject with %s '
                           'port-unreachable' % (match, suffix, icmp, tuple_match, suffix, reject))
        if options.masquerade == MASQUERADE_NONE:
            continue
        if options.masquerade == MASQUERADE_ALL:
            always, cluster_ports = family_ports, []
        else:
            always = [p for p in family_ports if p.kind != cluster.CLUSTER_IP and not p.local]
            cluster_ports = [p for p in family_ports if p.kind == cluster.CLUSTER_IP]
        cidrs = _networks(options.cluster_cidrs, family)
        _set(lines, 'masquerade' + suffix, concat, _unique(_element(p) for p in always))
        original = 'ct original %s daddr . meta l4proto . ct original proto-dst' % match
        for protocol in PROTOCOLS:
            post_rules.append('meta l4proto %s %s @masquerade%s masquerade' % (protocol, original, suffix))
        if options.masquerade == MASQUERADE_EXTERNAL:
            _set(lines, 'cluster_ip' + suffix, concat, _unique(_element(p) for p in cluster_ports))
        if options.masquerade == MASQUERADE_EXTERNAL and cidrs:
            _set(lines, 'cluster_cidrs' + suffix, kind, [_net_text(net) for net in cidrs], interval=True)
            for protocol in PROTOCOLS:
                post_rules.append('meta l4proto %s ct original %s saddr != @cluster_cidrs%s %s @cluster_ip%s masquerade'
                                  % (protocol, match, suffix, original, suffix))
        elif options.masquerade == MASQUERADE_EXTERNAL:
            # The source, not the destination, against the set: a cluster IP talking to a service port.
            from_cluster_ip = 'ct original %s saddr . meta l4proto . ct original proto-dst' % match
            for protocol in PROTOCOLS:
                post_rules.append('meta l4proto %s %s @cluster_ip%s masquerade' % (protocol, from_cluster_ip, suffix))
        if options.masquerade == MASQUERADE_EXTERNAL:
            lines.append('\tset hairpin%s {' % suffix)
            lines.append('\t\ttype %s . %s' % (kind, kind))
            lines.append(_Hairpin(family))
            lines.append('\t}')
            post_rules.append('%s saddr . %s daddr @hairpin%s masquerade' % (match, match, suffix))
    lines.append('\tchain input {')
    lines.append('\t\ttype filter hook input priority filter; policy accept;')
    lines.extend('\t\t' + rule for rule in input_rules)
    lines.append('\t}')
    lines.append('\tchain output {')
    lines.append('\t\ttype filter hook output priority mangle + 10; policy accept;')
    lines.extend('\t\t' + rule for rule in output_rules)
    lines.append('\t}')
    if post_rules:
        lines.append('\tchain postrouting {')
        lines.append('\t\ttype nat hook postrouting priority srcnat; policy accept;')
        lines.extend('\t\t' + rule for rule in post_rules)
        lines.append('\t}')
    lines.append('}')
    return lines


def _unique(items):
    return sorted(set(items))
