# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import random
import re

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ServicePort as SP
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules as pr
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules_nft as rules_nft
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules_text as rules_text
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules_transition as rules_transition

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')

SMALL = [SP('cluster_ip', 4, 'tcp', '10.96.0.10', 80, False, (), 'default/web'),
         SP('cluster_ip', 4, 'udp', '10.96.0.10', 53, False, (), 'kube-system/dns'),
         SP('node_port', 4, 'tcp', '10.0.2.15', 30080, False, (), 'default/web'),
         SP('load_balancer', 4, 'tcp', '192.0.2.5', 443, False, ('10.0.0.0/8', '172.16.0.1/32'), 'default/lb'),
         SP('load_balancer', 6, 'tcp', '2001:db8::5', 443, True, ('2001:db8:1::/48',), 'default/lb'),
         SP('cluster_ip', 6, 'sctp', 'fd00:0::10', 9000, False, (), 'default/s6')]
SMALL_DUMMY = ['10.96.0.10', '192.0.2.5', '2001:db8::5', 'fd00::10']
SMALL_OPTIONS = pr.Options('external', ('10.244.0.0/16', 'fd10::/56'))
SMALL_LOCAL = ['10.244.2.9', '10.244.1.5', 'fd10::5']
SMALL_NODE = ['10.0.2.15', '2001:db8:1::15', 'fd00:10::11']

# Written with 4-space indents here (pep8); nft's listing indents with tabs.
GOLDEN_NONE = '''table inet netlb_ipvs {
    comment "netlb.ipvs k8s_service_proxy: replaced as a whole on every run"
    set services4 {
        type ipv4_addr . inet_proto . inet_service
        elements = { 10.96.0.1 . tcp . 443 }
    }
    set dummy4 {
        type ipv4_addr
        elements = { 10.96.0.1 }
    }
    set lb_restricted4 {
        type ipv4_addr . inet_proto . inet_service
    }
    set lb_allowed4 {
        type ipv4_addr . inet_proto . inet_service . ipv4_addr
        flags interval
    }
    set services6 {
        type ipv6_addr . inet_proto . inet_service
    }
    set dummy6 {
        type ipv6_addr
    }
    set lb_restricted6 {
        type ipv6_addr . inet_proto . inet_service
    }
    set lb_allowed6 {
        type ipv6_addr . inet_proto . inet_service . ipv6_addr
        flags interval
    }
    chain input {
        type filter hook input priority filter; policy accept;
        ip daddr . meta l4proto . th dport @lb_restricted4 ip daddr . meta l4proto . th dport . ip saddr != @lb_allowed4 drop
        ct state new ip daddr @dummy4 meta l4proto != icmp ip daddr . meta l4proto . th dport != @services4 reject with icmp port-unreachable
        ip6 daddr . meta l4proto . th dport @lb_restricted6 ip6 daddr . meta l4proto . th dport . ip6 saddr != @lb_allowed6 drop
        ct state new ip6 daddr @dummy6 meta l4proto != ipv6-icmp ip6 daddr . meta l4proto . th dport != @services6 reject with icmpv6 port-unreachable
    }
    chain output {
        type filter hook output priority mangle + 10; policy accept;
        ip daddr . meta l4proto . th dport @lb_restricted4 ip daddr . meta l4proto . th dport . ip saddr != @lb_allowed4 drop
        ip6 daddr . meta l4proto . th dport @lb_restricted6 ip6 daddr . meta l4proto . th dport . ip6 saddr != @lb_allowed6 drop
    }
}
'''.replace('    ', '\t')


def test_golden_mode_none():
    ports = [SP('cluster_ip', 4, 'tcp', '10.96.0.1', 443, False, (), 'default/kubernetes')]
    assert pr.render(ports, ['10.96.0.1'], pr.Options('none')) == GOLDEN_NONE


def test_render_matches_what_nft_lists():
    """The fixture is nft's own listing of this render (lab): equal once normalised,
    so an unchanged table is seen as unchanged."""
    with open(os.path.join(FIXTURES, 'nft-list-table.txt')) as handle:
        listed = handle.read()
    assert rules_text.normalise(pr.render(SMALL, SMALL_DUMMY, SMALL_OPTIONS, SMALL_LOCAL, SMALL_NODE)) == rules_text.normalise(listed)


def _elements(text, name):
    """Elements of set name in rendered text, as a set of strings."""
    block = re.search(r'\tset %s \{\n(.*?)\n\t\}' % name, text, re.S)
    if block is None:
        return None
    found = re.search(r'elements = \{ (.*?) \}', block.group(1), re.S)
    return set(item.strip() for item in found.group(1).split(',')) if found else set()


def _rules(text, chain):
    block = re.search(r'\tchain %s \{\n(.*?)\n\t\}' % chain, text, re.S)
    return [line.strip() for line in block.group(1).splitlines()[1:]] if block else []


LB = SP('load_balancer', 4, 'tcp', '192.0.2.5', 443, False, (), 'a/lb')
LB_LOCAL = LB._replace(local=True, port=8443)
NODE = SP('node_port', 4, 'udp', '10.0.2.15', 30053, False, (), 'a/np')
EXT = SP('external_ip', 4, 'sctp', '198.51.100.7', 9000, False, (), 'a/ext')
CIP = SP('cluster_ip', 4, 'tcp', '10.96.0.1', 443, False, (), 'a/cip')
CIP6 = SP('cluster_ip', 6, 'udp', 'fd00::a', 53, False, (), 'a/cip6')


@pytest.mark.parametrize('mode, cidrs, masquerade4, cluster_ip4, cluster_cidrs4, masquerade6, cluster_ip6, n_post', [
    pytest.param('external', (), {'192.0.2.5 . tcp . 443', '10.0.2.15 . udp . 30053', '198.51.100.7 . sctp . 9000'},
                 {'10.96.0.1 . tcp . 443'}, None, set(), {'fd00::a . udp . 53'}, 14,
                 id='external-no-cidrs-cluster-ip-as-source-only'),
    pytest.param('external', ('10.244.0.0/16', '10.244.1.0/24'),
                 {'192.0.2.5 . tcp . 443', '10.0.2.15 . udp . 30053', '198.51.100.7 . sctp . 9000'},
                 {'10.96.0.1 . tcp . 443'}, {'10.244.0.0/16'}, set(), {'fd00::a . udp . 53'}, 14,
                 id='external-v4-cidrs-collapsed'),
    pytest.param('external', ('fd10::/56',), {'192.0.2.5 . tcp . 443', '10.0.2.15 . udp . 30053',
                                              '198.51.100.7 . sctp . 9000'},
                 {'10.96.0.1 . tcp . 443'}, None, set(), {'fd00::a . udp . 53'}, 14, id='external-v6-cidrs-only'),
    pytest.param('all', ('10.244.0.0/16',), {'192.0.2.5 . tcp . 443', '192.0.2.5 . tcp . 8443', '10.0.2.15 . udp . 30053',
                                             '198.51.100.7 . sctp . 9000', '10.96.0.1 . tcp . 443'},
                 None, None, {'fd00::a . udp . 53'}, None, 6, id='all-includes-local-and-cluster'),
    pytest.param('none', ('10.244.0.0/16',), None, None, None, None, None, 0, id='none-no-chain'),
])
def test_masquerade_sets(mode, cidrs, masquerade4, cluster_ip4, cluster_cidrs4, masquerade6, cluster_ip6, n_post):
    text = pr.render([LB, LB_LOCAL, NODE, EXT, CIP, CIP6], [], pr.Options(mode, cidrs))
    assert _elements(text, 'masquerade4') == masquerade4
    assert _elements(text, 'cluster_ip4') == cluster_ip4
    assert _elements(text, 'cluster_cidrs4') == cluster_cidrs4
    assert _elements(text, 'masquerade6') == masquerade6
    assert _elements(text, 'cluster_ip6') == cluster_ip6
    assert len(_rules(text, 'postrouting')) == n_post


# kube-proxy's IPVS proxier without clusterCIDR and masqueradeAll: KUBE-CLUSTER-IP matched
# `src,dst` (source address, destination port); with a cluster CIDR, `dst,dst` from outside it.
FROM_CLUSTER_IP = 'meta l4proto %s ct original ip saddr . meta l4proto . ct original proto-dst @cluster_ip4 masquerade'
FROM_OUTSIDE_CIDRS = ('meta l4proto %s ct original ip saddr != @cluster_cidrs4 ct original ip daddr . meta l4proto . '
                      'ct original proto-dst @cluster_ip4 masquerade')


@pytest.mark.parametrize('cidrs, wanted, unwanted', [
    pytest.param((), FROM_CLUSTER_IP, FROM_OUTSIDE_CIDRS, id='no-cidrs-the-node-as-a-cluster-ip'),
    pytest.param(('10.244.0.0/16',), FROM_OUTSIDE_CIDRS, FROM_CLUSTER_IP, id='cidrs-everything-outside-them'),
    pytest.param(('fd10::/56',), FROM_CLUSTER_IP, FROM_OUTSIDE_CIDRS, id='cidrs-of-the-other-family-only'),
])
def test_cluster_ip_masquerade_rule(cidrs, wanted, unwanted):
    """The cluster-IP rule per family follows kube-proxy: without a cluster CIDR of the family,
    the connections whose source is a cluster IP (the node's own) are masqueraded, nothing else."""
    post = _rules(pr.render([CIP, CIP6], ['10.96.0.1', 'fd00::a'], pr.Options('external', cidrs)), 'postrouting')
    for protocol in pr.PROTOCOLS:
        assert wanted % protocol in post and unwanted % protocol not in post, post


LB_FROM_ITSELF = '192.0.2.5 . tcp . 443 . 192.0.2.5'


# Columns: the LB port's ranges, the node's addresses, the expected elements of
# lb_restricted4 and lb_allowed4.
@pytest.mark.parametrize('ranges, node, restricted, allowed', [
    pytest.param((), ['10.1.2.3'], set(), set(), id='no-ranges-everyone'),
    pytest.param(('10.0.0.0/8', '10.1.0.0/16', '192.168.1.7/32'), [], {'192.0.2.5 . tcp . 443'},
                 {'192.0.2.5 . tcp . 443 . 10.0.0.0/8', '192.0.2.5 . tcp . 443 . 192.168.1.7'}, id='collapsed-host-bare'),
    pytest.param(('0.0.0.0/0',), ['10.1.2.3'], set(), set(), id='any-means-everyone'),
    pytest.param(('2001:db8::/32',), [], set(), set(), id='other-family-ignored-everyone'),
    pytest.param(('2001:db8::/32', '10.0.0.0/8'), [], {'192.0.2.5 . tcp . 443'}, {'192.0.2.5 . tcp . 443 . 10.0.0.0/8'},
                 id='mixed-families'),
    pytest.param(('10.0.0.0/8',), ['192.168.10.11', '10.1.2.3'], {'192.0.2.5 . tcp . 443'},
                 {'192.0.2.5 . tcp . 443 . 10.0.0.0/8', LB_FROM_ITSELF}, id='range-holds-a-node-address-node-allowed'),
    pytest.param(('10.0.0.0/8',), ['192.168.10.11', 'fd00::11'], {'192.0.2.5 . tcp . 443'},
                 {'192.0.2.5 . tcp . 443 . 10.0.0.0/8'}, id='no-node-address-inside-node-refused'),
    pytest.param(('10.0.0.0/8', '2001:db8::/32'), ['2001:db8::11'], {'192.0.2.5 . tcp . 443'},
                 {'192.0.2.5 . tcp . 443 . 10.0.0.0/8'}, id='node-address-of-the-other-family-only'),
    pytest.param(('192.0.2.0/24',), ['192.0.2.77'], {'192.0.2.5 . tcp . 443'},
                 {'192.0.2.5 . tcp . 443 . 192.0.2.0/24'}, id='lb-address-inside-a-range-no-overlapping-element'),
])
def test_source_ranges(ranges, node, restricted, allowed):
    text = pr.render([LB._replace(source_ranges=ranges), CIP._replace(source_ranges=('10.0.0.0/8',))], [],
                     pr.Options('none'), node_addresses=node)
    assert _elements(text, 'lb_restricted4') == restricted
    assert _elements(text, 'lb_allowed4') == allowed
    # The node's own connections meet the same filter, before IPVS's LOCAL_OUT hook.
    assert _rules(text, 'output') == [rule for rule in _rules(text, 'input') if '@lb_restricted' in rule]
    assert len(_rules(text, 'output')) == 2


HAIRPIN_RULES = ['ip saddr . ip daddr @hairpin4 masquerade', 'ip6 saddr . ip6 daddr @hairpin6 masquerade']


@pytest.mark.parametrize('local_endpoints, mode, hairpin4, hairpin6, rules', [
    pytest.param(['10.244.1.5'], 'external', {'10.244.1.5 . 10.244.1.5'}, set(), HAIRPIN_RULES, id='one-pair'),
    pytest.param(['fd10::5', '10.244.1.5', '10.244.2.9'], 'external',
                 {'10.244.1.5 . 10.244.1.5', '10.244.2.9 . 10.244.2.9'}, {'fd10::5 . fd10::5'}, HAIRPIN_RULES,
                 id='dual-stack'),
    pytest.param(['10.244.1.5', '10.244.1.5', 'fd10:0:0::5', 'FD10::5'], 'external', {'10.244.1.5 . 10.244.1.5'},
                 {'fd10::5 . fd10::5'}, HAIRPIN_RULES, id='deduplicated-canonical'),
    pytest.param([], 'external', set(), set(), HAIRPIN_RULES, id='none-local-empty-sets-same-rules'),
    pytest.param(['10.244.1.5'], 'all', None, None, [], id='all-masquerades-everything-already'),
    pytest.param(['10.244.1.5'], 'none', None, None, [], id='none-no-rule'),
])
def test_hairpin(local_endpoints, mode, hairpin4, hairpin6, rules):
    text = pr.render([CIP, CIP6], [], pr.Options(mode, ('10.244.0.0/16',)), local_endpoints)
    assert _elements(text, 'hairpin4') == hairpin4
    assert _elements(text, 'hairpin6') == hairpin6
    assert [rule for rule in _rules(text, 'postrouting') if 'hairpin' in rule] == rules


def test_rule_count_does_not_grow():
    few = pr.render([CIP], ['10.96.0.1'], SMALL_OPTIONS, ['10.244.0.2'])
    many = pr.render([CIP._replace(address='10.96.%d.%d' % (i // 250, i % 250 + 1)) for i in range(2000)],
                     ['10.96.0.1'], SMALL_OPTIONS, ['10.244.%d.%d' % (i // 250, i % 250 + 1) for i in range(500)])
    assert _rules(few, 'input') == _rules(many, 'input')
    assert _rules(few, 'output') == _rules(many, 'output')
    assert _rules(few, 'postrouting') == _rules(many, 'postrouting')
    assert len(_elements(many, 'services4')) == 2000
    assert len(_elements(many, 'hairpin4')) == 500


def test_render_errors():
    with pytest.raises(pr.PacketRulesError, match="masquerade: 'some'"):
        pr.render([], [], pr.Options('some'))
    with pytest.raises(pr.PacketRulesError, match='10.0.0.300'):
        pr.render([CIP._replace(address='10.0.0.300')], [], pr.Options())
    with pytest.raises(pr.PacketRulesError, match='pod-a'):
        pr.render([CIP], [], pr.Options(), ['pod-a'])
    with pytest.raises(pr.PacketRulesError, match='node-a'):
        pr.render([CIP], [], pr.Options(), node_addresses=['node-a'])
    # The translator and the options leave zone ids out; a CIDR with one is an error here too.
    with pytest.raises(pr.PacketRulesError, match='zone id'):
        pr.render([LB._replace(source_ranges=('fd00::%eth0/64',))], [], pr.Options())
    with pytest.raises(pr.PacketRulesError, match='zone id'):
        pr.render([CIP], [], pr.Options('external', ('fd00:244::%eth0/56',)))


def test_normalise_is_order_and_wrap_blind():
    a = 'table inet t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.2,\n\t\t\t     10.0.0.1 }\n\t}\n\n}\n'
    b = 'table inet t {\n  set s {\n    type ipv4_addr\n    elements = { 10.0.0.1, 10.0.0.2 }\n  }\n}\n'
    assert rules_text.normalise(a) == rules_text.normalise(b)
    assert rules_text.normalise('') == ''


def test_script_replaces_atomically():
    assert rules_nft.script('table inet netlb_ipvs {\n}\n') == ('table inet netlb_ipvs {\n}\ndelete table inet netlb_ipvs\n'
                                                                'table inet netlb_ipvs {\n}\n')


WEB = SP('cluster_ip', 4, 'tcp', '10.96.0.1', 443, False, (), 'default/kubernetes')
LB_A = SP('load_balancer', 4, 'tcp', '198.51.100.1', 443, False, ('203.0.113.0/24',), 'default/a')
LB_B = SP('load_balancer', 4, 'tcp', '198.51.100.2', 443, False, ('192.0.2.0/24',), 'default/b')
A, A_RANGE, A_NARROW = '198.51.100.1 . tcp . 443', '198.51.100.1 . tcp . 443 . 203.0.113.0/24', \
    '198.51.100.1 . tcp . 443 . 203.0.113.0/28'
B, B_RANGE = '198.51.100.2 . tcp . 443', '198.51.100.2 . tcp . 443 . 192.0.2.0/24'


def _table(ports):
    if ports is None:
        return ''
    return rules_text.normalise(pr.render(ports, sorted(set(p.address for p in ports if p.kind != 'node_port'))))


@pytest.mark.parametrize('before, after, restricted4, allowed4, dummy4', [
    pytest.param(None, [WEB, LB_B], {B}, {B_RANGE}, {'10.96.0.1', '198.51.100.2'}, id='no-table-before'),
    pytest.param([WEB, LB_A], [WEB, LB_B], {A, B}, {A_RANGE, B_RANGE}, {'10.96.0.1', '198.51.100.1', '198.51.100.2'},
                 id='lb-replaced-new-restricted-old-kept'),
    pytest.param([WEB, LB_A], [WEB], {A}, {A_RANGE}, {'10.96.0.1', '198.51.100.1'}, id='lb-gone-stays-restricted'),
    pytest.param([WEB, LB_A], [WEB, LB_A._replace(source_ranges=('203.0.113.0/28',))], {A}, {A_NARROW},
                 {'10.96.0.1', '198.51.100.1'}, id='ranges-narrowed-at-once'),
    pytest.param([WEB, LB_A], [WEB, LB_A._replace(source_ranges=())], {A}, {A_RANGE}, {'10.96.0.1', '198.51.100.1'},
                 id='ranges-dropped-after-ipvs'),
    pytest.param([WEB, LB_B], [WEB, LB_B], {B}, {B_RANGE}, {'10.96.0.1', '198.51.100.2'}, id='unchanged'),
])
def test_transition(before, after, restricted4, allowed4, dummy4):
    """The first load of a run: the new table, plus for what goes the old elements that
    restrict or keep it working; a restriction that stays takes its new ranges at once."""
    old, new = _table(before), _table(after)
    first = rules_transition.transition(old, new)
    assert (_elements(first, 'lb_restricted4'), _elements(first, 'lb_allowed4'), _elements(first, 'dummy4')) == (
        restricted4, allowed4, dummy4)
    # Invariants: only sets grow, the chains are the new ones, and the table settles on the new one.
    assert _rules(first, 'input') == _rules(new, 'input') and _rules(first, 'output') == _rules(new, 'output')
    for name in re.findall(r'\tset (\w+) \{', new):
        assert _elements(new, name) <= _elements(first, name)
    assert rules_text.normalise(rules_transition.transition(new, new)) == new
    assert rules_text.normalise(rules_transition.transition(rules_text.normalise(first), new)) == rules_text.normalise(first)


def test_transition_from_what_nft_lists():
    """before as nft lists it (its own spellings: /32 as the address); a set another
    release typed or flagged differently keeps only the new elements."""
    with open(os.path.join(FIXTURES, 'nft-list-table.txt')) as handle:
        listed = rules_text.normalise(handle.read())
    without_lb = [port for port in SMALL if port.kind != 'load_balancer']
    new = rules_text.normalise(pr.render(without_lb, ['10.96.0.10', 'fd00::10'], SMALL_OPTIONS, SMALL_LOCAL, SMALL_NODE))
    first = rules_transition.transition(listed, new)
    assert _elements(first, 'lb_allowed4') == {'192.0.2.5 . tcp . 443 . 10.0.0.0/8', '192.0.2.5 . tcp . 443 . 172.16.0.1',
                                               '192.0.2.5 . tcp . 443 . 192.0.2.5'}
    assert _elements(first, 'dummy6') == {'2001:db8::5', 'fd00::10'}
    other_release = listed.replace('\t\ttype ipv4_addr . inet_proto . inet_service . ipv4_addr\n\t\tflags interval',
                                   '\t\ttype ipv4_addr . inet_proto . inet_service . ipv4_addr', 1)
    assert _elements(rules_transition.transition(other_release, new), 'lb_allowed4') == set()


class FakeRunner(_command.Runner):
    """Scripts nft: `list table` answers with the held text; `-f -` stores it."""

    def __init__(self, table=None, load_rc=0):
        super(FakeRunner, self).__init__(None)
        self.table = table
        self.load_rc = load_rc
        self.calls = []
        self.timeouts = set()

    def which(self, name, required=True):
        return '/usr/sbin/' + name

    def _execute(self, argv, data, timeout=None):
        self.calls.append(argv[1:])
        self.timeouts.add(timeout)
        if argv[1:3] == ['list', 'table']:
            if self.table is None:
                return 1, '', 'Error: No such file or directory\nlist table inet netlb_ipvs\n'
            return 0, self.table, ''
        if argv[1:] == ['-f', '-']:
            if self.load_rc:
                return self.load_rc, '', 'Error: Could not process rule: Operation not supported\n'
            self.table = data.split('delete table inet netlb_ipvs\n', 1)[1]
            return 0, '', ''
        if argv[1:3] == ['delete', 'table']:
            self.table = None
            return 0, '', ''
        if argv[1:] == ['-c', '-f', '-']:
            return 0, '', ''
        raise AssertionError(argv)


@pytest.mark.parametrize('check_mode', [True, False])
def test_apply_new_table_then_idempotent(check_mode):
    runner = FakeRunner()
    text = pr.render(SMALL, SMALL_DUMMY, SMALL_OPTIONS, SMALL_LOCAL, SMALL_NODE)
    result = rules_nft.apply(runner, text, check_mode=check_mode)
    assert result == rules_nft.ApplyResult(True, '', rules_text.normalise(text))
    assert (['-f', '-'] in runner.calls) is not check_mode
    if not check_mode:
        again = rules_nft.apply(runner, text)
        assert again == rules_nft.ApplyResult(False, rules_text.normalise(text), rules_text.normalise(text))
        assert runner.calls.count(['-f', '-']) == 1
    rules_nft.check(runner, text)
    rules_nft.remove(runner)
    assert runner.timeouts == {_command.NODE_TIMEOUT}  # a hung nft does not hold the run lock for ever


def test_apply_unchanged_against_nft_listing():
    with open(os.path.join(FIXTURES, 'nft-list-table.txt')) as handle:
        runner = FakeRunner(handle.read())
    result = rules_nft.apply(runner, pr.render(SMALL, SMALL_DUMMY, SMALL_OPTIONS, SMALL_LOCAL, SMALL_NODE))
    assert not result.changed and ['-f', '-'] not in runner.calls


def test_apply_load_error_carries_nft_message():
    runner = FakeRunner(load_rc=1)
    with pytest.raises(pr.PacketRulesError, match='cannot load table inet netlb_ipvs: .*Operation not supported'):
        rules_nft.apply(runner, GOLDEN_NONE)


def test_remove():
    runner = FakeRunner(GOLDEN_NONE)
    assert rules_nft.remove(runner, check_mode=True).changed and runner.table is not None
    assert rules_nft.remove(runner) == rules_nft.ApplyResult(True, rules_text.normalise(GOLDEN_NONE), '')
    assert runner.table is None
    assert not rules_nft.remove(runner).changed


# render_lines() and transition_lines(): the watcher's shortcuts (proxy.SyncMemo) held
# equal to render() + normalise() and transition() over texts, which they must give.
SHORTCUT_CASES = [
    pytest.param(SMALL, SMALL_DUMMY, SMALL_OPTIONS, SMALL_LOCAL, SMALL_NODE, id='small'),
    pytest.param(SMALL, SMALL_DUMMY, pr.Options('all'), SMALL_LOCAL, SMALL_NODE, id='masquerade-all'),
    pytest.param(SMALL, SMALL_DUMMY, pr.Options('none'), SMALL_LOCAL, SMALL_NODE, id='masquerade-none'),
    pytest.param(SMALL, SMALL_DUMMY, pr.Options('external'), (), (), id='no-cidrs-no-local'),
    pytest.param([], [], SMALL_OPTIONS, [], [], id='empty'),
    # Texts that are not canonical take ipaddress's way: the same canonical form, deduplicated.
    pytest.param(SMALL, ['10.96.0.10', 'fd00:0::10', 'fd00::10'], SMALL_OPTIONS,
                 ['10.244.1.5', 'fd10:0::5', 'fd10::5', '::ffff:10.0.0.1'], SMALL_NODE, id='not-canonical'),
    pytest.param([SP('cluster_ip', 4, 'tcp', '10.96.%d.%d' % divmod(i, 250), 80 + i % 3, False, (), 'a/s%d' % i)
                  for i in range(600)], ['10.96.%d.%d' % divmod(i, 250) for i in range(600)], SMALL_OPTIONS,
                 ['10.244.%d.%d' % divmod(i * 7, 250) for i in range(900)], SMALL_NODE, id='many'),
]


@pytest.mark.parametrize('ports, dummy, options, local, node', SHORTCUT_CASES)
def test_render_lines_is_render_and_normalise(ports, dummy, options, local, node):
    rendered = pr.render_lines(ports, dummy, options, local_endpoints=local, node_addresses=node)
    assert rendered.text == pr.render(ports, dummy, options, local_endpoints=local, node_addresses=node)
    assert rendered.normalised == rules_text.normalise(rendered.text)
    # Again from the previous one: its template (same ports...) and known addresses reused.
    for others in (local[1:], list(local) + ['10.244.9.9', 'fd10::9'], ()):
        again = pr.render_lines(ports, dummy, options, local_endpoints=others, node_addresses=node, previous=rendered)
        assert again.template is rendered.template
        assert again.text == pr.render(ports, dummy, options, local_endpoints=others, node_addresses=node)
        assert again.normalised == rules_text.normalise(again.text)
    other_ports = ports[1:] if ports else SMALL[:1]
    changed = pr.render_lines(other_ports, dummy, options, local_endpoints=local, node_addresses=node, previous=rendered)
    assert changed.template is not rendered.template
    assert changed.text == pr.render(other_ports, dummy, options, local_endpoints=local, node_addresses=node)


def test_render_lines_refuses_what_render_refuses():
    for local in (['10.244.1.5', 'not-an-address'], ['10.244.1.5', 42.5]):
        with pytest.raises(pr.PacketRulesError):
            pr.render(SMALL, SMALL_DUMMY, SMALL_OPTIONS, local_endpoints=local)
        with pytest.raises(pr.PacketRulesError):
            pr.render_lines(SMALL, SMALL_DUMMY, SMALL_OPTIONS, local_endpoints=local)


TRANSITION_TABLES = {
    'web': ([WEB], ['10.96.0.1'], ['10.244.1.5']),
    'web+a': ([WEB, LB_A], ['10.96.0.1', '198.51.100.1'], ['10.244.1.5', '10.244.1.6']),
    'web+b': ([WEB, LB_B], ['10.96.0.1', '198.51.100.2'], ['10.244.1.6']),
    'web+a-narrow': ([WEB, LB_A._replace(source_ranges=('203.0.113.0/28',))], ['10.96.0.1', '198.51.100.1'], []),
    'web+a-open': ([WEB, LB_A._replace(source_ranges=())], ['10.96.0.1', '198.51.100.1'], ['10.244.1.5']),
    'small': (SMALL, SMALL_DUMMY, SMALL_LOCAL),
}


@pytest.mark.parametrize('before', sorted(TRANSITION_TABLES))
@pytest.mark.parametrize('after', sorted(TRANSITION_TABLES))
def test_transition_lines_is_transition(before, after):
    def rendered(name):
        ports, dummy, local = TRANSITION_TABLES[name]
        return pr.render_lines(ports, dummy, SMALL_OPTIONS, local_endpoints=local, node_addresses=SMALL_NODE)

    old, new = rendered(before), rendered(after)
    first = rules_transition.transition(old.normalised, new.normalised)
    assert rules_transition.transition_lines(old.lines, new.lines) == (first, rules_text.normalise(first))


@pytest.mark.parametrize('before', sorted(TRANSITION_TABLES))
def test_transition_lines_over_a_reused_template_is_transition(before):
    """Only this node's endpoints changed: the sets of the template are the same objects
    in both (transition_lines' shortcut), the hairpin sets differ."""
    ports, dummy, local = TRANSITION_TABLES[before]
    old = pr.render_lines(ports, dummy, SMALL_OPTIONS, local_endpoints=local, node_addresses=SMALL_NODE)
    for others in (local[1:], list(local) + ['10.244.9.9'], ['fd10::1']):
        new = pr.render_lines(ports, dummy, SMALL_OPTIONS, local_endpoints=others, node_addresses=SMALL_NODE,
                              previous=old)
        assert new.template is old.template
        first = rules_transition.transition(old.normalised, new.normalised)
        assert rules_transition.transition_lines(old.lines, new.lines) == (first, rules_text.normalise(first))


def test_render_lines_follows_endpoints_one_at_a_time():
    """Endpoints of this node coming and going a few at a time (the hairpin sets changed
    in place), many at once, and a text not canonical (ipaddress's way, then over again):
    every rendering equals render() + normalise(), and transition_lines transition()."""
    rng = random.Random(21)
    pool = ['10.244.%d.%d' % (i // 50, i % 50 + 1) for i in range(300)] + ['fd10::%x' % i for i in range(1, 60)]
    local, previous = set(rng.sample(pool, 120)), None
    for step in range(40):
        if step == 20:
            local |= {'fd10:0::abc'}
        elif step % 9 == 8:
            local = set(rng.sample(pool, 200))
        else:
            for _i in range(rng.randrange(1, 4)):
                local.symmetric_difference_update({rng.choice(pool)})
        rendered = pr.render_lines(SMALL, SMALL_DUMMY, SMALL_OPTIONS, local_endpoints=frozenset(local),
                                   node_addresses=SMALL_NODE, previous=previous)
        text = pr.render(SMALL, SMALL_DUMMY, SMALL_OPTIONS, local_endpoints=sorted(local), node_addresses=SMALL_NODE)
        assert (rendered.text, rendered.normalised) == (text, rules_text.normalise(text)), step
        if previous is not None:
            first = rules_transition.transition(previous.normalised, rendered.normalised)
            assert rules_transition.transition_lines(previous.lines, rendered.lines) == (first, rules_text.normalise(first)), step
        previous = rendered
