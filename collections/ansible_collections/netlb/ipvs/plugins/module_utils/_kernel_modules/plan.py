# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a request means for this kernel: the modules to load, those that can be
unloaded and in which order, and why the others stay or are missing (pure).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import collections

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import BASE_MODULE, SCHEDULER_PREFIX

PresentPlan = collections.namedtuple('PresentPlan', 'load present builtin missing')
AbsentPlan = collections.namedtuple('AbsentPlan', 'unload in_use builtin')


def plan_present(modules, snapshot):
    """Sort requested modules into to-load, already loaded, built in and missing."""
    groups = {'available': [], 'loaded': [], 'builtin': [], 'missing': []}
    for name in modules:
        groups[snapshot.state(name)].append(name)
    return PresentPlan(groups['available'], groups['loaded'], groups['builtin'], groups['missing'])


def plan_absent(modules, snapshot):
    """Which requested modules can be unloaded now, and why the others cannot.

    A loaded module can go when it is not permanent and every module holding it goes
    too. A module nothing holds must also have no references: a scheduler's count is
    the number of services using it. With holders, the count says nothing more (ip_vs
    counts each registered scheduler twice, plus each service), and its holders'
    refusal covers the services case since every service holds a scheduler. Blocking
    one module can block what it holds, so this repeats until nothing changes. unload
    is ordered holders first, the order `modprobe -r` needs; in_use maps name -> reason.
    """
    candidates = [name for name in modules if snapshot.resolve(name) in snapshot.loaded]
    builtin = [name for name in modules if snapshot.state(name) == 'builtin']
    in_use = {}
    changed = True
    while changed:
        changed = False
        going = set(snapshot.resolve(n) for n in candidates if n not in in_use)
        for name in candidates:
            if name in in_use:
                continue
            module = snapshot.loaded[snapshot.resolve(name)]
            staying = [h for h in module.holders if h not in going]
            if module.permanent:
                in_use[name] = 'the kernel cannot unload it'
            elif staying:
                in_use[name] = 'used by %s' % ', '.join(staying)
            elif not module.holders and module.refcount > 0:
                in_use[name] = 'in use (refcount %d, e.g. IPVS services using it)' % module.refcount
            else:
                continue
            changed = True
    removable = [n for n in candidates if n not in in_use]
    return AbsentPlan(_holders_first(removable, snapshot), in_use, builtin)


def _holders_first(names, snapshot):
    ordered = []
    pending = list(names)
    while pending:
        waiting = set(snapshot.resolve(n) for n in pending)
        for name in pending:
            if not [h for h in snapshot.loaded[snapshot.resolve(name)].holders if h in waiting]:
                ordered.append(name)
                pending.remove(name)
                break
        else:  # a holder cycle cannot happen in a real kernel; keep the rest as given
            ordered.extend(pending)
            break
    return ordered


def unload_roots(names, snapshot):
    """Those of names no other of names holds: `modprobe -r` on them takes the
    rest along, since it also removes dependencies that become unused."""
    real = set(snapshot.resolve(n) for n in names)
    return [n for n in names
            if not [h for h in snapshot.loaded[snapshot.resolve(n)].holders if h in real]]


def missing_message(missing, snapshot):
    """One sentence per missing module, naming the parameter it came from."""
    sentences = []
    for name in missing:
        if name == BASE_MODULE:
            sentences.append('ip_vs: this kernel (%s) has no IPVS (no module ip_vs in modules.dep or '
                             'modules.builtin)' % snapshot.release)
        elif name.startswith(SCHEDULER_PREFIX) and name[len(SCHEDULER_PREFIX):] in SCHEDULERS:
            offered = snapshot.offered_schedulers()
            sentences.append('schedulers: this kernel (%s) has no module %s; it offers %s' % (
                snapshot.release, name, ', '.join(offered) if offered else 'no IPVS scheduler'))
        else:
            sentences.append('extra_modules: this kernel (%s) has no module %s (not in modules.dep, '
                             'modules.builtin or modules.alias)' % (snapshot.release, name))
    return '; '.join(sentences)
