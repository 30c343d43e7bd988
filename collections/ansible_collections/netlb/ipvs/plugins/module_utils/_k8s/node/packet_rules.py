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

render() and transition() are pure; normalise() puts both our text and `nft list table`
output in one form; apply() is the only I/O.
"""

from __future__ import annotations

import bisect
import collections
import ipaddress
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils import _command, _nftables
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import cluster

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


class ApplyResult(collections.namedtuple('ApplyResult', ('changed', 'before', 'after'))):
    """changed: the table differs (or would, in check mode); before/after: the table
    in normalised text ('' = no table), for the diff."""

    __slots__ = ()


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
        lines.append(_Elements(elements))
    lines.append('\t}')


class _Elements(tuple):
    """A set's elements among _render()'s lines, with its two written forms made once
    (a reused template's sets are written once): text() as render() writes them,
    normalised() as normalise() does (one per line, sorted as text). ordered: the
    elements sorted as text, when the maker has them."""

    def __new__(cls, elements=(), ordered=None):
        return super(_Elements, cls).__new__(cls, elements)

    def __init__(self, elements=(), ordered=None):  # pylint: disable=unused-argument
        super(_Elements, self).__init__()
        self._ordered = ordered
        self._text = self._normalised = None

    def ordered(self):
        if self._ordered is None:
            self._ordered = sorted(self)
        return self._ordered

    def text(self):
        if self._text is None:
            self._text = '\t\telements = { %s }' % ',\n\t\t\t     '.join(self)
        return self._text

    def normalised(self):
        if self._normalised is None:
            self._normalised = '\t\telements = {\n\t\t\t%s,\n\t\t}' % ',\n\t\t\t'.join(self.ordered())
        return self._normalised


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


def _text(lines):
    return '\n'.join(line if not isinstance(line, _Elements) else line.text() for line in lines) + '\n'


def _normalised(lines):
    """normalise() of _text(lines), written directly: _render()'s lines are indented by
    nesting with single spaces already, so only the elements change (one per line,
    sorted); a test holds the two equal."""
    return '\n'.join(line if not isinstance(line, _Elements) else line.normalised() for line in lines) + '\n'


def render(ports, dummy_addresses, options=Options(), local_endpoints=(), node_addresses=()):
    """The table definition (nft syntax, in the form `nft list table` prints it) for
    ServicePorts ports, the dummy interface's addresses, Options options, the addresses
    of this node's endpoints (hairpin) and the node's own addresses (a source range that
    holds one lets the node itself through); see the rules at the top.

    Raises PacketRulesError for an unknown masquerade mode or an invalid address.
    """
    return _text(_lines(ports, dummy_addresses, options, local_endpoints, node_addresses))


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
    return Rendered(_text(lines), _normalised(lines), lines, template, inputs, hairpin)


def _lines(ports, dummy_addresses, options, local_endpoints, node_addresses):
    template = _template(ports, dummy_addresses, options, node_addresses)
    return _fill(template, _Hairpins.of(local_endpoints).elements)


HAIRPIN_STEPS = 256  # endpoints coming and going that _Hairpins.of() applies one by one


class _Hairpins(object):
    """The hairpin elements of this node's endpoints, per family: elements (an _Elements
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
            by_family = _texts_by_family(endpoints)
        except ValueError as exc:
            raise PacketRulesError('packet rules: %s' % exc)
        pairs, elements = {}, {}
        for family, texts in by_family.items():
            pairs[family] = [(None, text) for text in texts]  # packed unknown: ipaddress's way, or not asked yet
            elements[family] = _Elements('%s . %s' % (text, text) for text in texts)
        if all(_fast(text) is not None for text in endpoints):
            for family, texts in by_family.items():
                pairs[family] = [(_fast(text)[1], text) for text in texts]
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
                found = _fast(text)
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
        return _Hairpins(endpoints, pairs, dict((family, _Elements(elements[family], ordered=ordered[family]))
                                                for family in elements))


def _template(ports, dummy_addresses, options, node_addresses):
    if options.masquerade not in MASQUERADE_MODES:
        raise PacketRulesError('masquerade: %r is not one of %s' % (options.masquerade, ', '.join(MASQUERADE_MODES)))
    try:
        return _render(ports, dummy_addresses, options, _by_family(node_addresses))
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


def _by_family(texts):
    """{4: [ip_address], 6: [...]} of address texts, each once, sorted."""
    result = dict((family, set()) for family in (4, 6))
    for text in texts:
        address = ipaddress.ip_address(text)
        result[address.version].add(address)
    return dict((family, sorted(addresses)) for family, addresses in result.items())


_AF = {4: socket.AF_INET, 6: socket.AF_INET6}


def _fast(text):
    """(family, packed) of an address text already in ipaddress's canonical form, else
    None (then ipaddress decides: the same text, error or canonical form as before; the
    round trip through the C library is a fraction of ipaddress's cost)."""
    if not isinstance(text, str):
        return None
    family = 6 if ':' in text else 4
    try:
        packed = socket.inet_pton(_AF[family], text)
    except (OSError, ValueError):
        return None
    if socket.inet_ntop(_AF[family], packed) != text or (family == 6 and '.' in text):
        return None
    return family, packed


def _canonical_text(text):
    """str(ipaddress.ip_address(text)), cheaply when text is canonical already."""
    return text if _fast(text) is not None else str(ipaddress.ip_address(text))


def _texts_by_family(texts):
    """{4: [text], 6: [...]} of address texts, each once, in address order, as
    _by_family's addresses printed (ValueError for one that is not an address)."""
    result = {4: {}, 6: {}}
    inet_pton, inet_ntop = socket.inet_pton, socket.inet_ntop
    try:
        for text in texts:  # _fast() inline: the hot loop (every endpoint on the node)
            family = 6 if ':' in text else 4
            packed = inet_pton(_AF[family], text)
            if inet_ntop(_AF[family], packed) != text or (family == 6 and '.' in text):
                raise ValueError(text)
            result[family][packed] = text
    except (OSError, ValueError, TypeError):
        return dict((family, [str(address) for address in addresses])
                    for family, addresses in _by_family(texts).items())
    return dict((family, [by_packed[packed] for packed in sorted(by_packed)]) for family, by_packed in result.items())


def _render(ports, dummy_addresses, options, node_addresses):
    # Each address is parsed once (a node has ~10 ports per address at scale); elements
    # are sorted as text: deterministic, and nft does not care.
    canonical = {}

    def _element(port):
        address = canonical.get(port.address)
        if address is None:
            address = canonical[port.address] = _canonical_text(port.address)
        return '%s . %s . %d' % (address, port.protocol, port.port)

    by_family = dict((family, [p for p in ports if p.family == family and p.protocol in PROTOCOLS])
                     for family in (4, 6))
    dummies = _texts_by_family(dummy_addresses)
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


# Sets whose old elements transition() keeps beside the new ones: each only narrows who
# gets in (restrictions, rejects) or keeps what still exists working (masquerade, hairpin,
# ports of services still in IPVS). Not cluster_cidrs (an option: nft refuses overlapping
# intervals) and lb_allowed (kept only for restrictions that go, see transition()).
_KEPT_SETS = ('services', 'dummy', 'lb_restricted', 'masquerade', 'cluster_ip', 'hairpin')


def transition(before, after):
    """The table to load before the IPVS table changes (the rule "Changing the table"
    at the top): after's chains and sets, with the elements of before's sets that
    _KEPT_SETS names added, and before's allowed ranges of the restrictions that go.

    before: what read() returned (normalised; '' when no table); after: normalise() of
    render()'s text. A set whose type or flags differ between the two (another release's
    table) keeps only after's elements. Returns nft text as render() writes it.
    """
    old, new = _sets(before), _sets(after)
    lines, skipping = [], False
    for line in after.splitlines():
        if skipping:
            skipping = line != '\t}'
            continue
        if line.startswith('\tset ') and line.endswith(' {'):
            name = line[len('\tset '):-len(' {')]
            header, elements = new[name]
            if name in old and old[name][0] == header:
                elements = sorted(set(elements) | set(_kept(name, old, new)))
            lines.append(line)
            lines.extend('\t\t' + entry for entry in header)
            if elements:
                lines.append('\t\telements = { %s }' % ',\n\t\t\t     '.join(elements))
            lines.append('\t}')
            skipping = True
            continue
        lines.append(line)
    return '\n'.join(lines) + '\n'


def transition_lines(before, after):
    """(transition(b, a), normalise() of it) where b and a are normalise() of the texts
    of _render() lines before and after (render_lines()): the same tables, made from the
    lines instead of parsing texts back (a test holds the two equal)."""
    old, new = _line_sets(before), _line_sets(after)
    lines, skipping = [], False
    for line in after:
        if skipping:
            skipping = line != '\t}'
            continue
        if not isinstance(line, _Elements) and line.startswith('\tset ') and line.endswith(' {'):
            name = line[len('\tset '):-len(' {')]
            header, elements = new[name]
            ordered = elements.ordered() if elements else []
            if name in old and old[name][0] == header and old[name][1] is not elements:
                # The same elements (a reused template) add none: kept is a part of them.
                extra = set(_kept(name, old, new)) - set(elements)
                if extra:
                    ordered = list(ordered)
                    for element in extra:
                        bisect.insort(ordered, element)
            lines.append(line)
            lines.extend('\t\t' + entry for entry in header)
            if ordered:
                lines.append(_Elements(ordered, ordered=ordered))
            lines.append('\t}')
            skipping = True
            continue
        lines.append(line)
    return _text(lines), _normalised(lines)


def _line_sets(lines):
    """_sets() of the normalised text of _render() lines, but each set's elements the
    _Elements itself (unsorted; () when none)."""
    sets, name = {}, None
    for line in lines:
        if name is None:
            if not isinstance(line, _Elements) and line.startswith('\tset ') and line.endswith(' {'):
                name = line[len('\tset '):-len(' {')]
                sets[name] = ([], ())
        elif isinstance(line, _Elements):
            sets[name] = (sets[name][0], line)
        elif line == '\t}':
            name = None
        else:
            sets[name][0].append(line.strip())
    return sets


def _kept(name, old, new):
    """The elements of old's set name that the transition keeps."""
    kind, family = name[:-1], name[-1:]
    if kind in _KEPT_SETS:
        return old[name][1]
    if kind != 'lb_allowed':
        return ()
    restricted = 'lb_restricted' + family
    if restricted not in old or restricted not in new or old[restricted][0] != new[restricted][0]:
        return ()
    going = set(old[restricted][1]) - set(new[restricted][1])
    # An allowed element is `address . protocol . port . range`: the restriction, then the range.
    return [element for element in old[name][1] if element.rsplit(' . ', 1)[0] in going]


def _sets(text):
    """{set name: (header lines (type, flags), element texts)} of a normalised table."""
    sets, name, in_elements = {}, None, False
    for line in text.splitlines():
        if name is None:
            if line.startswith('\tset ') and line.endswith(' {'):
                name = line[len('\tset '):-len(' {')]
                sets[name] = ([], [])
        elif in_elements:
            if line == '\t\t}':
                in_elements = False
            else:
                sets[name][1].append(line.strip().rstrip(','))
        elif line == '\t\telements = {':
            in_elements = True
        elif line == '\t}':
            name = None
        else:
            sets[name][0].append(line.strip())
    return sets


def script(text):
    """The `nft -f` input replacing the table atomically with definition text: the
    empty `table` makes the `delete` valid when the table does not exist yet."""
    return _nftables.replace_script(TABLE, text)


def normalise(text):
    """One form for our text and `nft list table` output: no blank lines, indentation
    by nesting, each set's elements sorted one per line (nft prints them in its own
    order and wraps them at its own width)."""
    out, depth, elements = [], 0, None
    for raw in text.splitlines():
        line = ' '.join(raw.split())
        if not line:
            continue
        if elements is not None:
            elements.append(line)
            if line.endswith('}'):
                out.extend(_elements(elements, depth))
                elements = None
            continue
        if line.startswith('elements = {'):
            if line.endswith('}'):
                out.extend(_elements([line], depth))
            else:
                elements = [line]
            continue
        if line.startswith('}'):
            depth -= 1
        out.append('\t' * depth + line)
        if line.endswith('{'):
            depth += 1
    return '\n'.join(out) + '\n' if out else ''


def _elements(lines, depth):
    body = ' '.join(lines)[len('elements = {'):].rstrip('}')
    items = sorted(item.strip() for item in body.split(',') if item.strip())
    return ['\t' * depth + 'elements = {'] + ['\t' * (depth + 1) + item + ',' for item in items] + ['\t' * depth + '}']


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
