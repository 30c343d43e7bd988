# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's edge of the leftovers step: guard, read, remove (leftovers.py plans).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    result = remove(Node(runner), Options(state_path=..., keep_forward="auto"), check_mode=False)

Order, and why:
1. Refuse while a kube-proxy process runs (any mode): it would make them again, and in
   iptables/nftables mode it still serves with them.
2. Refuse unless k8s_service_proxy has converged here (unless force), that is all of:
   its state file exists and names at least one virtual service (the file is written
   only at the end of a sync that went through: IPVS, addresses, packet rules; every
   cluster has the `kubernetes` Service, so a converged node has one); its nft table
   (inet netlb_ipvs) is loaded; every virtual service the file names is in the kernel's
   IPVS table now. Evidence of a finished, still standing sync, not of the last timer
   run: keep the timer running.
3. Read: iptables-save per backend (nft, legacy; or the plain one) and family, `ipset
   list -n`, `nft list tables`. A tool that is missing while the kernel shows what it
   would read fails with the package to install; missing with nothing there is fine.
4. Plan (pure), apply unless check mode: one iptables-restore per backend and family,
   one `ipset restore`, one `nft -f -`. Then read and plan again: anything left fails.
"""

from __future__ import annotations

import collections
import os

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import kube_proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.packet_rules import TABLE_FAMILY, TABLE_NAME
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import DEFAULT_PATH, StateError, StateStore
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import leftovers
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.leftovers import LeftoversError

DIFF_HEADER = "kube-proxy's leftovers"
# (family, iptables program base name, /proc file listing legacy tables, nft family).
FAMILIES = (('ipv4', 'iptables', 'net/ip_tables_names', 'ip'), ('ipv6', 'ip6tables', 'net/ip6_tables_names', 'ip6'))
XTABLES_NFT_TABLES = ('nat', 'filter', 'mangle', 'raw', 'security')
MISSING_LISTED = 5


class RefusedError(LeftoversError):
    """Not now: kube-proxy runs, or k8s_service_proxy has not converged here."""


Options = collections.namedtuple('Options', 'state_path keep_forward force')
Options.__new__.__defaults__ = (DEFAULT_PATH, 'auto', False)

Ruleset = collections.namedtuple('Ruleset', 'label save restore')


class Node(object):
    """This machine. runner: a _command.Runner; proc/sys roots and the IPVS reader are
    seams for tests."""

    def __init__(self, runner, proc_root='/proc', sys_root='/sys', read_ipvs=None, detect=kube_proxy.detect):
        self.runner = runner
        self.proc_root = proc_root
        self.sys_root = sys_root
        self._read_ipvs = read_ipvs
        self.detect = detect

    def exists(self, root, path):
        return os.path.exists(os.path.join(root, path))

    def proc_lines(self, path):
        try:
            with open(os.path.join(self.proc_root, path)) as handle:
                return [line.strip() for line in handle if line.strip()]
        except (IOError, OSError):
            return []

    def which(self, name):
        return self.runner.which(name, required=False)

    def run(self, argv, data=None):
        try:
            return self.runner.run(argv, data=data).stdout
        except _command.CommandError as exc:
            raise LeftoversError(str(exc))

    def ipvs_keys(self):
        if self._read_ipvs is not None:
            return self._read_ipvs()
        from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
        from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
        try:
            return frozenset(get_backend('auto', runner=self.runner, check_mode=True).read())
        except IpvsError as exc:
            raise RefusedError('cannot read the IPVS table to see whether k8s_service_proxy converged: %s' % exc)


def rulesets(node, nft_tables):
    """[Ruleset] to read: per family, the nft and legacy variants that exist (their tables
    only when the kernel has them), else the plain iptables-save. Raises LeftoversError
    when no iptables-save exists but the kernel has iptables tables."""
    found = []
    for family, base, legacy_names, nft_family in FAMILIES:
        if family == 'ipv6' and not node.exists(node.proc_root, 'net/if_inet6'):
            continue  # no IPv6 in this kernel: nothing of ip6tables to read
        variants = []
        for variant in ('nft', 'legacy'):
            save, restore = node.which('%s-%s-save' % (base, variant)), node.which('%s-%s-restore' % (base, variant))
            if save and restore:
                variants.append(Ruleset('%s-%s' % (base, variant), save, restore))
        if not variants:
            save, restore = node.which('%s-save' % base), node.which('%s-restore' % base)
            if save and restore:
                variants.append(Ruleset(base, save, restore))
        if not variants:
            evidence = ['legacy tables %s' % ', '.join(node.proc_lines(legacy_names))] if node.proc_lines(
                legacy_names) else []
            evidence += ['nft table %s %s' % (fam, name) for fam, name in (nft_tables or ())
                         if fam == nft_family and name in XTABLES_NFT_TABLES]
            if evidence:
                raise LeftoversError('%s-save and %s-restore are not installed, but this node has iptables tables (%s) '
                                     'that may hold kube-proxy\'s chains: install the iptables package'
                                     % (base, base, '; '.join(evidence)))
            continue
        for ruleset in variants:
            # Legacy tables the kernel does not have are not read: reading could load them.
            if ruleset.label.endswith('-legacy') and not node.proc_lines(legacy_names):
                continue
            found.append(ruleset)
    return found


def _read_tool(node, tool, package, kernel_module, what, args, parse):
    """parse(`tool args` output); None when tool is missing and the kernel has no
    kernel_module (so nothing of what can exist); LeftoversError naming package when it could."""
    program = node.which(tool)
    if program is None:
        if node.exists(node.sys_root, 'module/' + kernel_module):
            raise LeftoversError('%s is not installed, but the kernel has %s loaded (%s may exist): install the '
                                 '%s package' % (tool, kernel_module, what, package))
        return None
    return parse(node.run([program] + args))


def read_nft_tables(node):
    """[(family, name)] from `nft list tables`; None when nft is missing and the kernel
    has no nf_tables (so no table can exist)."""
    return _read_tool(node, 'nft', 'nftables', 'nf_tables', "kube-proxy's nftables mode tables", ['list', 'tables'],
                      leftovers.parse_nft_tables)


def read_sets(node):
    """ipset names; None when ipset is missing and the kernel has no ip_set."""
    return _read_tool(node, 'ipset', 'ipset', 'ip_set', "kube-proxy's sets", ['list', '-n'],
                      leftovers.parse_ipset_names)


def read(node, options, nft_tables):
    """([Ruleset] read, Plan) as the node is now."""
    found = rulesets(node, nft_tables)
    texts = [(ruleset.label, node.run([ruleset.save])) for ruleset in found]
    return found, leftovers.plan(texts, read_sets(node), nft_tables, options.keep_forward)


def refuse_unless_safe(node, options, nft_tables):
    """Raise RefusedError unless kube-proxy is gone and k8s_service_proxy converged here."""
    status = node.detect()
    if status.running:
        raise RefusedError('kube-proxy is running on this node (%s): it would make its rules again, or still serves '
                           'with them. Hand the node over first (roles/kube_proxy, kube_proxy_state: absent).'
                           % status.detail)
    if options.force:
        return
    hint = ('run netlb.ipvs.k8s_service_proxy on this node until it succeeds (or force=true to remove them anyway)')
    if not os.path.exists(options.state_path):
        raise RefusedError('k8s_service_proxy has not converged on this node: no state file %s (written by its first '
                           'successful sync); %s' % (options.state_path, hint))
    try:
        state = StateStore(options.state_path).load()
    except StateError as exc:
        raise RefusedError('k8s_service_proxy state cannot be read: %s; %s' % (exc, hint))
    if not state.services:
        raise RefusedError('k8s_service_proxy has not converged on this node: %s names no virtual service; %s'
                           % (options.state_path, hint))
    if nft_tables is None or (TABLE_FAMILY, TABLE_NAME) not in nft_tables:
        raise RefusedError('k8s_service_proxy has not converged on this node: its nftables table %s %s is not '
                           'loaded; %s' % (TABLE_FAMILY, TABLE_NAME, hint))
    live = node.ipvs_keys()
    missing = sorted(str(key) for key in state.services if key not in live)
    if missing:
        raise RefusedError('k8s_service_proxy has not converged on this node: %d virtual service(s) of its state are '
                           'not in the IPVS table (%s%s); %s'
                           % (len(missing), ', '.join(missing[:MISSING_LISTED]),
                              ', ...' if len(missing) > MISSING_LISTED else '', hint))


def apply(node, found, the_plan):
    """Carry out the plan: iptables first (a set a rule matches cannot go), then sets, nft.
    found: the Rulesets read()."""
    by_label = dict((ruleset.label, ruleset) for ruleset in found)
    for ruleset_plan in the_plan.rulesets:
        if ruleset_plan.restore:
            node.run([by_label[ruleset_plan.label].restore, '--noflush', '-w'], data=ruleset_plan.restore)
    if the_plan.sets:
        node.run([node.which('ipset'), 'restore'], data=leftovers.ipset_restore_text(the_plan.sets))
    if the_plan.nft_tables:
        node.run([node.which('nft'), '-f', '-'], data=leftovers.nft_script(the_plan.nft_tables))


def remove(node, options, check_mode=False):
    """Guard, read, plan and (unless check_mode) remove. Returns {changed, removed, kept,
    warnings, diff}; diff: a DiffTracker, the leftovers found before and those that stay
    after. Raises RefusedError or LeftoversError."""
    nft_tables = read_nft_tables(node)
    refuse_unless_safe(node, options, nft_tables)
    found, the_plan = read(node, options, nft_tables)
    changed = leftovers.has_work(the_plan)
    if changed and not check_mode:
        apply(node, found, the_plan)
        _found, again = read(node, options, read_nft_tables(node))
        if leftovers.has_work(again):
            raise LeftoversError('still there after the removal: %s' % leftovers.removed(again))
    diff = DiffTracker()
    diff.add_text(DIFF_HEADER, *leftovers.diff_texts(the_plan))
    return {'changed': changed, 'removed': leftovers.removed(the_plan), 'kept': leftovers.kept(the_plan),
            'warnings': list(the_plan.warnings), 'diff': diff}
