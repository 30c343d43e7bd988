# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import netlink, netlink_decode, netlink_encode, netlink_family
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    Action,
    RealServer,
    ServiceKey,
    VirtualService,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.plan import apply_to_table
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, generic

TCP80 = ServiceKey.tcp_udp('tcp', '10.0.0.1', 80)
UDP53_6 = ServiceKey.tcp_udp('udp', 'fd00::1', 53)
SCTP = ServiceKey.tcp_udp('sctp', '10.0.0.3', 9000)
MARK10 = ServiceKey.mark(10)
MARK11_6 = ServiceKey.mark(11, 6)
SIP = ServiceKey.tcp_udp('udp', '10.0.0.5', 5060)


def inner(payload):
    """The attributes inside the one nested attribute of a request payload."""
    return core.parse_attrs(payload[4:])


# Service encoding: the attribute bytes that carry a translation rule.
@pytest.mark.parametrize('service, expect', [
    pytest.param(VirtualService(TCP80, 'rr'),
                 {1: b'\x02\x00', 2: b'\x06\x00', 3: b'\x0a\x00\x00\x01' + b'\0' * 12, 4: b'\x00\x50',
                  6: b'rr\0', 7: b'\0\0\0\0\xff\xff\xff\xff', 8: b'\0\0\0\0', 9: b'\xff\xff\xff\xff'},
                 id='tcp-v4'),
    pytest.param(VirtualService(TCP80, 'rr', persistence_timeout=300, persistence_netmask=24),
                 {7: b'\x01\0\0\0\xff\xff\xff\xff', 8: b'\x2c\x01\0\0', 9: b'\xff\xff\xff\x00'},
                 id='persistent-v4-mask-network-order'),
    pytest.param(VirtualService(UDP53_6, 'wrr', persistence_timeout=60, persistence_netmask=64),
                 {1: b'\x0a\x00', 2: b'\x11\x00', 3: b'\xfd' + b'\0' * 14 + b'\x01', 4: b'\x00\x35',
                  7: b'\x01\0\0\0\xff\xff\xff\xff', 9: b'\x40\0\0\0'}, id='persistent-v6-prefix-host-order'),
    pytest.param(VirtualService(SCTP), {2: b'\x84\x00', 6: b'wlc\0'}, id='sctp'),
    pytest.param(VirtualService(MARK10, 'sh', scheduler_flags=('sh-fallback', 'sh-port')),
                 {1: b'\x02\x00', 5: b'\x0a\0\0\0', 7: b'\x18\0\0\0\xff\xff\xff\xff'}, id='fwmark-sh-flags'),
    pytest.param(VirtualService(MARK11_6, 'mh', scheduler_flags=('mh-port',)),
                 {1: b'\x0a\x00', 5: b'\x0b\0\0\0', 7: b'\x10\0\0\0\xff\xff\xff\xff', 9: b'\x80\0\0\0'},
                 id='fwmark6-mh-port'),
])
def test_service_encoding(service, expect):
    cmd, payload = netlink_encode.request(Action(model.ADD_SERVICE, service))
    attrs = inner(payload)
    assert cmd == netlink_family.CMD_NEW_SERVICE
    assert dict((k, attrs.get(k)) for k in expect) == expect
    if service.key.is_fwmark:
        assert not set(attrs) & {2, 3, 4}


@pytest.mark.parametrize('op, cmd, keys', [
    pytest.param(model.ADD_SERVICE, netlink_family.CMD_NEW_SERVICE, {1, 2, 3, 4, 6, 7, 8, 9}, id='add-complete'),
    pytest.param(model.EDIT_SERVICE, netlink_family.CMD_SET_SERVICE, {1, 2, 3, 4, 6, 7, 8, 9}, id='edit-complete'),
    pytest.param(model.DELETE_SERVICE, netlink_family.CMD_DEL_SERVICE, {1, 2, 3, 4}, id='delete-key-only'),
])
def test_service_commands(op, cmd, keys):
    got_cmd, payload = netlink_encode.request(Action(op, VirtualService(TCP80, 'rr')))
    assert (got_cmd, set(inner(payload))) == (cmd, keys)


def test_persistence_engine_and_one_packet_travel():
    service = VirtualService(SIP, 'rr', persistence_timeout=60, persistence_engine='sip', one_packet=True)
    attrs = inner(netlink_encode.request(Action(model.EDIT_SERVICE, service))[1])
    assert attrs[netlink_family.SVC_ATTR_PE_NAME] == b'sip\0'
    assert struct.unpack('=II', attrs[netlink_family.SVC_ATTR_FLAGS]) == (0x1 | 0x4, 0xffffffff)


def test_every_real_server_setting_travels():
    """DEST_SETTINGS is the field table's netlink column, in the table's order."""
    assert tuple(name for name, _kind, _layout, _numbers in netlink_family.DEST_SETTINGS) == model.SERVER_SETTING_NAMES


def _dest(action):
    cmd, payload = netlink_encode.request(action)
    top = core.parse_attrs(payload)
    return cmd, core.parse_attrs(top[netlink_family.CMD_ATTR_DEST])


WEB = VirtualService(TCP80, 'rr')


@pytest.mark.parametrize('action, cmd, expect', [
    pytest.param(Action(model.ADD_SERVER, WEB, RealServer('10.244.0.2', 8080, 3, 'masq', 100, 50)),
                 netlink_family.CMD_NEW_DEST,
                 {1: b'\x0a\xf4\x00\x02' + b'\0' * 12, 2: b'\x1f\x90', 3: b'\0\0\0\0', 4: b'\x03\0\0\0',
                  5: b'\x64\0\0\0', 6: b'\x32\0\0\0', 11: b'\x02\x00', 13: None}, id='masq-complete'),
    pytest.param(Action(model.EDIT_SERVER, WEB, RealServer('10.244.0.3', 80, 0, 'route')), netlink_family.CMD_SET_DEST,
                 {2: b'\x00\x50', 3: b'\x03\0\0\0', 4: b'\0\0\0\0'}, id='route-drain'),
    pytest.param(Action(model.ADD_SERVER, WEB, RealServer('10.244.0.4', 8080, 1, 'tunnel')), netlink_family.CMD_NEW_DEST,
                 {2: b'\x00\x50', 3: b'\x02\0\0\0', 13: b'\x00', 14: b'\0\0', 15: b'\0\0'},
                 id='tunnel-ipip-service-port'),
    pytest.param(Action(model.ADD_SERVER, WEB, RealServer('10.244.0.5', 80, 1, 'tunnel', tunnel_type='gue',
                                                          tunnel_port=6080, tunnel_checksum='remcsum')),
                 netlink_family.CMD_NEW_DEST, {3: b'\x02\0\0\0', 13: b'\x01', 14: b'\x17\xc0', 15: b'\x02\x00'},
                 id='tunnel-gue-port-big-endian'),
    pytest.param(Action(model.EDIT_SERVER, WEB, RealServer('10.244.0.6', 80, 1, 'tunnel', tunnel_type='gre',
                                                           tunnel_checksum='csum')),
                 netlink_family.CMD_SET_DEST, {13: b'\x02', 14: b'\0\0', 15: b'\x01\x00'}, id='tunnel-gre-csum'),
    pytest.param(Action(model.ADD_SERVER, VirtualService(UDP53_6), RealServer('192.0.2.7', 53, 1, 'tunnel')),
                 netlink_family.CMD_NEW_DEST, {1: b'\xc0\x00\x02\x07' + b'\0' * 12, 11: b'\x02\x00'},
                 id='ipv4-server-in-ipv6-service'),
    pytest.param(Action(model.DELETE_SERVER, WEB, RealServer('10.244.0.4', 8080, 1, 'route')), netlink_family.CMD_DEL_DEST,
                 {2: b'\x1f\x90', 3: None, 4: None}, id='delete-as-held-no-rewrite'),
])
def test_server_encoding(action, cmd, expect):
    got_cmd, attrs = _dest(action)
    assert got_cmd == cmd
    assert dict((k, attrs.get(k)) for k in expect) == expect


@pytest.mark.parametrize('flags, scheduler, names', [
    pytest.param(0x2, 'rr', (), id='hashed-masked'),
    pytest.param(0x1 | 0x2 | 0x8, 'sh', ('sh-fallback',), id='sh-fallback'),
    pytest.param(0x18, 'mh', ('mh-fallback', 'mh-port'), id='mh-both'),
    pytest.param(0x28, 'rr', ('flag-1', 'flag-3'), id='other-scheduler'),
])
def test_flag_names(flags, scheduler, names):
    assert netlink_decode.flag_names(scheduler, flags & ~netlink_family.SVC_F_HASHED) == names


# Actions 0-4 add the services, 5-11 their servers. Round trips through the fake kernel: what we apply is what we read back.
SERVICES = [
    VirtualService(TCP80, 'rr', real_servers=(
        RealServer('10.244.0.2', 8080), RealServer('10.244.0.3', 80, 0, 'route'),
        RealServer('10.244.0.4', 80, 2, 'tunnel', 100, 10))),
    VirtualService(UDP53_6, 'wrr', persistence_timeout=300, persistence_netmask=64, real_servers=(
        RealServer('fd00::2', 5353, 3), RealServer('192.0.2.7', 53, 1, 'tunnel'))),
    VirtualService(SCTP, 'sh', scheduler_flags=('sh-port',), persistence_timeout=60, persistence_netmask=24),
    VirtualService(MARK10, 'mh', scheduler_flags=('mh-fallback', 'mh-port'), real_servers=(
        RealServer('10.244.1.1', 0, 5, 'route'),)),
    VirtualService(MARK11_6, 'lc', real_servers=(RealServer('fd00::9', 0, 1, 'masq'),)),
]
# Every setting the model has beyond the defaults, for the round trips below.
EVERY_SETTING = VirtualService(SIP, 'rr', persistence_timeout=60, persistence_engine='sip', one_packet=True,
                               real_servers=(
                                   RealServer('10.244.2.1', 5060, 1, 'tunnel', tunnel_type='gue', tunnel_port=6080,
                                              tunnel_checksum='csum'),
                                   RealServer('10.244.2.2', 5060, 1, 'tunnel', tunnel_type='gre',
                                              tunnel_checksum='csum')))


def create_actions(services):
    actions = [Action(model.ADD_SERVICE, svc) for svc in services]
    actions += [Action(model.ADD_SERVER, svc, rs) for svc in services for rs in svc.real_servers]
    return actions


@pytest.fixture
def loaded(kernel):
    backend = netlink.NetlinkBackend(sock=kernel)
    backend.apply(create_actions(SERVICES))
    return backend


def test_round_trip(loaded):
    assert loaded.read() == model.table_of(SERVICES)


@pytest.mark.parametrize('actions', [
    pytest.param([Action(model.EDIT_SERVICE, SERVICES[0].replace(scheduler='wlc', persistence_timeout=30))],
                 id='edit-service'),
    pytest.param([Action(model.EDIT_SERVICE, SERVICES[1].replace(persistence_timeout=0))], id='drop-persistence'),
    pytest.param([Action(model.EDIT_SERVICE, SERVICES[3].replace(scheduler_flags=()))], id='drop-flags'),
    pytest.param([Action(model.EDIT_SERVER, SERVICES[0], RealServer('10.244.0.2', 8080, 0)),
                  Action(model.EDIT_SERVER, SERVICES[0], RealServer('10.244.0.4', 80, 7, 'tunnel'))],
                 id='edit-servers-complete'),
    pytest.param([Action(model.DELETE_SERVER, SERVICES[1], RealServer('fd00::2', 5353, 3)),
                  Action(model.DELETE_SERVICE, SERVICES[4])], id='deletes'),
    pytest.param([Action(model.ADD_SERVER, SERVICES[2], RealServer('10.9.9.9', 9000, 4, 'masq', 5, 1))],
                 id='add-server'),
    pytest.param(create_actions([EVERY_SETTING]), id='add-every-setting'),
])
def test_changes_match_the_planner(loaded, actions):
    before = loaded.read()
    loaded.apply(actions)
    assert loaded.read() == apply_to_table(before, actions)


@pytest.mark.parametrize('actions', [
    pytest.param([Action(model.EDIT_SERVICE, EVERY_SETTING.replace(scheduler='wrr')),
                  Action(model.EDIT_SERVER, EVERY_SETTING, EVERY_SETTING.real_servers[0].replace(weight=3))],
                 id='edits-keep-engine-ops-and-tunnel'),
    pytest.param([Action(model.EDIT_SERVICE, EVERY_SETTING.replace(persistence_engine=None, one_packet=False)),
                  Action(model.EDIT_SERVER, EVERY_SETTING, EVERY_SETTING.real_servers[1].replace(
                      tunnel_type='ipip', tunnel_checksum='none'))], id='edits-drop-engine-ops-and-gre'),
])
def test_every_setting_survives_edits(kernel, actions):
    backend = netlink.NetlinkBackend(sock=kernel)
    backend.apply(create_actions([EVERY_SETTING]))
    before = backend.read()
    assert before == model.table_of([EVERY_SETTING])
    backend.apply(actions)
    assert backend.read() == apply_to_table(before, actions)


def test_counters_are_read(loaded, kernel):
    kernel.counters('10.244.0.2', 4, 9)
    service = loaded.read()[TCP80]
    assert service.connections_of(('10.244.0.2', 8080)) == (4, 9)
    assert service.connections_of(('10.244.0.3', 80)) == (0, 0)


def test_a_read_makes_again_only_the_real_servers_whose_settings_changed(loaded, kernel):
    """The backend's memo of the last read's servers: an unchanged server is the very
    object of the last read, a changed one is decoded anew, counters are read every time,
    and the memo holds this read's servers only."""
    first = loaded.read()
    kernel.counters('10.244.0.2', 4, 9)
    loaded.apply([Action(model.EDIT_SERVER, first[TCP80], first[TCP80].real_servers[1].replace(weight=7))])
    second = loaded.read()
    assert second == apply_to_table(first, [Action(model.EDIT_SERVER, first[TCP80],
                                                   first[TCP80].real_servers[1].replace(weight=7))])
    old, new = first[TCP80].real_servers, second[TCP80].real_servers
    assert new[0] is old[0] and new[2] is old[2]  # unchanged: not made again
    assert new[1] is not old[1] and new[1].weight == 7
    assert second[TCP80].connections_of(('10.244.0.2', 8080)) == (4, 9)
    assert len(loaded._servers) == sum(len(service.real_servers) for service in second.values())
    loaded.apply([Action(model.DELETE_SERVICE, second[TCP80])])
    third = loaded.read()
    assert len(loaded._servers) == sum(len(service.real_servers) for service in third.values())
    loaded.close()
    assert loaded._servers == {}


def test_read_counters_dumps_only_the_services_asked(loaded, kernel):
    kernel.counters('10.244.0.2', 4, 9)
    kernel.sends.clear()
    gone = model.ServiceKey.tcp_udp('tcp', '10.0.0.99', 80)
    assert loaded.read_counters([TCP80, gone]) == {
        TCP80: {('10.244.0.2', 8080): (4, 9), ('10.244.0.3', 80): (0, 0), ('10.244.0.4', 80): (0, 0)},
        gone: {},  # not held (deleted meanwhile): the kernel's dump is empty
    }
    assert [cmd for sent in kernel.sends for cmd, _flags, _seq in sent] == [8, 8]


@pytest.mark.parametrize('stats64', [pytest.param(True, id='stats64'), pytest.param(False, id='stats-before-4.1')])
def test_read_traffic_is_one_dump_of_the_services(loaded, kernel, stats64):
    kernel.stats64 = stats64
    kernel.traffic(80, 7, 120, 95, 2 ** 40 + 3, 2 ** 33)  # byte counts beyond 32 bits
    kernel.sends.clear()
    traffic = loaded.read_traffic()
    assert [cmd for sent in kernel.sends for cmd, _flags, _seq in sent] == [4]  # no real server dump
    assert set(traffic) == set(loaded.read())
    assert traffic[TCP80] == netlink_decode.Traffic(connections=7, packets_in=120, packets_out=95,
                                                    bytes_in=2 ** 40 + 3, bytes_out=2 ** 33)
    assert traffic[MARK10] == netlink_decode.NO_TRAFFIC


def test_read_traffic_prefers_stats64_whose_counts_do_not_wrap(loaded, kernel):
    kernel.traffic(80, 2 ** 32 + 5, 2 ** 32 + 6, 1, 0, 0)
    assert loaded.read_traffic()[TCP80][:3] == (2 ** 32 + 5, 2 ** 32 + 6, 1)
    kernel.stats64 = False
    assert loaded.read_traffic()[TCP80][:3] == (5, 6, 1)  # what a kernel without STATS64 can say


def test_decode_traffic_without_stats_is_zero():
    assert netlink_decode.decode_traffic({}) == netlink_decode.NO_TRAFFIC


def test_caches_start_over_at_their_limit(kernel, monkeypatch):
    """A watcher runs for months while pod addresses come and go: no memo grows past
    CACHE_LIMIT, and what is read stays right across the restarts."""
    monkeypatch.setattr(netlink_family, 'CACHE_LIMIT', 8)
    services = [VirtualService(ServiceKey.tcp_udp('tcp', '10.1.0.%d' % n, 80), 'rr',
                               real_servers=(RealServer('10.244.1.%d' % n, 8080),
                                             RealServer('fd00::%x' % n, 80, forwarding='tunnel')))
                for n in range(1, 31)]
    backend = netlink.NetlinkBackend(sock=kernel)
    backend.apply(create_actions(services))
    assert backend.read() == model.table_of(services)
    for cache in (netlink_family._PACKED, netlink_family._TEXT, netlink_encode._SERVICE_IDS, netlink_encode._SELECTORS):  # pylint: disable=protected-access
        assert len(cache) <= 8


def test_a_backend_is_a_context_manager_that_closes_its_socket(kernel):
    with netlink.NetlinkBackend(sock=kernel) as backend:
        assert backend.read() == {}
        assert not kernel.closed
    assert kernel.closed


def test_route_server_gets_the_service_port(kernel):
    backend = netlink.NetlinkBackend(sock=kernel)
    backend.apply([Action(model.ADD_SERVICE, WEB), Action(model.ADD_SERVER, WEB, RealServer('10.1.1.1', 8080, 1, 'route'))])
    assert backend.read()[TCP80].real_servers == (RealServer('10.1.1.1', 80, 1, 'route'),)


def test_check_mode_reads_but_never_writes(kernel):
    backend = netlink.NetlinkBackend(check_mode=True, sock=kernel)
    backend.apply(create_actions(SERVICES))
    assert backend.read() == {}
    assert all(cmd in (netlink_family.CMD_GET_SERVICE, netlink_family.CMD_GET_DEST, 3) for s in kernel.sends for cmd, _f, _s in s)


@pytest.mark.parametrize('batch, refuse, expect_failed, expect_applied, expect_text', [
    pytest.param(256, {(netlink_family.CMD_NEW_DEST, 2): errno.EINVAL}, 6, [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11],
                 'add_server tcp 10.0.0.1:80 -> 10.244.0.3:80: Invalid argument: for a real server: its address '
                 'must be unicast', id='later-actions-of-the-batch-applied'),
    pytest.param(4, {(netlink_family.CMD_NEW_SERVICE, 2): errno.ENOENT}, 1, [0, 2, 3],
                 'add_service udp [fd00::1]:53: No such file or directory: no such real server, or the scheduler', id='later-batches-not-sent'),
    pytest.param(256, {(netlink_family.CMD_NEW_SERVICE, 1): errno.EEXIST, (netlink_family.CMD_NEW_DEST, 1): errno.ESRCH}, 0,
                 [1, 2, 3, 4, 8, 9, 10, 11], 'add_service tcp 10.0.0.1:80: File exists: it already exists; '
                 'add_server tcp 10.0.0.1:80 -> 10.244.0.2:8080: No such process: no such virtual service; '
                 'add_server tcp 10.0.0.1:80 -> 10.244.0.3:80: No such process', id='every-error-reported'),
])
def test_apply_error_maps_by_sequence(kernel, monkeypatch, batch, refuse, expect_failed, expect_applied, expect_text):
    monkeypatch.setattr(generic, 'BATCH_COUNT', batch)
    kernel.refuse = refuse
    actions = create_actions(SERVICES)
    with pytest.raises(model.ApplyError) as info:
        netlink.NetlinkBackend(sock=kernel).apply(actions)
    assert info.value.failed is actions[expect_failed]
    assert info.value.applied == [actions[i] for i in expect_applied]
    assert expect_text in str(info.value)


def test_ip_vs_not_loaded(kernel):
    kernel.loaded = False
    with pytest.raises(model.BackendError, match=r'ip_vs module is not loaded \(modprobe ip_vs\)'):
        netlink.NetlinkBackend(sock=kernel).read()
    assert kernel.closed


def test_no_cap_net_admin(kernel):
    kernel.permitted = False
    with pytest.raises(model.BackendError, match='needs CAP_NET_ADMIN'):
        netlink.NetlinkBackend(sock=kernel).read()


def test_decode_dest_general_layout_equals_fast_path(loaded, kernel):
    """Today's kernel layout takes the one-unpack path; any other layout (here the
    tunnel attributes moved to the end) the general loop. Both read the same table, every
    setting included."""
    loaded.apply(create_actions([EVERY_SETTING]))
    dest = next(iter(kernel.services.values()))['dests']
    layout = kernel._dest_attrs(next(iter(dest.values())))
    fields = netlink_decode._DEST_DUMP.unpack_from(layout)
    assert (fields[0::3], fields[1::3]) == (netlink_decode._DEST_DUMP_LENGTHS, netlink_decode._DEST_DUMP_KINDS)
    fast = loaded.read()
    original = kernel._dest_attrs
    kernel._dest_attrs = lambda dest: original(dest)[:44] + original(dest)[68:] + original(dest)[44:68]
    assert loaded.read() == fast and fast[SIP] == EVERY_SETTING


def test_decode_localnode_as_route_and_ipv4_netmask_prefix():
    attrs = {netlink_family.SVC_ATTR_AF: b'\x02\x00', netlink_family.SVC_ATTR_PROTOCOL: b'\x06\x00',
             netlink_family.SVC_ATTR_ADDR: b'\x0a\0\0\x01' + b'\0' * 12, netlink_family.SVC_ATTR_PORT: b'\x00\x50',
             netlink_family.SVC_ATTR_SCHED_NAME: b'rr\0', netlink_family.SVC_ATTR_FLAGS: b'\x03\0\0\0\xff\xff\xff\xff',
             netlink_family.SVC_ATTR_TIMEOUT: b'\x2c\x01\0\0', netlink_family.SVC_ATTR_NETMASK: b'\xff\xff\xf0\x00'}
    expect = VirtualService(TCP80, 'rr', persistence_timeout=300, persistence_netmask=20)
    assert VirtualService(**netlink_decode.decode_service_fields(attrs)) == expect
    dest = (b'\x14\x00\x01\x00' + b'\x0a\0\0\x02' + b'\0' * 12 + b'\x06\x00\x02\x00\x00\x50\x00\x00'
            + b'\x08\x00\x03\x00\x01\0\0\0' + b'\x08\x00\x04\x00\x01\0\0\0')
    assert netlink_decode.decode_dest(dest, 0, len(dest), 4) == (RealServer('10.0.0.2', 80, 1, 'route'), (0, 0))


def test_reads_take_the_one_unpack_paths(loaded, kernel, monkeypatch):
    """Today's layouts never reach the attribute-by-attribute decoders, except a
    firewall-mark service (no fixed layout for those)."""
    general = []
    fields = netlink_decode.decode_service_fields
    monkeypatch.setattr(netlink_decode, 'decode_service_fields', lambda attrs: general.append(attrs) or fields(attrs))
    monkeypatch.setattr(netlink_decode, 'decode_dest', lambda *args: pytest.fail('general real server decoder used'))
    kernel.dump_chunk = 2  # several datagrams per dump
    assert loaded.read() == model.table_of(SERVICES)
    assert len(general) == 2  # MARK10, MARK11_6


def test_a_reply_of_another_layout_takes_the_general_path(loaded, kernel):
    """A datagram whose replies differ in size (a kernel adding an attribute to some)
    is read message by message, with the same result."""
    original = kernel._dest_attrs
    kernel._dest_attrs = lambda dest: original(dest) + (b'\x08\x00\x63\x00\0\0\0\0' if dest['weight'] == 2 else b'')
    kernel.dump_chunk = 3
    assert loaded.read() == model.table_of(SERVICES)


def test_an_interrupted_dump_is_an_error_not_a_short_table(loaded, kernel):
    original = kernel._reply

    def reply(kind, seq, cmd, payload, flags=0x2):
        return original(kind, seq, cmd, payload, flags | (core.NLM_F_DUMP_INTR if cmd == 5 else 0))

    kernel._reply = reply
    with pytest.raises(model.BackendError, match=r'real servers of tcp 10\.0\.0\.1:80 .*changed during the dump'):
        loaded.read()


def test_a_refused_real_server_dump_names_its_service(loaded, kernel):
    original = kernel._dump

    def dump(seq, cmd, attrs):
        if cmd == 8 and kernel.services:
            kernel.queue.append(kernel._error(errno.ENOMEM, seq, b'\0' * 16))
            return
        original(seq, cmd, attrs)

    kernel._dump = dump
    with pytest.raises(model.BackendError, match=r'reading the real servers of tcp 10\.0\.0\.1:80 from the kernel '
                                                 r'failed: Cannot allocate memory'):
        loaded.read()
