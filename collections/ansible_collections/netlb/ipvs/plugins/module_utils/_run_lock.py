# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run at a time on a node: the timer's run, a pull, a manual `netlb-ipvs reconcile`
and the modules (ipvs_virtual_server, k8s_service_proxy) take this one lock.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    with held('netlb-ipvs reconcile (timer)', wait=30):
        ...                                  # LockBusy after 30 s, naming the holder

An flock on /run/netlb-ipvs/reconcile.lock: the kernel drops it when its holder dies
(kill -9 included), so a crashed run never blocks the next one. The holder writes who it
is into the file (pid, what, since) so a waiting run can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError, make_parent_directory

DEFAULT_PATH = '/run/netlb-ipvs/reconcile.lock'
POLL = 0.1
# How long a module (ipvs_virtual_server, k8s_service_proxy) waits for a run in progress.
MODULE_WAIT = 300


class LockBusy(IpvsError):
    """Another run holds the lock; holder is what it wrote (pid, what, since) or ''."""

    def __init__(self, path, holder, waited):
        self.path, self.holder, self.waited = path, holder, waited
        super(LockBusy, self).__init__(
            'another run holds %s%s; waited %.0f s' % (path, ': %s' % holder if holder else '', waited))


def holder(path=None, check=False):
    """What the current holder of the lock wrote, or '' (nobody, or not said). check: say
    '' also when nobody holds it now (a holder killed with -9 leaves its line behind)."""
    try:
        with open(path or DEFAULT_PATH) as handle:
            if check:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return ''  # we could take it: nobody holds it
                except OSError:
                    pass
            return handle.read(512).strip()
    except OSError:
        return ''


@contextlib.contextmanager
def held(what, path=None, wait=0.0, clock=time.monotonic, sleep=time.sleep):
    """Hold the run lock for the block. wait: seconds to wait for another holder (0: do
    not wait). Raises LockBusy when it stays busy, FileError when the file cannot be made."""
    path = path or DEFAULT_PATH
    make_parent_directory(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FileError(path, 'open', exc.strerror or str(exc))
    try:
        started = clock()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise FileError(path, 'lock', exc.strerror or str(exc))
            waited = clock() - started
            if waited >= wait:
                raise LockBusy(path, holder(path), waited)
            sleep(min(POLL, max(wait - waited, 0)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, ('pid %d, %s, since %s\n' % (
            os.getpid(), what, time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))).encode('utf-8'), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
