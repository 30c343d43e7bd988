# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The run lock: one holder at a time, in this process or another, named to whoever
waits; waiting gives up or succeeds on time; the kernel frees it when the holder dies."""

from __future__ import annotations

import fcntl
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock

# The directory holding ansible_collections, for a second Python process.
COLLECTIONS = str(pathlib.Path(_run_lock.__file__).resolve().parents[5])
HOLDER = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
with _run_lock.held('the other process', path=sys.argv[2]):
    print('held', flush=True)
    sys.stdin.read()  # until the test closes it (or kills us)
'''


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'run' / 'reconcile.lock')


@pytest.fixture
def other_process(path):
    """A second Python process holding the lock with _run_lock.held, until killed."""
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, COLLECTIONS, path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline() == 'held\n'
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def read(path):
    with open(path) as handle:
        return handle.read()


def test_the_holder_says_who_it_is_and_the_file_is_emptied_on_release(path):
    with _run_lock.held('netlb-ipvs reconcile (manual)', path=path):
        line = read(path)
        assert line.startswith('pid %d, netlb-ipvs reconcile (manual), since ' % os.getpid()) and line.endswith('\n')
        assert _run_lock.holder(path) == line.strip()
    assert read(path) == '' and _run_lock.holder(path) == ''


def test_a_second_holder_in_the_same_process_is_excluded_and_told_who_holds_it(path):
    """flock belongs to the open file description: a second open() of the same file in
    the same process conflicts, so the modules' own runs and a run share one lock."""
    with _run_lock.held('first', path=path):
        with pytest.raises(_run_lock.LockBusy) as busy:
            with _run_lock.held('second', path=path):
                pytest.fail('two holders at once')
        assert busy.value.path == path and busy.value.waited < 1
        assert busy.value.holder.startswith('pid %d, first, since ' % os.getpid())
        assert busy.value.holder in str(busy.value)
        # The refused one did not take over the holder's line.
        assert _run_lock.holder(path) == busy.value.holder
    with _run_lock.held('second', path=path):  # free again once released
        assert ', second, ' in _run_lock.holder(path)


def test_another_process_excludes_us_until_it_is_killed(path, other_process):
    with pytest.raises(_run_lock.LockBusy) as busy:
        with _run_lock.held('netlb-ipvs reconcile (timer)', path=path):
            pytest.fail('held while another process holds it')
    assert busy.value.holder.startswith('pid %d, the other process, since ' % other_process.pid)
    assert 'pid %d, the other process' % other_process.pid in str(busy.value)
    # kill -9 runs no cleanup: the kernel drops the flock with the process.
    other_process.send_signal(signal.SIGKILL)
    other_process.wait()
    with _run_lock.held('netlb-ipvs reconcile (timer)', path=path):
        assert _run_lock.holder(path).startswith('pid %d, netlb-ipvs reconcile (timer), ' % os.getpid())


class Clock(object):
    """A fake clock whose sleep advances it; after release_after sleeps the other
    holder (a bare flock on its own open file) lets go."""

    def __init__(self, fd, release_after):
        self.now, self.sleeps, self.fd, self.release_after = 0, [], fd, release_after

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) == self.release_after:
            os.close(self.fd)


@pytest.mark.parametrize('wait, release_after, acquired, sleeps', [
    pytest.param(0, None, False, [], id='no wait: busy at once'),
    pytest.param(2.5, None, False, [1, 1, 0.5], id='waits its time in polls, then busy'),
    pytest.param(10, 3, True, [1, 1, 1], id='released while waiting: held'),
    pytest.param(3, 3, True, [1, 1, 1], id='released on the last poll: held'),
])
def test_waiting(path, monkeypatch, wait, release_after, acquired, sleeps):
    monkeypatch.setattr(_run_lock, 'POLL', 1)
    os.makedirs(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b'pid 1, someone else, since 2026-01-01T00:00:00Z\n')
    clock = Clock(fd, release_after)
    try:
        if acquired:
            with _run_lock.held('waiter', path=path, wait=wait, clock=clock.clock, sleep=clock.sleep):
                assert ', waiter, ' in _run_lock.holder(path)
        else:
            with pytest.raises(_run_lock.LockBusy) as busy:
                with _run_lock.held('waiter', path=path, wait=wait, clock=clock.clock, sleep=clock.sleep):
                    pytest.fail('held while another holds it')
            assert busy.value.waited == wait
            assert busy.value.holder == 'pid 1, someone else, since 2026-01-01T00:00:00Z'
    finally:
        if release_after is None:
            os.close(fd)
    assert clock.sleeps == sleeps


def test_the_directory_is_made_and_a_file_that_cannot_be_opened_is_a_file_error(tmp_path):
    nested = str(tmp_path / 'a' / 'b' / 'reconcile.lock')
    with _run_lock.held('x', path=nested):
        assert os.path.isfile(nested)
    with pytest.raises(_run_lock.FileError):
        with _run_lock.held('x', path=str(tmp_path)):  # a directory
            pytest.fail('held a directory')


def test_the_default_path_is_the_tests_own(run_lock):
    """Modules take the lock at DEFAULT_PATH: the autouse fixture keeps it in tmp_path."""
    with _run_lock.held('a module'):
        assert _run_lock.holder() == _run_lock.holder(run_lock) != ''


def test_holder_checked_names_only_a_live_holder(tmp_path):
    """A holder killed with -9 leaves its line; `netlb-ipvs status` (check=True) does not
    name it, a run that waits (check=False) still may."""
    path = str(tmp_path / 'run' / 'reconcile.lock')
    with _run_lock.held('netlb-ipvs reconcile (manual)', path=path):
        assert 'netlb-ipvs reconcile (manual)' in _run_lock.holder(path, check=True)
    with open(path, 'w') as handle:
        handle.write('pid 1, netlb-ipvs reconcile (systemd), since then\n')  # the dead holder's line
    assert _run_lock.holder(path) == 'pid 1, netlb-ipvs reconcile (systemd), since then'
    assert _run_lock.holder(path, check=True) == ''
