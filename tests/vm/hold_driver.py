# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs ON a lab node, inside the director namespace (ip netns exec hl-dir python3 -
COLLECTIONS STEP ... < this file): scheduler flips under a stream of new connections.

test_scheduler_hold.py (on the controller) creates hl-dir, ships the collection (with
backends_driver.py, whose LocalModule runs programs here) and calls the steps:

- `setup`: namespaces hl-cli (the client) and hl-rs (two real servers per family,
  answering "ok" on TCP and SCTP port 80) wired behind hl-dir, the director (all three made by the
  test beforehand: `ip netns add` run inside `ip netns exec` mounts the new name in
  a mount namespace of its own, which later runs do not see); the VIPs 10.77.0.10 and
  fd77::10 on hl-dir's loopback; forwarding on. Writes the real servers' pids to
  COLLECTIONS/rs.pid.
- `run HOLD FLIPS SECONDS RATE [PROTOCOL]`: the two services (PROTOCOL tcp or sctp,
  masq, weights 1 and 2) with scheduler rr, then a client in hl-cli opening RATE new
  connections (SCTP associations) a second for
  SECONDS (alternately IPv4 and IPv6, each connect, read "ok", close; 30 s timeout)
  while this process flips both services' scheduler rr <-> wrr FLIPS times through
  engine.reconcile (netlink backend), as the module does: with hold.NftHold
  (HOLD=held) or without (HOLD=unheld). Each swap is widened to SWAP_WINDOW seconds
  (WideSwapBackend) so that connections surely arrive inside it. Prints JSON: the
  client's outcomes, the
  warnings of each reconcile, how long each hold lasted, whether the hold table is
  left, the client namespace's ICMP/TCP counters over the run, and the kernel's table
  at the end.
- `every-kind`: places a hold on TCP, SCTP and fwmark services of both families (and a
  UDP one, which is left out), prints nft's listing of it, releases it, and prints
  whether the table is gone: the kernel and nft of the node take every rule render() writes.
"""

import json
import subprocess
import sys
import time

sys.path.insert(0, sys.argv[1])

from backends_driver import RUNNER  # noqa: E402  (LocalModule's Runner: subprocess, for the engine's nft runs)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine, hold, validation  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (  # noqa: E402
    EDIT_SERVICE,
    Action,
    RealServer as RS,
    ServiceKey,
    VirtualService as VS,
)

CLIENT, SERVERS = 'hl-cli', 'hl-rs'
VIPS = ('10.77.0.10', 'fd77::10')
SCOPE = validation.parse_scope(['10.77.0.0/24', 'fd77::/120'])
REAL_SERVERS = {'10.77.0.10': ('10.77.2.11', '10.77.2.12'), 'fd77::10': ('fd77:2::11', 'fd77:2::12')}

# SCTP: one socket per real server address. A socket bound to the wildcard would answer
# an INIT to one address with an INIT-ACK from another of the namespace's (SCTP is
# multi-homed), which the director's IPVS does not match to the connection.
SERVER_CODE = '''
import selectors, socket, sys
sctp = sys.argv[1] == 'sctp'
binds = [('10.77.2.11', socket.AF_INET), ('10.77.2.12', socket.AF_INET), ('fd77:2::11', socket.AF_INET6),
         ('fd77:2::12', socket.AF_INET6)] if sctp else [('::', socket.AF_INET6)]
chosen = selectors.DefaultSelector()
for address, family in binds:
    s = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP if sctp else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not sctp:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((address, 80))
    s.listen(1024)
    chosen.register(s, selectors.EVENT_READ)
while True:
    for key, _ in chosen.select():
        c, _ = key.fileobj.accept()
        try:
            c.sendall(b'ok\\n')
        except OSError:
            pass
        c.close()
'''

CLIENT_CODE = '''
import json, socket, sys, threading, time
targets = [('10.77.0.10', socket.AF_INET), ('fd77::10', socket.AF_INET6)]
seconds, rate = float(sys.argv[1]), float(sys.argv[2])
proto = socket.IPPROTO_SCTP if sys.argv[3] == 'sctp' else 0
results, lock = [], threading.Lock()

def one(i):
    address, family = targets[i % 2]
    start = time.monotonic()
    s = socket.socket(family, socket.SOCK_STREAM, proto)
    # Past the third SCTP INIT (3 + 6 + 12 s): a hold stretched by a loaded TCG guest is not a loss.
    s.settimeout(30)
    try:
        s.connect((address, 80))
        outcome = 'ok' if s.recv(16).startswith(b'ok') else 'bad reply'
    except ConnectionRefusedError:
        outcome = 'refused'
    except ConnectionResetError:
        outcome = 'reset'
    except socket.timeout:
        outcome = 'timeout'
    except OSError as exc:
        outcome = 'error %s' % exc.errno
    finally:
        s.close()
    with lock:
        results.append((outcome, time.monotonic() - start))

threads, begin, i = [], time.monotonic(), 0
while i / rate < seconds:
    delay = begin + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    thread = threading.Thread(target=one, args=(i,))
    thread.start()
    threads.append(thread)
    i += 1
for thread in threads:
    thread.join()
outcomes = {}
for outcome, _ in results:
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
print(json.dumps({'sent': i, 'outcomes': outcomes, 'over_1s': sum(1 for _, took in results if took >= 0.9),
                  'slowest': round(max(took for _, took in results), 3)}))
'''


def sh(*argv):
    subprocess.run([str(arg) for arg in argv], check=True)


def netns(name, *argv):
    sh('ip', 'netns', 'exec', name, *argv)


def setup(remote):
    for name in (CLIENT, SERVERS):
        netns(name, 'ip', 'link', 'set', 'lo', 'up')
    sh('ip', 'link', 'set', 'lo', 'up')
    for vip in VIPS:
        sh('ip', 'addr', 'add', vip + ('/32' if '.' in vip else '/128'), 'dev', 'lo')
    # director side: d-cli 10.77.1.1 / fd77:1::1, d-rs 10.77.2.1 / fd77:2::1
    for here, there, name, net, hosts in (('d-cli', 'eth0', CLIENT, 1, (2,)), ('d-rs', 'eth0', SERVERS, 2, (11, 12))):
        sh('ip', 'link', 'add', here, 'type', 'veth', 'peer', 'name', there, 'netns', name)
        sh('ip', 'addr', 'add', '10.77.%d.1/24' % net, 'dev', here)
        sh('ip', 'addr', 'add', 'fd77:%d::1/64' % net, 'dev', here, 'nodad')
        sh('ip', 'link', 'set', here, 'up')
        for host in hosts:
            netns(name, 'ip', 'addr', 'add', '10.77.%d.%d/24' % (net, host), 'dev', there)
            netns(name, 'ip', 'addr', 'add', 'fd77:%d::%d/64' % (net, host), 'dev', there, 'nodad')
        netns(name, 'ip', 'link', 'set', there, 'up')
        netns(name, 'ip', 'route', 'add', 'default', 'via', '10.77.%d.1' % net)
        netns(name, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd77:%d::1' % net)
    sh('sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1')
    pids = []
    for protocol in ('tcp', 'sctp'):
        server = subprocess.Popen(['ip', 'netns', 'exec', SERVERS, 'python3', '-c', SERVER_CODE, protocol],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        pids.append(server.pid)
    with open(remote + '/rs.pid', 'w') as handle:
        handle.write(''.join('%d\n' % pid for pid in pids))
    return {'server_pids': pids}


def services(scheduler, protocol='tcp'):
    return [VS(ServiceKey.tcp_udp(protocol, vip, 80), scheduler=scheduler,
               real_servers=tuple(RS(address, 80, weight=weight)
                                  for weight, address in enumerate(REAL_SERVERS[vip], 1)))
            for vip in VIPS]


# The kernel's own swap window is one RCU grace period (~20 ms on the lab VM): 15 new
# connections a second meet it only now and then, so a run without the hold could see no
# refusal and a hold that does nothing would still pass. WideSwapBackend puts each edited
# service through the kernel's "none" scheduler (no scheduler: the state the kernel is in
# during a swap, where it refuses new connections) for SWAP_WINDOW seconds before the
# real edit: ~4 connections arrive in each window, so without the hold some are refused.
SWAP_WINDOW = 0.3


class WideSwapBackend(object):
    """A backend whose service edits are each preceded by SWAP_WINDOW seconds of no
    scheduler (applied inside the engine's hold, as the kernel's own window is)."""

    def __init__(self, backend):
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def apply(self, actions):
        actions = list(actions)
        edits = [action for action in actions if action.op == EDIT_SERVICE]
        if edits:
            self._backend.apply([Action(EDIT_SERVICE, action.service.replace(scheduler='none')) for action in edits])
            time.sleep(SWAP_WINDOW)
        self._backend.apply(actions)


class TimedHold(hold.NftHold):
    """NftHold noting when each hold began (first place) and ended (release)."""

    def __init__(self, runner):
        super(TimedHold, self).__init__(runner)
        self.spans = []
        self._since = None

    def place(self, keys):
        if self._since is None:
            self._since = time.monotonic()
        super(TimedHold, self).place(keys)

    def release(self):
        super(TimedHold, self).release()
        self.spans.append(time.monotonic() - self._since)
        self._since = None


COUNTERS = ('IcmpInDestUnreachs', 'Icmp6InDestUnreachs', 'TcpAttemptFails', 'TcpRetransSegs')


def client_counters():
    """The client namespace's counters that tell how a connect failed: port unreachable
    (ICMP, ICMPv6) or a reset (TcpAttemptFails counts both), and SYN retransmissions."""
    out = subprocess.run(['ip', 'netns', 'exec', CLIENT, 'nstat', '-asz'] + list(COUNTERS), check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    values = dict((line.split()[0], int(line.split()[1])) for line in out.splitlines()[1:] if line.strip())
    return dict((name, values.get(name, 0)) for name in COUNTERS)


def run(mode, flips, seconds, rate, protocol='tcp'):
    backend = WideSwapBackend(get_backend('netlink'))
    timed = TimedHold(RUNNER) if mode == 'held' else None
    options = engine.ReconcileOptions(hold=timed)
    # Only this protocol's two services (the table of the run before goes).
    engine.reconcile(backend, services('rr', protocol), SCOPE, options)
    # The path works before the clock starts: one connection per VIP.
    probe = subprocess.run(['ip', 'netns', 'exec', CLIENT, 'python3', '-c', CLIENT_CODE, '0.1', '20', protocol],
                           check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    if json.loads(probe)['outcomes'] != {'ok': 2}:
        raise SystemExit('the %s path does not work before the run: %s' % (protocol, probe))
    counted = client_counters()
    client = subprocess.Popen(['ip', 'netns', 'exec', CLIENT, 'python3', '-c', CLIENT_CODE, str(seconds), str(rate),
                               protocol], stdout=subprocess.PIPE, universal_newlines=True)
    begin = time.monotonic()
    step = (seconds - 2.0) / flips  # flips spread over the run, the first after 1 s
    warnings, applies = [], []
    for flip in range(flips):
        delay = begin + 1.0 + flip * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        result = engine.reconcile(backend, services('wrr' if flip % 2 == 0 else 'rr', protocol), SCOPE, options)
        warnings.extend(result.warnings)
        applies.append(result.timings['apply'])
    out, _ = client.communicate()
    counted = dict((name, value - counted[name]) for name, value in client_counters().items())
    tables = subprocess.run(['nft', 'list', 'tables'], check=True, stdout=subprocess.PIPE,
                            universal_newlines=True).stdout
    saved = subprocess.run(['ipvsadm', '-S', '-n'], stdout=subprocess.PIPE, universal_newlines=True,
                           check=False).stdout
    return {'mode': mode, 'protocol': protocol, 'flips': flips, 'client': json.loads(out), 'warnings': warnings,
            'apply_seconds_max': round(max(applies), 4),
            'hold_seconds_max': round(max(timed.spans), 4) if timed and timed.spans else None,
            'hold_table_left': hold.TABLE_NAME in tables, 'client_counters': counted, 'saved': saved}


def every_kind():
    keys = [ServiceKey.tcp_udp('tcp', '10.77.0.10', 80), ServiceKey.tcp_udp('tcp', 'fd77::10', 443),
            ServiceKey.tcp_udp('sctp', '10.77.0.10', 3868), ServiceKey.tcp_udp('sctp', 'fd77::10', 3868),
            ServiceKey.tcp_udp('udp', '10.77.0.10', 53), ServiceKey.mark(7), ServiceKey.mark(8, 6)]
    nft = hold.NftHold(RUNNER)
    nft.place(keys)
    listing = RUNNER.run(['nft', 'list', 'table', hold.TABLE_FAMILY, hold.TABLE_NAME]).stdout
    nft.release()
    tables = RUNNER.run(['nft', 'list', 'tables']).stdout
    return {'listing': listing, 'gone': hold.TABLE_NAME not in tables}


def main():
    step = sys.argv[2]
    if step == 'every-kind':
        print(json.dumps(every_kind()))
    elif step == 'setup':
        print(json.dumps(setup(sys.argv[1])))
    elif step == 'run':
        print(json.dumps(run(sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), *sys.argv[7:8])))
    else:
        raise SystemExit('unknown step %r' % step)


if __name__ == '__main__':
    main()
