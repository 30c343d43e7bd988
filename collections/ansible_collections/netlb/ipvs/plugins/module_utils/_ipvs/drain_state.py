# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""When each draining real server was set to weight 0, kept between runs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The state is a dict {(ServiceKey, (address, port)): since} where since is a Unix time.
On disk it is a small JSON document written atomically (a reader never sees half a
file; _json_state.py, as the proxy's state). One file serves every task on a host:
each run rewrites only the entries of its own scope (plan.py passes the others
through), and lock() serialises runs so one cannot drop another's entries.
"""

from __future__ import annotations

import contextlib
import json

from ansible_collections.netlb.ipvs.plugins.module_utils import _json_state, _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ServiceKey

DEFAULT_PATH = '/var/lib/netlb-ipvs/drain-state.json'
FORMAT_VERSION = 1
# Seconds a run waits for another holding the drain state (the run lock serialises the
# modules and netlb-ipvs already; this bounds one that holds the file without it).
LOCK_WAIT = 60
LOCK_HOLDER = 'netlb.ipvs engine (drain state)'


class DrainStateError(IpvsError):
    """The state file cannot be read, parsed or written."""


def dumps(state):
    """State -> JSON text, entries sorted so an unchanged state gives the same bytes."""
    entries = []
    for (key, (address, port)), since in sorted(state.items()):
        service = {'protocol': key.protocol, 'family': key.family}
        if key.is_fwmark:
            service['fwmark'] = key.fwmark
        else:
            service.update(address=key.address, port=key.port)
        entries.append({'service': service, 'server': {'address': address, 'port': port}, 'since': since})
    # One entry a line: readable, and json's C encoder (indent= would take the Python one,
    # which is most of a run's extra time when a rollout drains thousands of servers).
    lines = ',\n'.join(json.dumps(entry, sort_keys=True) for entry in entries)
    return '{"version": %d, "draining": [%s]}\n' % (FORMAT_VERSION, '\n%s\n' % lines if lines else '')


def loads(text):
    """JSON text -> state. Raises DrainStateError on anything unexpected."""
    return _json_state.parse(text, (FORMAT_VERSION,), _state, 'drain state', DrainStateError)


def _state(document):
    state = {}
    for entry in document['draining']:
        service = entry['service']
        if service['protocol'] == 'fwmark':
            key = ServiceKey.mark(service['fwmark'], service['family'])
        else:
            key = ServiceKey.tcp_udp(service['protocol'], service['address'], service['port'])
        server = entry['server']
        state[(key, (str(server['address']), int(server['port'])))] = float(entry['since'])
    return state


class DrainStore(object):
    """The state in a file (default /var/lib/netlb-ipvs/drain-state.json)."""

    def __init__(self, path=DEFAULT_PATH):
        self.path = path
        # Not durable: a state lost to a power cut only restarts drain clocks, and
        # two fsyncs would be most of a small run's time.
        self._file = _json_state.JsonStateFile(path, 'drain state', DrainStateError, durable=False)

    def load(self):
        """The saved state; {} when the file does not exist yet."""
        return self._file.load(loads, {})

    def save(self, state):
        self._file.save(dumps(state))

    @contextlib.contextmanager
    def lock(self, what=LOCK_HOLDER, wait=None):
        """Hold an exclusive lock (a sibling .lock file, the run lock's mechanism: the
        holder says who it is) for one read-plan-apply-save. Raises LockBusy naming the
        holder after wait seconds (None: LOCK_WAIT)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_run_lock.held(what, path=self._file.lock_path,
                                                   wait=LOCK_WAIT if wait is None else wait))
            except FileError as exc:
                raise DrainStateError('cannot lock drain state %s: %s' % (self.path, exc))
            yield


class MemoryDrainStore(object):
    """The state in memory: for a long-running watcher, and for tests."""

    def __init__(self, state=None):
        self.state = dict(state or {})
        self.saves = 0

    def load(self):
        return dict(self.state)

    def save(self, state):
        self.state = dict(state)
        self.saves += 1

    @contextlib.contextmanager
    def lock(self):
        yield
