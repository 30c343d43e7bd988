# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a sync refuses and what it falls back on (proxy.py's order, steps 1, 2 and 4):
kube-proxy in IPVS mode on the node (KubeProxyRunningError), a scheduler the kernel
lacks (fall_back_schedulers), a plan that takes too much of what the node owns away
(delete_guard, the engine's review hook). Pure: values in, values or a refusal out.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    DELETE_SERVER,
    DELETE_SERVICE,
    EDIT_SERVER,
    SCHEDULERS,
    RefusedError,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_service import scheduler_flags

LOSSES_SHOWN = 3


class KubeProxyRunningError(IpvsError):
    """kube-proxy manages IPVS on this node; two owners of one table fight."""


def delete_guard(options):
    """The engine's review hook: refuse a plan that takes too much of what we own away.

    Unless options.force, with r = options.max_delete_ratio, a plan is refused when it
    deletes all the managed virtual services or more than r of them; or when, of the
    virtual services that stay, it takes away all their serving real servers (weight
    above 0) or more than r of them. Taken away counts per virtual service, serving
    before less serving after, when positive: a real server replaced by a new one is no
    loss, so a rollout passes whatever the table's size, while an empty or stale
    EndpointSlice answer, which empties every service at once, is refused. A drained one
    (weight 0) counts as taken away.
    """

    def review(plan):
        if options.force:
            return
        ratio = options.max_delete_ratio
        managed = len(plan.before)
        deleted = sum(1 for action in plan.actions if action.op == DELETE_SERVICE)
        if deleted and (deleted == managed or deleted > ratio * managed):
            raise RefusedError(
                'refusing to delete %d of the %d virtual services this node manages (max_delete_ratio=%s): '
                'an empty or partial answer from the cluster is more often a fault than an intent; '
                'nothing was changed. Set force=true if the cluster really lost these Services.'
                % (deleted, managed, ratio))
        losses = real_server_losses(plan)
        if not losses:
            return
        lost = sum(losses.values())
        serving = sum(_serving(service) for key, service in plan.before.items() if key in plan.after)
        if lost == serving or lost > ratio * serving:
            worst = sorted(losses.items(), key=lambda item: (-item[1], item[0]))[:LOSSES_SHOWN]
            raise RefusedError(
                'refusing to take %d of the %d serving real servers away from the virtual services this node '
                'keeps (max_delete_ratio=%s; %s%s): an empty or stale EndpointSlice answer is more often a '
                'fault than an intent; nothing was changed. Set force=true if these endpoints really went.'
                % (lost, serving, ratio, ', '.join('%s loses %d' % (key, count) for key, count in worst),
                   ' ...' if len(losses) > LOSSES_SHOWN else ''))

    return review


def real_server_losses(plan):
    """{ServiceKey: serving real servers taken away} of the virtual services that stay
    (see delete_guard); only those whose real servers an action deletes or edits."""
    keys = set(action.service.key for action in plan.actions if action.op in (DELETE_SERVER, EDIT_SERVER))
    losses = {}
    for key in keys:
        after = plan.after.get(key)
        if after is not None:
            lost = _serving(plan.before[key]) - _serving(after)
            if lost > 0:
                losses[key] = lost
    return losses


def _serving(service):
    return sum(1 for server in service.real_servers if server.weight)


def fall_back_schedulers(translation, offered, default, flags=()):
    """Give every virtual service of translation whose scheduler is not in offered (the
    kernel's, None: unknown) the default instead, or rr when the kernel lacks that too
    (order step 2), with the flags (options.scheduler_flags) that one reads. Changes
    translation.services; returns the warnings, one per Service whose annotation chose
    it, one for the option."""
    if offered is None or all(service.scheduler in offered for service in translation.services):
        return []
    fallback = default if default in offered else 'rr'
    owners = dict(((port.protocol, port.address, port.port), port.service) for port in translation.ports)
    missing = {}  # (scheduler, Service or None for the option) -> virtual services
    services = []
    for service in translation.services:
        if service.scheduler not in offered:
            owner = None if service.scheduler == default else owners.get(service.key[:3], str(service.key))
            missing[(service.scheduler, owner)] = missing.get((service.scheduler, owner), 0) + 1
            service = service.replace(scheduler=fallback, scheduler_flags=scheduler_flags(fallback, flags))
        services.append(service)
    translation.services = services
    kernel = 'this kernel offers %s' % (', '.join(name for name in SCHEDULERS if name in offered) or 'none')
    warnings = []
    for (scheduler, owner), count in sorted(missing.items(), key=lambda item: (item[0][1] or '', item[0][0])):
        what = 'Service %s: scheduler %s' % (owner, scheduler) if owner else 'scheduler: %s' % scheduler
        warnings.append('%s: the kernel lacks it (%s); %d virtual service(s) use %s instead'
                        % (what, kernel, count, fallback))
    return warnings
