# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs ON a lab node (python3 - COLLECTIONS COMMAND JSON < this file): drives the
_k8s/node code against the real kernel and prints the outcome as JSON.

test_k8s_node.py ships the collection and this file; each command is one step:
  dummy {"interface", "desired", "owned", "check_mode"}      -> DummyResult + sends
  rules {"ports": [[ServicePort fields]], "dummy", "masquerade", "cluster_cidrs", "local_endpoints",
         "node_addresses", "without_output", "check_mode"}
                                                            -> ApplyResult (without_output: the output
                                                               chain cut out, the rules as they were before it)
  bench {"services"}                                        -> render/load/no-op timings
  addresses {"dummy_interface"}                             -> local + primary
  conntrack {"actions": [["delete_server", proto, vip, port, server, sport]]}
  sync {"work", "items", "params", "addresses", "again", "clean"}
                                                            -> one run (again: two) of the module's code:
                                                               changed, again_changed, warnings,
                                                               health_check_node_ports, the managed table
  killed_runs {"work", "old", "new", "then": ["old", "new"], "params", "addresses"}
                                                            -> for each write point of the run old -> new: the
                                                               run killed (SIGKILL) there, then one normal run
                                                               to then; where the node then differs from a
                                                               clean converge on then
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, sys.argv[1])

from ansible_collections.netlb.ipvs.plugins.module_utils import _command  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model, save_format  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import base, get_backend  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline, state  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ServicePort  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import addresses, conntrack, dummy, packet_rules  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules_nft  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import HostNode  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import route  # noqa: E402


class LocalModule:
    """The two AnsibleModule methods _command.Runner uses, with subprocess."""

    def get_bin_path(self, name, opt_dirs=()):
        return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', '')] + list(opt_dirs)))

    def run_command(self, argv, check_rc=False, data=None, environ_update=None, **_kw):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr


RUNNER = _command.Runner(LocalModule())


class CountingSocket:
    """A route netlink socket that counts the send() calls (one per batch)."""

    def __init__(self):
        self.sock = route.open_socket()
        self.sends = 0

    def send(self, data):
        self.sends += 1
        return self.sock.send(data)

    def recv_into(self, *args):
        return self.sock.recv_into(*args)

    def close(self):
        self.sock.close()


def cmd_dummy(args):
    counting = CountingSocket()
    sock = route.RtnlSocket(counting)
    try:
        result = dummy.ensure(args['desired'], args['owned'], interface=args['interface'],
                              check_mode=args.get('check_mode', False), sock=sock)
    except dummy.DummyError as exc:
        return {'error': str(exc)}
    finally:
        sock.close()
    return {'created': result.created, 'added': result.added, 'removed': result.removed,
            'owned': sorted(result.owned), 'changed': result.changed, 'sends': counting.sends}


def cmd_rules(args):
    ports = [ServicePort(*fields) for fields in args['ports']]
    ports = [port._replace(source_ranges=tuple(port.source_ranges)) for port in ports]
    text = packet_rules.render(ports, args['dummy'],
                               packet_rules.Options(args.get('masquerade', 'external'), args.get('cluster_cidrs', ())),
                               local_endpoints=args.get('local_endpoints', ()),
                               node_addresses=args.get('node_addresses', ()))
    if args.get('without_output'):
        start = text.index('\tchain output {')
        text = text[:start] + text[text.index('\t}\n', start) + 3:]
    result = packet_rules_nft.apply(RUNNER, text, check_mode=args.get('check_mode', False))
    return {'changed': result.changed, 'before': result.before, 'after': result.after}


def cmd_bench(args):
    ports = []
    for i in range(args['services']):
        address = '10.%d.%d.%d' % (96 + i // 62500, i // 250 % 250, i % 250 + 1)
        ports.append(ServicePort('cluster_ip', 4, 'tcp', address, 80, False, (), 'ns/s%d' % i))
        ports.append(ServicePort('node_port', 4, 'tcp', '10.0.2.15', 30000 + i % 2700, False, (), 'ns/s%d' % i))
        if i % 10 == 0:
            ports.append(ServicePort('load_balancer', 4, 'tcp', '192.0.%d.%d' % (i // 250 % 250, i % 250 + 1), 443,
                                     i % 20 == 0, ('10.0.0.0/8',), 'ns/s%d' % i))
    dummies = sorted(set(port.address for port in ports if port.kind != 'node_port'))
    options = packet_rules.Options('external', ('10.244.0.0/16',))
    start = time.time()
    text = packet_rules.render(ports, dummies, options)
    rendered = time.time()
    subprocess.run(['nft', '-f', '-'], input=packet_rules_nft.script(text), text=True, check=True)
    loaded = time.time()
    again = packet_rules_nft.apply(RUNNER, text)
    done = time.time()
    subprocess.run(['nft', 'delete', 'table', 'inet', 'netlb_ipvs'], check=True)
    return {'ports': len(ports), 'elements_services4': len(set(p.address + str(p.port) for p in ports)),
            'render_s': round(rendered - start, 3), 'nft_load_s': round(loaded - rendered, 3),
            'noop_apply_s': round(done - loaded, 3), 'noop_changed': again.changed}


def cmd_addresses(args):
    snapshot = addresses.read()
    return {'local': snapshot.local(), 'primary': snapshot.primary(args.get('dummy_interface', 'kube-ipvs0'))}


def cmd_conntrack(args):
    actions = []
    for op, protocol, vip, port, server, server_port in args['actions']:
        service = model.VirtualService(model.ServiceKey.tcp_udp(protocol, vip, port), 'rr')
        actions.append(model.Action(op, service, model.RealServer(server, server_port) if server else None))
    return {'flows': [flow.as_dict() for flow in conntrack.clear(RUNNER, actions)]}


# The writes of one k8s_service_proxy run (proxy.py, "Order, and why"), where a run is killed.
WRITES = ((state.StateStore, 'save'), (HostNode, 'sync_rules'), (base.Backend, 'apply'), (HostNode, 'sync_dummy'),
          (HostNode, 'clear_udp_flows'))


def _killed_before(stop):
    """In this (child) process, SIGKILL itself before write number stop; returns the call log."""
    calls = []
    for cls, name in WRITES:
        def write(*args, _method=getattr(cls, name), _name=name, **kwargs):
            if len(calls) == stop:
                os.kill(os.getpid(), signal.SIGKILL)
            calls.append(_name)
            return _method(*args, **kwargs)
        setattr(cls, name, write)
    return calls


def cmd_killed_runs(args):
    work = args['work']
    os.makedirs(work, exist_ok=True)
    files = {}
    for name, items in (('old', args['old']), ('new', args['new']), ('empty', [])):
        files[name] = os.path.join(work, name + '.json')
        with open(files[name], 'w') as handle:
            json.dump({'apiVersion': 'v1', 'kind': 'List', 'items': items}, handle)
    params = dict(args['params'], source='manifests', allow_kube_proxy=True,
                  state_path=os.path.join(work, 'state.json'), drain_state_path=os.path.join(work, 'drain.json'))
    interface = params['dummy_interface']
    wanted = set(args['addresses'])

    def sync(name, **extra):
        return pipeline.run(dict(params, path=files[name], **extra), RUNNER)

    def view():
        table = get_backend('auto', runner=RUNNER).read()
        found = subprocess.run(['ip', '-j', 'addr', 'show', 'dev', interface], capture_output=True, text=True)
        bound = json.loads(found.stdout)[0]['addr_info'] if found.returncode == 0 else []
        try:
            with open(params['state_path']) as handle:
                saved = handle.read()
        except OSError:
            saved = ''
        return {'ipvs': save_format.render(dict((key, service) for key, service in table.items()
                                                if key.address in wanted)),
                'dummy': sorted(entry['local'] for entry in bound), 'rules': packet_rules_nft.read(RUNNER),
                'state': saved}

    def clean():
        sync('empty', force=True)  # everything in scope, and what the state says it owns
        subprocess.run(['nft', 'delete', 'table', 'inet', 'netlb_ipvs'], capture_output=True)
        subprocess.run(['ip', 'link', 'del', interface], capture_output=True)
        for path in (params['state_path'], params['drain_state_path']):
            if os.path.exists(path):
                os.unlink(path)

    started = time.time()
    outcome = {'points': {}, 'mismatches': [], 'failures': [], 'calls': None}
    for then in args['then']:
        clean()
        sync(then)
        want = view()
        stop = 0
        while True:
            sync('old')
            errors = os.path.join(work, 'child.err')
            pid = os.fork()
            if pid == 0:
                calls = _killed_before(stop)
                try:
                    sync('new')
                    with open(os.path.join(work, 'calls.json'), 'w') as handle:
                        json.dump(calls, handle)
                    os._exit(0)
                except BaseException:  # the child reports any failure, never returns into the loop
                    with open(errors, 'w') as handle:
                        handle.write(traceback.format_exc())
                    os._exit(3)
            _pid, status = os.waitpid(pid, 0)
            if not os.WIFSIGNALED(status):
                if os.WEXITSTATUS(status):
                    with open(errors) as handle:
                        outcome['failures'].append({'then': then, 'stop': stop, 'error': handle.read()[-2000:]})
                else:
                    with open(os.path.join(work, 'calls.json')) as handle:
                        outcome['calls'] = json.load(handle)
                break
            sync(then)
            got = view()
            if got != want:
                outcome['mismatches'].append({'then': then, 'stop': stop, 'differs': dict(
                    (part, {'want': want[part], 'got': got[part]}) for part in want if got[part] != want[part])})
            stop += 1
        outcome['points'][then] = stop
    clean()
    outcome['seconds'] = round(time.time() - started, 1)
    return outcome


def cmd_sync(args):
    """One run of k8s_service_proxy's code (pipeline.run) from the manifests items (again:
    then a second one); its changed, warnings and health_check_node_ports, whether the
    second changed anything, and the managed part of the IPVS table as read back from the
    kernel, in `ipvsadm -S -n` lines. clean: no run; the services that part holds deleted."""
    os.makedirs(args['work'], exist_ok=True)
    path = os.path.join(args['work'], 'cluster.json')
    with open(path, 'w') as handle:
        json.dump({'apiVersion': 'v1', 'kind': 'List', 'items': args['items']}, handle)
    params = dict(args['params'], source='manifests', path=path, allow_kube_proxy=True,
                  state_path=os.path.join(args['work'], 'state.json'),
                  drain_state_path=os.path.join(args['work'], 'drain.json'))
    first_port, last_port = (int(part) for part in params['node_port_range'].split('-'))

    def managed():
        table = get_backend('auto', runner=RUNNER).read()
        return dict((key, service) for key, service in table.items()
                    if key.address in args['addresses'] or first_port <= key.port <= last_port)

    if args.get('clean'):
        for key in managed():
            subprocess.run(['ipvsadm', '-D'] + save_format.service_option(key), check=True)
        return {'left': save_format.render(managed()).splitlines()}
    first = pipeline.run(params, RUNNER)
    second = pipeline.run(params, RUNNER) if args.get('again') else first
    mine = managed()
    return {'changed': first.changed, 'again_changed': second.changed, 'warnings': first.warnings,
            'health_check_node_ports': first.translation.health_check_node_ports,
            'ipvs': save_format.render(mine).splitlines()}


COMMANDS = {'dummy': cmd_dummy, 'rules': cmd_rules, 'bench': cmd_bench, 'addresses': cmd_addresses,
            'conntrack': cmd_conntrack, 'killed_runs': cmd_killed_runs, 'sync': cmd_sync}

if __name__ == '__main__':
    print(json.dumps(COMMANDS[sys.argv[2]](json.loads(sys.argv[3]))))
