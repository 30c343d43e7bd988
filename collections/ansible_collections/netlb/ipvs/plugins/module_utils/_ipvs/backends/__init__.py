# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Picks the backend a module asked for (`backend: auto|netlink|ipvsadm`).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

auto means netlink (stdlib only, fast) whenever the kernel's IPVS family answers, and
ipvsadm only when it does not but the program is installed (ipvsadm may still manage,
as it loads ip_vs itself). Both leave the same kernel table for the same actions.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model

BACKEND_CHOICES = ('auto', 'netlink', 'ipvsadm')


def get_backend(name='auto', runner=None, check_mode=False):
    """A ready Backend; raises BackendError (with the reason) when none can work.

    runner is a _command.Runner (built around the AnsibleModule) for ipvsadm.
    """
    # Imported here, each only when it is used, so that importing the package stays cheap
    # and cycle-free (a module's imports are compiled anew on every run).
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink import NetlinkBackend

    if name == 'ipvsadm':
        if runner is None:
            raise model.BackendError('backend ipvsadm needs a command runner')
        return _ipvsadm_backend()(runner=runner, check_mode=check_mode)
    if name not in ('auto', 'netlink'):
        raise model.BackendError('unknown backend %r (choose from %s)' % (name, ', '.join(BACKEND_CHOICES)))
    backend = NetlinkBackend(check_mode=check_mode)
    try:
        backend.probe()
    except model.BackendError:
        if name == 'netlink' or runner is None:
            raise
        fallback = _ipvsadm_backend()(runner=runner, check_mode=check_mode)
        if fallback.available():
            return fallback
        raise
    return backend


def _ipvsadm_backend():
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.ipvsadm import IpvsadmBackend
    return IpvsadmBackend
