# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import sys
import time

import pytest

from ansible.module_utils import basic

from ansible_collections.netlb.ipvs.plugins.module_utils._command import (
    C_LOCALE,
    RC_NOT_STARTED,
    CommandError,
    Runner,
    format_cmd,
)
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args


@pytest.fixture
def real_module():
    """A real AnsibleModule, so run_command is the one modules use."""
    with patch_module_args({}):
        yield basic.AnsibleModule(argument_spec={})


PRINT_ENV = 'import os, sys; sys.stdout.write(os.environ.get("LANG", "") + "/" + os.environ.get("LC_ALL", ""))'
ECHO_STDIN = 'import sys; sys.stdout.write(sys.stdin.read())'
FAIL = 'import sys; sys.stdout.write("out"); sys.stderr.write("bad thing\\n"); sys.exit(3)'


class FakeModule:
    """The slice of AnsibleModule the runner uses, recording each call."""

    def __init__(self, rc=0, stdout='', stderr='', raises=None, binaries=None):
        self.calls = []
        self.answer = (rc, stdout, stderr)
        self.raises = raises
        self.binaries = binaries or {}

    def run_command(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        if self.raises:
            raise self.raises
        return self.answer

    def get_bin_path(self, name, opt_dirs=None):
        return self.binaries.get(name)


@pytest.mark.parametrize('argv, data, check, ok_rc, expect_rc, expect_stdout, expect_error', [
    pytest.param([sys.executable, '-c', PRINT_ENV], None, True, (0,), 0, 'C/C', None, id='c-locale'),
    pytest.param([sys.executable, '-c', ECHO_STDIN], 'a\nb', True, (0,), 0, 'a\nb', None, id='stdin-verbatim'),
    pytest.param([sys.executable, '-c', FAIL], None, True, (0,), None, None, 'bad thing', id='failure-raises'),
    pytest.param([sys.executable, '-c', FAIL], None, False, (0,), 3, 'out', None, id='failure-unchecked'),
    pytest.param([sys.executable, '-c', FAIL], None, True, (0, 3), 3, 'out', None, id='rc-accepted'),
    pytest.param(['/nonexistent/prog', 'x'], None, True, (0,), None, None, 'No such file', id='cannot-start'),
])
def test_run_real_module(real_module, argv, data, check, ok_rc, expect_rc, expect_stdout, expect_error):
    runner = Runner(real_module)
    if expect_error:
        with pytest.raises(CommandError) as info:
            runner.run(argv, check=check, data=data, ok_rc=ok_rc)
        assert expect_error in str(info.value)
        assert info.value.argv == argv
        assert set(info.value.as_dict()) == {'cmd', 'rc', 'stdout', 'stderr'}
    else:
        result = runner.run(argv, check=check, data=data, ok_rc=ok_rc)
        assert (result.rc, result.stdout) == (expect_rc, expect_stdout)


def test_run_with_module_passes_argv_and_locale():
    module = FakeModule(rc=0, stdout='ok')
    result = Runner(module).run(['ipvsadm', '-S', '-n'], data='x')
    argv, kwargs = module.calls[0]
    assert argv == ['ipvsadm', '-S', '-n']
    assert kwargs['environ_update'] == C_LOCALE
    assert kwargs['expand_user_and_vars'] is False
    assert kwargs['handle_exceptions'] is False
    assert kwargs['binary_data'] is True and kwargs['data'] == 'x'
    assert result.stdout == 'ok'


@pytest.mark.parametrize('module, expect_rc, expect_in_message', [
    pytest.param(FakeModule(rc=2, stdout='', stderr='Memory allocation problem'), 2, 'Memory allocation problem', id='rc'),
    pytest.param(FakeModule(raises=OSError(2, 'No such file or directory')), RC_NOT_STARTED, 'No such file', id='oserror'),
    pytest.param(FakeModule(rc=1, stdout='only stdout', stderr=''), 1, 'only stdout', id='stdout-when-no-stderr'),
])
def test_run_with_module_errors(module, expect_rc, expect_in_message):
    with pytest.raises(CommandError) as info:
        Runner(module).run(['modprobe', '-a', 'ip_vs'])
    assert info.value.rc == expect_rc
    assert expect_in_message in str(info.value)
    assert info.value.cmd == 'modprobe -a ip_vs'


SLEEP = 'import time; time.sleep(30)'


@pytest.mark.parametrize('check', [True, False])
def test_a_program_past_its_timeout_is_killed_and_an_error(real_module, check):
    """Whatever check says: a timed-out run has no answer to read."""
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        Runner(real_module).run([sys.executable, '-c', SLEEP], check=check, timeout=0.5)
    assert time.monotonic() - started < 10
    assert str(info.value) == '%s -c %s timed out after 0.5 s (killed)' % (sys.executable, "'%s'" % SLEEP)
    assert info.value.argv == [sys.executable, '-c', SLEEP]  # as asked, without timeout(1) in front


def test_a_program_within_its_timeout_answers(real_module):
    assert Runner(real_module).run([sys.executable, '-c', ECHO_STDIN], data='x', timeout=30).stdout == 'x'


def test_without_timeout_program_the_run_is_unbounded():
    module = FakeModule(rc=0, stdout='ok')
    assert Runner(module).run(['nft', 'list', 'tables'], timeout=5).stdout == 'ok'
    assert module.calls[0][0] == ['nft', 'list', 'tables']


@pytest.mark.parametrize('argv', [[], 'modprobe ip_vs', b'modprobe'])
def test_run_refuses_non_lists(argv):
    with pytest.raises(ValueError):
        Runner(FakeModule()).run(argv)


def test_which(real_module):
    assert Runner(FakeModule(binaries={'modprobe': '/usr/sbin/modprobe'})).which('modprobe') == '/usr/sbin/modprobe'
    assert Runner(FakeModule()).which('ipvsadm', required=False) is None
    with pytest.raises(CommandError) as info:
        Runner(FakeModule()).which('ipvsadm')
    assert info.value.rc == RC_NOT_STARTED and 'ipvsadm: command not found' in str(info.value)
    assert Runner(real_module).which(sys.executable) == sys.executable


def test_format_cmd_quotes():
    assert format_cmd(['echo', 'a b', "it's"]) == "echo 'a b' 'it'\"'\"'s'"
