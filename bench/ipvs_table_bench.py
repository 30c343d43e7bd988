#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""IPVS table benchmark: the engine and ipvs_virtual_server against bare ipvsadm.

Run from the repository root (`make bench`, or bench/ipvs_table_bench.py --help):

1. boot a lab node of its own (lab/netlb-lab, run dir lab/run/bench), or reuse a
   running one (--reuse);
2. prepare it: site.yml (the ipvs_node role: ipvsadm, ip_vs) or plain apt-get;
3. ship the collection and ipvs_node_bench.py, which measures on the node, per size:
   bare `ipvsadm -R` and `ipvsadm -S -n`, the engine with both backends (full apply
   from empty, no-op, 1% of real servers replaced), one ipvsadm process per rule on a
   sample (extrapolated);
4. time `ansible-playbook bench/module_run.yml` (one ipvs_virtual_server task with the
   whole table) end to end from here: full apply from empty, then the no-op run;
5. print one markdown table with every figure and the ratios against the goals, and
   tear the lab down (unless --reuse or --keep).

Every load from empty runs in a new network namespace on the node (netlb-bench), so
the node's own IPVS table is left alone; still, use a lab node, not one that carries
traffic: the runs load the CPU for minutes. Stdlib only, besides ansible-playbook for steps 2 and 4.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

from _common import (
    HERE,
    REPO,
    Lab,
    add_lab_arguments,
    ansible_env,
    ansible_playbook,
    goal_cell,
    log,
    machine_lines,
    round_ratios,
    seconds,
    shown_cell,
    timed_playbook,
)

COLLECTIONS = os.path.join(REPO, 'collections')
PLAYBOOK = os.path.join(HERE, 'module_run.yml')
FLOOR_PLAYBOOK = os.path.join(HERE, 'ansible_floor.yml')
REMOTE = '/var/tmp/netlb-bench'
MODULE_DRAIN_STATE = REMOTE + '/module-drain-state.json'

# The goals (from the performance issue): ratio limits, and the size a goal is judged at
# (None: every size).
GOAL_FULL_ENGINE = 0.25
GOAL_FULL_MODULE = 1.0  # default options, the table as a list
GOAL_FULL_MODULE_TEXT = 0.5  # default options, the table as JSON text
GOAL_FULL_MODULE_AT = 5000
GOAL_NOOP = 1.0
GOAL_REPLACED = 1.2


def _node_bench():
    """ipvs_node_bench.py as a module: the table generator is shared with the node."""
    spec = importlib.util.spec_from_file_location('ipvs_node_bench', os.path.join(HERE, 'ipvs_node_bench.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NODE = _node_bench()


def prepare(lab, node, how):
    """ipvsadm installed and ip_vs loaded: through the project's role, or apt-get."""
    if how == 'role':
        log('preparing %s with site.yml (ipvs_node role)' % node.name)
        subprocess.run([ansible_playbook(), '-i', lab.inventory, '-l', node.name, os.path.join(REPO, 'site.yml')],
                       cwd=REPO, env=ansible_env(), check=True, stdout=sys.stderr)
    else:
        log('preparing %s with apt-get' % node.name)
        node.run('command -v ipvsadm >/dev/null || (apt-get -q update && '
                 'DEBIAN_FRONTEND=noninteractive apt-get -qy install ipvsadm)', capture=False)
        node.run('modprobe ip_vs')
    node.run('modprobe ip_vs && command -v ipvsadm >/dev/null')


def module_utils_dir():
    """ansible/module_utils of the ansible-core this controller runs, or None."""
    try:
        import ansible.module_utils
    except ImportError:
        return None
    return os.path.dirname(os.path.abspath(ansible.module_utils.__file__))


def _no_cache(info):
    return None if ('__pycache__' in info.name or '/tests' in info.name) else info


def collection_tarball(module_utils):
    """The collection (without tests), the node script and, for the module run on the
    node, Ansible's module_utils under an empty ansible/ package (what AnsiballZ ships):
    base64 of a tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        tar.add(os.path.join(COLLECTIONS, 'ansible_collections'), arcname='collections/ansible_collections',
                filter=_no_cache)
        tar.add(os.path.join(HERE, 'ipvs_node_bench.py'), arcname='ipvs_node_bench.py')
        if module_utils:
            empty = tarfile.TarInfo('ansible_lib/ansible/__init__.py')
            tar.addfile(empty, io.BytesIO(b''))
            tar.add(module_utils, arcname='ansible_lib/ansible/module_utils', filter=_no_cache)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def ship(node, module_utils):
    node.run('rm -rf {0} && mkdir -p {0} && base64 -d | tar -xz -C {0}'.format(REMOTE),
             data=collection_tarball(module_utils))


def node_script(*args):
    return ['python3', REMOTE + '/ipvs_node_bench.py'] + [str(arg) for arg in args]


# ---------------------------------------------------------------------------
# Module wall time (ansible-playbook from here)


# How the module runs are made: (name suffix, how the table is handed over). Every other
# option is left at its default: the goal is a fast run for a user who sets none.
MODULE_SETTINGS = (('', 'list'), ('-text', 'text'))


def module_run(lab, node, vars_file, table_as='list', playbook=PLAYBOOK):
    """(seconds end to end, what the module reported) for one ansible-playbook run; the
    report's 'task' is the seconds of the playbook's first task (the module's), as
    Ansible ran it: without ansible-playbook's own start and the reporting task."""
    argv = ['-i', lab.inventory, '-l', node.name, '-e', '@' + vars_file,
            '-e', 'bench_table_as=%s' % table_as,
            '-e', 'bench_hosts=%s' % node.name,
            # The module runs inside the benchmark's namespace (fresh for each full load),
            # through the wrapper `ipvs_node_bench.py netns` writes.
            '-e', 'ansible_python_interpreter=%s/python3-in-netns' % REMOTE, playbook]
    wall, report, report_task = timed_playbook(argv)
    report['task'] = report_task
    return wall, report


def module_runs(lab, node, services, servers, repeat):
    """Median wall times of full apply from empty and of the no-op run, with each of
    MODULE_SETTINGS, and of the counting module (Ansible alone) with the table as a list
    and as text."""
    # The table goes in a file of its own that the task reads with a lookup: as a list
    # (| from_json) or as JSON text, the two ways docs/performance.md compares. Given with
    # -e @file (or group_vars), ansible-core takes several times longer to load it.
    with tempfile.NamedTemporaryFile('w', suffix='.json', prefix='netlb-bench-table-', delete=False) as f:
        json.dump(NODE.table_params(services, servers), f)
        table_file = f.name
    with tempfile.NamedTemporaryFile('w', suffix='.json', prefix='netlb-bench-vars-', delete=False) as f:
        json.dump({'bench_table_file': table_file, 'bench_scope': NODE.SCOPE,
                   'bench_drain_state': MODULE_DRAIN_STATE}, f)
        vars_file = f.name
    runs = dict((variant + settings[0], []) for settings in MODULE_SETTINGS for variant in ('full', 'noop', 'floor'))
    try:
        for round_no in range(1, repeat + 1):
            for suffix, table_as in MODULE_SETTINGS:
                node.run('%s && rm -f %s' % (' '.join(node_script('netns')), MODULE_DRAIN_STATE))
                for variant in ('full', 'noop'):
                    log('%d x %d, round %d/%d: module %s, table as %s, default options'
                        % (services, servers, round_no, repeat, variant, table_as))
                    wall, report = module_run(lab, node, vars_file, table_as)
                    expect = variant == 'full'
                    if report['changed'] != expect or report['actions'] != (services * (servers + 1) if expect else 0):
                        raise SystemExit('module %s run: changed=%s after %s actions, expected %s'
                                         % (variant, report['changed'], report['actions'], expect))
                    report['wall'] = round(wall, 6)
                    runs[variant + suffix].append(report)
                log('%d x %d, round %d/%d: Ansible alone (a module that only counts the table), table as %s'
                    % (services, servers, round_no, repeat, table_as))
                wall, report = module_run(lab, node, vars_file, table_as, playbook=FLOOR_PLAYBOOK)
                if report.get('count') != services:
                    raise SystemExit('the counting module saw %r services, expected %d'
                                     % (report.get('count'), services))
                runs['floor' + suffix].append(dict(report, wall=round(wall, 6)))
        node.run('ip netns delete %s' % NODE.NETNS)
    finally:
        os.unlink(vars_file)
        os.unlink(table_file)
    # The run of median wall time, with the median of the task times (each its own
    # median), and every round's wall and task time (the goals are judged per round).
    return dict((variant, dict(sorted(found, key=lambda r: r['wall'])[(len(found) - 1) // 2],
                               task=statistics.median(r['task'] for r in found),
                               rounds_wall=[r['wall'] for r in found], rounds_task=[r['task'] for r in found]))
                for variant, found in runs.items())


# ---------------------------------------------------------------------------
# The table


def breakdown(timings):
    names = ('read', 'plan', 'apply', 'settle', 'confirm')
    parts = [seconds(timings.get(name)) if name in timings else '-' for name in names]
    return '%s (%s)' % (seconds(timings['total']), ' / '.join(parts))


def rows_for(results):
    """(label, [cell per size]) rows; one place says what each row means."""
    rows = []

    def row(label, fn):
        rows.append((label, [fn(r) for r in results]))

    def engine(backend, variant):
        return lambda r: breakdown(r['engine'][backend][variant]['timings'])

    def module(variant, field):
        def cell(r):
            found = r.get('module')
            if not found or variant not in found:
                return 'not run'
            if field in ('wall', 'task'):
                return seconds(found[variant].get(field))
            return breakdown(found[variant]['timings'])
        return cell

    row('rules (services + real servers)', lambda r: '{:,}'.format(r['rules']))
    row('bare `ipvsadm -R`, full load from empty', lambda r: seconds(r['restore']))
    row('bare `ipvsadm -S -n`', lambda r: seconds(r['save']))
    row('one ipvsadm process per rule, **extrapolated** from a %d-rule sample' % results[0]['per_rule']['sample'],
        lambda r: seconds(r['per_rule']['extrapolated']))
    for backend in NODE.BACKENDS:
        row('engine `%s`, full apply from empty: total (read / plan / apply / settle / confirm)' % backend,
            engine(backend, 'full'))
        row('engine `%s`, no-op run' % backend, engine(backend, 'noop'))
        row('engine `%s`, 1%% of real servers replaced' % backend, engine(backend, 'replaced'))
    row('parameter validation (module and engine run it, outside the engine total)',
        lambda r: seconds(r['engine']['netlink']['full']['validate']))
    row('engine `netlink` as a whole process (start-up, imports, the table read, validation, engine): '
        'full apply / no-op', lambda r: ' / '.join(seconds(r['engine']['netlink'][v].get('process_wall'))
                                                     for v in ('full', 'noop')))
    def on_node(variant):
        def cell(r):
            found = r.get('module_process')
            if not found:
                return 'not run'
            spans = found[variant]['timings']
            return '%s (%s)' % (seconds(spans['total']), ' / '.join(
                seconds(spans.get(name)) for name in ('imports', 'arguments', 'validate', 'engine', 'exit_json')))
        return cell

    row('module process on the node, full apply: total (imports / AnsibleModule arguments / validate / '
        'engine / exit_json)', on_node('full'))
    row('module process on the node, no-op run', on_node('noop'))
    row('**module wall time** (ansible-playbook end to end), default options, table as a list, '
        'full apply from empty', module('full', 'wall'))
    row('**module wall time**, default options, table as a list, no-op run', module('noop', 'wall'))
    row('**module wall time**, default options, table as JSON text, full apply from empty',
        module('full-text', 'wall'))
    row('**module wall time**, default options, table as JSON text, no-op run', module('noop-text', 'wall'))
    for variant, label in (('full', 'table as a list, full apply from empty'),
                           ('full-text', 'table as JSON text, full apply from empty')):
        row('**module task time** (the task alone, as Ansible ran it: no ansible-playbook start), %s' % label,
            module(variant, 'task'))
    row('Ansible alone: the same table, as a list, handed to a module that only counts it (floor of any module '
        'taking it so)', module('floor', 'wall'))
    row('Ansible alone: the same table as JSON text', module('floor-text', 'wall'))
    row('Ansible alone, task time: as a list / as JSON text',
        lambda r: '%s / %s' % (module('floor', 'task')(r), module('floor-text', 'task')(r)))
    row('module\'s own `timings`, full apply from empty', module('full', 'timings'))
    row('module\'s own `timings`, no-op run', module('noop', 'timings'))

    # The goals: per round, whole process against whole process (_common). The engine's
    # process is `ipvs_node_bench.py engine`: Python's start, the imports, reading the
    # table (JSON, as a module reads its arguments), validation and the engine.
    def rounds(r, field):
        return r.get('raw', {}).get(field)

    def engine_rounds(r, variant):
        found = rounds(r, 'engine_process_wall')
        return found['netlink'][variant] if found else None

    def against(numerators, field):
        def cell_ratios(r):
            tops, bottoms = numerators(r), rounds(r, field)
            return round_ratios(tops, bottoms) if tops and bottoms else []
        return cell_ratios

    def engine_goal(variant, bare, limit):
        return lambda r: goal_cell(against(lambda x: engine_rounds(x, variant), bare)(r), limit)

    def engine_in_process(variant, bare):
        return lambda r: shown_cell(against(
            lambda x: rounds(x, 'engine_total')['netlink'][variant] if rounds(x, 'engine_total') else None, bare)(r))

    def module_goal(variant, limit, field):
        def cell(r):
            if not r.get('module') or variant not in r['module']:
                return 'not run'
            ratios = against(lambda x: x['module'][variant].get(field), 'restore')(r)
            if field == 'rounds_task':
                return shown_cell(ratios)
            return goal_cell(ratios, limit, judged=r['services'] >= GOAL_FULL_MODULE_AT,
                             judged_at=GOAL_FULL_MODULE_AT)
        return cell

    def replaced(r):
        totals = rounds(r, 'engine_total')
        if not totals:
            return 'n/a'
        return goal_cell(round_ratios(totals['netlink']['replaced'], totals['netlink']['noop']), GOAL_REPLACED)

    row('goal: full apply, engine `netlink` process / `ipvsadm -R` process, per round (<= %.2fx)'
        % GOAL_FULL_ENGINE, engine_goal('full', 'restore', GOAL_FULL_ENGINE))
    row('&nbsp;&nbsp;engine total alone (in-process, no start-up, imports or validation) / `ipvsadm -R`',
        engine_in_process('full', 'restore'))
    for variant, settings, goal in (('full', 'default options, a list', GOAL_FULL_MODULE),
                                    ('full-text', 'default options, JSON text', GOAL_FULL_MODULE_TEXT)):
        row('goal: full apply, module wall time (%s) / `ipvsadm -R`, per round (<= %.1fx at %s)'
            % (settings, goal, '{:,}'.format(GOAL_FULL_MODULE_AT)), module_goal(variant, goal, 'rounds_wall'))
        row('&nbsp;&nbsp;module task time (no ansible-playbook start) / `ipvsadm -R`',
            module_goal(variant, goal, 'rounds_task'))
    row('goal: no-op, engine `netlink` process / `ipvsadm -S -n` process, per round (<= %.1fx)' % GOAL_NOOP,
        engine_goal('noop', 'save', GOAL_NOOP))
    row('&nbsp;&nbsp;engine total alone (in-process: read + plan) / `ipvsadm -S -n`', engine_in_process('noop', 'save'))
    row('goal: 1%% replaced, engine `netlink` total / its no-op total, per round (<= %.1fx)' % GOAL_REPLACED,
        replaced)
    row('for comparison: one process per rule / `ipvsadm -R`',
        lambda r: '%.0fx' % (r['per_rule']['extrapolated'] / r['restore']))
    return rows


def markdown(results, host, facts, repeat):
    sizes = ['%s x %d' % ('{:,}'.format(r['services']), r['servers']) for r in results]
    lines = [
        'Seconds, median of %d run(s); engine cells: total (read / plan / apply / settle / confirm).' % repeat,
        '',
        '| measurement | %s |' % ' | '.join(sizes),
        '|---|%s' % ('---:|' * len(results)),
    ]
    for label, cells in rows_for(results):
        lines.append('| %s | %s |' % (label, ' | '.join(cells)))
    replaced = ', '.join('%s: %s' % (size, '{:,}'.format(r['replaced'])) for size, r in zip(sizes, results))
    lines += [
        '',
        'Real servers replaced in the 1%% run: %s (each added, the old one drained to weight 0).' % replaced,
    ] + machine_lines(host, facts)
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--sizes', default='1000,5000', help='comma-separated service counts (default 1000,5000)')
    parser.add_argument('--servers', type=int, default=10, help='real servers per service (default 10)')
    parser.add_argument('--repeat', type=int, default=3, help='runs per figure; the median is shown (default 3)')
    parser.add_argument('--sample', type=int, default=300,
                        help='rules in the one-process-per-rule sample (default 300)')
    add_lab_arguments(parser, 'bench', 'bench',
                      'how to get ipvsadm and ip_vs on the node: site.yml (default), apt-get, or nothing')
    parser.add_argument('--skip-module', action='store_true', help='no ansible-playbook runs (node figures only)')
    parser.add_argument('--render', nargs='+', metavar='JSON',
                        help='no lab: print the table of earlier --json files (sizes side by side, in order)')
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in re.split(r'[,\s]+', args.sizes.strip()) if size]
    if args.repeat < 1 or args.sample < 1 or not args.sizes:
        parser.error('--repeat, --sample and --sizes need positive values')
    return args


def render(paths):
    """The table of earlier runs (one or several --json files): each run's facts are
    kept, the first run's shown; a note lists the others."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    results = [result for run in runs for result in run['results']]
    table = markdown(results, runs[0]['host'], runs[0]['node'], runs[0]['median_of'])
    for path, run in zip(paths[1:], runs[1:]):
        sizes = ', '.join('{:,}'.format(r['services']) for r in run['results'])
        table += 'Sizes %s from %s: controller load average %s at start (%s), median of %d.\n' % (
            sizes, os.path.basename(path), ' / '.join('%.2f' % x for x in run['host']['loadavg']),
            run['host']['started'], run['median_of'])
    return table


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        sys.stdout.write(render(args.render))
        return 0
    host = {'cpus': os.cpu_count(), 'loadavg': os.getloadavg(), 'started': time.strftime('%Y-%m-%d %H:%M %Z')}
    log('controller load average %s' % ' / '.join('%.2f' % x for x in host['loadavg']))
    lab = Lab(args.run_dir, args.prefix)
    if not args.reuse:
        lab.up(args.suite)
    try:
        node = lab.node()
        if args.prepare != 'none':
            prepare(lab, node, args.prepare)
        module_utils = None if args.skip_module else module_utils_dir()
        if not (args.skip_module or module_utils):
            log('no ansible.module_utils importable here: the module is not timed on the node')
        ship(node, module_utils)
        facts = node.json(node_script('facts'))
        results = []
        for services in args.sizes:
            measure = ['measure', '--collections', REMOTE + '/collections', '--services', services,
                       '--servers', args.servers, '--repeat', args.repeat, '--sample', args.sample]
            if module_utils:
                measure += ['--ansible-lib', REMOTE + '/ansible_lib']
            result = node.json(node_script(*measure))
            if not args.skip_module:
                result['module'] = module_runs(lab, node, services, args.servers, args.repeat)
            results.append(result)
        table = markdown(results, host, facts, args.repeat)
        sys.stdout.write(table)
        if args.markdown:
            with open(args.markdown, 'w') as f:
                f.write(table)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump({'host': host, 'node': facts, 'results': results, 'median_of': args.repeat}, f, indent=1)
    finally:
        if not (args.reuse or args.keep):
            log('tearing the lab down')
            lab.down()
    return 0


if __name__ == '__main__':
    sys.exit(main())
