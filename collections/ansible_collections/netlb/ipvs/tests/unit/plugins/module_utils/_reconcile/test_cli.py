# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The netlb-ipvs commands: main()'s exit codes and output on one node (fakes.Node),
the parser that never exits the process, and the launcher (bin/netlb-ipvs) run as the
node runs it, in a process of its own."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import cli, config, run
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import (
    STATIC_SERVICES,
    parse_logfmt,
)

LAUNCHER = str(pathlib.Path(cli.__file__).resolve().parents[3] / 'bin' / 'netlb-ipvs')


class Output(object):
    def __init__(self):
        self.out, self.err = [], []


def main(node, *argv):
    """cli.main as the launcher calls it, on node's paths; (exit code, Output)."""
    args = cli.parser().parse_args(['--state-dir', os.path.dirname(node.paths.status),
                                    '--lock-file', node.paths.lock] + list(argv))
    args.what = 'netlb-ipvs %s (test)' % args.command
    output = Output()
    code = cli.main(args, node.runner, output.out.append, output.err.append)
    return code, output


def converged(node, stack):
    node.write_config(static=node.static())


def kernel_refuses(node, stack):
    node.write_config(static=node.static(), node={'modules': ['ip_vs_mh'], 'sysctl': {}})
    node.runner.answers['modprobe'] = (1, '', 'modprobe: FATAL: Module ip_vs_mh not found')


def bad_config(node, stack):
    node.write_config(static=node.static(services=[dict(STATIC_SERVICES[0], port=70000)]))


def no_config(node, stack):
    pass


def busy(node, stack):
    node.write_config(static=node.static())
    stack.enter_context(_run_lock.held('netlb-ipvs pull (systemd)', path=node.paths.lock))


def paused(node, stack):
    node.write_config(static=node.static())
    run.pause('maintenance', node.paths.pause)


def paused_with_a_bad_config(node, stack):
    bad_config(node, stack)
    run.pause('maintenance', node.paths.pause)


@pytest.mark.parametrize('setup, code, result', [
    pytest.param(converged, cli.EXIT_OK, 'ok', id='converged'),
    pytest.param(kernel_refuses, cli.EXIT_FAILED, 'failed', id='a part failed'),
    pytest.param(bad_config, cli.EXIT_CONFIG, 'failed', id='bad config'),
    pytest.param(no_config, cli.EXIT_CONFIG, 'failed', id='no config'),
    pytest.param(busy, cli.EXIT_BUSY, 'busy', id='busy'),
    pytest.param(paused, cli.EXIT_OK, 'paused', id='paused'),
    pytest.param(paused_with_a_bad_config, cli.EXIT_OK, 'paused', id='paused with a bad config'),
])
def test_reconcile_exit_codes(node, setup, code, result):
    with contextlib.ExitStack() as stack:
        setup(node, stack)
        exit_code, output = main(node, 'reconcile', '--config', node.paths.config)
    assert exit_code == code
    assert len(output.out) == 1 and parse_logfmt(output.out[0])[0] == ('result', result)
    assert output.err == []


def test_verbose_prints_the_warnings(node):
    not_a_directory = node.tmp / 'textfile.prom'
    not_a_directory.write_text('')
    node.write_config(metrics_dir=str(not_a_directory))
    code, quiet = main(node, 'reconcile', '--config', node.paths.config)
    code, verbose = main(node, 'reconcile', '--config', node.paths.config, '--verbose')
    assert code == cli.EXIT_OK and quiet.err == []
    assert len(verbose.err) == 1 and verbose.err[0].startswith('warning: status or metrics not written: ')
    assert ('warnings', '1') in parse_logfmt(verbose.out[0])


def test_verbose_says_where_the_static_part_spent_its_time(node):
    node.write_config(static=node.static())
    code, output = main(node, 'reconcile', '--config', node.paths.config, '--verbose')
    assert code == cli.EXIT_OK
    timings = [line for line in output.err if line.startswith('timings static: ')]
    assert len(timings) == 1, output.err
    steps = dict(word.split('=') for word in timings[0][len('timings static: '):].split())
    assert {'read', 'plan'} <= set(steps) and all(value.endswith('s') for value in steps.values()), steps


def test_pause_resume_and_status(node):
    node.write_config(static=node.static())
    assert main(node, 'reconcile', '--config', node.paths.config)[0] == cli.EXIT_OK
    code, output = main(node, 'pause', '--reason', 'disk "sdb" swap')
    assert code == cli.EXIT_OK and output.out == [
        'paused: reconcile runs on this node do nothing until `netlb-ipvs resume`']
    code, output = main(node, 'status')
    shown = json.loads('\n'.join(output.out))
    assert code == cli.EXIT_OK and shown['paused'] == 'disk "sdb" swap' and shown['lock_holder'] is None
    assert shown['runs'] == dict(ok=1, failed=0, paused=0, busy=0) and shown['last_result'] == 'ok'
    assert shown['tables'] == {'static': [len(STATIC_SERVICES), 3]}
    assert main(node, 'resume')[1].out == ['resumed']
    assert main(node, 'resume')[1].out == ['not paused']
    with _run_lock.held('netlb-ipvs reconcile (systemd)', path=node.paths.lock):
        shown = json.loads('\n'.join(main(node, 'status')[1].out))
    assert shown['paused'] is None and ', netlb-ipvs reconcile (systemd), ' in shown['lock_holder']


@pytest.mark.parametrize('argv, words, status', [
    pytest.param(['frobnicate'], "invalid choice: 'frobnicate'", cli.EXIT_CONFIG, id='unknown command'),
    pytest.param([], 'required: command', cli.EXIT_CONFIG, id='no command'),
    pytest.param(['reconcile', '--wait'], 'expected one argument', cli.EXIT_CONFIG, id='option without value'),
    pytest.param(['reconcile', '--wait', 'soon'], "invalid float value: 'soon'", cli.EXIT_CONFIG, id='bad value'),
    pytest.param(['pause', '--colour', 'red'], 'unrecognized arguments', cli.EXIT_CONFIG, id='unknown option'),
    pytest.param(['--help'], '', cli.EXIT_OK, id='help'),
])
def test_the_parser_never_exits_the_process(capsys, argv, words, status):
    with pytest.raises(cli.UsageError) as error:
        cli.parser().parse_args(argv)
    assert words in str(error.value) and error.value.status == status
    if status == cli.EXIT_OK:  # argparse printed the help, once
        assert capsys.readouterr().out.startswith('usage: netlb-ipvs ')


@pytest.mark.parametrize('given, document, timeout', [
    pytest.param(['--timeout', '60'], {'timeout': 120}, 60, id='the option wins'),
    pytest.param([], {'timeout': 120}, 120, id='the config'),
    pytest.param([], {}, config.DEFAULT_TIMEOUT, id='not in the config'),
    pytest.param([], {'timeout': 0}, config.DEFAULT_TIMEOUT, id='not a timeout'),
    pytest.param([], {'timeout': True}, config.DEFAULT_TIMEOUT, id='a boolean'),
    pytest.param([], '{"timeout": 12', config.DEFAULT_TIMEOUT, id='not JSON'),
    pytest.param([], ['timeout'], config.DEFAULT_TIMEOUT, id='not an object'),
    pytest.param([], None, config.DEFAULT_TIMEOUT, id='no config file'),
])
def test_timeout_of(tmp_path, given, document, timeout):
    path = tmp_path / 'reconcile.json'
    if document is not None:
        path.write_text(document if isinstance(document, str) else json.dumps(document))
    args = cli.parser().parse_args(['reconcile', '--config', str(path)] + given)
    assert cli.timeout_of(args) == timeout


@pytest.mark.parametrize('pull, argv', [
    pytest.param({'url': 'https://git/lb.git', 'directory': '/var/lib/pull', 'playbook': 'site.yml'},
                 ['ansible-pull', '--url', 'https://git/lb.git', '--checkout', 'main', '--directory', '/var/lib/pull',
                  '--clean', 'site.yml'], id='the least'),
    pytest.param({'url': 'u', 'branch': 'prod', 'directory': 'd', 'playbook': 'p.yml', 'inventory': 'inv/prod',
                  'verify_commit': True, 'extra_args': ['--limit', 'lb1']},
                 ['ansible-pull', '--url', 'u', '--checkout', 'prod', '--directory', 'd', '--clean', '--inventory',
                  'inv/prod', '--verify-commit', '--limit', 'lb1', 'p.yml'], id='everything'),
])
def test_pull_argv(pull, argv):
    assert cli.pull_argv(pull) == argv


RECAP = 'PLAY RECAP ***\nlb1 : ok=12 changed=3 unreachable=0 failed=0 skipped=1\n'


@pytest.mark.parametrize('answer, code, result, changed', [
    pytest.param((0, RECAP, ''), cli.EXIT_OK, 'ok', '3', id='pulled and ran'),
    pytest.param((2, RECAP.replace('failed=0', 'failed=1'), 'fatal: lb1 broke'), cli.EXIT_FAILED, 'failed', '3',
                 id='the playbook failed'),
])
def test_pull(node, answer, code, result, changed):
    node.write_config(pull={'url': 'https://git/lb.git', 'directory': str(node.tmp / 'pull'), 'playbook': 'site.yml',
                            'gnupg_home': '/etc/netlb-ipvs/gnupg'})
    node.runner.answers.update({'ansible-pull': answer, 'env': answer})
    exit_code, output = main(node, 'pull', '--config', node.paths.config)
    assert exit_code == code
    pairs = dict(parse_logfmt(output.out[0]))
    assert (pairs['result'], pairs['pull']) == (result, 'changed:%s' % changed)
    # ansible-pull in a UTF-8 locale (it refuses the runner's C), with the role's keyring
    assert node.runner.calls[0][:5] == ['/usr/sbin/env', 'LC_ALL=C.UTF-8', 'LANG=C.UTF-8',
                                        'GNUPGHOME=/etc/netlb-ipvs/gnupg', '/usr/sbin/ansible-pull']
    assert node.status().runs[result] == 1


def test_pull_without_a_pull_section_fails(node):
    node.write_config()
    exit_code, output = main(node, 'pull', '--config', node.paths.config)
    assert exit_code == cli.EXIT_CONFIG and node.runner.calls == []
    assert 'no pull section' in dict(parse_logfmt(output.out[0]))['error']


# ------------------------------------------------------------------ the launcher
@pytest.fixture
def launch(tmp_path):
    """Run bin/netlb-ipvs in a process of its own with this Python, every path in
    tmp_path; returns the CompletedProcess."""
    env = dict((name, value) for name, value in os.environ.items()
               if not name.startswith('K8S_AUTH_') and name not in ('INVOCATION_ID', 'KUBECONFIG'))
    state, lock_file = str(tmp_path / 'state'), str(tmp_path / 'run' / 'reconcile.lock')

    def launch(*argv, python_options=()):
        return subprocess.run([sys.executable] + list(python_options) + [
            LAUNCHER, '--state-dir', state, '--lock-file', lock_file] + list(argv),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=60, check=False)
    return launch


@pytest.fixture
def node_only_config(tmp_path):
    path = tmp_path / 'reconcile.json'
    path.write_text(json.dumps({'version': 1, 'node': {'modules': [], 'sysctl': {}}}))
    return str(path)


def test_the_launcher_runs_without_ansible_and_prints_one_line(launch, node_only_config):
    # -S: no site-packages, so no ansible-core: the node's own Python has none.
    done = launch('reconcile', '--config', node_only_config, python_options=['-S'])
    assert (done.returncode, done.stderr) == (cli.EXIT_OK, '')
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith('result=ok ')


def test_the_launcher_pauses(launch, node_only_config):
    done = launch('pause', '--reason', 'x')
    assert done.returncode == cli.EXIT_OK
    done = launch('reconcile', '--config', node_only_config)
    assert done.returncode == cli.EXIT_OK and done.stdout.startswith('result=paused ')
    assert 'reason="x"' in done.stdout and len(done.stdout.splitlines()) == 1


@pytest.mark.parametrize('argv, code, stream, words', [
    pytest.param(['frobnicate'], cli.EXIT_CONFIG, 'stderr',
                 ["netlb-ipvs: argument command: invalid choice: 'frobnicate'", "'reconcile'", "'status'"],
                 id='unknown command'),
    pytest.param(['reconcile', '--config', '/nonexistent/netlb-ipvs.json'], cli.EXIT_CONFIG, 'stdout',
                 ['result=failed', '/nonexistent/netlb-ipvs.json: no such file'], id='missing config'),
    pytest.param(['--help'], cli.EXIT_OK, 'stdout', ['usage: netlb-ipvs', 'reconcile', 'resume'], id='help'),
])
def test_the_launcher_refuses_clearly(launch, argv, code, stream, words):
    done = launch(*argv)
    text = getattr(done, stream)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert all(word in text for word in words), text
    assert 'Traceback' not in done.stdout + done.stderr
    assert text.count('usage: netlb-ipvs') <= 1  # help once, not once per stream
    assert getattr(done, 'stdout' if stream == 'stderr' else 'stderr') == ''
