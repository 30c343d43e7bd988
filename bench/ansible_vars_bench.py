#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the way a big table reaches a task changes what ansible-core costs, on the
controller alone (connection local, no VM): the benchmark table handed to a module that
only counts it (library/bench_table_echo.py): loaded with `-e @file` (as group_vars
or host_vars are), read in the task with lookup('file') | from_json (a list), and read
with lookup('file') alone (JSON text, which ipvs_virtual_server also takes).

    .venv/bin/python bench/ansible_vars_bench.py [--sizes 1000,5000]

Prints one markdown table; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ipvs_node_bench as NODE  # noqa: E402  (the table generator, shared with the lab benchmark)

PLAY = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - bench_table_echo:
        services: "{{ %s }}"
'''
WAYS = (
    ('`-e @table.json` (like group_vars)', 'bench_services', lambda path: ['-e', '@' + path + '.vars']),
    ("`lookup('file')` piped to `from_json` in the task", "lookup('ansible.builtin.file', bench_table_file) | from_json",
     lambda path: ['-e', 'bench_table_file=' + path]),
    ("`lookup('file')` alone: the table as JSON text", "lookup('ansible.builtin.file', bench_table_file)",
     lambda path: ['-e', 'bench_table_file=' + path]),
)


def run(playbook, extra):
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    env = dict(os.environ, ANSIBLE_LIBRARY=os.path.join(HERE, 'library'), ANSIBLE_LOCALHOST_WARNING='false')
    argv = [ansible_playbook, '-i', 'localhost,', '-e', 'ansible_python_interpreter=' + sys.executable, playbook]
    start = time.perf_counter()
    subprocess.run(argv + extra, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='1000,5000')
    parser.add_argument('--servers', type=int, default=10)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(',')]
    rows = dict((label, []) for label, _expr, _extra in WAYS)
    with tempfile.TemporaryDirectory(prefix='netlb-vars-bench-') as work:
        for size in sizes:
            table = NODE.table_params(size, args.servers)
            path = os.path.join(work, 'table%d.json' % size)
            with open(path, 'w') as handle:
                json.dump(table, handle)
            with open(path + '.vars', 'w') as handle:
                json.dump({'bench_services': table}, handle)
            for label, expression, extra in WAYS:
                playbook = os.path.join(work, 'play.yml')
                with open(playbook, 'w') as handle:
                    handle.write(PLAY % expression)
                rows[label].append(run(playbook, extra(path)))
    print('Seconds, `ansible-playbook` end to end, one task, connection local.\n')
    print('| table handed over with | %s |' % ' | '.join('%s x %d' % (format(s, ','), args.servers) for s in sizes))
    print('|---|%s' % ('---:|' * len(sizes)))
    for label, times in rows.items():
        print('| %s | %s |' % (label, ' | '.join('%.1f' % t for t in times)))


if __name__ == '__main__':
    main()
