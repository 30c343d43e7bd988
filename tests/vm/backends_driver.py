# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs ON a lab node (python3 - COLLECTIONS SCENARIO < this file): drives both IPVS
backends through one scenario and prints what the kernel held after every step, as JSON.

test_backends.py (on the controller) ships the collection and this file to the node,
then compares the two backends' records. `refusals` reports how each backend words a
refused real server and a refused read; `bench N M` loads and reads N services x M
real servers with each backend (or those named after M) and prints the timings.
`traffic` sends a few datagrams through a virtual service and reports the netlink
backend's per-service counters beside `ipvsadm -L -n --stats --exact`.
`restore-then-plan` lays a table down with `ipvsadm -R` (every setting the model has)
and reports what each backend reads and what the planner would do given the same table
as module parameters (what the module's check mode reports): nothing.

Each scenario is a list of tables; a step takes the kernel from one table to the next
with the actions diff() computes (complete entries, in ACTION_ORDER). Before a
scenario the kernel table is flushed (ipvsadm -C): run this on a lab node only.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, sys.argv[1])

from ansible_collections.netlb.ipvs.plugins.module_utils import _command  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model, plan, save_format, validation  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (  # noqa: E402
    Action,
    RealServer as RS,
    ServiceKey,
    VirtualService as VS,
)


class LocalModule:
    """The two AnsibleModule methods _command.Runner uses, with subprocess."""

    def get_bin_path(self, name, opt_dirs=()):
        return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', '')] + list(opt_dirs)))

    def run_command(self, argv, check_rc=False, data=None, environ_update=None, **_kw):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr


RUNNER = _command.Runner(LocalModule())


def ipvsadm(*args):
    return subprocess.run(['ipvsadm'] + list(args), capture_output=True, text=True, check=True).stdout


def diff(before, after):
    """Actions taking table before to table after: complete entries, ACTION_ORDER."""
    by_op = dict((op, []) for op in model.ACTION_ORDER)
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if new is None:
            by_op[model.DELETE_SERVICE].append(Action(model.DELETE_SERVICE, old))
            continue
        if old is None:
            by_op[model.ADD_SERVICE].append(Action(model.ADD_SERVICE, new))
        elif old.settings() != new.settings():
            by_op[model.EDIT_SERVICE].append(Action(model.EDIT_SERVICE, new))
        have = old.servers_by_key if old else {}
        for rs in new.real_servers:
            if rs.key not in have:
                by_op[model.ADD_SERVER].append(Action(model.ADD_SERVER, new, rs))
            elif have[rs.key] != rs:
                by_op[model.EDIT_SERVER].append(Action(model.EDIT_SERVER, new, rs))
        for rs in (old.real_servers if old else ()):
            if new.server(rs.key) is None:
                by_op[model.DELETE_SERVER].append(Action(model.DELETE_SERVER, old, rs))
    return [a for op in model.ACTION_ORDER for a in by_op[op]]


T = ServiceKey.tcp_udp
WEB = T('tcp', '10.0.0.1', 80)
TLS = T('tcp', '10.0.0.2', 443)
DNS6 = T('udp', 'fd00::1', 53)
SCTP = T('sctp', '10.0.0.3', 9000)
MARK = ServiceKey.mark(10)
MARK6 = ServiceKey.mark(11, 6)
WEB6 = T('tcp', 'fd00::5', 443)
DNS = T('udp', '10.0.0.6', 53)
SIP = T('udp', '10.0.0.8', 5060)
GUE = dict(tunnel_type='gue', tunnel_port=6080)

EVERY_KIND = model.table_of([
    VS(WEB, 'rr', real_servers=(RS('10.244.0.2', 8080), RS('10.244.0.3', 80, 0, 'route'),
                                RS('10.244.0.4', 80, 5, 'tunnel', 100, 50))),
    VS(TLS, 'wlc', persistence_timeout=60, persistence_netmask=24,
       real_servers=(RS('10.244.1.2', 443, 3, 'masq', 10, 0),)),
    VS(DNS6, 'wrr', persistence_timeout=300, persistence_netmask=64,
       real_servers=(RS('fd00::2', 5353, 2), RS('192.0.2.7', 53, 1, 'tunnel'))),
    VS(SCTP, 'sh', scheduler_flags=('sh-fallback', 'sh-port'), real_servers=(RS('10.244.2.2', 9000),)),
    VS(MARK, 'mh', scheduler_flags=('mh-port',), real_servers=(RS('10.244.3.3', 0, 1, 'route'),
                                                                RS('10.244.3.4', 8080))),
    VS(MARK6, 'lc', persistence_timeout=120, real_servers=(RS('fd00::11', 0, 4),)),
    VS(WEB6, 'sed', real_servers=(RS('fd00::6', 443, 1, 'route'), RS('fd00::7', 443, 2, 'tunnel', 5, 1))),
    VS(DNS, 'nq', one_packet=True, real_servers=(RS('10.244.6.1', 53), RS('10.244.6.2', 5353, 9))),
    VS(SIP, 'rr', persistence_timeout=60, persistence_engine='sip', one_packet=True,
       real_servers=(RS('10.244.8.1', 5060, 1, 'tunnel', tunnel_checksum='csum', **GUE),
                     RS('10.244.8.2', 5060, 2, 'tunnel', tunnel_type='gre', tunnel_checksum='csum'))),
])

EDITED = dict(EVERY_KIND)
EDITED.update(model.table_of([
    VS(WEB, 'wrr', persistence_timeout=30, persistence_netmask=16,
       real_servers=(RS('10.244.0.2', 8080, 7, 'masq', 20, 10), RS('10.244.0.3', 80, 3, 'route'),
                     RS('10.244.0.4', 80, 5, 'route'))),
    VS(TLS, 'wlc', real_servers=(RS('10.244.1.2', 443, 3),)),
    VS(DNS6, 'wrr', persistence_timeout=300, persistence_netmask=48,
       real_servers=(RS('fd00::2', 5353, 0), RS('192.0.2.7', 53, 1, 'tunnel'), RS('fd00::3', 53, 1, 'route'))),
    VS(SCTP, 'sh', scheduler_flags=('sh-port',), real_servers=(RS('10.244.2.2', 9000, 1, 'tunnel'),)),
    VS(MARK, 'sh', scheduler_flags=('sh-fallback',), real_servers=(RS('10.244.3.3', 0, 1, 'route'),
                                                                    RS('10.244.3.4', 8080, 2))),
    VS(MARK6, 'lc', real_servers=(RS('fd00::11', 0, 4), RS('fd00::12', 0, 1, 'tunnel'))),
    VS(T('tcp', '10.0.0.7', 8443), 'fo', real_servers=(RS('10.244.7.1', 8443, 100), RS('10.244.7.2', 8443, 1))),
    # Something else changes (weights, a new real server, the scheduler): engine, one-packet
    # scheduling and tunnel settings stay.
    VS(SIP, 'wrr', persistence_timeout=60, persistence_engine='sip', one_packet=True,
       real_servers=(RS('10.244.8.1', 5060, 5, 'tunnel', tunnel_checksum='csum', **GUE),
                     RS('10.244.8.2', 5060, 2, 'tunnel', tunnel_type='gre', tunnel_checksum='csum'),
                     RS('10.244.8.3', 5060, 1, 'tunnel', tunnel_checksum='remcsum', **GUE))),
]))

TRIMMED = dict((key, svc) for key, svc in EDITED.items() if key not in (SCTP, MARK6, DNS))
TRIMMED[WEB] = EDITED[WEB].replace(real_servers=EDITED[WEB].real_servers[:1])
TRIMMED[DNS6] = EDITED[DNS6].replace(real_servers=EDITED[DNS6].real_servers[1:])
# ... and go when asked to.
TRIMMED[SIP] = VS(SIP, 'wrr', persistence_timeout=60, real_servers=(
    RS('10.244.8.1', 5060, 5, 'tunnel'), RS('10.244.8.2', 5060, 2, 'tunnel', tunnel_type='gre')))

# What restore-then-plan lays down, in ipvsadm's own words, and the same as parameters.
RESTORE = '''-A -u 10.0.0.5:5060 -s rr -p 60 --pe sip -o
-a -u 10.0.0.5:5060 -r 10.244.2.1:5060 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.0.0.5:5060 -r 10.244.2.2:5060 -i -w 3 --tun-type gre --tun-nocsum
-a -u 10.0.0.5:5060 -r 10.244.2.3:5060 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-A -u 10.0.0.6:53 -s wlc -o
-a -u 10.0.0.6:53 -r 10.244.6.1:53 -m -w 1
-A -t [fd00::1]:80 -s rr
-a -t [fd00::1]:80 -r 10.244.3.1:80 -i -w 1 --tun-type ipip
'''
RESTORE_PARAMS = [
    {'protocol': 'udp', 'address': '10.0.0.5', 'port': 5060, 'scheduler': 'rr', 'persistence_timeout': 60,
     'persistence_engine': 'sip', 'one_packet': True, 'real_servers': [
         {'address': '10.244.2.1', 'forwarding': 'tunnel', 'tunnel_type': 'gue', 'tunnel_port': 6080,
          'tunnel_checksum': 'csum'},
         {'address': '10.244.2.2', 'forwarding': 'tunnel', 'tunnel_type': 'gre', 'weight': 3},
         {'address': '10.244.2.3', 'forwarding': 'tunnel', 'tunnel_type': 'gue', 'tunnel_port': 6081,
          'tunnel_checksum': 'remcsum'}]},
    {'protocol': 'udp', 'address': '10.0.0.6', 'port': 53, 'one_packet': True,
     'real_servers': [{'address': '10.244.6.1'}]},
    {'address': 'fd00::1', 'port': 80, 'scheduler': 'rr', 'real_servers': [{'address': '10.244.3.1', 'forwarding': 'tunnel'}]},
]

SCENARIOS = {
    'create-every-kind': [EVERY_KIND],
    'edit-every-setting': [EVERY_KIND, EDITED],
    'delete-then-flush': [EVERY_KIND, EDITED, TRIMMED, {}],
}


def failing_actions():
    """Three good actions around one the kernel refuses (a server of no service)."""
    web = EVERY_KIND[WEB]
    ghost = VS(T('tcp', '10.9.9.9', 80), 'rr')
    return [Action(model.EDIT_SERVER, web, RS('10.244.0.2', 8080, 9)),
            Action(model.ADD_SERVER, ghost, RS('10.244.9.9', 80)),
            Action(model.ADD_SERVER, web, RS('10.244.0.9', 80, 1, 'route')),
            Action(model.EDIT_SERVICE, web.replace(scheduler='lc'))]


def kernel_record(backend):
    """What the kernel holds, as ipvsadm prints it and as the backend reads it."""
    table = backend.read()
    return {'saved': ipvsadm('-S', '-n'), 'thresholds': ipvsadm('-L', '-n', '--thresholds'),
            'read': save_format.render(table)}


def run_scenario(name, backend_name):
    ipvsadm('-C')
    backend = get_backend(backend_name, runner=RUNNER)
    records = []
    if name == 'refused-action':
        backend.apply(diff({}, EVERY_KIND))
        actions = failing_actions()
        try:
            backend.apply(actions)
            error = None
        except model.ApplyError as exc:
            error = {'applied': [actions.index(a) for a in exc.applied],
                     'failed': actions.index(exc.failed), 'message': str(exc)}
        record = kernel_record(backend)
        record['error'] = error
        return [record]
    current = {}
    for target in SCENARIOS[name]:
        actions = diff(current, target)
        backend.apply(actions)
        record = kernel_record(backend)
        record['expected'] = save_format.render(target)
        record['actions'] = len(actions)
        record['left'] = len(diff(backend.read(), target))  # idempotence: nothing left to do
        records.append(record)
        current = target
    return records


def restore_then_plan(backend_name):
    """ipvsadm -R lays RESTORE down; the backend reads it; the planner, given RESTORE_PARAMS
    as the module would take them (check mode: nothing applied), plans no action."""
    ipvsadm('-C')
    subprocess.run(['ipvsadm', '-R'], input=RESTORE, capture_output=True, text=True, check=True)
    backend = get_backend(backend_name, runner=RUNNER, check_mode=True)
    current = backend.read()
    request = validation.parse_request({'services': RESTORE_PARAMS})
    planned = plan.plan(request.services, current, request.scope)
    record = {'saved': ipvsadm('-S', '-n'), 'read': save_format.render(current),
              'expected': save_format.render(model.table_of(request.services)),
              'actions': [action.as_dict() for action in planned.actions]}
    ipvsadm('-C')
    return record


def bench(services, servers, backends=('netlink', 'ipvsadm')):
    table = model.table_of(
        VS(T('tcp', '10.%d.%d.%d' % (100 + i // 65536, i // 256 % 256, i % 256), 80), 'rr',
           real_servers=tuple(RS('172.16.%d.%d' % (j, i % 250 + 1), 8080) for j in range(servers)))
        for i in range(services))
    result = {}
    for name in backends:
        ipvsadm('-C')
        backend = get_backend(name, runner=RUNNER)
        actions = diff({}, table)
        start = time.time()
        backend.apply(actions)
        loaded = time.time()
        got = backend.read()
        done = time.time()
        assert got == table, 'read back differs'
        result[name] = {'actions': len(actions), 'load_s': round(loaded - start, 2),
                        'read_s': round(done - loaded, 2)}
    ipvsadm('-C')
    return result


def refusals():
    """How each backend reports a real server the kernel refuses (run where loopback is
    down: "address not unicast") and a read without CAP_NET_ADMIN (run as nobody)."""
    result = {}
    for name in ('netlink', 'ipvsadm'):
        entry = result[name] = {}
        try:
            backend = get_backend(name, runner=RUNNER)
            table = backend.read()
        except model.BackendError as exc:
            entry['read'] = str(exc)
            continue
        entry['read'] = 'ok'
        web = VS(WEB, 'rr')
        actions = diff(table, {WEB: web.replace(real_servers=(RS('10.244.0.2', 8080),))})
        try:
            backend.apply(actions)
        except model.ApplyError as exc:
            entry['apply'] = {'message': str(exc), 'applied': [actions.index(a) for a in exc.applied],
                              'failed': actions.index(exc.failed)}
        ipvsadm('-C')
    return result


def traffic():
    """Three 100-byte UDP datagrams from this namespace to a virtual service (IPVS counts
    them on LOCAL_OUT, before its real server, unreachable here, would get them), then
    the netlink backend's read_traffic() beside `ipvsadm -L -n --stats --exact`, once the
    kernel reports them."""
    ipvsadm('-C')
    udp, idle = VS(T('udp', '10.0.0.9', 53), 'rr'), VS(T('tcp', '10.0.0.9', 80), 'rr')
    table = model.table_of([udp.replace(real_servers=(RS('10.244.0.2', 53),)),
                            idle.replace(real_servers=(RS('10.244.0.2', 80),))])
    backend = get_backend('netlink', runner=RUNNER)
    backend.apply(diff({}, table))
    subprocess.run(['ip', 'addr', 'add', '10.0.0.9/32', 'dev', 'lo'], check=True)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _round in range(3):
                sock.sendto(b'x' * 100, ('10.0.0.9', 53))
        # The kernel folds its per-CPU counters into what it reports every 2 s (the rate
        # estimator's tick): wait for that tick, then both readers see the same totals.
        deadline = time.time() + 10
        read = backend.read_traffic()
        while not read[udp.key].connections and time.time() < deadline:
            time.sleep(0.5)
            read = backend.read_traffic()
        stats = ipvsadm('-L', '-n', '--stats', '--exact')
    finally:
        subprocess.run(['ip', 'addr', 'del', '10.0.0.9/32', 'dev', 'lo'], check=True)
        ipvsadm('-C')
    return {'read': dict((str(key), list(counts)) for key, counts in read.items()), 'stats': stats}


def main():
    if sys.argv[2] == 'traffic':
        print(json.dumps(traffic()))
        return
    if sys.argv[2] == 'bench':
        print(json.dumps(bench(int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:] or ('netlink', 'ipvsadm'))))
        return
    if sys.argv[2] == 'refusals':
        print(json.dumps(refusals()))
        return
    if sys.argv[2] == 'restore-then-plan':
        print(json.dumps(dict((backend, restore_then_plan(backend)) for backend in ('netlink', 'ipvsadm'))))
        return
    print(json.dumps(dict((backend, run_scenario(sys.argv[2], backend)) for backend in ('netlink', 'ipvsadm'))))


if __name__ == '__main__':
    main()
