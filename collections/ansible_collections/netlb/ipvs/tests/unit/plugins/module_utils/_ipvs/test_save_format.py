# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    Action,
    RealServer,
    ServiceKey,
    VirtualService,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


TCP80 = ServiceKey.tcp_udp('tcp', '10.0.0.1', 80)
UDP53_6 = ServiceKey.tcp_udp('udp', 'fd00::1', 53)
SCTP = ServiceKey.tcp_udp('sctp', '10.0.0.3', 9000)
MARK10 = ServiceKey.mark(10)
MARK11_6 = ServiceKey.mark(11, 6)

WEB = VirtualService(TCP80, 'rr')
DNS6 = VirtualService(UDP53_6, 'wrr', persistence_timeout=300, persistence_netmask=64)

# One table, both directions (h11 SIMPLE_CASES style): each line is what `ipvsadm -S -n`
# prints for the object, so parse(line) == object and render(object) == line.
SERVICE_CASES = [
    pytest.param('-A -t 10.0.0.1:80 -s rr', WEB, id='tcp'),
    pytest.param('-A -u [fd00::1]:53 -s wrr -p 300 -M 64', DNS6, id='udp6-persistent-prefix'),
    pytest.param('-A --sctp-service 10.0.0.3:9000 -s wlc', VirtualService(SCTP), id='sctp'),
    pytest.param('-A -f 10 -s rr', VirtualService(MARK10, 'rr'), id='fwmark'),
    pytest.param('-A -f 11 -6 -s lc', VirtualService(MARK11_6, 'lc'), id='fwmark6'),
    pytest.param('-A -t 10.0.0.1:80 -s rr -p 60', VirtualService(TCP80, 'rr', persistence_timeout=60),
                 id='persistent-full-mask'),
    pytest.param('-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0',
                 VirtualService(TCP80, 'rr', persistence_timeout=60, persistence_netmask=24), id='persistent-mask'),
    pytest.param('-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port',
                 VirtualService(TCP80, 'sh', scheduler_flags=('sh-port', 'sh-fallback')), id='sh-flags'),
    pytest.param('-A -t 10.0.0.1:80 -s mh -p 300 -b mh-port',
                 VirtualService(TCP80, 'mh', scheduler_flags=('mh-port',), persistence_timeout=300),
                 id='mh-flag-persistent'),
    pytest.param('-A -u 10.0.0.1:5060 -s rr -p 60 --pe sip -o',
                 VirtualService(ServiceKey.tcp_udp('udp', '10.0.0.1', 5060), 'rr', persistence_timeout=60,
                                persistence_engine='sip', one_packet=True), id='sip-one-packet'),
]

SERVER_CASES = [
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.2:8080 -m -w 1', RealServer('10.244.0.2', 8080), id='masq'),
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.3:80 -g -w 0',
                 RealServer('10.244.0.3', 80, weight=0, forwarding='route'), id='route-drained'),
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.4:80 -i -w 5 --tun-type ipip',
                 RealServer('10.244.0.4', 80, weight=5, forwarding='tunnel'), id='tunnel'),
    pytest.param(DNS6, '-a -u [fd00::1]:53 -r [fd00::2]:5353 -m -w 65535',
                 RealServer('fd00::2', 5353, weight=65535), id='ipv6'),
    pytest.param(DNS6, '-a -u [fd00::1]:53 -r 192.0.2.7:53 -i -w 1 --tun-type ipip',
                 RealServer('192.0.2.7', 53, forwarding='tunnel'), id='ipv4-in-ipv6-tunnel'),
    pytest.param(VirtualService(MARK10, 'rr'), '-a -f 10 -r 10.244.0.5:0 -g -w 2',
                 RealServer('10.244.0.5', 0, weight=2, forwarding='route'), id='fwmark'),
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.6:8080 -m -w 1 -x 100 -y 50',
                 RealServer('10.244.0.6', 8080, upper_threshold=100, lower_threshold=50), id='thresholds'),
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.7:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum',
                 RealServer('10.244.0.7', 80, forwarding='tunnel', tunnel_type='gue', tunnel_port=6080,
                            tunnel_checksum='remcsum'), id='gue'),
    pytest.param(WEB, '-a -t 10.0.0.1:80 -r 10.244.0.8:80 -i -w 1 --tun-type gre --tun-nocsum',
                 RealServer('10.244.0.8', 80, forwarding='tunnel', tunnel_type='gre'), id='gre'),
]


@pytest.mark.parametrize('line, service', SERVICE_CASES)
def test_parse_service_line(line, service):
    assert save_format.parse(line + '\n') == {service.key: service}


@pytest.mark.parametrize('line, service', SERVICE_CASES)
def test_render_service_line(line, service):
    assert save_format.render({service.key: service}) == line + '\n'


@pytest.mark.parametrize('service, line, server', SERVER_CASES)
def test_parse_server_line(service, line, server):
    text = save_format.render_service(service) + '\n' + line + '\n'
    parsed = save_format.parse(text)[service.key]
    assert parsed.real_servers == (server,)
    assert parsed.settings() == service.settings()


@pytest.mark.parametrize('service, line, server', SERVER_CASES)
def test_render_server_line(service, line, server):
    table = {service.key: service.replace(real_servers=(server,))}
    assert save_format.render(table).splitlines()[1] == line


@pytest.mark.parametrize('line, error', [
    pytest.param('-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1', 'real server of unknown service', id='orphan-server'),
    pytest.param('-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr', 'twice', id='duplicate'),
    pytest.param('-A -t 10.0.0.1:80 -s rr --frobnicate', 'unknown option', id='unknown-option'),
    pytest.param('-A -t 10.0.0.1:80 -s', 'needs a value', id='missing-value'),
    pytest.param('-A -s rr', 'no service', id='no-service'),
    pytest.param('-A -t 10.0.0.300:80 -s rr', 'bad address', id='bad-address'),
    pytest.param('-A -t 10.0.0.1:80 -s rr -p 60 -M 255.0.255.0', 'bad netmask', id='bad-netmask'),
    pytest.param('-E -t 10.0.0.1:80 -s rr', 'unexpected command', id='not-a-save-line'),
])
def test_parse_rejects(line, error):
    with pytest.raises(save_format.FormatError, match=error):
        save_format.parse(line)


def test_parse_reads_every_setting_in_any_spelling():
    table = save_format.parse('-A -t 10.0.0.1:80 -s rr --ops --pe sip\n'
                              '-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n')
    assert table[TCP80] == VirtualService(TCP80, 'rr', persistence_engine='sip', one_packet=True, real_servers=(
        RealServer('10.0.0.2', 80, forwarding='tunnel', tunnel_type='gue', tunnel_port=6080, tunnel_checksum='csum'),))


def test_every_setting_read_from_the_lab_and_written_back():
    table = save_format.parse(fixture('ipvsadm-save-every-setting.txt'))
    sip = table[ServiceKey.tcp_udp('udp', '10.0.0.5', 5060)]
    assert (sip.persistence_timeout, sip.persistence_engine, sip.one_packet) == (60, 'sip', True)
    assert [(rs.tunnel_type, rs.tunnel_port, rs.tunnel_checksum) for rs in sip.real_servers] == [
        ('gue', 6080, 'csum'), ('gre', 0, 'csum'), ('gue', 6081, 'remcsum')]
    assert table[ServiceKey.tcp_udp('tcp', 'fd00::1', 80)].real_servers == (RealServer('10.244.3.1', 80,
                                                                                       forwarding='tunnel'),)
    assert sorted(save_format.render(table).splitlines()) == sorted(fixture('ipvsadm-save-every-setting.txt')
                                                                    .splitlines())


def test_every_field_has_its_ipvsadm_spelling():
    """The save format writes and reads every option the field table names."""
    known = set(save_format._VALUED) | set(save_format._FLAGS)
    for field in model.SERVICE_SETTINGS + model.SERVER_SETTINGS:
        assert field.ipvsadm and set(field.ipvsadm) <= known, field.name


def test_render_is_canonical_and_stable():
    text = fixture('ipvsadm-save.txt')
    once = save_format.render(save_format.parse(text))
    assert save_format.render(save_format.parse(once)) == once
    assert sorted(once.splitlines()) == sorted(text.splitlines())


# restore_script: complete entries, in the order given.
RESTORE_CASES = [
    pytest.param(Action(model.ADD_SERVICE, DNS6), '-A -u [fd00::1]:53 -s wrr -p 300 -M 64', id='add-service'),
    pytest.param(Action(model.EDIT_SERVICE, VirtualService(TCP80, 'sh', scheduler_flags=('sh-port',))),
                 '-E -t 10.0.0.1:80 -s sh -b sh-port', id='edit-service-complete'),
    pytest.param(Action(model.EDIT_SERVICE, VirtualService(TCP80)), '-E -t 10.0.0.1:80 -s wlc',
                 id='edit-service-drops-persistence'),
    pytest.param(Action(model.DELETE_SERVICE, WEB), '-D -t 10.0.0.1:80', id='delete-service'),
    pytest.param(Action(model.DELETE_SERVICE, VirtualService(MARK11_6)), '-D -f 11 -6', id='delete-fwmark6'),
    pytest.param(Action(model.ADD_SERVER, WEB, RealServer('10.244.0.2', 8080)),
                 '-a -t 10.0.0.1:80 -r 10.244.0.2:8080 -m -w 1 -x 0 -y 0', id='add-server'),
    pytest.param(Action(model.ADD_SERVER, WEB, RealServer('10.244.0.4', 80, forwarding='tunnel')),
                 '-a -t 10.0.0.1:80 -r 10.244.0.4:80 -i -w 1 --tun-type ipip -x 0 -y 0', id='add-tunnel-default-ipip'),
    pytest.param(Action(model.EDIT_SERVER, WEB, RealServer('10.244.0.5', 80, 2, 'tunnel', tunnel_type='gue',
                                                           tunnel_port=6080)),
                 '-e -t 10.0.0.1:80 -r 10.244.0.5:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum -x 0 -y 0',
                 id='edit-gue-server-complete'),
    pytest.param(Action(model.EDIT_SERVICE, VirtualService(ServiceKey.tcp_udp('udp', '10.0.0.1', 5060), 'rr',
                                                           persistence_timeout=60, persistence_engine='sip',
                                                           one_packet=True)),
                 '-E -u 10.0.0.1:5060 -s rr -p 60 --pe sip -o', id='edit-service-keeps-engine-and-ops'),
    pytest.param(Action(model.EDIT_SERVER, WEB, RealServer('10.244.0.2', 8080, weight=0), reason='drain'),
                 '-e -t 10.0.0.1:80 -r 10.244.0.2:8080 -m -w 0 -x 0 -y 0', id='edit-server-complete'),
    pytest.param(Action(model.EDIT_SERVER, DNS6, RealServer('fd00::2', 53, 3, 'route', 10, 5)),
                 '-e -u [fd00::1]:53 -r [fd00::2]:53 -g -w 3 -x 10 -y 5', id='edit-server-thresholds'),
    pytest.param(Action(model.DELETE_SERVER, WEB, RealServer('10.244.0.2', 8080)),
                 '-d -t 10.0.0.1:80 -r 10.244.0.2:8080', id='delete-server'),
]


@pytest.mark.parametrize('action, line', RESTORE_CASES)
def test_restore_line(action, line):
    assert save_format.restore_script([action]) == line + '\n'


def test_restore_script_keeps_order():
    actions = [case.values[0] for case in RESTORE_CASES]
    assert save_format.restore_script(actions).splitlines() == [case.values[1] for case in RESTORE_CASES]


@pytest.mark.parametrize('name, columns', [
    pytest.param('ipvsadm-list-thresholds.txt', ('Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'), id='thresholds'),
    pytest.param('ipvsadm-list.txt', ('Forward', 'Weight', 'ActiveConn', 'InActConn'), id='plain'),
    pytest.param('ipvsadm-list-stats.txt', ('Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'), id='stats'),
])
def test_parse_listing_covers_every_saved_server(name, columns):
    table = save_format.parse(fixture('ipvsadm-save.txt'))
    listing = save_format.parse_listing(fixture(name))
    assert set(listing) == set(table)
    for key, service in table.items():
        assert set(listing[key]) == set(service.servers_by_key)
        for row in listing[key].values():
            assert tuple(row) == columns


@pytest.mark.parametrize('listing, server, connections', [
    pytest.param({TCP80: {('10.244.0.2', 8080): {'Uthreshold': 100, 'Lthreshold': 50, 'ActiveConn': 3, 'InActConn': 4}}},
                 RealServer('10.244.0.2', 8080, upper_threshold=100, lower_threshold=50), (3, 4),
                 id='thresholds-listing'),
    pytest.param({TCP80: {('10.244.0.2', 8080): {'Forward': 'Masq', 'Weight': 1, 'ActiveConn': 7, 'InActConn': 1}}},
                 RealServer('10.244.0.2', 8080, upper_threshold=9), (7, 1), id='plain-listing-keeps-thresholds'),
    pytest.param({}, RealServer('10.244.0.2', 8080, upper_threshold=9), (0, 0), id='server-gone-meanwhile'),
])
def test_with_listing(listing, server, connections):
    table = {TCP80: WEB.replace(real_servers=(RealServer('10.244.0.2', 8080, upper_threshold=9),))}
    merged = save_format.with_listing(table, listing)[TCP80]
    assert merged.real_servers == (server,)
    assert merged.connections_of(server.key) == connections


def test_listing_counters_reach_the_table():
    table = save_format.with_listing(save_format.parse(fixture('ipvsadm-save.txt')),
                                     save_format.parse_listing(fixture('ipvsadm-list-thresholds.txt')))
    counted = [rs for svc in table.values() for rs in svc.real_servers if any(svc.connections_of(rs.key))]
    limited = [rs for svc in table.values() for rs in svc.real_servers if rs.upper_threshold]
    assert counted and limited


@pytest.mark.parametrize('prefix, text, family', [
    pytest.param(32, '255.255.255.255', 4, id='v4-full'),
    pytest.param(24, '255.255.255.0', 4, id='v4-24'),
    pytest.param(0, '0.0.0.0', 4, id='v4-zero'),
    pytest.param(64, '64', 6, id='v6-64'),
    pytest.param(128, '128', 6, id='v6-full'),
])
def test_netmask_both_ways(prefix, text, family):
    assert save_format.netmask_to_prefix(text, family) == prefix
    assert save_format._netmask_text(prefix, family) == text
