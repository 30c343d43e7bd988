# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What ipvs_node set up that can drift, re-asserted on every run, cheaply: the kernel
modules (an `rmmod`, a kernel without the modules-load.d file), the sysctls (a
`sysctl -w`, a package's sysctl.d file applied later) and the IPVS timeouts
(kube-proxy's ipvs.tcpTimeout, tcpFinTimeout, udpTimeout: held by the kernel only, so a
reboot resets them and this run sets them again; _ipvs/timeouts.py).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Cheap: /proc/modules and /proc/sys are read directly; only a missing module costs a
process (one `modprobe -a` for all of them) and only a drifted sysctl a write. The
timeouts cost one `ipvsadm -L --timeout` when any is set (none by default, as kube-proxy's
0s), and one `ipvsadm --set` when they drifted. The ipvs_node role stays the owner of
the files that make modules and sysctls survive a reboot; the timeouts have none, so
these runs are what keeps them.
"""

from __future__ import annotations

import dataclasses
import os

from ansible_collections.netlb.ipvs.plugins.module_utils._command import NODE_TIMEOUT, CommandError
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import timeouts
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import normalise, parse_proc_modules


class KernelError(IpvsError):
    """A module would not load or a sysctl would not take its value."""


@dataclasses.dataclass
class KernelResult:
    loaded: tuple = ()  # modules that were missing and were loaded
    sysctls: tuple = ()  # (key, was, now) of sysctls set back
    ipvs_timeouts: tuple = ()  # (was, now) Timeouts when they were set back

    @property
    def changed(self):
        return bool(self.loaded or self.sysctls or self.ipvs_timeouts)


def missing_modules(wanted, proc_modules_text):
    """The wanted module names /proc/modules lacks (built-in ones show in /sys/module)."""
    loaded = set(parse_proc_modules(proc_modules_text))
    return tuple(name for name in wanted if normalise(name) not in loaded)


def sysctl_path(key, root='/proc/sys'):
    return os.path.join(root, *key.split('.'))


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def ensure(modules, sysctls, runner, check_mode=False, proc='/proc', sys_module='/sys/module',
           ipvs_timeouts=timeouts.Timeouts(0, 0, 0)):
    """Load the missing modules, set the drifted sysctls, then the IPVS timeouts (after
    the modules: they need ip_vs). Returns a KernelResult; raises KernelError naming what
    failed."""
    result = KernelResult()
    missing = missing_modules(modules, _read(os.path.join(proc, 'modules')) or '')
    missing = tuple(name for name in missing if not os.path.isdir(os.path.join(sys_module, normalise(name))))
    if missing and not check_mode:
        try:
            runner.run([runner.which('modprobe'), '-a'] + list(missing), timeout=NODE_TIMEOUT)
        except CommandError as exc:
            raise KernelError('kernel modules %s would not load: %s' % (', '.join(missing), exc))
    result.loaded = missing
    drifted = []
    for key, wanted in sysctls:
        path = sysctl_path(key, os.path.join(proc, 'sys'))
        current = _read(path)
        current = None if current is None else ' '.join(current.split())
        if current == wanted:
            continue
        if not check_mode:
            try:
                with open(path, 'w') as handle:
                    handle.write(wanted)
            except OSError as exc:
                raise KernelError('sysctl %s=%s: %s' % (key, wanted, exc.strerror or exc))
        drifted.append((key, current, wanted))
    result.sysctls = tuple(drifted)
    try:
        applied = timeouts.ensure(runner, ipvs_timeouts, check_mode=check_mode)
    except timeouts.TimeoutsError as exc:
        raise KernelError(str(exc))
    if applied.changed:
        result.ipvs_timeouts = (applied.before, applied.after)
    return result
