#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""netlb-ipvs reconcile: what one timer run costs on a converged node, start-up included.

Run from the repository root (.venv/bin/python bench/reconcile_bench.py --help):

1. boot a lab node of its own (lab/netlb-lab, run dir lab/run/reconcile-bench, prefix
   rbench), or reuse the one running there (--reuse); prepare it with apt-get (ipvsadm,
   nftables, conntrack, python3-kubernetes, python3-yaml) or a play of role ipvs_node;
2. install the entry point as role ipvs_reconcile does: the collection's
   plugins/module_utils/ and bin/netlb-ipvs under /usr/local/lib/netlb-ipvs, byte-compiled
   by the node's python3 (the unit runs the tree's bin/netlb-ipvs with it);
3. per size and table, in a new network namespace on the node (empty IPVS table, empty nft
   ruleset; a veth to the node, masqueraded, reaches the API):
   - static: a generated table (--sizes services x --servers real servers, as
     ipvs_table_bench.py makes it) in /etc/netlb-ipvs/ipvs-services.json, scope 10.0.0.0/8;
   - kubernetes: the stand-in API server (tests/kube_api) on this machine, reached as
     10.0.2.2, serving a generated cluster exactly as k8s_proxy_bench.py does (--shape mixed,
     node-7 in zone-b), its kubeconfig in /etc/netlb-ipvs/kubeconfig, backend netlink;
   /etc/netlb-ipvs/reconcile.json holds what role ipvs_reconcile would render for it. A first
   run loads the table; then --repeat rounds of --runs converged runs of the unit's very
   command, `/usr/bin/python3 .../ansible_collections/netlb/ipvs/bin/netlb-ipvs reconcile --timeout 300`, each
   followed by one bare `ipvsadm -S -n > /dev/null` and one `python3 -c pass`. A node-side
   wrapper (this file, `node-runs`) times each whole process (perf_counter around it) and
   takes its CPU time (user + sys, getrusage(RUSAGE_CHILDREN) before and after);
   the run's own `duration` comes from its status file;
4. print a markdown table: min / median / max of each, the converged run over
   `ipvsadm -S -n` (ratio of the round's medians, median of the rounds) against the goals
   (static <= 1.5x, kubernetes <= 2.0x, at 5,000 services), start-up (whole process minus
   the run's own duration), and the CPU an hour of runs takes at the default interval
   (OnUnitInactiveSec=30s: 3600 / (30 + a run) runs an hour).

--mode watch (kubernetes only): on the same node and cluster, `netlb-ipvs watch` as its unit
runs it, with a short --interval; after its first sync, --repeat rounds of --runs periodic
full resyncs, each followed by --saves `ipvsadm -S -n > /dev/null` while the watcher is
idle (node-watch); the resync's own duration (status file), CPU (/proc/<pid>/stat) and
--verbose timings against the whole ipvsadm process: goal <= 1.0x (issue 21). The resync is
in-process work of a long-running process, so its own duration is the fair measure.

Both sides of each ratio of the timer mode are whole processes as shipped, in the same round: netlb-ipvs
with its own garbage-collector setting (it disables the collector for a run), ipvsadm
in C. Stdlib only (the node side too), besides ansible-playbook for --prepare role;
helpers (lab, ssh, the table and cluster generators) come from the other benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTION = os.path.join(REPO, 'collections', 'ansible_collections', 'netlb', 'ipvs')

# On the node: the paths of role ipvs_reconcile (roles/ipvs_reconcile/vars/main.yml) and of
# the entry point's defaults, so the runs find what a timer run finds.
PYTHON = '/usr/bin/python3'
LIB_DIR = '/usr/local/lib/netlb-ipvs'
TREE = LIB_DIR + '/ansible_collections'
COMMAND = '/usr/local/lib/netlb-ipvs/ansible_collections/netlb/ipvs/bin/netlb-ipvs'  # what the unit runs
UNIT_ARGV = [PYTHON, COMMAND, 'reconcile', '--timeout', '300']  # the unit's ExecStart
# --verbose only adds stderr lines (warnings, each part's step timings): the breakdown row.
RUN_ARGV = UNIT_ARGV + ['--verbose']
BUNDLE_MEMBERS = ('ansible_collections/netlb/ipvs/plugins/module_utils',  # the role's ipvs_reconcile_bundle_members
                  'ansible_collections/netlb/ipvs/bin/netlb-ipvs')
CONFIG_DIR = '/etc/netlb-ipvs'
CONFIG_FILE = CONFIG_DIR + '/reconcile.json'
SERVICES_FILE = CONFIG_DIR + '/ipvs-services.json'
KUBECONFIG = CONFIG_DIR + '/kubeconfig'
STATE_DIR = '/var/lib/netlb-ipvs'
STATUS_FILE = STATE_DIR + '/reconcile-status.json'
# Written by the runs: removed before each table's first load (a new namespace, a new table).
RUN_STATE = (STATUS_FILE, STATE_DIR + '/drain-state.json', STATE_DIR + '/k8s-service-proxy.json')
METRICS_DIR = '/var/lib/prometheus/node-exporter'  # the role's default textfile directory
REMOTE = '/var/tmp/netlb-reconcile-bench'  # the bench scripts on the node
NETNS = 'netlb-bench'  # k8s_proxy_node.py's (ipvs_node_bench.NETNS)
UNIT_ENV = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8'}

# The node section role ipvs_reconcile renders from role ipvs_node's defaults.
NODE_SECTION = {
    'modules': ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'nf_conntrack'],
    'sysctl': {'net.ipv4.ip_forward': '1', 'net.ipv4.vs.conntrack': '1', 'net.ipv4.vs.expire_nodest_conn': '1',
               'net.ipv4.vs.expire_quiescent_template': '1'},
}
STATIC_SCOPE = ['10.0.0.0/8']  # ipvs_node_bench.SCOPE
# k8s_service_proxy's options as playbooks/vars/k8s_service_proxy.yml renders them by
# default (what k8s_proxy_bench.py's task leaves at the module's defaults), with the
# benchmark cluster's connection and node, and the netlink backend.
KUBERNETES_SECTION = {
    'source': 'api', 'kubeconfig': KUBECONFIG, 'namespaces': [], 'node_name': 'node-7',
    'service_cidrs': ['10.96.0.0/12'], 'cluster_cidrs': [], 'node_port_range': '30000-32767',
    'node_port_addresses': [], 'families': ['ipv4', 'ipv6'], 'scheduler': 'rr', 'masquerade': 'external',
    'max_delete_ratio': 0.5, 'scheduler_hold': True, 'backend': 'netlink',
}
PACKAGES = ('ipvsadm', 'nftables', 'conntrack', 'python3-kubernetes', 'python3-yaml')

CASES = ('static', 'kubernetes')
GOALS = {'static': 1.5, 'kubernetes': 2.0,  # converged run / ipvsadm -S -n, whole processes
         'watch': 1.0}  # issue 21: a periodic resync / ipvsadm -S -n (the resync's own duration)
# --mode watch: the unit's command (netlb-ipvs-watch.service.j2) with a short --interval, the
# status on loopback in the namespace, --verbose for each sync's step timings.
WATCH_ARGV = [PYTHON, COMMAND, 'watch', '--min-sync', '1s']
WATCH_PORT = 10266  # serve.DEFAULT_ADDRESS's port, in the bench's namespace
WATCH_LOAD_TIMEOUT = 3600.0  # the first sync loads 5,000 x 10 under TCG on a busy host
GOAL_AT = 5000
INTERVAL = 30.0  # ipvs_reconcile_interval: OnUnitInactiveSec, end of one run to start of the next


def log(text):
    sys.stderr.write('[reconcile-bench %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# The node side (stdlib only: this file runs there too)


def _timed(argv, stdout):
    """One whole process: wall seconds (perf_counter around it), CPU seconds (user + sys,
    from getrusage(RUSAGE_CHILDREN): it and whatever it waited for), rc, output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=UNIT_ENV,
                          universal_newlines=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {'wall': round(wall, 6), 'cpu': round(cpu, 6), 'rc': proc.returncode,
            'stdout': (proc.stdout or '').strip()[-2000:], 'stderr': (proc.stderr or '').strip()[-2000:]}


def _reconcile_once():
    """The unit's command, timed; with the run's own duration from its status file (the
    journal line rounds it to 10 ms)."""
    found = _timed(RUN_ARGV, subprocess.PIPE)
    found['line'] = found.pop('stdout')
    found['steps'] = steps_of(found['stderr'])
    try:
        with open(STATUS_FILE) as handle:
            found['duration'] = json.load(handle)['last_duration']
    except (OSError, ValueError, KeyError):
        match = re.search(r'\bduration=([0-9.]+)s', found['line'])
        found['duration'] = float(match.group(1)) if match else None
    return found


def steps_of(text):
    """{'part.step': seconds} from --verbose's 'timings PART: step=1.234s ...' lines."""
    steps = {}
    for line in text.splitlines():
        match = re.match(r'timings (\S+): (.*)$', line)
        if match:
            for step, value in re.findall(r'(\S+)=([0-9.]+)s', match.group(2)):
                steps['%s.%s' % (match.group(1), step)] = float(value)
    return steps


def node_runs(runs, first=False):
    """runs x (netlb-ipvs reconcile, ipvsadm -S -n > /dev/null, python3 -c pass), one after
    the other; with first, one reconcile run alone (the load)."""
    result = {'reconcile': [], 'save': [], 'python': []}
    with open(os.devnull, 'w') as devnull:
        for _ in range(1 if first else runs):
            result['reconcile'].append(_reconcile_once())
            if first:
                break
            save = _timed(['ipvsadm', '-S', '-n'], devnull)
            if save['rc'] != 0:
                raise SystemExit('ipvsadm -S -n: rc=%d %s' % (save['rc'], save['stderr']))
            result['save'].append(save)
            result['python'].append(_timed([PYTHON, '-c', 'pass'], devnull))
    text = subprocess.run(['ipvsadm', '-S', '-n'], stdout=subprocess.PIPE, universal_newlines=True, env=UNIT_ENV,
                          check=True).stdout
    result['virtual_services'] = sum(1 for line in text.splitlines() if line.startswith('-A'))
    result['rules'] = sum(1 for line in text.splitlines() if line.startswith(('-A', '-a')))
    return result


def _cpu_of(pid):
    """(the process's own CPU seconds, its waited-for children's): user + sys of every
    thread, from /proc/<pid>/stat."""
    with open('/proc/%d/stat' % pid) as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    tick = float(os.sysconf('SC_CLK_TCK'))
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime) / tick, (cutime + cstime) / tick


def _reader(stream, name, lines):
    import threading

    def follow():
        for line in stream:
            lines.put((time.perf_counter(), name, line.rstrip('\n')))
        lines.put((time.perf_counter(), name, None))
    thread = threading.Thread(target=follow)
    thread.daemon = True
    thread.start()


def _full_syncs(port):
    """{'true': count, 'false': count} of the watcher's sync histogram (/metrics)."""
    import urllib.request
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=600) as answer:
        text = answer.read().decode('utf-8')
    found = {'true': 0, 'false': 0}
    for full, count in re.findall(r'^netlb_ipvs_watch_sync_duration_seconds_count\{full="(true|false)"\} (\d+)$',
                                  text, re.M):
        found[full] = int(count)
    return found


class _Watch(object):
    """netlb-ipvs watch as a child process, its lines read as they come."""

    def __init__(self, interval, port):
        import queue
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(WATCH_ARGV + ['--interval', '%gs' % interval, '--listen', '127.0.0.1:%d' % port,
                                                   '--verbose'],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=UNIT_ENV, universal_newlines=True)
        _reader(self.proc.stdout, 'out', self.lines)
        _reader(self.proc.stderr, 'err', self.lines)
        self.log = []

    def sync(self, within):
        """The next sync: (perf_counter when its line came, the journal line, {part.step: s})."""
        import queue
        deadline = time.perf_counter() + within
        line = None
        # stdout and stderr are read by two threads: a sync's timings may be queued before its line.
        steps_text = []
        while True:
            try:
                when, name, text = self.lines.get(timeout=max(0.01, deadline - time.perf_counter()))
            except queue.Empty:
                raise SystemExit('netlb-ipvs watch: no sync within %.0f s; its output:\n%s'
                                 % (within, '\n'.join(self.log[-40:])))
            if text is None:
                raise SystemExit('netlb-ipvs watch ended (rc=%s); its output:\n%s'
                                 % (self.proc.wait(), '\n'.join(self.log[-40:])))
            self.log.append(text)
            if text.startswith('timings '):
                steps_text.append(text)
            if name == 'out' and text.startswith('result='):
                line, came = text, when
                break
        # --verbose's timings follow the line on stderr: a part's line each, kubernetes last.
        end = time.perf_counter() + 5.0
        while time.perf_counter() < end and not any(text.startswith('timings kubernetes:') for text in steps_text):
            try:
                _when, name, text = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if text is None:
                break
            self.log.append(text)
            if text.startswith('timings '):
                steps_text.append(text)
                if text.startswith('timings kubernetes:'):
                    break
        return came, line, steps_of('\n'.join(steps_text))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _status_duration(line):
    try:
        with open(STATUS_FILE) as handle:
            return json.load(handle)['last_duration']
    except (OSError, ValueError, KeyError):
        match = re.search(r'\bduration=([0-9.]+)s', line)
        return float(match.group(1)) if match else None


def node_watch(rounds, runs, saves, interval, port=WATCH_PORT):
    """netlb-ipvs watch started as the unit runs it (--interval short), its first sync (the
    load), then rounds x runs periodic full resyncs, each followed by saves x `ipvsadm -S -n
    > /dev/null` while the watcher is idle. Per resync: its own duration (the status file),
    its journal line and step timings, its CPU time (/proc/<pid>/stat sampled a few seconds
    before it is due and as soon as its line comes), and the full-sync count of /metrics."""
    watch = _Watch(interval, port)
    result = {'rounds': [], 'interval': interval}
    try:
        came, line, steps = watch.sync(WATCH_LOAD_TIMEOUT)
        duration = _status_duration(line)
        result['first'] = {'line': line, 'duration': duration, 'steps': steps}
        started = came - duration  # about when the loop took the sync's start (next_resync's base)
        counts = _full_syncs(port)
        result['first']['full_syncs'] = counts
        with open(os.devnull, 'w') as devnull:
            for _round in range(rounds):
                found = {'resync': [], 'save': []}
                for _run in range(runs):
                    for _save in range(saves):
                        save = _timed(['ipvsadm', '-S', '-n'], devnull)
                        if save['rc'] != 0:
                            raise SystemExit('ipvsadm -S -n: rc=%d %s' % (save['rc'], save['stderr']))
                        found['save'].append(save)
                    due = started + interval
                    pause = due - 3.0 - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    early = time.perf_counter() < due - 0.5  # else the CPU sample may be inside the resync
                    before = _cpu_of(watch.proc.pid)
                    came, line, steps = watch.sync(interval + 600.0)
                    after = _cpu_of(watch.proc.pid)
                    duration = _status_duration(line)
                    started = came - duration
                    last, counts = counts, _full_syncs(port)
                    found['resync'].append({
                        'line': line, 'duration': duration, 'steps': steps,
                        'cpu': round(after[0] - before[0], 3) if early else None,
                        'children_cpu': round(after[1] - before[1], 3) if early else None,
                        'full': counts['true'] - last['true'], 'change': counts['false'] - last['false'],
                        'overlap': not early})
                result['rounds'].append(found)
    finally:
        watch.stop()
    result['log_tail'] = watch.log[-20:]
    text = subprocess.run(['ipvsadm', '-S', '-n'], stdout=subprocess.PIPE, universal_newlines=True, env=UNIT_ENV,
                          check=True).stdout
    result['virtual_services'] = sum(1 for line in text.splitlines() if line.startswith('-A'))
    result['rules'] = sum(1 for line in text.splitlines() if line.startswith(('-A', '-a')))
    return result


# ---------------------------------------------------------------------------
# The controller side


def _helpers():
    """The other benchmarks' modules (controller only: they import tests/kube_api)."""
    sys.path[:0] = [HERE, os.path.join(REPO, 'tests')]
    import ipvs_table_bench
    import k8s_proxy_bench
    return ipvs_table_bench, k8s_proxy_bench


def prepare(tb, lab, node, how):
    if how == 'apt':
        log('preparing %s with apt-get' % node.name)
        node.run('(apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -qy install %s) >&2'
                 % ' '.join(PACKAGES))
    elif how == 'role':
        log('preparing %s with a play of role ipvs_node (and apt-get for nftables, python3-yaml)' % node.name)
        with tempfile.NamedTemporaryFile('w', suffix='.yml', prefix='netlb-reconcile-bench-', delete=False) as f:
            f.write('- name: Prepare the reconcile benchmark node\n  hosts: all\n  roles: [ipvs_node]\n')
            play = f.name
        try:
            env = dict(tb.ansible_env(), ANSIBLE_ROLES_PATH=os.path.join(REPO, 'roles'),
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'collections'))
            subprocess.run([tb.ansible_playbook(), '-i', lab.inventory, '-l', node.name, play], cwd=REPO, env=env,
                           check=True, stdout=sys.stderr)
        finally:
            os.unlink(play)
        node.run('dpkg -s nftables python3-yaml >/dev/null 2>&1 || (apt-get -q update && '
                 'DEBIAN_FRONTEND=noninteractive apt-get -qy install nftables python3-yaml) >&2')
    node.run('modprobe ip_vs && command -v ipvsadm nft conntrack >/dev/null && python3 -c "import kubernetes"')


def _bundle_filter(info):
    if '__pycache__' in info.name or info.name.endswith('.pyc'):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = 'root'
    info.mode &= ~0o022  # the role's --mode=go-w
    return info


def bundle():
    """Role ipvs_reconcile's bundle (plugins/module_utils and bin/netlb-ipvs under
    ansible_collections/) and the bench scripts under bench/: base64 of a tar.gz."""
    buf = io.BytesIO()
    root = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION)))  # holds ansible_collections/
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for member in BUNDLE_MEMBERS:
            tar.add(os.path.join(root, member), arcname='lib/' + member, filter=_bundle_filter)
        for script in ('reconcile_bench.py', 'k8s_proxy_node.py', 'ipvs_node_bench.py'):
            tar.add(os.path.join(HERE, script), arcname='bench/' + script, filter=_bundle_filter)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def install(node):
    """The entry point where role ipvs_reconcile puts it, byte-compiled by the node's
    Python; the bench scripts in REMOTE."""
    active = [state for state in node.run('systemctl is-active netlb-ipvs-reconcile.timer '
                                          'netlb-ipvs-pull.timer 2>/dev/null || true').split() if state == 'active']
    if active:
        raise SystemExit('%s runs a netlb-ipvs timer: its runs would take the lock and the table; '
                         'use a lab node without role ipvs_reconcile' % node.name)
    script = ('set -e; d=$(mktemp -d); trap \'rm -rf "$d"\' EXIT; base64 -d | tar -xz -C "$d"; '
              'rm -rf {tree} {remote}; mkdir -p {lib} {remote} {config} {state} {metrics}; '
              'mv "$d/lib/ansible_collections" {tree}; mv "$d"/bench/* {remote}/; '
              '{python} -m compileall -q {tree}').format(
        tree=TREE, remote=REMOTE, lib=LIB_DIR, config=CONFIG_DIR, state=STATE_DIR, metrics=METRICS_DIR,
        python=PYTHON)
    node.run(script, data=bundle())


def put(node, path, text, mode='0644'):
    node.run('umask 022 && cat > {0}.tmp && chmod {1} {0}.tmp && mv {0}.tmp {0}'.format(path, mode), data=text)


def config(static=None, kubernetes=None):
    """reconcile.json as role ipvs_reconcile renders it."""
    return json.dumps({'version': 1, 'node': NODE_SECTION, 'static': static, 'kubernetes': kubernetes,
                       'pull': None, 'metrics_dir': METRICS_DIR, 'timeout': 300}, indent=2, sort_keys=True) + '\n'


def fresh_netns(node):
    """A new, empty namespace with a veth to the node (k8s_proxy_node.py netns), and no
    state left by an earlier table's runs."""
    node.run(['python3', REMOTE + '/k8s_proxy_node.py', 'netns'])
    node.run(['rm', '-f'] + list(RUN_STATE))


def runs_on_node(node, runs, first=False):
    argv = ['ip', 'netns', 'exec', NETNS, 'python3', REMOTE + '/reconcile_bench.py', 'node-runs', '--runs', runs]
    if first:
        argv.append('--first')
    return node.json(argv)


def check(run, label, converged, expect=None):
    """The run ended as wanted: ok, no change when converged, the expected table."""
    line = run['line']
    if run['rc'] != 0 or not line.startswith('result=ok'):
        raise SystemExit('netlb-ipvs reconcile (%s) on the node: rc=%d\nstdout: %s\nstderr: %s'
                         % (label, run['rc'], line, run['stderr']))
    changes = int(re.search(r'\bchanges=(\d+)', line).group(1))
    if converged and changes:
        raise SystemExit('%s: a converged run changed %d things: %s' % (label, changes, line))
    if not converged and not changes:
        raise SystemExit('%s: the first run changed nothing: %s' % (label, line))
    if expect is not None and expect not in line:
        raise SystemExit('%s: expected %s in the run\'s line: %s' % (label, expect, line))


def measure_case(node, case, services, args, label, server=None):
    """The first load, then args.repeat rounds of args.runs converged runs: one dict."""
    log('%s: first run (the load)' % label)
    before = len(server.requests) if server is not None else 0
    first = runs_on_node(node, 1, first=True)
    first_run = first['reconcile'][0]
    expect = ('static_table=%d/%d' % (services, services * args.servers)) if case == 'static' else None
    check(first_run, label + ', first run', converged=False, expect=expect)
    rounds = []
    for round_no in range(1, args.repeat + 1):
        log('%s, round %d/%d: %d x (netlb-ipvs reconcile, ipvsadm -S -n, python3 -c pass)'
            % (label, round_no, args.repeat, args.runs))
        before = len(server.requests) if server is not None else 0
        found = runs_on_node(node, args.runs)
        for run in found['reconcile']:
            check(run, '%s, round %d' % (label, round_no), converged=True, expect=expect)
        if server is not None:
            found['requests'] = (len(server.requests) - before) / float(args.runs)
        rounds.append(found)
    table = re.search(r'\b%s_table=(\d+)/(\d+)' % case, first_run['line'])
    return {'case': case, 'services': services, 'servers': args.servers, 'first': first_run,
            'rounds': rounds, 'virtual_services': int(table.group(1)), 'real_servers': int(table.group(2)),
            'rules': rounds[-1]['rules'], 'kernel_virtual_services': rounds[-1]['virtual_services']}


def measure_watch(node, services, args, label, server):
    """netlb-ipvs watch's first sync, then args.repeat rounds of args.runs periodic
    resyncs, each followed by args.saves `ipvsadm -S -n`: one dict."""
    log('%s: netlb-ipvs watch --interval %gs, the first sync (the load), then %d round(s) of %d resync(s) '
        '(about %.0f min)' % (label, args.interval, args.repeat, args.runs, args.repeat * args.runs * args.interval / 60))
    before = len(server.requests)
    found = node.json(['ip', 'netns', 'exec', NETNS, 'python3', REMOTE + '/reconcile_bench.py', 'node-watch',
                       '--rounds', args.repeat, '--runs', args.runs, '--saves', args.saves,
                       '--interval', args.interval])
    first = found['first']
    if not first['line'].startswith('result=ok') or not int(re.search(r'\bchanges=(\d+)', first['line']).group(1)):
        raise SystemExit('%s: the first sync did not load the table: %s' % (label, first['line']))
    for round_no, found_round in enumerate(found['rounds'], 1):
        for resync in found_round['resync']:
            line = resync['line']
            if not line.startswith('result=ok') or int(re.search(r'\bchanges=(\d+)', line).group(1)):
                raise SystemExit('%s, round %d: a resync was not ok or changed something: %s' % (label, round_no, line))
            if (resync['full'], resync['change']) != (1, 0):
                raise SystemExit('%s, round %d: the sync was not one full resync (full %d, change %d): %s'
                                 % (label, round_no, resync['full'], resync['change'], line))
    table = re.search(r'\bkubernetes_table=(\d+)/(\d+)', first['line'])
    return {'case': 'watch', 'services': services, 'servers': args.servers, 'first': first,
            'rounds': found['rounds'], 'interval': found['interval'], 'log_tail': found['log_tail'],
            'virtual_services': int(table.group(1)), 'real_servers': int(table.group(2)),
            'rules': found['rules'], 'kernel_virtual_services': found['virtual_services'],
            'requests': len(server.requests) - before}


def static_case(tb, node, services, args):
    label = 'static %d x %d' % (services, args.servers)
    log('%s: table and config to the node, a fresh namespace' % label)
    fresh_netns(node)
    put(node, SERVICES_FILE, json.dumps(tb.NODE.table_params(services, args.servers)) + '\n')
    # ipvs_virtual_server_options as playbooks/vars/ipvs_virtual_server.yml renders them by default.
    put(node, CONFIG_FILE, config(static={'services_file': SERVICES_FILE, 'scope': STATIC_SCOPE, 'exclusive': True,
                                          'allow_empty': False, 'drain_timeout': 0, 'scheduler_hold': True}),
        mode='0600')
    return measure_case(node, 'static', services, args, label)


def kubernetes_case(kb, node, server, services, args):
    label = 'kubernetes %d x %d (%s)' % (services, args.servers, args.shape)
    log('%s: loading the stand-in API server' % label)
    svc, slices, node_object = kb.generate(args.shape, services, args.servers, args.seed)
    server.reset()
    server.copy_lists = False  # nothing changes the objects here: no deep copy per listing
    server.add(svc, slices, node_object)
    size = {'slices': len(slices), 'endpoints': sum(len(item['endpoints']) for item in slices),
            'api_bytes': len(json.dumps(svc)) + len(json.dumps(slices))}
    del svc, slices
    fresh_netns(node)
    put(node, CONFIG_FILE, config(kubernetes=KUBERNETES_SECTION), mode='0600')
    if args.mode == 'watch':
        result = measure_watch(node, services, args, label.replace('kubernetes', 'watch', 1), server)
    else:
        result = measure_case(node, 'kubernetes', services, args, label, server=server)
    result.update(size, shape=args.shape)
    return result


# ---------------------------------------------------------------------------
# The figures


def spread(values):
    """(min, median, max), or None."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def all_runs(result, kind):
    return [run for found in result['rounds'] for run in found[kind]]


def summarize(result):
    """Every figure the table shows, from the raw runs."""
    reconcile = all_runs(result, 'reconcile')
    ratios = [statistics.median(run['wall'] for run in found['reconcile'])
              / statistics.median(run['wall'] for run in found['save']) for found in result['rounds']]
    cpu_ratios = [statistics.median(run['cpu'] for run in found['reconcile'])
                  / max(statistics.median(run['cpu'] for run in found['save']), 1e-6) for found in result['rounds']]
    inside = [statistics.median(run['duration'] for run in found['reconcile'])
              / statistics.median(run['wall'] for run in found['save']) for found in result['rounds']]
    wall = spread(run['wall'] for run in reconcile)
    cpu = spread(run['cpu'] for run in reconcile)
    runs_per_hour = 3600.0 / (INTERVAL + wall[1])
    cpu_per_hour = runs_per_hour * cpu[1]
    return {
        'reconcile': wall, 'reconcile_cpu': cpu,
        'duration': spread(run['duration'] for run in reconcile),
        'startup': spread(run['wall'] - run['duration'] for run in reconcile if run['duration'] is not None),
        'save': spread(run['wall'] for run in all_runs(result, 'save')),
        'save_cpu': spread(run['cpu'] for run in all_runs(result, 'save')),
        'python': spread(run['wall'] for run in all_runs(result, 'python')),
        'ratios': ratios, 'ratio': statistics.median(ratios),
        'cpu_ratio': statistics.median(cpu_ratios), 'inside_ratio': statistics.median(inside),
        'runs_per_hour': runs_per_hour, 'cpu_per_hour': cpu_per_hour, 'cpu_share': cpu_per_hour / 3600.0,
        'steps': dict((name, statistics.median(run['steps'].get(name, 0.0) for run in reconcile))
                      for name in sorted(set().union(*(run.get('steps', {}) for run in reconcile)))),
        'requests': (statistics.median(found['requests'] for found in result['rounds'])
                     if 'requests' in result['rounds'][0] else None),
    }


def summarize_watch(result):
    """The watch table's figures, from the raw resyncs."""
    resyncs = all_runs(result, 'resync')
    ratios = [statistics.median(run['duration'] for run in found['resync'])
              / statistics.median(run['wall'] for run in found['save']) for found in result['rounds']]
    cpu = spread(run['cpu'] for run in resyncs)
    save_cpu = spread(run['cpu'] for run in all_runs(result, 'save'))
    runs_per_hour = 3600.0 / INTERVAL  # the watch's interval runs from one resync's start to the next's
    return {
        'resync': spread(run['duration'] for run in resyncs), 'resync_cpu': cpu,
        'resync_children_cpu': spread(run['children_cpu'] for run in resyncs),
        'save': spread(run['wall'] for run in all_runs(result, 'save')), 'save_cpu': save_cpu,
        'ratios': ratios, 'ratio': statistics.median(ratios),
        'cpu_ratio': cpu[1] / max(save_cpu[1], 1e-6) if cpu else None,
        'runs_per_hour': runs_per_hour, 'cpu_per_hour': runs_per_hour * cpu[1] if cpu else None,
        'cpu_share': runs_per_hour * cpu[1] / 3600.0 if cpu else None,
        'steps': dict((name, statistics.median(run['steps'].get(name, 0.0) for run in resyncs))
                      for name in sorted(set().union(*(run.get('steps', {}) for run in resyncs)))),
    }


def seconds(value):
    if value is None:
        return 'n/a'
    if value >= 100:
        return '%.0f' % value
    if value >= 10:
        return '%.1f' % value
    if value >= 0.1:
        return '%.2f' % value
    return '%.3f' % value


def three(values):
    return 'n/a' if values is None else ' / '.join(seconds(value) for value in values)


def verdict(result):
    """The goal's ratio, the verdict, and beside them the min / median / max it comes from."""
    return verdict_of(result, 'reconcile')


def verdict_of(result, key):
    summary = result['summary']
    ratio, goal = summary['ratio'], GOALS[result['case']]
    if result['services'] < GOAL_AT:
        judged = '%.2fx (goal <= %.1fx judged at %s)' % (ratio, goal, '{:,}'.format(GOAL_AT))
    else:
        judged = '%.2fx %s (<= %.1fx)' % (ratio, 'met' if ratio <= goal else '**NOT met**', goal)
    return '%s; %s %s s, `ipvsadm -S -n` %s s' % (judged, 'resync' if key == 'resync' else 'run',
                                                  three(summary[key]), three(summary['save']))


class _Rows(object):
    """A table's rows: (label, a cell per result)."""

    def __init__(self, results):
        self.results = results
        self.rows = []

    def row(self, label, fn):
        self.rows.append((label, [fn(r) for r in self.results]))

    @staticmethod
    def spread(key):
        return lambda r: three(r['summary'][key])


def steps_cell(r):
    """Where the time went: the --verbose steps' medians (the apply's sub-steps left out)."""
    return ', '.join('%s %.2f' % (name.split('.', 1)[1], value) for name, value in r['summary']['steps'].items()
                     if value >= 0.05 and not name.split('.', 1)[1].startswith('ipvs_apply')) or 'n/a'


def rows_for(results):
    table = _Rows(results)
    row, s = table.row, table.spread
    row('virtual services / real servers (the run\'s `_table=`; `ipvsadm -S -n` rules)',
        lambda r: '{:,} / {:,} ({:,} rules)'.format(r['virtual_services'], r['real_servers'], r['rules']))
    row('Kubernetes: EndpointSlices / endpoints; API answers (JSON, MB); requests per run', lambda r: (
        '{:,} / {:,}; {:.1f} MB; {:g}'.format(r['slices'], r['endpoints'], r['api_bytes'] / 1048576.0,
                                               r['summary']['requests'])
        if r['case'] == 'kubernetes' else '-'))
    row('first run, the load from empty: whole process / its own `duration`', lambda r: '%s / %s' % (
        seconds(r['first']['wall']), seconds(r['first']['duration'])))
    row('bare `ipvsadm -S -n > /dev/null`, whole process: min / median / max', s('save'))
    row('&nbsp;&nbsp;its CPU time (user + sys)', s('save_cpu'))
    row('**converged run**, whole process (`python3 .../bin/netlb-ipvs reconcile --timeout 300`, as the unit runs it): '
        'min / median / max', s('reconcile'))
    row('&nbsp;&nbsp;the run\'s own `duration` (in the process: config, lock, kernel, table, status)', s('duration'))
    row('&nbsp;&nbsp;start-up, imports and exit (whole process - `duration`)', s('startup'))
    row('&nbsp;&nbsp;where `duration` goes (`--verbose` timings, median s; steps nest: total holds the rest)',
        steps_cell)
    row('&nbsp;&nbsp;for scale: `python3 -c pass`', s('python'))
    row('&nbsp;&nbsp;its CPU time (user + sys, with its child processes)', s('reconcile_cpu'))
    row('**goal: converged run / `ipvsadm -S -n`**, whole processes (ratio of the round\'s medians, median of '
        'the rounds)', verdict)
    row('&nbsp;&nbsp;the rounds', lambda r: ', '.join('%.2fx' % ratio for ratio in r['summary']['ratios']))
    row('&nbsp;&nbsp;the run\'s own `duration` / `ipvsadm -S -n`; CPU time / `ipvsadm -S -n` CPU time',
        lambda r: '%.2fx; %.1fx' % (r['summary']['inside_ratio'], r['summary']['cpu_ratio']))
    row('CPU at the default interval (%.0f s between runs): runs an hour; CPU seconds an hour; share of one CPU'
        % INTERVAL, lambda r: '%.0f; %s s; %.2f%%' % (r['summary']['runs_per_hour'],
                                                     seconds(r['summary']['cpu_per_hour']),
                                                     100.0 * r['summary']['cpu_share']))
    return table.rows


def rows_for_watch(results):
    table = _Rows(results)
    row, s = table.row, table.spread

    row('virtual services / real servers (the sync\'s `kubernetes_table=`; `ipvsadm -S -n` rules)',
        lambda r: '{:,} / {:,} ({:,} rules)'.format(r['virtual_services'], r['real_servers'], r['rules']))
    row('the first sync, the load from empty: its own `duration`', lambda r: seconds(r['first']['duration']))
    row('bare `ipvsadm -S -n > /dev/null`, whole process: min / median / max', s('save'))
    row('&nbsp;&nbsp;its CPU time (user + sys)', s('save_cpu'))
    row('**periodic full resync**, its own `duration` (in the long-running process: the kernel read, translation, '
        'rules, plan, addresses, status; `--interval %gs`): min / median / max' % results[0]['interval'], s('resync'))
    row('&nbsp;&nbsp;where it goes (`--verbose` timings, median s; steps nest: total holds the rest)', steps_cell)
    row('&nbsp;&nbsp;its CPU time (the watcher\'s user + sys, /proc/<pid>/stat around it)', s('resync_cpu'))
    row('&nbsp;&nbsp;its child processes\' CPU time (nft, ip, ...)', s('resync_children_cpu'))
    row('**goal: resync / `ipvsadm -S -n`** (the resync\'s own duration against the whole process; ratio of the '
        'round\'s medians, median of the rounds)', lambda r: verdict_of(r, 'resync'))
    row('&nbsp;&nbsp;the rounds', lambda r: ', '.join('%.2fx' % ratio for ratio in r['summary']['ratios']))
    row('&nbsp;&nbsp;resyncs that began before their `ipvsadm -S -n` runs ended (--interval too short: both '
        'slowed, no CPU sample)', lambda r: '%d of %d' % (
            sum(1 for run in all_runs(r, 'resync') if run.get('overlap', run.get('cpu') is None)), len(all_runs(r, 'resync'))))
    row('&nbsp;&nbsp;CPU time / `ipvsadm -S -n` CPU time (shown, not judged)',
        lambda r: 'n/a' if r['summary']['cpu_ratio'] is None else '%.1fx' % r['summary']['cpu_ratio'])
    row('CPU at the role\'s default interval (a resync every %.0f s): resyncs an hour; CPU seconds an hour; share of '
        'one CPU' % INTERVAL, lambda r: 'n/a' if r['summary']['cpu_per_hour'] is None else '%.0f; %s s; %.2f%%' % (
            r['summary']['runs_per_hour'], seconds(r['summary']['cpu_per_hour']), 100.0 * r['summary']['cpu_share']))
    return table.rows


def table_lines(heads, rows):
    """The markdown table of rows, a column per head, and a blank line after it."""
    lines = ['| measurement | %s |' % ' | '.join(heads), '|---|%s' % ('---:|' * len(heads))]
    lines.extend('| %s | %s |' % (label, ' | '.join(cells)) for label, cells in rows)
    return lines + ['']


def markdown_watch(results, host, facts, end, args):
    heads = ['watch %s x %d' % ('{:,}'.format(r['services']), r['servers']) for r in results]
    lines = [
        'Seconds; %d round(s) of %d periodic full resync(s) of `netlb-ipvs watch`, each followed by %d '
        '`ipvsadm -S -n`; min / median / max over all of them. On the node, in a new network namespace; '
        'no change to the cluster during the run (every sync after the first is a full resync: /metrics '
        'counted each as `full="true"` and none as a change sync).'
        % (args['repeat'], args['runs'], args.get('saves', 1)),
        '',
        'The resync is in-process work of a long-running process: its own `duration` (the status '
        'file\'s) is the fair measure; `ipvsadm -S -n` is a whole process.',
        '',
    ] + table_lines(heads, rows_for_watch(results))
    lines.append('Kubernetes: cluster shape `%s`, node-7 in zone-b, stand-in API server on the controller.'
                 % args['shape'])
    lines += end_lines(host, facts, end)
    return '\n'.join(lines) + '\n'


def markdown(results, host, facts, end, args):
    if args.get('mode') == 'watch':
        return markdown_watch(results, host, facts, end, args)
    heads = ['%s %s x %d' % (r['case'], '{:,}'.format(r['services']), r['servers']) for r in results]
    lines = [
        'Seconds; %d round(s) of %d converged run(s), each followed by `ipvsadm -S -n` and `python3 -c pass`; '
        'min / median / max over all runs. Every process timed whole, on the node, in a new network namespace.'
        % (args['repeat'], args['runs']),
        '',
    ] + table_lines(heads, rows_for(results))
    if any(r['case'] == 'kubernetes' for r in results):
        lines.append('Kubernetes: cluster shape `%s`, node-7 in zone-b, stand-in API server on the controller.'
                     % args['shape'])
    lines.append('CPU an hour: 3600 / (%.0f + median run) runs, times the median CPU time of a run '
                 '(RandomizedDelaySec, 1.5 s on average, left out).' % INTERVAL)
    lines += end_lines(host, facts, end)
    return '\n'.join(lines) + '\n'


def end_lines(host, facts, end):
    lines = [
        'Controller: %d CPUs, load average %s at start (%s).' % (
            host['cpus'], ' / '.join('%.2f' % x for x in host['loadavg']), host['started']),
        'Lab node: %s, kernel %s, %s (%s), %d vCPUs, %d MiB, Python %s, %s; load average %s at start.' % (
            facts['os'], facts['kernel'], 'qemu TCG' if facts['virt'] == 'qemu' else 'virtualisation',
            facts['virt'], facts['cpus'], facts['memory_mib'], facts['python'], facts['ipvsadm'],
            ' / '.join('%.2f' % x for x in facts['loadavg'])),
    ]
    if end:
        lines.append('At the end: controller load average %s, lab node %s.' % (
            ' / '.join('%.2f' % x for x in end['controller']), ' / '.join('%.2f' % x for x in end['node'])))
    return lines


# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--sizes', default='5000', help='comma-separated service counts (default 5000)')
    parser.add_argument('--servers', type=int, default=10,
                        help='real servers per service, endpoints per Service (default 10)')
    parser.add_argument('--repeat', type=int, default=3, help='rounds (default 3)')
    parser.add_argument('--runs', type=int, default=3, help='converged runs per round (default 3)')
    parser.add_argument('--only', choices=CASES, help='one table only (default: both)')
    parser.add_argument('--mode', choices=('timer', 'watch'), default='timer',
                        help='timer: converged runs of netlb-ipvs reconcile (default); watch: the periodic full '
                             'resyncs of netlb-ipvs watch (kubernetes only; --runs resyncs per round)')
    parser.add_argument('--interval', type=float, default=90.0,
                        help='--mode watch: the watcher\'s --interval in seconds (default 90)')
    parser.add_argument('--saves', type=int, default=2,
                        help='--mode watch: `ipvsadm -S -n` runs after each resync (default 2)')
    parser.add_argument('--shape', choices=('mixed', 'clusterip'), default='mixed',
                        help='the generated cluster (k8s_proxy_bench.py\'s; default mixed)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--run-dir', default=os.path.join(REPO, 'lab', 'run', 'reconcile-bench'),
                        help='the lab run directory (default lab/run/reconcile-bench)')
    parser.add_argument('--prefix', default='rbench', help='lab node name prefix (default rbench)')
    parser.add_argument('--suite', default='bookworm', choices=('bookworm', 'trixie'))
    parser.add_argument('--reuse', action='store_true',
                        help='use the node already running in --run-dir and leave it running')
    parser.add_argument('--keep', action='store_true', help='leave a booted lab running at the end')
    parser.add_argument('--prepare', choices=('apt', 'role', 'none'), default='apt',
                        help='how to install ipvsadm, nftables, conntrack, python3-kubernetes: apt-get (default), '
                             'a play of role ipvs_node, or nothing')
    parser.add_argument('--json', help='also write every figure (and the raw runs) to this JSON file')
    parser.add_argument('--markdown', help='also write the table to this file')
    parser.add_argument('--render', metavar='JSON', help='no lab: print the table of an earlier --json file')
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in re.split(r'[,\s]+', args.sizes.strip()) if size]
    if args.repeat < 1 or args.runs < 1 or args.servers < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error('--sizes, --servers, --repeat and --runs need positive values')
    if args.mode == 'watch':
        if args.only == 'static':
            parser.error('--mode watch follows the kubernetes table only')
        args.only = 'kubernetes'
        if args.saves < 1 or args.interval < 10:
            parser.error('--saves needs a positive value and --interval at least 10 s')
    return args


def controller(argv):
    args = parse_args(argv)
    if args.render:
        with open(args.render) as handle:
            saved = json.load(handle)
        sys.stdout.write(markdown(saved['results'], saved['host'], saved['node'], saved.get('end'), saved['args']))
        return 0
    tb, kb = _helpers()
    cases = (args.only,) if args.only else CASES
    host = {'cpus': os.cpu_count(), 'loadavg': os.getloadavg(), 'started': time.strftime('%Y-%m-%d %H:%M %Z')}
    log('controller load average %s' % ' / '.join('%.2f' % x for x in host['loadavg']))
    lab = tb.Lab(args.run_dir, args.prefix)
    workdir = tempfile.mkdtemp(prefix='netlb-reconcile-bench-')
    server = None
    if not args.reuse:
        lab.up(args.suite)
    try:
        node = lab.node()
        if args.prepare != 'none':
            prepare(tb, lab, node, args.prepare)
        log('installing the entry point on %s as role ipvs_reconcile does' % node.name)
        install(node)
        facts = node.json(['python3', REMOTE + '/ipvs_node_bench.py', 'facts'])
        if 'kubernetes' in cases:
            server = kb.KubeApiServer(os.path.join(workdir, 'api'))
            with open(server.write_kubeconfig(os.path.join(workdir, 'kubeconfig'), host=kb.VM_HOST)) as handle:
                put(node, KUBECONFIG, handle.read(), mode='0600')
        results = []
        for services in args.sizes:
            for case in cases:
                if case == 'static':
                    result = static_case(tb, node, services, args)
                else:
                    result = kubernetes_case(kb, node, server, services, args)
                result['summary'] = summarize_watch(result) if args.mode == 'watch' else summarize(result)
                results.append(result)
        node.run(['python3', REMOTE + '/k8s_proxy_node.py', 'cleanup'])
        end = {'controller': os.getloadavg(), 'node': node.json(['python3', '-c', 'import json, os; '
                                                                 'print(json.dumps(os.getloadavg()))'])}
        shown = {'repeat': args.repeat, 'runs': args.runs, 'shape': args.shape, 'mode': args.mode,
                 'saves': args.saves}
        table = markdown(results, host, facts, end, shown)
        sys.stdout.write(table)
        if args.markdown:
            with open(args.markdown, 'w') as handle:
                handle.write(table)
        if args.json:
            with open(args.json, 'w') as handle:
                json.dump({'host': host, 'node': facts, 'end': end, 'args': shown, 'results': results}, handle,
                          indent=1)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if not (args.reuse or args.keep):
            log('tearing the lab down')
            lab.down()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['node-runs']:  # on the node, inside the namespace
        parser = argparse.ArgumentParser(prog='reconcile_bench.py node-runs')
        parser.add_argument('--runs', type=int, required=True)
        parser.add_argument('--first', action='store_true', help='one reconcile run alone (the load)')
        node_args = parser.parse_args(argv[1:])
        json.dump(node_runs(node_args.runs, node_args.first), sys.stdout)
        sys.stdout.write('\n')
        return 0
    if argv[:1] == ['node-watch']:  # on the node, inside the namespace
        parser = argparse.ArgumentParser(prog='reconcile_bench.py node-watch')
        parser.add_argument('--rounds', type=int, required=True)
        parser.add_argument('--runs', type=int, required=True, help='resyncs per round')
        parser.add_argument('--saves', type=int, required=True, help='ipvsadm -S -n after each resync')
        parser.add_argument('--interval', type=float, required=True)
        node_args = parser.parse_args(argv[1:])
        json.dump(node_watch(node_args.rounds, node_args.runs, node_args.saves, node_args.interval), sys.stdout)
        sys.stdout.write('\n')
        return 0
    return controller(argv)


if __name__ == '__main__':
    sys.exit(main())
