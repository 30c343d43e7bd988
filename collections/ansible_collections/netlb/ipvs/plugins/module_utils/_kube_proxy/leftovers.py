# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kube-proxy's iptables chains, ipsets and nftables tables: found, planned away (pure).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The last step of the hand-over to k8s_service_proxy. The names are those kube-proxy's own
cleanup removes (pkg/proxy/ipvs, pkg/proxy/iptables, pkg/proxy/nftables, and the userspace
mode of old nodes); leftovers_run.py reads the node and applies the plan.

Rules:
- Only names kube-proxy makes: exact chain names per table, the per-service chain prefixes
  of iptables mode (nat only), exact ipset names and their IPv6 twins (KUBE-6-..., cut at
  31 characters as kube-proxy cuts them), the tables `ip kube-proxy` and `ip6 kube-proxy`.
  A `KUBE-` prefix alone proves nothing: kubelet (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT,
  KUBE-MARK-DROP, filter KUBE-FIREWALL) and kube-router (KUBE-ROUTER-*, KUBE-NWPLCY-*,
  KUBE-POD-FW-*, KUBE-SRC-*/KUBE-DST-* sets) use it too.
- Never touched: the IPVS table and kube-ipvs0 (k8s_service_proxy owns them now), any
  chain or set not named above, the built-in chains' policies, other rules of built-in
  chains.
- Jumps from built-in chains into a removed chain are deleted (`-D` with the rule as saved).
  A chain of ours that a chain which stays (someone else's, or ours kept) still jumps to
  stays too, with all it jumps to: deleting it would fail, and rewriting someone else's
  chain is not ours to do. A set a rule that stays matches stays too. Each is a warning.
- KUBE-FORWARD (and its jump) stays while the filter FORWARD policy is DROP (keep_forward
  'auto'): its RELATED,ESTABLISHED accept may be what lets IPVS replies and pod traffic
  through, and k8s_service_proxy adds no forward rules. 'always' / 'never' decide alone.
- Per iptables backend and family, one `iptables-restore --noflush` text: per table, the
  chains to go declared (which flushes them), then the `-D` jumps, then `-X` each chain,
  one COMMIT; a table is applied all or nothing. ipsets go after iptables (a set a rule
  still matches cannot be destroyed), nft tables in one `nft -f -` batch.
- Applying a plan and planning again from what the node then holds gives an empty plan.
"""

from __future__ import annotations

import collections
import shlex

# The chains of each table kube-proxy creates, over its modes and versions: ipvs (and
# its nat KUBE-FIREWALL before 1.2x), iptables (KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
# filter KUBE-SERVICES, the canaries), userspace (KUBE-PORTALS-*, KUBE-NODEPORT-*).
OWNED_CHAINS = {
    'nat': frozenset((
        'KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ',
        'KUBE-FIREWALL', 'KUBE-NODEPORTS', 'KUBE-PROXY-CANARY',
        'KUBE-PORTALS-CONTAINER', 'KUBE-PORTALS-HOST', 'KUBE-NODEPORT-CONTAINER', 'KUBE-NODEPORT-HOST',
    )),
    'filter': frozenset((
        'KUBE-FORWARD', 'KUBE-NODE-PORT', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL',
        'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES',
        'KUBE-NODEPORTS', 'KUBE-PROXY-CANARY', 'KUBE-NODEPORT-NON-LOCAL',
    )),
    'mangle': frozenset(('KUBE-PROXY-CANARY',)),
}
# iptables mode's per-service chains (KUBE-XLB- before 1.24); nat only.
SERVICE_CHAIN_PREFIXES = ('KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-', 'KUBE-XLB-')
# kubelet's, listed so a test keeps them out of the above: (table, chain).
KUBELET_CHAINS = frozenset((
    ('mangle', 'KUBE-KUBELET-CANARY'), ('nat', 'KUBE-KUBELET-CANARY'), ('filter', 'KUBE-KUBELET-CANARY'),
    ('mangle', 'KUBE-IPTABLES-HINT'), ('nat', 'KUBE-MARK-DROP'), ('filter', 'KUBE-FIREWALL'),
))
FORWARD_CHAIN = 'KUBE-FORWARD'

IPV4_SETS = (
    'KUBE-LOOP-BACK', 'KUBE-CLUSTER-IP', 'KUBE-EXTERNAL-IP', 'KUBE-EXTERNAL-IP-LOCAL', 'KUBE-LOAD-BALANCER',
    'KUBE-LOAD-BALANCER-LOCAL', 'KUBE-LOAD-BALANCER-FW', 'KUBE-LOAD-BALANCER-SOURCE-IP',
    'KUBE-LOAD-BALANCER-SOURCE-CIDR', 'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-LOCAL-TCP', 'KUBE-NODE-PORT-UDP',
    'KUBE-NODE-PORT-LOCAL-UDP', 'KUBE-NODE-PORT-SCTP-HASH', 'KUBE-NODE-PORT-LOCAL-SCTP-HASH',
    'KUBE-HEALTH-CHECK-NODE-PORT', 'KUBE-IPVS-IPS',
)
# kube-proxy names a set of the IPv6 proxier KUBE-6-..., cut at ipset's 31 characters.
IPSET_NAME_MAX = 31
OWNED_SETS = frozenset(IPV4_SETS + tuple(('KUBE-6-' + name[len('KUBE-'):])[:IPSET_NAME_MAX] for name in IPV4_SETS))

# kube-proxy's nftables mode: (family, table).
OWNED_NFT_TABLES = (('ip', 'kube-proxy'), ('ip6', 'kube-proxy'))

KEEP_FORWARD_CHOICES = ('auto', 'always', 'never')


class LeftoversError(Exception):
    """Leftovers cannot be read or removed; the message says why and what to do."""


def owned_chain(table, chain):
    """True for a chain of this table kube-proxy makes."""
    if chain in OWNED_CHAINS.get(table, ()):
        return True
    return table == 'nat' and chain.startswith(SERVICE_CHAIN_PREFIXES)


Rule = collections.namedtuple('Rule', 'chain text target sets')
"""chain: where it is; text: the line as saved ('-A CHAIN ...'); target: its -j/-g chain
or verdict ('' when none); sets: the ipset names it matches (--match-set)."""


class Table(object):
    """One table of `iptables-save`: chains (name -> policy, '-' for a user chain, in
    order) and rules (in order)."""

    def __init__(self, name):
        self.name = name
        self.chains = collections.OrderedDict()
        self.rules = []

    def builtin(self, chain):
        return self.chains.get(chain, '-') != '-'


def _words(line):
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in a comment: the plain split finds -j anyway
        return line.split()


def parse_rule(line):
    """A Rule from an `-A CHAIN ...` line of iptables-save."""
    words = _words(line)
    target = ''
    sets = []
    for index, word in enumerate(words[:-1]):
        if word in ('-j', '--jump', '-g', '--goto'):
            target = words[index + 1]
        elif word == '--match-set':
            sets.append(words[index + 1])
    return Rule(words[1] if len(words) > 1 else '', line, target, tuple(sets))


def parse_save(text):
    """`iptables-save` (or ip6tables-save) text -> {table name: Table}."""
    tables = collections.OrderedDict()
    table = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            table = tables.setdefault(line[1:], Table(line[1:]))
        elif line == 'COMMIT':
            table = None
        elif table is None:
            raise LeftoversError('iptables-save line %d outside a table: %r' % (number, line))
        elif line.startswith(':'):
            words = line[1:].split()
            table.chains[words[0]] = words[1] if len(words) > 1 else '-'
        elif line.startswith('-A '):
            table.rules.append(parse_rule(line))
        else:
            raise LeftoversError('iptables-save line %d not understood: %r' % (number, line))
    return tables


TablePlan = collections.namedtuple('TablePlan', 'table remove jumps kept sets_in_use')
"""remove: our chains to delete (in saved order); jumps: rule lines to delete from
built-in chains; kept: [(chain, why)] of ours that stay; sets_in_use: sets matched by
rules that stay."""


def keep_forward_chain(tables, keep_forward='auto'):
    """(keep, why) for KUBE-FORWARD, from keep_forward and the filter FORWARD policy."""
    if keep_forward not in KEEP_FORWARD_CHOICES:
        raise LeftoversError('keep_forward must be one of %s, not %r'
                             % (', '.join(KEEP_FORWARD_CHOICES), keep_forward))
    if keep_forward == 'always':
        return True, 'keep_forward=always'
    if keep_forward == 'never':
        return False, ''
    policy = tables['filter'].chains.get('FORWARD') if 'filter' in tables else None
    if policy == 'DROP':
        return True, ('the filter FORWARD policy is DROP: its accept rules may be what lets forwarded service '
                      'traffic through (keep_forward=never removes it)')
    return False, ''


def plan_table(table, keep=None):
    """TablePlan for one parsed table; keep: {chain: why} of ours to leave in place."""
    ours = [chain for chain in table.chains if not table.builtin(chain) and owned_chain(table.name, chain)]
    kept = collections.OrderedDict((chain, why) for chain, why in (keep or {}).items() if chain in ours)
    # Chains that stay and whose rules therefore stay: everyone else's, and ours kept;
    # what they jump to must stay as well (to a fixpoint).
    by_chain = collections.defaultdict(list)
    for rule in table.rules:
        by_chain[rule.chain].append(rule)
    changed = True
    while changed:
        changed = False
        for chain in table.chains:
            if table.builtin(chain) or (chain in ours and chain not in kept):
                continue
            for rule in by_chain[chain]:
                if rule.target in ours and rule.target not in kept:
                    kept[rule.target] = 'chain %s (which stays) jumps to it' % chain
                    changed = True
    remove = [chain for chain in ours if chain not in kept]
    gone = set(remove)
    jumps = [rule.text for rule in table.rules if table.builtin(rule.chain) and rule.target in gone]
    in_use = set()
    for rule in table.rules:
        if rule.chain not in gone and rule.text not in jumps:
            in_use.update(rule.sets)
    return TablePlan(table.name, tuple(remove), tuple(jumps), tuple(kept.items()), frozenset(in_use))


def restore_text(table_plans):
    """The `iptables-restore --noflush` input that carries out the plans ('' when none has work)."""
    lines = []
    for plan in table_plans:
        if not plan.remove and not plan.jumps:
            continue
        lines.append('*%s' % plan.table)
        lines.extend(':%s - [0:0]' % chain for chain in plan.remove)  # declared again = flushed
        lines.extend('-D' + text[2:] for text in plan.jumps)
        lines.extend('-X %s' % chain for chain in plan.remove)
        lines.append('COMMIT')
    return '\n'.join(lines) + '\n' if lines else ''


RulesetPlan = collections.namedtuple('RulesetPlan', 'label tables restore warnings')
"""label: which iptables ('iptables-nft ipv4'); tables: TablePlans; restore: the
iptables-restore text ('' = nothing to do); warnings: lines for the user."""


def plan_ruleset(label, save_text, keep_forward='auto'):
    """RulesetPlan from one iptables-save text."""
    tables = parse_save(save_text)
    keep_forward_it, why = keep_forward_chain(tables, keep_forward)
    plans = []
    warnings = []
    for table in tables.values():
        keep = {}
        if table.name == 'filter' and keep_forward_it:
            keep[FORWARD_CHAIN] = why
        plan = plan_table(table, keep)
        plans.append(plan)
        for chain, reason in plan.kept:
            warnings.append('%s %s: kept chain %s: %s' % (label, table.name, chain, reason))
    return RulesetPlan(label, tuple(plans), restore_text(plans), tuple(warnings))


def parse_ipset_names(text):
    """`ipset list -n` -> the set names, in order."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_nft_tables(text):
    """`nft list tables` -> [(family, name)]."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == 'table':
            found.append((words[1], words[2]))
    return found


Plan = collections.namedtuple('Plan', 'rulesets sets sets_kept nft_tables warnings')
"""rulesets: RulesetPlans; sets: ipsets to destroy; sets_kept: [(set, why)];
nft_tables: [(family, name)] to delete; warnings: every warning."""


def plan(rulesets, set_names, nft_tables, keep_forward='auto'):
    """The whole plan. rulesets: [(label, iptables-save text)]; set_names: `ipset list -n`
    names (None: not read); nft_tables: [(family, name)] (None: not read)."""
    ruleset_plans = [plan_ruleset(label, text, keep_forward) for label, text in rulesets]
    warnings = [line for ruleset in ruleset_plans for line in ruleset.warnings]
    in_use = set()
    for ruleset in ruleset_plans:
        for table in ruleset.tables:
            in_use |= table.sets_in_use
    ours = [name for name in (set_names or ()) if name in OWNED_SETS]
    kept = [(name, 'a rule that stays matches it') for name in ours if name in in_use]
    for name, why in kept:
        warnings.append('kept ipset %s: %s' % (name, why))
    sets = tuple(name for name in ours if name not in in_use)
    tables = tuple(table for table in (nft_tables or ()) if table in OWNED_NFT_TABLES)
    return Plan(tuple(ruleset_plans), sets, tuple(kept), tables, tuple(warnings))


def has_work(the_plan):
    return bool(the_plan.sets or the_plan.nft_tables or any(ruleset.restore for ruleset in the_plan.rulesets))


def ipset_restore_text(sets):
    """`ipset restore` input that destroys the sets."""
    return ''.join('destroy %s\n' % name for name in sets)


def nft_script(tables):
    """`nft -f -` input that deletes the tables in one transaction."""
    return ''.join('delete table %s %s\n' % table for table in tables)


def removed(the_plan):
    """What the plan removes, for the module's return: {iptables: [...], ipsets, nft_tables}."""
    lines = []
    for ruleset in the_plan.rulesets:
        for table in ruleset.tables:
            lines.extend('%s %s: %s' % (ruleset.label, table.table, text) for text in table.jumps)
            lines.extend('%s %s: chain %s' % (ruleset.label, table.table, chain) for chain in table.remove)
    return {'iptables': lines, 'ipsets': list(the_plan.sets),
            'nft_tables': ['%s %s' % table for table in the_plan.nft_tables]}


def kept(the_plan):
    """What of kube-proxy's stays, with why: ['<where>: <why>']."""
    lines = []
    for ruleset in the_plan.rulesets:
        for table in ruleset.tables:
            lines.extend('%s %s: chain %s: %s' % (ruleset.label, table.table, chain, why)
                         for chain, why in table.kept)
    lines.extend('ipset %s: %s' % item for item in the_plan.sets_kept)
    return lines


def diff_texts(the_plan):
    """(before, after): kube-proxy's leftovers found, and those that stay, one per line."""
    stays = []
    gone = []
    for ruleset in the_plan.rulesets:
        for table in ruleset.tables:
            where = '%s %s' % (ruleset.label, table.table)
            gone.extend('%s: %s' % (where, text) for text in table.jumps)
            gone.extend('%s: chain %s' % (where, chain) for chain in table.remove)
            stays.extend('%s: chain %s' % (where, chain) for chain, _why in table.kept)
    gone.extend('ipset %s' % name for name in the_plan.sets)
    stays.extend('ipset %s' % name for name, _why in the_plan.sets_kept)
    gone.extend('nft table %s %s' % table for table in the_plan.nft_tables)

    def text(lines):
        return ''.join('%s\n' % line for line in sorted(lines))
    return text(gone + stays), text(stays)
