# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The leftovers planner: what of kube-proxy goes, what stays (kubelet's, an operator's,
kube-router's, and ours still in use), and that replaying the restore text leaves a node
whose next plan is empty and whose other chains are untouched."""

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import leftovers
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers import LeftoversError

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'leftovers')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


IPVS_NODE = fixture('ipvs-node.iptables-save')
IPTABLES_NODE = fixture('iptables-mode-node.iptables-save')
FORWARD_ACCEPT = IPVS_NODE.replace(':FORWARD DROP [0:0]', ':FORWARD ACCEPT [0:0]')
SETS = ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP', 'KUBE-LOAD-BALANCER', 'KUBE-EXTERNAL-IP',
        'KUBE-EXTERNAL-IP-LOCAL', 'KUBE-HEALTH-CHECK-NODE-PORT', 'KUBE-IPVS-IPS', 'KUBE-LOAD-BALANCER-FW',
        'KUBE-LOAD-BALANCER-SOURCE-CIDR', 'KUBE-6-CLUSTER-IP', 'KUBE-6-LOAD-BALANCER-SOURCE-CID', 'ops-admins',
        'KUBE-SRC-3XQ2TIBLGO6HBUYJ', 'KUBE-DST-UVXZ5N7EAPNHDWGD']
NFT_TABLES = 'table ip kube-proxy\ntable ip6 kube-proxy\ntable inet netlb_ipvs\ntable ip nat\ntable ip filter\n'


def replay(save_text, restore_text):
    """iptables-restore --noflush on a parsed save text, as the kernel does it: a declared
    chain is made or flushed, -D deletes the first equal rule (missing: error), -X deletes
    an empty, unreferenced user chain (else error). Returns the tables."""
    tables = leftovers.parse_save(save_text)
    table = None
    for line in restore_text.splitlines():
        if line.startswith('*'):
            table = tables[line[1:]]
        elif line.startswith(':'):
            chain = line[1:].split()[0]
            table.chains.setdefault(chain, '-')
            table.rules = [rule for rule in table.rules if rule.chain != chain]
        elif line.startswith('-D '):
            text = '-A ' + line[3:]
            index = [rule.text for rule in table.rules].index(text)  # ValueError: no such rule
            del table.rules[index]
        elif line.startswith('-X '):
            chain = line[3:]
            assert not table.builtin(chain)
            assert not [rule for rule in table.rules if rule.chain == chain], 'chain %s not empty' % chain
            assert not [rule for rule in table.rules if rule.target == chain], 'chain %s still referenced' % chain
            del table.chains[chain]
        else:
            assert line == 'COMMIT', line
    return tables


def render(tables):
    lines = []
    for table in tables.values():
        lines.append('*' + table.name)
        lines.extend(':%s %s [0:0]' % (chain, policy) for chain, policy in table.chains.items())
        lines.extend(rule.text for rule in table.rules)
        lines.append('COMMIT')
    return '\n'.join(lines) + '\n'


def chains(text):
    return set((table.name, chain) for table in leftovers.parse_save(text).values() for chain in table.chains)


# keep_forward, text, gone (table, chain) beyond the common ones, kept (table, chain) of ours, sets kept.
IPVS_COMMON_GONE = {('nat', 'KUBE-SERVICES'), ('nat', 'KUBE-POSTROUTING'), ('nat', 'KUBE-NODE-PORT'),
                    ('nat', 'KUBE-LOAD-BALANCER'), ('nat', 'KUBE-MARK-MASQ'), ('nat', 'KUBE-PROXY-CANARY'),
                    ('filter', 'KUBE-NODE-PORT'), ('filter', 'KUBE-PROXY-FIREWALL'),
                    ('filter', 'KUBE-SOURCE-RANGES-FIREWALL'), ('filter', 'KUBE-IPVS-FILTER'),
                    ('filter', 'KUBE-IPVS-OUT-FILTER'), ('filter', 'KUBE-PROXY-CANARY'),
                    ('mangle', 'KUBE-PROXY-CANARY')}
FOREIGN = {('mangle', 'KUBE-IPTABLES-HINT'), ('mangle', 'KUBE-KUBELET-CANARY'), ('filter', 'KUBE-KUBELET-CANARY'),
           ('nat', 'KUBE-KUBELET-CANARY'), ('filter', 'KUBE-FIREWALL'), ('filter', 'OPS-ALLOW'), ('nat', 'OPS-SNAT'),
           ('nat', 'KUBE-MARK-DROP'), ('nat', 'LAB-DNAT'), ('filter', 'KUBE-ROUTER-INPUT')}
CASES = [
    # name, keep_forward, text, gone, kept (chains of ours that stay)
    ('ipvs, FORWARD DROP: KUBE-FORWARD stays', 'auto', IPVS_NODE, IPVS_COMMON_GONE, {('filter', 'KUBE-FORWARD')}),
    ('ipvs, FORWARD ACCEPT: all of it goes', 'auto', FORWARD_ACCEPT, IPVS_COMMON_GONE | {('filter', 'KUBE-FORWARD')},
     set()),
    ('ipvs, keep_forward=never', 'never', IPVS_NODE, IPVS_COMMON_GONE | {('filter', 'KUBE-FORWARD')}, set()),
    ('ipvs, keep_forward=always', 'always', FORWARD_ACCEPT, IPVS_COMMON_GONE, {('filter', 'KUBE-FORWARD')}),
    ('iptables mode: an operator chain holds KUBE-SERVICES and what it reaches', 'auto', IPTABLES_NODE,
     {('nat', 'KUBE-POSTROUTING'), ('nat', 'KUBE-XLB-XPGD46QRK7WJZT7O'), ('filter', 'KUBE-EXTERNAL-SERVICES'),
      ('filter', 'KUBE-FORWARD'), ('filter', 'KUBE-NODEPORTS'), ('filter', 'KUBE-PROXY-FIREWALL'),
      ('filter', 'KUBE-SERVICES')},
     # LAB-DNAT -> KUBE-SERVICES -> KUBE-SVC-, KUBE-NODEPORTS -> KUBE-EXT- -> KUBE-SVC-, -> KUBE-SEP- -> KUBE-MARK-MASQ
     {('nat', 'KUBE-SERVICES'), ('nat', 'KUBE-SVC-NPX46M4PTMTKRN6Y'), ('nat', 'KUBE-SEP-IT2ZTR26TO4XFPTO'),
      ('nat', 'KUBE-MARK-MASQ'), ('nat', 'KUBE-NODEPORTS'), ('nat', 'KUBE-EXT-XPGD46QRK7WJZT7O'),
      ('nat', 'KUBE-SVC-XPGD46QRK7WJZT7O')}),
]


@pytest.mark.parametrize('name, keep_forward, text, gone, kept', CASES, ids=[case[0] for case in CASES])
def test_plan_removes_kube_proxys_chains_only_and_replays_to_an_empty_plan(name, keep_forward, text, gone, kept):
    plan = leftovers.plan([('iptables-nft', text)], SETS, None, keep_forward)
    ruleset = plan.rulesets[0]
    planned_gone = set((table.table, chain) for table in ruleset.tables for chain in table.remove)
    planned_kept = set((table.table, chain) for table in ruleset.tables for chain, _why in table.kept)
    assert planned_gone == gone
    assert planned_kept == kept
    assert len(plan.warnings) >= len(kept)

    # Replaying the restore text: each -D finds its rule, each -X an empty unreferenced chain.
    after = replay(text, ruleset.restore)
    assert chains(render(after)) == chains(text) - gone
    # Nobody else's chain lost a rule; built-in chains lost exactly the jumps to what went.
    before_tables = leftovers.parse_save(text)
    for table in after.values():
        for chain in table.chains:
            rules_after = [rule.text for rule in table.rules if rule.chain == chain]
            rules_before = [rule.text for rule in before_tables[table.name].rules if rule.chain == chain]
            if table.builtin(chain):
                gone_here = set(c for t, c in gone if t == table.name)
                assert rules_after == [rule for rule in rules_before
                                       if leftovers.parse_rule(rule).target not in gone_here]
            else:
                assert rules_after == rules_before, chain
    assert not (chains(render(after)) & gone)
    assert FOREIGN & chains(text) <= chains(render(after))
    # A second plan from the node as it is then has nothing to do.
    again = leftovers.plan([('iptables-nft', render(after))], [], None, keep_forward)
    assert not leftovers.has_work(again)
    assert set((t.table, c) for t in again.rulesets[0].tables for c, _w in t.kept) == kept


def test_kubelets_chains_are_never_ours():
    for table, chain in leftovers.KUBELET_CHAINS:
        assert not leftovers.owned_chain(table, chain), (table, chain)
    assert not leftovers.owned_chain('filter', 'KUBE-ROUTER-INPUT')
    assert not leftovers.owned_chain('filter', 'KUBE-POD-FW-ABC')
    assert not leftovers.owned_chain('filter', 'KUBE-SVC-ABC')  # service chains live in nat only
    assert leftovers.owned_chain('nat', 'KUBE-FIREWALL')  # the IPVS mode's, before 1.2x; filter's is kubelet's


def test_restore_text_deletes_jumps_after_flushing_and_before_deleting():
    plan = leftovers.plan([('iptables-nft', FORWARD_ACCEPT)], [], None)
    text = plan.rulesets[0].restore
    nat = text[text.index('*nat'):]
    nat = nat[:nat.index('COMMIT') + len('COMMIT')]
    assert nat.splitlines() == [
        '*nat',
        ':KUBE-LOAD-BALANCER - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODE-PORT - [0:0]',
        ':KUBE-POSTROUTING - [0:0]', ':KUBE-PROXY-CANARY - [0:0]', ':KUBE-SERVICES - [0:0]',
        '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-D OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-D POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        '-X KUBE-LOAD-BALANCER', '-X KUBE-MARK-MASQ', '-X KUBE-NODE-PORT', '-X KUBE-POSTROUTING',
        '-X KUBE-PROXY-CANARY', '-X KUBE-SERVICES',
        'COMMIT']
    assert text.count('COMMIT') == 3  # mangle, filter, nat: one transaction each


# sets given, iptables text, destroyed, kept
SET_CASES = [
    ('ours and their IPv6 twins go; the operator\'s and kube-router\'s stay', SETS, FORWARD_ACCEPT,
     ('KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP', 'KUBE-LOAD-BALANCER', 'KUBE-EXTERNAL-IP',
      'KUBE-EXTERNAL-IP-LOCAL', 'KUBE-HEALTH-CHECK-NODE-PORT', 'KUBE-IPVS-IPS', 'KUBE-LOAD-BALANCER-FW',
      'KUBE-LOAD-BALANCER-SOURCE-CIDR', 'KUBE-6-CLUSTER-IP', 'KUBE-6-LOAD-BALANCER-SOURCE-CID'), ()),
    ('a set a kept chain matches stays', ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK'],
     IPVS_NODE.replace('-A OPS-ALLOW -p tcp', '-A OPS-ALLOW -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\n'
                       '-A OPS-ALLOW -p tcp'),
     ('KUBE-LOOP-BACK',), ('KUBE-CLUSTER-IP',)),
    ('no ipset program: nothing planned', None, FORWARD_ACCEPT, (), ()),
]


@pytest.mark.parametrize('name, sets, text, destroyed, kept', SET_CASES, ids=[case[0] for case in SET_CASES])
def test_sets(name, sets, text, destroyed, kept):
    plan = leftovers.plan([('iptables', text)], sets, None)
    assert plan.sets == destroyed
    assert tuple(name for name, _why in plan.sets_kept) == kept
    assert leftovers.ipset_restore_text(plan.sets) == ''.join('destroy %s\n' % name for name in destroyed)


def test_ipv6_set_names_are_cut_as_kube_proxy_cuts_them():
    assert 'KUBE-6-LOAD-BALANCER-SOURCE-CID' in leftovers.OWNED_SETS
    assert 'KUBE-6-NODE-PORT-LOCAL-SCTP-HAS' in leftovers.OWNED_SETS
    assert all(len(name) <= 31 for name in leftovers.OWNED_SETS)


def test_nft_tables_of_kube_proxy_only():
    plan = leftovers.plan([], None, leftovers.parse_nft_tables(NFT_TABLES))
    assert plan.nft_tables == (('ip', 'kube-proxy'), ('ip6', 'kube-proxy'))
    assert leftovers.nft_script(plan.nft_tables) == 'delete table ip kube-proxy\ndelete table ip6 kube-proxy\n'


def test_nothing_there_is_no_work_and_an_empty_diff():
    plain = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n'
    plan = leftovers.plan([('iptables', plain)], ['ops-admins'], [('inet', 'netlb_ipvs')])
    assert not leftovers.has_work(plan)
    assert leftovers.diff_texts(plan) == ('', '')
    assert leftovers.removed(plan) == {'iptables': [], 'ipsets': [], 'nft_tables': []}


def test_diff_lists_what_goes_before_and_what_stays_after():
    plan = leftovers.plan([('iptables-nft', IPVS_NODE)], ['KUBE-CLUSTER-IP', 'ops-admins'],
                          [('ip', 'kube-proxy')])
    before, after = leftovers.diff_texts(plan)
    assert after == 'iptables-nft filter: chain KUBE-FORWARD\n'
    assert 'ipset KUBE-CLUSTER-IP\n' in before and 'nft table ip kube-proxy\n' in before
    assert 'iptables-nft filter: chain KUBE-FORWARD\n' in before and 'ops-admins' not in before
    assert leftovers.kept(plan) == ['iptables-nft filter: chain KUBE-FORWARD: the filter FORWARD policy is DROP: its '
                                    'accept rules may be what lets forwarded service traffic through '
                                    '(keep_forward=never removes it)']


@pytest.mark.parametrize('text, message', [
    ('-A INPUT -j ACCEPT\n', 'line 1 outside a table'),
    ('*filter\n-I INPUT -j ACCEPT\nCOMMIT\n', 'line 2 not understood'),
])
def test_unreadable_save_text_is_an_error(text, message):
    with pytest.raises(LeftoversError, match=message):
        leftovers.parse_save(text)


def test_keep_forward_must_be_a_choice():
    with pytest.raises(LeftoversError, match='keep_forward must be one of auto, always, never'):
        leftovers.plan([('iptables', IPVS_NODE)], [], None, keep_forward='sometimes')


# The same node's IPv6 rules, as kube-proxy's IPv6 proxier writes them: the same chains,
# sets named KUBE-6-*, IPv6 addresses.
IPV6_NODE = '\n'.join(
    line.replace('--match-set KUBE-', '--match-set KUBE-6-').replace('127.0.0.0/8', '::1/128')
    .replace('iptables-nft-save', 'ip6tables-nft-save') for line in FORWARD_ACCEPT.splitlines()) + '\n'


def test_dual_stack_plans_both_families_and_destroys_sets_only_when_both_let_go():
    ipv4_sets = [name for name in SETS if name.startswith('KUBE-') and not name.startswith('KUBE-6-')]
    ipv6_sets = ['KUBE-6-' + name[len('KUBE-'):] for name in ipv4_sets]
    both = leftovers.plan([('iptables-nft ipv4', FORWARD_ACCEPT), ('iptables-nft ipv6', IPV6_NODE)],
                          ipv4_sets + ipv6_sets, None)
    assert 'KUBE-6-CLUSTER-IP' in IPV6_NODE and '::1/128' in IPV6_NODE
    ipv4, ipv6 = both.rulesets
    assert (ipv4.label, ipv6.label) == ('iptables-nft ipv4', 'iptables-nft ipv6')
    assert ipv6.restore == ipv4.restore  # the same chains and jumps go in each family
    after = replay(IPV6_NODE, ipv6.restore)
    assert chains(render(after)) == chains(IPV6_NODE) - IPVS_COMMON_GONE - {('filter', 'KUBE-FORWARD')}
    assert set(both.sets) == set(name for name in ipv4_sets + ipv6_sets if name in leftovers.OWNED_SETS)
    # An IPv6 rule that stays and matches an IPv6 set keeps that set.
    held = leftovers.plan([('iptables-nft ipv4', FORWARD_ACCEPT), ('operator ipv6', IPV6_NODE.replace(
        '-A INPUT -j OPS-ALLOW', '-A INPUT -m set --match-set KUBE-6-CLUSTER-IP dst,dst -j OPS-ALLOW'))],
        ipv4_sets + ipv6_sets, None)
    assert 'KUBE-6-CLUSTER-IP' in [name for name, _why in held.sets_kept]
