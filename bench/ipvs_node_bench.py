#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Node side of the IPVS table benchmark: runs ON a lab node, as root, stdlib only.

    python3 ipvs_node_bench.py measure --collections DIR --services N --servers M [--repeat R] [--sample S]
    python3 ipvs_node_bench.py engine --collections DIR --services N --servers M --backend B --variant V [--table F]
    python3 ipvs_node_bench.py module --collections DIR --ansible-lib DIR --services N --servers M --variant V
    python3 ipvs_node_bench.py facts

`measure` prints one JSON document with every node-side figure for one table size:
bare `ipvsadm -R` from empty, bare `ipvsadm -S -n`, the engine (full apply from empty,
no-op, 1% of real servers replaced) with each backend, and one ipvsadm process per rule
on a sample and, given --ansible-lib (a directory holding ansible/module_utils), the
ipvs_virtual_server module run as a process on the node, split into Ansible's argument
checks, the module's validation, the engine and exit_json. Each engine or module figure
comes from a fresh process, as each module run is one: the netlink backend's address
caches start cold, as they do for a user.

Every measurement from empty starts in a new network namespace (enter_fresh_netns), so
the node's own table is never touched and no run inherits the kernel's leftovers of the
one before. Run it on a lab node: it loads the CPU for minutes. Progress goes to
stderr, the result to stdout.

The controller (ipvs_table_bench.py) imports this file for table_params(), so the module
run and the engine runs converge to exactly the same table.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

SCOPE = ['10.0.0.0/8']
SCHEDULER = 'rr'
SERVICE_PORT = 80
SERVER_PORT = 8080
REPLACED_SHARE = 0.01  # "1% of real servers replaced"
DRAIN_STATE = '/var/tmp/netlb-bench/drain-state.json'
BACKENDS = ('netlink', 'ipvsadm')
VARIANTS = ('full', 'noop', 'replaced')  # the order the engine runs them in, per backend
MODULE_VARIANTS = ('full', 'noop')
IPVSADM_TIMEOUT = 3600
NETNS = 'netlb-bench'  # where every measurement runs (see enter_fresh_netns)
CLONE_NEWNET = 0x40000000


# ---------------------------------------------------------------------------
# The table (pure; the controller uses these too)


def service_address(index):
    """VIPs 10.96.0.1, 10.96.0.2, ... inside SCOPE; 65,536 per /16."""
    number = index + 1
    return '10.%d.%d.%d' % (96 + number // 65536, number // 256 % 256, number % 256)


def server_address(index, replaced=False):
    """Pod-like real server addresses, all distinct, last octet 1-250; replacements come
    from another /16 so they can never collide with the originals."""
    return '172.%d.%d.%d' % ((30 if replaced else 16) + index // 64000, index // 250 % 256, index % 250 + 1)


def replaced_slots(services, servers):
    """{service index: server index} of the real servers the 'replaced' variant swaps:
    REPLACED_SHARE of all of them (at least one), spread evenly, one per service."""
    count = min(services, max(1, int(services * servers * REPLACED_SHARE)))
    return dict(((slot * services) // count, slot % servers) for slot in range(count))


def table_params(services, servers, variant='full'):
    """The `services` option of ipvs_virtual_server for a table of services x servers.

    variant 'replaced' swaps the real servers named by replaced_slots for new ones; any
    other variant is the base table.
    """
    swap = replaced_slots(services, servers) if variant == 'replaced' else {}
    result = []
    for i in range(services):
        real_servers = []
        for j in range(servers):
            address = server_address(i * servers + j, replaced=swap.get(i) == j)
            real_servers.append({'address': address, 'port': SERVER_PORT, 'weight': 1})
        result.append({'protocol': 'tcp', 'address': service_address(i), 'port': SERVICE_PORT,
                       'scheduler': SCHEDULER, 'real_servers': real_servers})
    return result


def restore_text(params):
    """The table as `ipvsadm -R` input, one rule a line (what a bare batch load gets)."""
    lines = []
    for service in params:
        vip = '%s:%d' % (service['address'], service['port'])
        lines.append('-A -t %s -s %s' % (vip, service['scheduler']))
        for rs in service['real_servers']:
            lines.append('-a -t %s -r %s:%d -m -w %d' % (vip, rs['address'], rs['port'], rs['weight']))
    return ''.join(line + '\n' for line in lines)


# ---------------------------------------------------------------------------
# Measurements


def log(text):
    sys.stderr.write('[node %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


def ipvsadm(args, data=None):
    """Run ipvsadm (argv list, C locale); returns seconds elapsed; raises on failure."""
    env = dict(os.environ, LANG='C', LC_ALL='C')
    start = time.perf_counter()
    proc = subprocess.run(['ipvsadm'] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=IPVSADM_TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError('ipvsadm %s: rc=%d %s' % (' '.join(args), proc.returncode, proc.stderr.strip()[:500]))
    return elapsed


def count_rules():
    """Services + real servers in the kernel table. From ipvsadm -S -n: /proc/net/ip_vs
    lists only part of a big table in a namespace other than the initial one (6.1)."""
    env = dict(os.environ, LANG='C', LC_ALL='C')
    out = subprocess.run(['ipvsadm', '-S', '-n'], stdout=subprocess.PIPE, universal_newlines=True, env=env,
                         timeout=IPVSADM_TIMEOUT, check=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith(('-A', '-a')))


def flush():
    """Start from an empty table: a new network namespace (see enter_fresh_netns)."""
    enter_fresh_netns()
    try:
        os.unlink(DRAIN_STATE)
    except FileNotFoundError:
        pass


def write_netns_python():
    """A python3 that runs in NETNS, beside this script: Ansible's interpreter for the
    module runs (it must be one path, so `ip netns exec` goes in a wrapper)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'python3-in-netns')
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\nexec ip netns exec %s /usr/bin/python3 "$@"\n' % NETNS)
    os.chmod(path, 0o755)
    return path


def enter_fresh_netns(name=NETNS):
    """Move this process (and so every child: ipvsadm, engine and module processes) into
    a new network namespace, dropping the previous one.

    IPVS state is per namespace, and a new one has an empty table and an empty dest
    trash. After a flush the kernel keeps deleted real servers in that trash for up to
    ~3 minutes and every add walks it, which made loads "from empty" 1-3x slower
    depending on what ran before them; a fresh namespace makes runs comparable.
    """
    import ctypes

    if os.path.exists(os.path.join('/run/netns', name)):
        subprocess.run(['ip', 'netns', 'exec', name, 'ipvsadm', '-C'], check=False)
        subprocess.run(['ip', 'netns', 'delete', name], check=True)
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    # Real servers cannot be added while loopback is down in the namespace.
    subprocess.run(['ip', '-n', name, 'link', 'set', 'lo', 'up'], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    with open(os.path.join('/run/netns', name)) as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), 'setns into %s failed' % name)


def bare_restore(script, rules):
    flush()
    elapsed = ipvsadm(['-R'], data=script)
    loaded = count_rules()
    if loaded != rules:
        raise RuntimeError('ipvsadm -R loaded %d rules, expected %d' % (loaded, rules))
    return elapsed


def per_rule_sample(script, sample):
    """Seconds per rule for one ipvsadm process per rule, over the first `sample` rules."""
    flush()
    lines = script.splitlines()[:sample]
    start = time.perf_counter()
    for line in lines:
        ipvsadm(line.split())
    return (time.perf_counter() - start) / len(lines), len(lines)


def _process(argv, what):
    """The JSON answer of one process of this script, plus its wall time (process_wall)."""
    argv = [sys.executable, os.path.abspath(__file__)] + [str(arg) for arg in argv]
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=IPVSADM_TIMEOUT, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError('%s failed (rc=%d): %s' % (what, proc.returncode, proc.stderr[-2000:]))
    result = json.loads(proc.stdout)
    result['process_wall'] = round(wall, 6)
    return result


def table_file(services, servers, variant):
    """The `services` option of a table as a JSON file (written once per size and
    variant): an engine process reads it as a module reads its arguments."""
    path = os.path.join(os.path.dirname(DRAIN_STATE), 'table-%dx%d-%s.json' % (services, servers, variant))
    if not os.path.exists(path):
        with open(path, 'w') as handle:
            json.dump(table_params(services, servers, variant), handle)
    return path


def engine_run(collections, services, servers, backend, variant):
    """One engine process (see `engine`): its whole wall time is what the goals compare
    with an ipvsadm process (Python's start, imports, the table read, validation, engine)."""
    return _process(['engine', '--collections', collections, '--services', services, '--servers', servers,
                     '--backend', backend, '--variant', variant, '--table', table_file(services, servers, variant)],
                    'engine %s %s' % (backend, variant))


def module_run(collections, ansible_lib, services, servers, variant):
    """One module process (see `module`); returns its spans plus its wall time."""
    return _process(['module', '--collections', collections, '--ansible-lib', ansible_lib, '--services', services,
                     '--servers', servers, '--variant', variant], 'module %s' % variant)


def median_run(runs, field='total'):
    """The run whose `field` is the median (the lower middle one for an even count), so
    its parts (read, plan, apply...) stay consistent with each other."""
    ordered = sorted(runs, key=lambda run: run['timings'][field])
    return ordered[(len(ordered) - 1) // 2]


def measure(collections, services, servers, repeat, sample, ansible_lib=None):
    params = table_params(services, servers)
    script = restore_text(params)
    rules = services * (servers + 1)
    raw = {'restore': [], 'save': [], 'per_rule': [], 'engine': dict((b, dict((v, []) for v in VARIANTS))
                                                                      for b in BACKENDS),
           'module': dict((v, []) for v in MODULE_VARIANTS)}
    for round_no in range(1, repeat + 1):
        log('%d x %d, round %d/%d: ipvsadm -R' % (services, servers, round_no, repeat))
        raw['restore'].append(bare_restore(script, rules))
        log('ipvsadm -S -n')
        raw['save'].append(ipvsadm(['-S', '-n']))
        for backend in BACKENDS:
            flush()
            for variant in VARIANTS:
                log('engine %s %s' % (backend, variant))
                run = engine_run(collections, services, servers, backend, variant)
                raw['engine'][backend][variant].append(run)
        if ansible_lib:
            flush()
            for variant in MODULE_VARIANTS:
                log('module process %s' % variant)
                raw['module'][variant].append(module_run(collections, ansible_lib, services, servers, variant))
        log('one ipvsadm process per rule, %d-rule sample' % sample)
        raw['per_rule'].append(per_rule_sample(script, sample)[0])
        flush()
    engine = {}
    for backend in BACKENDS:
        engine[backend] = dict((variant, median_run(raw['engine'][backend][variant])) for variant in VARIANTS)
    per_rule = statistics.median(raw['per_rule'])
    module = None
    if ansible_lib:
        module = dict((variant, median_run(raw['module'][variant])) for variant in MODULE_VARIANTS)
    return {
        'services': services, 'servers': servers, 'rules': rules, 'repeat': repeat,
        'restore': statistics.median(raw['restore']),
        'save': statistics.median(raw['save']),
        'per_rule': {'sample': min(sample, rules), 'seconds_per_rule': per_rule, 'extrapolated': per_rule * rules},
        'engine': engine,
        'module_process': module,
        'replaced': len(replaced_slots(services, servers)),
        'raw': {'restore': raw['restore'], 'save': raw['save'], 'per_rule': raw['per_rule'],
                'engine_process_wall': dict((b, dict((v, [r['process_wall'] for r in raw['engine'][b][v]])
                                                     for v in VARIANTS)) for b in BACKENDS),
                'engine_total': dict((b, dict((v, [r['timings']['total'] for r in raw['engine'][b][v]])
                                              for v in VARIANTS)) for b in BACKENDS)},
    }


# ---------------------------------------------------------------------------
# One engine run (its own process, like one module run)


class LocalModule(object):
    """The two AnsibleModule methods _command.Runner calls, done with subprocess."""

    def get_bin_path(self, name, opt_dirs=()):
        return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', '')] + list(opt_dirs)))

    def run_command(self, argv, check_rc=False, data=None, environ_update=None, **_kw):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def engine(collections, services, servers, backend_name, variant, table=None):
    """Read the table (JSON file, else generated), validate the parameters, then
    reconcile, as ipvs_virtual_server does; returns the engine's timings plus the
    validation time (not part of the engine's total)."""
    if table:
        with open(table) as handle:
            services_param = json.load(handle)
    else:
        services_param = table_params(services, servers, variant)
    sys.path.insert(0, collections)
    from ansible_collections.netlb.ipvs.plugins.module_utils import _command, _gc
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine as ipvs_engine
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import get_backend
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore

    params = {'services': services_param, 'scope': SCOPE, 'state': 'present',
              'exclusive': True, 'allow_empty': False, 'drain_timeout': 0}
    start = time.perf_counter()
    request = validation.parse_request(params)
    validate = time.perf_counter() - start
    backend = get_backend(backend_name, runner=_command.Runner(LocalModule()))
    options = ipvs_engine.ReconcileOptions(exclusive=request.exclusive, allow_empty=request.allow_empty)
    with _gc.tuned():  # what ipvs_virtual_server's main() holds (the engine itself never does)
        result = ipvs_engine.reconcile(backend, request.services, request.scope, options,
                                       drain_store=DrainStore(DRAIN_STATE))
    counts = {}
    for action in result.actions:
        counts[action.op] = counts.get(action.op, 0) + 1
    return {'backend': backend.name, 'variant': variant, 'changed': result.changed, 'actions': counts,
            'warnings': result.warnings, 'validate': round(validate, 6), 'timings': result.timings}


# ---------------------------------------------------------------------------
# One module run on the node, without the controller


class _Spans(object):
    """Wraps functions so that their seconds land in self.timings[name]."""

    def __init__(self):
        self.timings = {}

    def wrap(self, owner, attribute, name):
        original = getattr(owner, attribute)
        spans = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:  # exit_json leaves through SystemExit
                spans.timings[name] = round(spans.timings.get(name, 0) + time.perf_counter() - start, 6)
        setattr(owner, attribute, timed)


def module(collections, ansible_lib, services, servers, variant):
    """ipvs_virtual_server as Ansible runs it on a target (AnsiballZ hands the module its
    arguments the same way), timed by part: arguments (AnsibleModule: JSON decoding and
    the argument spec), validate (parse_request), engine (reconcile; its own timings
    too), exit_json (the result through Ansible's checks and JSON). Nothing of the
    controller, ssh or AnsiballZ packing is in here: the controller times that."""
    arguments = {'services': table_params(services, servers, variant), 'scope': SCOPE, 'backend': 'netlink',
                 'drain_state_path': DRAIN_STATE, '_ansible_check_mode': False, '_ansible_diff': False}
    arguments = json.dumps({'ANSIBLE_MODULE_ARGS': arguments}).encode()
    start = time.perf_counter()
    sys.path[:0] = [ansible_lib, collections]
    from ansible.module_utils import basic
    from ansible_collections.netlb.ipvs.plugins.modules import ipvs_virtual_server as ipvs_module

    spans = _Spans()
    spans.timings['imports'] = round(time.perf_counter() - start, 6)
    spans.wrap(basic.AnsibleModule, '__init__', 'arguments')
    spans.wrap(ipvs_module.validation, 'parse_request', 'validate')
    spans.wrap(ipvs_module.engine, 'reconcile', 'engine')
    spans.wrap(basic.AnsibleModule, 'exit_json', 'exit_json')
    engine_timings = {}
    reconcile = ipvs_module.engine.reconcile

    def keep_timings(*args, **kwargs):
        result = reconcile(*args, **kwargs)
        engine_timings.update(result.timings)
        return result
    ipvs_module.engine.reconcile = keep_timings
    basic._ANSIBLE_ARGS = arguments
    basic._ANSIBLE_PROFILE = 'legacy'  # what AnsiballZ sets for a module that names none
    captured, real_stdout = io.StringIO(), sys.stdout
    sys.stdout = captured
    try:
        ipvs_module.main()
    except SystemExit:
        pass
    finally:
        sys.stdout = real_stdout
    answer = json.loads(captured.getvalue())
    if answer.get('failed'):
        raise RuntimeError('module failed: %s' % answer.get('msg'))
    spans.timings['total'] = round(time.perf_counter() - start, 6)
    return {'variant': variant, 'changed': answer['changed'], 'actions': len(answer['actions']),
            'result_bytes': len(captured.getvalue()), 'timings': spans.timings, 'engine': engine_timings}


def facts():
    """What the node is: vCPUs, kernel, virtualisation, load, Python, ipvsadm."""
    virt = subprocess.run(['systemd-detect-virt'], stdout=subprocess.PIPE, universal_newlines=True,
                          check=False).stdout.strip()
    with open('/proc/meminfo') as f:
        memory_kb = int(f.readline().split()[1])
    try:
        version = subprocess.run(['ipvsadm', '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True, check=False).stdout.strip()
    except OSError:
        version = 'not installed'
    return {'cpus': os.cpu_count(), 'kernel': platform.release(), 'virt': virt, 'loadavg': os.getloadavg(),
            'memory_mib': memory_kb // 1024, 'python': platform.python_version(), 'ipvsadm': version,
            'os': _os_name()}


def _os_name():
    try:
        with open('/etc/os-release') as f:
            for line in f:
                if line.startswith('PRETTY_NAME='):
                    return line.split('=', 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('measure', 'engine', 'module'):
        p = sub.add_parser(name)
        p.add_argument('--collections', required=True, help='directory holding ansible_collections/')
        p.add_argument('--services', type=int, required=True)
        p.add_argument('--servers', type=int, required=True)
        if name != 'engine':
            p.add_argument('--ansible-lib', required=name == 'module',
                           help='directory holding ansible/module_utils (the module run; measure skips it without)')
        if name == 'measure':
            p.add_argument('--repeat', type=int, default=1)
            p.add_argument('--sample', type=int, default=300)
        elif name == 'engine':
            p.add_argument('--backend', choices=BACKENDS, required=True)
            p.add_argument('--variant', choices=VARIANTS, required=True)
            p.add_argument('--table', help='the table as a JSON file (table_file); generated without')
        else:
            p.add_argument('--variant', choices=MODULE_VARIANTS, required=True)
    sub.add_parser('facts')
    sub.add_parser('netns', help='(re)create the namespace %s, empty, for the module runs' % NETNS)
    args = parser.parse_args(argv)
    if args.command == 'facts':
        answer = facts()
    elif args.command == 'netns':
        enter_fresh_netns()
        answer = {'netns': NETNS, 'interpreter': write_netns_python()}
    elif args.command == 'engine':
        answer = engine(args.collections, args.services, args.servers, args.backend, args.variant, args.table)
    elif args.command == 'module':
        answer = module(args.collections, args.ansible_lib, args.services, args.servers, args.variant)
    else:
        answer = measure(args.collections, args.services, args.servers, args.repeat, args.sample,
                         args.ansible_lib)
    json.dump(answer, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
