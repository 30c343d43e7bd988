#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""k8s_service_proxy end to end: a cluster's Services from the API to a node's IPVS table.

Run from the repository root (.venv/bin/python bench/k8s_proxy_bench.py --help):

1. boot a lab node of its own (lab/netlb-lab, run dir lab/run/k8s-bench), or reuse a
   running one (--reuse), and prepare it with site.yml (the ipvs_node role: ipvsadm,
   nftables, conntrack, python3-kubernetes) or apt-get;
2. start the repository's stand-in Kubernetes API server (tests/kube_api) on this
   machine's loopback, which the node reaches as 10.0.2.2, and load a generated cluster
   into it: --services Services x --endpoints-per-service endpoints, either the mix of
   bench/k8s_translate_bench.py (--shape mixed: 20% NodePort, 40% with a second port,
   1-2 slices each, a few terminating and not-ready pods) or ClusterIP only
   (--shape clusterip: tests/kube_api/objects.cluster);
3. per size and round, in a new network namespace on the node (empty IPVS table; a veth
   to the node, masqueraded, reaches the API): time `ansible-playbook
   bench/k8s_proxy_run.yml` (one k8s_service_proxy task, source api) end to end for the
   first load and then for a converged run; then, on the node, bare `ipvsadm -S -n` of
   the table the module made and bare `ipvsadm -R` of that text into a fresh namespace;
   also `ansible.builtin.ping` through the same interpreter (Ansible's own cost);
4. print a markdown table: medians, the module's own `timings`, the ratios against the
   goals (first load <= 0.5x `ipvsadm -R`, converged <= 1.5x `ipvsadm -S -n`) and
   kube-proxy's 15 s per sync at 2,500 Services (kubernetes#93445).

Helpers (lab, ssh, ansible-playbook, the goals' cells) come from _common.py, prepare and
ship from ipvs_table_bench.py. Stdlib only, besides ansible-playbook.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(REPO, 'tests')]

import ipvs_table_bench as tb  # noqa: E402
from _common import (  # noqa: E402
    Lab,
    add_lab_arguments,
    goal_cell,
    log,
    machine_lines,
    round_ratios,
    seconds,
    shown_cell,
    timed_playbook,
)
import k8s_proxy_node  # noqa: E402  (calibrate() runs here as on the node)
import k8s_translate_bench  # noqa: E402
from kube_api import objects  # noqa: E402
from kube_api.server import VM_HOST, KubeApiServer  # noqa: E402

PLAYBOOK = os.path.join(HERE, 'k8s_proxy_run.yml')
NODE_SCRIPT = os.path.join(HERE, 'k8s_proxy_node.py')
REMOTE = tb.REMOTE
REMOTE_SCRIPT = REMOTE + '/k8s_proxy_node.py'
KUBECONFIG = REMOTE + '/kubeconfig'
STATE = REMOTE + '/k8s-proxy-state.json'
DRAIN_STATE = REMOTE + '/k8s-drain-state.json'
NODE_NAME = 'node-7'  # one of the generator's nodes: externalTrafficPolicy Local finds endpoints
NODE_ZONE = 'zone-b'
PACKAGES = ('ipvsadm', 'nftables', 'conntrack', 'python3-kubernetes', 'python3-yaml')

GOAL_FIRST = 0.5  # first load / ipvsadm -R, at GOAL_AT Services
GOAL_CONVERGED = 1.5  # converged run / ipvsadm -S -n, at GOAL_AT Services
GOAL_AT = 5000
KUBE_PROXY_SECONDS = 15.0  # kube-proxy's IPVS sync at 2,500 Services (kubernetes#93445): "over 15 s"
KUBE_PROXY_AT = 2500

# The module's `timings`, in the order a run spends them (proxy.sync's steps).
TIMING_PARTS = (
    ('read_cluster', 'list Services and EndpointSlices (at once), get the Node; JSON'),
    ('node', 'kube-proxy check, node addresses'),
    ('translate', 'Services to the IPVS table'),
    ('rules_check', 'render the nft rules, read the table, `nft -c` unless it holds them'),
    ('ipvs_read', 'read the IPVS table (netlink)'),
    ('ipvs_plan', 'plan'),
    ('ipvs_apply', 'apply'),
    ('dummy', 'dummy interface addresses'),
    ('rules_apply', 'nft table replaced'),
    ('udp_flows', 'conntrack of UDP real servers gone'),
    ('diff', 'before/after texts (only with --diff since this change)'),
)


def generate(shape, services, per_service, seed):
    """(Services, EndpointSlices, Node) for the stand-in server."""
    if shape == 'clusterip':
        namespaces = tuple('team-%02d' % i for i in range(40))
        svc, slices = objects.cluster(services, namespaces=namespaces, endpoints_per_service=per_service)
    else:
        svc, slices = k8s_translate_bench.generate(services, per_service, seed)
    return svc, slices, objects.node_object(NODE_NAME, zone=NODE_ZONE)


def node_script(*args):
    return ['python3', REMOTE_SCRIPT] + [str(arg) for arg in args]


def prepare(lab, node, how):
    if how == 'role':
        tb.prepare(lab, node, 'role')
    elif how == 'apt':
        log('preparing %s with apt-get' % node.name)
        node.run('apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -qy install %s && modprobe ip_vs'
                 % ' '.join(PACKAGES), capture=False)


def ship(node, server, workdir):
    """The collection and both node scripts to REMOTE, and a kubeconfig for 10.0.2.2."""
    tb.ship(node, None)
    with open(NODE_SCRIPT) as handle:
        node.run('cat > %s' % REMOTE_SCRIPT, data=handle.read())
    path = server.write_kubeconfig(os.path.join(workdir, 'kubeconfig'), host=VM_HOST)
    with open(path) as handle:
        node.run('umask 077 && cat > %s' % KUBECONFIG, data=handle.read())


def playbook(lab, node, vars_file, floor=False):
    """(seconds end to end, the report line) of one ansible-playbook run in the namespace."""
    argv = ['-i', lab.inventory, '-l', node.name, '-e', '@' + vars_file,
            '-e', 'bench_hosts=%s' % node.name, '-e', 'bench_floor=%s' % floor,
            '-e', 'ansible_python_interpreter=%s/python3-in-netns' % REMOTE, PLAYBOOK]
    wall, report, task = timed_playbook(argv)
    report['wall'] = round(wall, 6)
    report['task'] = task  # the module's (or ping's) task alone
    return report


def one_round(lab, node, server, vars_file, label):
    """First load from empty, converged run, Ansible alone, bare ipvsadm: one dict."""
    node.run(node_script('netns'))
    node.run(['rm', '-f', STATE, DRAIN_STATE])
    result = {}
    for variant in ('first', 'converged'):
        log('%s: module, %s run' % (label, variant))
        before = len(server.requests)
        report = playbook(lab, node, vars_file)
        report['requests'] = len(server.requests) - before
        actions = sum(report['summary'].get('actions', {}).values())
        if report['changed'] != (variant == 'first') or (variant == 'converged' and actions):
            raise SystemExit('module %s run: changed=%s with %d IPVS actions' % (variant, report['changed'], actions))
        result[variant] = report
    log('%s: Ansible alone (ping)' % label)
    result['floor'] = playbook(lab, node, vars_file, floor=True)
    log('%s: bare ipvsadm -S -n and -R of the module\'s table' % label)
    result['bare'] = node.json(node_script('bare', '--table', REMOTE + '/k8s-table.rules'))
    applied = sum(result['first']['summary']['actions'].values())
    if applied != result['bare']['rules']:
        raise SystemExit('the first load made %d IPVS actions, the table holds %d rules'
                         % (applied, result['bare']['rules']))
    return result


def measure(lab, node, server, args, services, workdir):
    log('%d Services x %d endpoints (%s): loading the stand-in API server' % (services, args.endpoints_per_service,
                                                                             args.shape))
    svc, slices, node_object = generate(args.shape, services, args.endpoints_per_service, args.seed)
    server.reset()
    server.copy_lists = False  # nothing changes the objects here: no deep copy per listing
    server.add(svc, slices, node_object)
    size = {'services': len(svc), 'slices': len(slices),
            'endpoints': sum(len(item['endpoints']) for item in slices),
            'api_bytes': len(json.dumps(svc)) + len(json.dumps(slices))}
    del svc, slices
    vars_file = os.path.join(workdir, 'vars-%d.json' % services)
    with open(vars_file, 'w') as handle:
        json.dump({'bench_kubeconfig': KUBECONFIG, 'bench_node_name': NODE_NAME, 'bench_state': STATE,
                   'bench_drain_state': DRAIN_STATE}, handle)
    rounds = []
    for round_no in range(1, args.repeat + 1):
        rounds.append(one_round(lab, node, server, vars_file, '%d Services, round %d/%d'
                                % (services, round_no, args.repeat)))
    return dict(size, shape=args.shape, per_service=args.endpoints_per_service, rounds=rounds)


# ---------------------------------------------------------------------------
# The table


def median(values):
    values = list(values)
    return statistics.median(values) if values else None


def median_report(rounds, variant):
    """The round's report with the median wall time (its timings stay consistent)."""
    ordered = sorted((r[variant] for r in rounds), key=lambda report: report['wall'])
    return ordered[(len(ordered) - 1) // 2]


def summarize(result):
    rounds = result['rounds']
    first, converged = median_report(rounds, 'first'), median_report(rounds, 'converged')
    return {
        'first': first, 'converged': converged,
        'floor': median(r['floor']['wall'] for r in rounds),
        'restore': median(r['bare']['restore'] for r in rounds),
        'save': median(r['bare']['save'] for r in rounds),
        'rules': rounds[0]['bare']['rules'], 'virtual_services': rounds[0]['bare']['virtual_services'],
    }


def timings_cell(result, name):
    """'first / converged' seconds of one part of the module's timings."""
    return ' / '.join(seconds(result['summary'][variant]['timings'].get(name))
                      for variant in ('first', 'converged'))


def module_total(report):
    """The module's own time: reading the cluster plus the whole sync."""
    return report['timings']['read_cluster'] + report['timings']['total']


def round_ratios_of(result, variant, bare, field='wall'):
    """The module's wall time (or task time) over the bare figure of the same round,
    each round (the goals are ratios within one run)."""
    rounds = result['rounds']
    return round_ratios([r[variant].get(field) for r in rounds], [r['bare'][bare] for r in rounds])


def module_goal(result, variant, bare, limit):
    return goal_cell(round_ratios_of(result, variant, bare), limit, judged=result['services'] >= GOAL_AT,
                     judged_at=GOAL_AT)


def kube_proxy_cell(result, variant):
    """kube-proxy's seconds over ours: end to end, and the module's own time."""
    if result['services'] != KUBE_PROXY_AT:
        return '-'
    report = result['summary'][variant]
    return '%.1fx end to end (%s s), %.1fx own time (%s s)' % (
        KUBE_PROXY_SECONDS / report['wall'], seconds(report['wall']),
        KUBE_PROXY_SECONDS / module_total(report), seconds(module_total(report)))


def rows_for(results):
    rows = []

    def row(label, fn):
        rows.append((label, [fn(r) for r in results]))

    def s(key):
        return lambda r: r['summary'][key]

    row('EndpointSlices / endpoints', lambda r: '{:,} / {:,}'.format(r['slices'], r['endpoints']))
    row('virtual services / rules (virtual services + real servers)',
        lambda r: '{:,} / {:,}'.format(s('virtual_services')(r), s('rules')(r)))
    row('API answers read (JSON, MB)', lambda r: '%.1f' % (r['api_bytes'] / 1048576.0))
    row('bare `ipvsadm -R` of the resulting table, from empty', lambda r: seconds(s('restore')(r)))
    row('bare `ipvsadm -S -n` of it', lambda r: seconds(s('save')(r)))
    row('**module wall time, first load** (ansible-playbook end to end, empty IPVS table)',
        lambda r: seconds(r['summary']['first']['wall']))
    row('**module wall time, converged run** (no change)', lambda r: seconds(r['summary']['converged']['wall']))
    row('**module task time** (the task alone, as Ansible ran it: no ansible-playbook start), first load / '
        'converged', lambda r: ' / '.join(seconds(median(x[v].get('task') for x in r['rounds']
                                                            if x[v].get('task') is not None))
                                          for v in ('first', 'converged')))
    row('module\'s own time (`timings`: read_cluster + total), first load / converged',
        lambda r: ' / '.join(seconds(module_total(r['summary'][v])) for v in ('first', 'converged')))
    for name, what in TIMING_PARTS:
        row('&nbsp;&nbsp;`%s`: %s' % (name, what), lambda r, name=name: timings_cell(r, name))
    row('API requests per run', lambda r: str(r['summary']['converged']['requests']))
    row('Ansible alone: `ansible.builtin.ping` through the same interpreter', lambda r: seconds(s('floor')(r)))
    row('goal: first load (module wall time) / `ipvsadm -R` of the same round (<= %.1fx at %s)'
        % (GOAL_FIRST, '{:,}'.format(GOAL_AT)), lambda r: module_goal(r, 'first', 'restore', GOAL_FIRST))
    row('&nbsp;&nbsp;module task time (no ansible-playbook start) / `ipvsadm -R`',
        lambda r: shown_cell(round_ratios_of(r, 'first', 'restore', 'task')))
    row('goal: converged run (module wall time) / `ipvsadm -S -n` of the same round (<= %.1fx at %s)'
        % (GOAL_CONVERGED, '{:,}'.format(GOAL_AT)), lambda r: module_goal(r, 'converged', 'save', GOAL_CONVERGED))
    row('&nbsp;&nbsp;module task time (no ansible-playbook start) / `ipvsadm -S -n`',
        lambda r: shown_cell(round_ratios_of(r, 'converged', 'save', 'task')))
    row('the rounds: first load / `ipvsadm -R`; converged / `ipvsadm -S -n`', lambda r: '; '.join(
        '%.2fx / %.2fx' % (x['first']['wall'] / x['bare']['restore'], x['converged']['wall'] / x['bare']['save'])
        for x in r['rounds']))
    row('kube-proxy: over %.0f s per sync at %s Services (kubernetes#93445), against the module\'s first load'
        % (KUBE_PROXY_SECONDS, '{:,}'.format(KUBE_PROXY_AT)), lambda r: kube_proxy_cell(r, 'first'))
    row('kube-proxy against the module\'s converged run', lambda r: kube_proxy_cell(r, 'converged'))
    return rows


def markdown(results, host, facts, imports, repeat):
    sizes = ['%s x %d' % ('{:,}'.format(r['services']), r['per_service']) for r in results]
    lines = [
        'Seconds, median of %d round(s); cluster shape `%s`.' % (repeat, results[0]['shape']),
        '',
        '| measurement | %s |' % ' | '.join(sizes),
        '|---|%s' % ('---:|' * len(results)),
    ]
    for label, cells in rows_for(results):
        lines.append('| %s | %s |' % (label, ' | '.join(cells)))
    lines += [
        '',
        '`import kubernetes.client, kubernetes.config` in a new python3 on the node: %s s (median of 3).'
        % seconds(imports['import_kubernetes']),
    ]
    if 'calibrate_node' in imports:
        lines.append('Pure Python speed (JSON text of 100,000 small objects written and parsed): node %s s, '
                     'controller %s s: the node is %.0fx slower.' % (
                         seconds(imports['calibrate_node']), seconds(imports['calibrate_controller']),
                         imports['calibrate_node'] / imports['calibrate_controller']))
    lines += machine_lines(host, facts)
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--services', default='2500,5000',
                        help='comma-separated Service counts (default 2500,5000)')
    parser.add_argument('--endpoints-per-service', type=int, default=10, help='default 10')
    parser.add_argument('--shape', choices=('mixed', 'clusterip'), default='mixed',
                        help='the generated cluster: a realistic mix (default) or ClusterIP only')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3, help='rounds per size; medians are shown (default 3)')
    add_lab_arguments(parser, 'k8s-bench', 'kbench',
                      'how to install what the module needs: site.yml (default), apt-get, or nothing')
    parser.add_argument('--render', metavar='JSON', help='no lab: print the table of an earlier --json file')
    args = parser.parse_args(argv)
    args.services = [int(size) for size in re.split(r'[,\s]+', args.services.strip()) if size]
    if args.repeat < 1 or not args.services:
        parser.error('--repeat and --services need positive values')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        with open(args.render) as handle:
            run = json.load(handle)
        sys.stdout.write(markdown(run['results'], run['host'], run['node'], run['imports'], run['median_of']))
        return 0
    host = {'cpus': os.cpu_count(), 'loadavg': os.getloadavg(), 'started': time.strftime('%Y-%m-%d %H:%M %Z')}
    log('controller load average %s' % ' / '.join('%.2f' % x for x in host['loadavg']))
    workdir = tempfile.mkdtemp(prefix='netlb-k8s-bench-')
    lab = Lab(args.run_dir, args.prefix)
    server = None
    if not args.reuse:
        lab.up(args.suite)
    try:
        node = lab.node()
        prepare(lab, node, args.prepare)
        server = KubeApiServer(os.path.join(workdir, 'api'))
        ship(node, server, workdir)
        facts = node.json(tb.node_script('facts'))
        imports = node.json(node_script('imports'))
        imports['calibrate_node'] = node.json(node_script('calibrate'))['calibrate']
        imports['calibrate_controller'] = k8s_proxy_node.calibrate()['calibrate']
        results = []
        for services in args.services:
            result = measure(lab, node, server, args, services, workdir)
            result['summary'] = summarize(result)
            results.append(result)
        node.run(node_script('cleanup'))
        table = markdown(results, host, facts, imports, args.repeat)
        sys.stdout.write(table)
        if args.markdown:
            with open(args.markdown, 'w') as handle:
                handle.write(table)
        if args.json:
            with open(args.json, 'w') as handle:
                json.dump({'host': host, 'node': facts, 'imports': imports, 'results': results,
                           'median_of': args.repeat}, handle, indent=1)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if not (args.reuse or args.keep):
            log('tearing the lab down')
            lab.down()
    return 0


if __name__ == '__main__':
    sys.exit(main())
