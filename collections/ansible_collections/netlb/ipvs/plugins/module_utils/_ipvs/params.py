# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Model values -> the plain dicts a module returns (``services`` of ipvs_virtual_server
and k8s_service_proxy): the shape validation.parse_service reads, plus the connection
counters.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SERVICE_SETTING_NAMES


def service_to_params(service):
    """VirtualService -> the dict shape validation.parse_service takes, plus each real
    server's connection counters."""
    key = service.key
    if key.is_fwmark:
        result = {'fwmark': key.fwmark, 'family': 'ipv%d' % key.family}
    else:
        result = {'protocol': key.protocol, 'address': key.address, 'port': key.port}
    result.update((name, getattr(service, name)) for name in SERVICE_SETTING_NAMES)
    result['scheduler_flags'] = list(service.scheduler_flags)
    result['real_servers'] = [server_to_params(rs, service.connections_of(rs.key)) for rs in service.real_servers]
    return result


def server_to_params(server, connections=(0, 0)):
    result = server._asdict()
    result['active_connections'], result['inactive_connections'] = connections
    return result
