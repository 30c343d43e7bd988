# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The `netlb-ipvs` commands. The launcher (bin/netlb-ipvs) is the shell: it owns the
process (signals, the timeout, the garbage collector, printing, the exit code) and
hands main() a command runner and an output function; nothing here changes the process.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    netlb-ipvs reconcile [--config PATH] [--wait SECONDS] [--timeout SECONDS] [--verbose]
    netlb-ipvs pull      [--config PATH]
    netlb-ipvs watch     [--config PATH] [--min-sync SPAN] [--interval SPAN] [--listen ADDRESS:PORT] [--verbose]
    netlb-ipvs pause     [--reason TEXT]
    netlb-ipvs resume
    netlb-ipvs status

watch runs until the shell sets its stop event (SIGTERM): _watch/node.py.

Exit codes: 0 converged (or paused, or a watch stopped), 1 the run failed or was refused, 2 the config is
bad, 75 another run holds the lock (EX_TEMPFAIL: the next tick tries again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._command import CommandError
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import run, status

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 75
STATE_DIR = os.path.dirname(status.DEFAULT_PATH)
_RECAP = re.compile(r'^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


class UsageError(Exception):
    """Bad command line, or --help shown (argparse would exit the process; the shell
    decides that). status: the exit code, 0 after --help."""

    def __init__(self, message, status=EXIT_CONFIG):
        super(UsageError, self).__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError('%s: %s' % (self.prog, message))

    def exit(self, status=0, message=None):
        # Only --help ends here (error() is above): argparse has printed the help already.
        raise UsageError(message or '', status)


def parser():
    top = _Parser(prog='netlb-ipvs', description='Keep this node\'s IPVS table converged (netlb.ipvs).')
    top.add_argument('--state-dir', default=STATE_DIR,
                     help='where the status and the pause switch live (default %(default)s)')
    top.add_argument('--lock-file', default=_run_lock.DEFAULT_PATH, help='the run lock (default %(default)s)')
    commands = top.add_subparsers(dest='command', required=True)
    one = commands.add_parser('reconcile', help='one reconcile run from the node config')
    one.add_argument('--config', default=node_config.DEFAULT_PATH)
    one.add_argument('--wait', type=float, default=0.0,
                     help='seconds to wait for another run to finish (default 0: exit 75 at once)')
    one.add_argument('--timeout', type=int, default=None,
                     help='seconds the run may take (default: the config\'s timeout)')
    one.add_argument('--verbose', action='store_true', help='also print the warnings, one per line, and where each part spent its time')
    pull = commands.add_parser('pull', help='ansible-pull the configured repository and run its playbook')
    pull.add_argument('--config', default=node_config.DEFAULT_PATH)
    follow = commands.add_parser('watch', help='follow the cluster and sync each change (runs until SIGTERM)')
    follow.add_argument('--config', default=node_config.DEFAULT_PATH)
    follow.add_argument('--min-sync', type=duration, default=1.0,
                        help='least time between two syncs, changes coalesced (a time span: 1s, 500ms; default 1s)')
    follow.add_argument('--interval', type=duration, default=300.0,
                        help='time between full resyncs, the kernel read again (default 5min)')
    follow.add_argument('--listen', type=listen_address, default='127.0.0.1:10266',
                        help="/healthz and /metrics on this address (default %(default)s; '' serves none)")
    follow.add_argument('--verbose', action='store_true',
                        help='after each sync\'s line, where each part spent its time (to stderr)')
    stop = commands.add_parser('pause', help='pause reconciling on this node (maintenance)')
    stop.add_argument('--reason', default='', help='shown in the journal and the metrics')
    commands.add_parser('resume', help='lift a pause')
    commands.add_parser('status', help='counters, the last run, the pause and the lock holder, as JSON')
    return top


_SPAN = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|sec|m|min|h)?\s*$')
_SPAN_UNITS = {None: 1.0, 'ms': 0.001, 's': 1.0, 'sec': 1.0, 'm': 60.0, 'min': 60.0, 'h': 3600.0}


def duration(text):
    """Seconds of a time span: 1.5, 500ms, 1s, 5min, 1h (systemd's units, one of them)."""
    match = _SPAN.match(text)
    if not match:
        raise argparse.ArgumentTypeError('%r is not a time span (like 500ms, 1s, 5min)' % text)
    return float(match.group(1)) * _SPAN_UNITS[match.group(2)]


def listen_address(text):
    """(address, port) of ADDRESS:PORT ([v6]:PORT for IPv6), or None for ''."""
    if not text:
        return None
    address, _sep, port = text.rpartition(':')
    address = address[1:-1] if address.startswith('[') and address.endswith(']') else address
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError('%r is not ADDRESS:PORT (like 127.0.0.1:10266)' % text)
    return address, int(port)


def timeout_of(args):
    """The run's timeout in seconds: --timeout, else the config's, else the default."""
    if getattr(args, 'timeout', None):
        return args.timeout
    try:  # the JSON only: the run checks the whole config (a big table takes a while)
        with open(args.config) as handle:
            timeout = json.load(handle).get('timeout')
    except (OSError, ValueError, AttributeError):  # the run reports a bad config
        timeout = None
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        return timeout
    return node_config.DEFAULT_TIMEOUT


def paths_of(args):
    return run.Paths(config=getattr(args, 'config', node_config.DEFAULT_PATH), lock=args.lock_file,
                     status=os.path.join(args.state_dir, os.path.basename(status.DEFAULT_PATH)),
                     pause=os.path.join(args.state_dir, os.path.basename(run.PAUSE_PATH)))


def main(args, runner, out, err, stop=None):
    """Run the parsed command; returns the exit code. out/err print one line each.
    stop: the watch's threading.Event, set by the shell to end it."""
    paths = paths_of(args)
    if args.command == 'watch':
        from ansible_collections.netlb.ipvs.plugins.module_utils._watch import node as watch_node
        return watch_node.watch(runner, paths, out, err, stop, min_sync=args.min_sync, interval=args.interval,
                                listen=args.listen, verbose=args.verbose)
    if args.command == 'reconcile':
        report = run.reconcile(runner, paths=paths, wait=args.wait, what=args.what)
        out(status.journal_line(report))
        if args.verbose:
            for warning in report.warnings:
                err('warning: %s' % warning)
            for line in status.timing_lines(report):
                err(line)
        return exit_code(report)
    if args.command == 'pull':
        return _pull(runner, paths, out, err)
    if args.command == 'pause':
        run.pause(args.reason, paths.pause)
        out('paused: reconcile runs on this node do nothing until `netlb-ipvs resume`')
        return EXIT_OK
    if args.command == 'resume':
        out('resumed' if run.resume(paths.pause) else 'not paused')
        return EXIT_OK
    current = status.load(paths.status)
    out(json.dumps({'paused': run.paused(paths.pause), 'lock_holder': _run_lock.holder(paths.lock, check=True) or None,
                    'last_run': current.last_run, 'last_result': current.last_result,
                    'last_success': current.last_success, 'last_duration': current.last_duration,
                    'runs': current.runs, 'changes': current.changes,
                    'drift_corrections': current.drift_corrections, 'tables': current.tables},
                   indent=2, sort_keys=True))
    return EXIT_OK


def exit_code(report):
    """0 ok or paused, 75 busy, 2 when only the config failed, else 1."""
    if report.result == 'busy':
        return EXIT_BUSY
    if report.result != 'failed':
        return EXIT_OK
    return EXIT_CONFIG if all(line.startswith('config:') for line in report.errors) else EXIT_FAILED


def pull_argv(pull, ansible_pull='ansible-pull'):
    """ansible-pull's command line for the config's pull section."""
    argv = [ansible_pull, '--url', pull['url'], '--checkout', pull.get('branch') or 'main',
            '--directory', pull['directory'], '--clean']
    if pull.get('inventory'):
        argv += ['--inventory', pull['inventory']]
    if pull.get('verify_commit'):
        argv.append('--verify-commit')
    argv += list(pull.get('extra_args') or [])
    argv.append(pull['playbook'])
    return argv


def _pull(runner, paths, out, err):
    """ansible-pull: the playbook's modules take the run lock themselves (holding it here
    would make them wait for us), so this only pauses, times and counts."""
    report = status.Report(result='ok', started=time.time())
    begun = time.perf_counter()
    reason = run.paused(paths.pause)
    config = None
    try:
        config = node_config.load(paths.config)
    except ValidationError as exc:
        report.errors.append('config: %s' % exc)
    if reason is not None:
        report.result, report.paused = 'paused', reason
        report.errors = []
    elif config is not None and config.pull is None:
        report.errors.append('config: pull: no pull section (ipvs_reconcile_mode is not pull)')
    elif config is not None:
        try:
            # Ansible refuses the C locale the runner sets for parsed output: UTF-8 for it.
            environment = ['LC_ALL=C.UTF-8', 'LANG=C.UTF-8']
            if config.pull.get('gnupg_home'):
                environment.append('GNUPGHOME=%s' % config.pull['gnupg_home'])
            argv = [runner.which('env')] + environment + pull_argv(config.pull, runner.which('ansible-pull'))
            result = runner.run(argv, check=False)
            recap = _RECAP.findall(result.stdout)
            report.changes['pull'] = {'changed': sum(int(changed) for _ok, changed, _u, _f in recap)}
            if result.rc != 0:
                tail = ' | '.join(line for line in (result.stderr or result.stdout).strip().splitlines()[-3:])
                report.errors.append('pull: ansible-pull failed (rc=%d): %s' % (result.rc, tail))
        except (CommandError, FileError, run.RunTimeout) as exc:  # RunTimeout: systemd's stop, still counted
            report.errors.append('pull: %s' % exc)
    report.duration = time.perf_counter() - begun
    run.record(report, config, paths)
    out(status.journal_line(report))
    return exit_code(report)
