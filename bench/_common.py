# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the controller-side benchmarks share: the lab node (boot, ssh), ansible-playbook
timed end to end, the lines of the tables, and the goals' ratios.

A goal "N x ipvsadm" is judged per round on whole-process wall time against
whole-process wall time (start-up, imports, parsing and validation counted on both
sides), on the median of the rounds' ratios, with min / median / max beside it. A goal
is judged on the measure it names; another measure may be shown beside it
(shown_cell), never judged.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LAB = os.path.join(REPO, 'lab', 'netlb-lab')
MARKER = 'NETLB_BENCH '  # the report line of bench/module_run.yml and k8s_proxy_run.yml
TASK_MARKER = 'NETLB_TASK_SECONDS '  # bench/callback_plugins/netlb_task_clock.py


def log(text):
    sys.stderr.write('[bench %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# The lab node


class Lab(object):
    """One lab (run dir + inventory + prefix) driven through lab/netlb-lab."""

    def __init__(self, run_dir, prefix):
        self.run_dir = os.path.abspath(run_dir)
        self.inventory = os.path.join(self.run_dir, 'hosts.yml')
        self.prefix = prefix

    def _argv(self, *args):
        return [LAB, '--run-dir', self.run_dir, '--inventory', self.inventory, '--prefix', self.prefix] + list(args)

    def up(self, suite):
        subprocess.run(self._argv('up', '--nodes', '1', '--suite', suite), check=True)

    def down(self):
        subprocess.run(self._argv('down'), check=False)

    def node(self):
        out = subprocess.run(self._argv('status', '--json'), check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
        nodes = [node for node in json.loads(out) if node.get('pid')]
        if not nodes:
            raise SystemExit('no running node in %s (drop --reuse to boot one)' % self.run_dir)
        return Node(nodes[0])


class Node(object):
    """ssh to a lab node as root."""

    def __init__(self, info):
        self.name = info['name']
        self.info = info

    def ssh_argv(self, command):
        info = self.info
        return ['ssh', '-i', info['key'], '-p', str(info['port']), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
                '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
                '-o', 'ConnectTimeout=20', '%s@%s' % (info['user'], info['host']), command]

    def run(self, command, data=None, capture=True, timeout=7200):
        """Run a shell command on the node; stderr goes to ours (progress); returns stdout."""
        if not isinstance(command, str):
            command = ' '.join(shlex.quote(str(arg)) for arg in command)
        proc = subprocess.run(self.ssh_argv(command), input=data, stdout=subprocess.PIPE if capture else None,
                              stdin=None if data is not None else subprocess.DEVNULL, universal_newlines=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise SystemExit('on %s: %s -> rc=%d' % (self.name, command, proc.returncode))
        return proc.stdout

    def json(self, argv):
        return json.loads(self.run(argv))


def add_lab_arguments(parser, run_dir, prefix, prepare_help):
    """The options every lab benchmark takes: where its lab lives, how it is prepared,
    where the figures go."""
    parser.add_argument('--run-dir', default=os.path.join(REPO, 'lab', 'run', run_dir),
                        help='the lab run directory (default lab/run/%s)' % run_dir)
    parser.add_argument('--prefix', default=prefix, help='lab node name prefix (default %s)' % prefix)
    parser.add_argument('--suite', default='bookworm', choices=('bookworm', 'trixie'))
    parser.add_argument('--reuse', action='store_true',
                        help='use the node already running in --run-dir and leave it running')
    parser.add_argument('--keep', action='store_true', help='leave the lab running at the end')
    parser.add_argument('--prepare', choices=('role', 'apt', 'none'), default='role', help=prepare_help)
    parser.add_argument('--json', help='also write every figure (and the raw rounds) to this JSON file')
    parser.add_argument('--markdown', help='also write the table to this file')


# ---------------------------------------------------------------------------
# ansible-playbook from the controller


def ansible_playbook():
    """ansible-playbook of the interpreter running us (the venv), else from PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return beside if os.access(beside, os.X_OK) else 'ansible-playbook'


def ansible_env():
    # netlb_task_clock (bench/callback_plugins) times the module's task itself.
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'),
               ANSIBLE_CALLBACKS_ENABLED='netlb_task_clock')
    return env


def timed_playbook(argv):
    """(seconds end to end, the report of the MARKER line, the first task's own seconds)
    of one ansible-playbook run that must succeed."""
    start = time.perf_counter()
    proc = subprocess.run([ansible_playbook()] + list(argv), cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit('ansible-playbook failed (rc=%d):\n%s\n%s' % (proc.returncode, proc.stdout[-4000:],
                                                                       proc.stderr[-4000:]))
    return wall, parse_report(proc.stdout), task_seconds(proc.stdout)[0]


def task_seconds(stdout):
    """The netlb_task_clock lines' seconds, in task order."""
    found = [json.loads(line.split(TASK_MARKER, 1)[1])['seconds'] for line in stdout.splitlines()
             if line.startswith(TASK_MARKER)]
    if not found:
        raise SystemExit('no %sline in the ansible-playbook output:\n%s' % (TASK_MARKER, stdout[-4000:]))
    return found


def parse_report(stdout):
    """The module's report from the debug task's line: "msg": "NETLB_BENCH {...}"."""
    for line in stdout.splitlines():
        if MARKER in line and '"msg"' in line:
            message = json.loads('{%s}' % line.strip().rstrip(','))['msg']
            return json.loads(message[len(MARKER):])
    raise SystemExit('no %sline in the ansible-playbook output:\n%s' % (MARKER, stdout[-4000:]))


# ---------------------------------------------------------------------------
# The tables


def seconds(value):
    if value is None:
        return 'n/a'
    if value >= 100:
        return '%.0f' % value
    if value >= 10:
        return '%.1f' % value
    return '%.2f' % value


def machine_lines(host, facts):
    """The controller and the lab node a table was measured on, for the figures' footnote."""
    return [
        'Controller: %d CPUs, load average %s at start (%s).' % (
            host['cpus'], ' / '.join('%.2f' % x for x in host['loadavg']), host['started']),
        'Lab node: %s, kernel %s, %s (%s), %d vCPUs, %d MiB, Python %s, %s; load average %s at start.' % (
            facts['os'], facts['kernel'], 'qemu TCG' if facts['virt'] == 'qemu' else 'virtualisation',
            facts['virt'], facts['cpus'], facts['memory_mib'], facts['python'], facts['ipvsadm'],
            ' / '.join('%.2f' % x for x in facts['loadavg'])),
    ]


def round_ratios(numerators, denominators):
    """numerator / denominator of each round (rounds where either is missing left out)."""
    return [top / bottom for top, bottom in zip(numerators, denominators) if top is not None and bottom]


def spread(ratios):
    """'min a / median b / max c of N rounds' of per-round ratios."""
    return 'min %.2f / median %.2f / max %.2f of %d round(s)' % (
        min(ratios), statistics.median(ratios), max(ratios), len(ratios))


def goal_cell(ratios, limit, judged=True, judged_at=None):
    """The median of the rounds' ratios against limit, the spread beside it. judged False:
    the goal is for another size (judged_at), the ratio is only shown."""
    if not ratios:
        return 'n/a'
    ratio = statistics.median(ratios)
    if not judged:
        return '%.2fx (goal judged at %s; %s)' % (ratio, '{:,}'.format(judged_at), spread(ratios))
    return '%.2fx %s (%s)' % (ratio, 'met' if ratio <= limit else '**NOT met**', spread(ratios))


def shown_cell(ratios):
    """A second measure beside a goal: its ratio and spread, never a verdict."""
    if not ratios:
        return 'n/a'
    return '%.2fx, shown, not judged (%s)' % (statistics.median(ratios), spread(ratios))
