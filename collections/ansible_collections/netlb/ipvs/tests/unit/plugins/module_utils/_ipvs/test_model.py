# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The field table and the records built from it."""

from __future__ import annotations

import dataclasses

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import RealServer, ServiceKey, VirtualService

TCP80 = ServiceKey.tcp_udp('tcp', '10.0.0.1', 80)


def test_field_order_is_pinned():
    """The hot paths (validation's plain real servers, the netlink dump decoder) call
    RealServer positionally: this order is what they rely on. Change it here and there."""
    assert RealServer._fields == ('address', 'port', 'weight', 'forwarding', 'upper_threshold', 'lower_threshold',
                                  'tunnel_type', 'tunnel_port', 'tunnel_checksum')
    assert [field.name for field in dataclasses.fields(VirtualService)] == [
        'key', 'scheduler', 'scheduler_flags', 'persistence_timeout', 'persistence_netmask', 'persistence_engine',
        'one_packet', 'real_servers', 'connections']


def test_records_are_the_table():
    assert RealServer._fields[2:] == model.SERVER_SETTING_NAMES
    assert RealServer('10.0.0.2', 80) == RealServer('10.0.0.2', 80, **dict(
        (field.name, field.default) for field in model.SERVER_SETTINGS))
    service = VirtualService(TCP80)
    assert service.settings() == tuple(getattr(service, name) for name in model.SERVICE_SETTING_NAMES)
    defaults = dict((field.name, field.default) for field in model.SERVICE_SETTINGS if field.default is not None)
    assert dict((name, getattr(service, name)) for name in defaults) == defaults


def test_every_field_is_described():
    for field in model.SERVICE_SETTINGS + model.SERVER_SETTINGS:
        assert field.kind in ('int', 'str', 'bool', 'list'), field.name
        assert field.ipvsadm and field.netlink and field.doc, field.name
        assert (field.low <= field.high) if field.kind == 'int' else not (field.low or field.high), field.name
        assert bool(field.choices) == (field.kind in ('str', 'list')), field.name


def test_with_servers_keeps_every_setting():
    service = VirtualService(ServiceKey.tcp_udp('udp', '10.0.0.1', 5060), 'sh', scheduler_flags=('sh-port',),
                             persistence_timeout=60, persistence_netmask=24, persistence_engine='sip',
                             one_packet=True, real_servers=(RealServer('10.0.0.2', 5060),))
    moved = service.with_servers((RealServer('10.0.0.3', 5060),), {('10.0.0.3', 5060): (1, 2)})
    assert moved.settings() == service.settings()
    assert moved.real_servers == (RealServer('10.0.0.3', 5060),)
    assert moved.connections_of(('10.0.0.3', 5060)) == (1, 2)


def test_netmask_is_canonical():
    assert VirtualService(TCP80, persistence_netmask=24).persistence_netmask == 32  # no persistence: no effect
    assert VirtualService(TCP80, persistence_timeout=60).persistence_netmask == 32
    assert VirtualService(ServiceKey.mark(5, 6), persistence_timeout=60).persistence_netmask == 128


def test_new_servers_are_the_constructors_actions():
    """Action.new_servers builds its tuples without the constructor: the same Actions,
    field by field, as Action(...) makes."""
    service = VirtualService(ServiceKey.tcp_udp('tcp', '10.0.0.1', 80), 'rr',
                             real_servers=(RealServer('10.1.0.1', 8080), RealServer('10.1.0.2', 8080, weight=3)))
    built = model.Action.new_servers(service)
    assert built == [model.Action(model.ADD_SERVER, service, server, 'new') for server in service.real_servers]
    assert [type(action) for action in built] == [model.Action, model.Action]
    assert [(action.op, action.server.address, action.reason) for action in built] == [
        ('add_server', '10.1.0.1', 'new'), ('add_server', '10.1.0.2', 'new')]
