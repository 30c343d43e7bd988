# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watch loop: list, then watch every stream of the cluster (Services,
EndpointSlices, this node's Node), keep the objects in a Store, and call sync() soon
after they change, changes coalesced, with a full resync every interval.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    watcher = Watcher(source, sync, min_sync=1.0, interval=300.0, log=print)
    watcher.run(stop)        # until stop (a threading.Event) is set; the sync in flight finishes

source: sources/watch.py's ApiSource, or a test's double with the same methods:
streams() -> [Stream]; open(stream) -> a channel with list() -> (items, resourceVersion),
watch(resourceVersion, timeout) -> an iterator of decoded events, close(); Gone for 410,
StreamError for everything else that breaks a list or a stream.
sync(snapshot, full) -> True when done, False to be called again (the run lock was busy,
the node paused...); full: the periodic resync (read the kernel again). What it raises is
logged and retried after min_sync: the loop never dies of one bad sync.

Each stream follows client-go's reflector: list (its resourceVersion), watch from there
with bookmarks; a watch that ends is resumed from the last version seen (an event's or a
bookmark's); 410 Gone (the version is older than the apiserver keeps) relists; any other
failure reconnects after a backoff that doubles up to backoff_max, with jitter (a fleet
of nodes does not come back at the same instant). Streams run in threads of their own and
only queue what they read; the store and sync() belong to the loop's thread. No sync
happens before every stream has listed once (half a cluster would read as deletions).

Syncs: at most one every min_sync seconds (kube-proxy's minSyncPeriod), the first
COALESCE seconds after the change that made the store dirty, so a Service and its
EndpointSlice created together are one sync. A Node's event counts only when its labels
change (the kubelet rewrites its status every few seconds).
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import Gone, StreamError
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.store import Malformed, Store, resource_version

COALESCE = 0.05
WATCH_TIMEOUT = 300  # seconds the apiserver keeps one watch open (randomised up to twice that)
QUEUE_SIZE = 10000  # the streams wait while the loop syncs rather than queue without bound
POLL = 0.5  # longest wait of the loop between looks at stop
QUICK_END = 1.0  # a watch ending sooner without an event counts as a failure (backoff)


@dataclasses.dataclass
class Counters:
    """What the loop counts (the shell turns them into metrics)."""

    syncs: int = 0
    sync_failures: int = 0
    events: int = 0
    malformed: int = 0
    relists: int = 0
    restarts: dict = dataclasses.field(default_factory=dict)  # why -> count


class Watcher(object):
    """One node's watch loop (see the module's docstring)."""

    def __init__(self, source, sync, min_sync=1.0, interval=300.0, log=None, backoff_first=0.5, backoff_max=30.0,
                 watch_timeout=WATCH_TIMEOUT, rand=random.random, clock=time.monotonic):
        self.source = source
        self.sync = sync
        self.min_sync = float(min_sync)
        self.interval = float(interval)
        self.log = log or (lambda line: None)
        self.backoff_first, self.backoff_max = backoff_first, backoff_max
        self.watch_timeout = watch_timeout
        self.rand = rand
        self.clock = clock
        self.store = Store()
        self.counters = Counters()
        self.queue = queue.Queue(QUEUE_SIZE)
        self.streams = list(source.streams())
        self.listed = set()
        self.dirty_since = None  # clock() of the first change not synced yet
        self.last_sync = None  # clock() when the last sync started
        self.next_resync = None
        self.threads = []

    # The loop's thread.

    def run(self, stop):
        """Follow the cluster until stop is set; returns after the sync in flight."""
        for stream in self.streams:
            thread = threading.Thread(target=self._follow, args=(stream, stop), name='netlb-watch-%s' % (stream,))
            thread.daemon = True  # blocked in a read: the process ends without waiting for it
            thread.start()
            self.threads.append(thread)
        while not stop.is_set():
            try:
                item = self.queue.get(timeout=self._wait())
            except queue.Empty:
                item = None
            while item is not None:
                self._take(item)
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = None
            if not stop.is_set():
                self._maybe_sync()

    def _wait(self):
        now = self.clock()
        due = [POLL]
        if len(self.listed) == len(self.streams):
            if self.next_resync is not None:
                due.append(self.next_resync - now)
            if self.dirty_since is not None:
                due.append(self._due() - now)
        return max(0.0, min(due))

    def _due(self):
        due = self.dirty_since + min(COALESCE, self.min_sync)
        if self.last_sync is not None:
            due = max(due, self.last_sync + self.min_sync)
        return due

    def _changed(self):
        if self.dirty_since is None:
            self.dirty_since = self.clock()

    def _take(self, item):
        what, stream = item[0], item[1]
        if what == 'listed':
            problems = self.store.replace(stream.kind, stream.namespace, item[2])
            for problem in problems:
                self._malformed(stream, problem)
            if stream in self.listed:
                self.counters.relists += 1
            self.listed.add(stream)
            self._changed()
        elif what == 'event':
            self.counters.events += 1
            try:
                if self.store.apply(stream.kind, item[2], item[3]):
                    self._changed()
            except Malformed as exc:
                self._malformed(stream, str(exc))
        elif what == 'malformed':
            self._malformed(stream, item[2])
        elif what == 'restart':
            why = item[2]
            self.counters.restarts[why] = self.counters.restarts.get(why, 0) + 1
            self.log('watch %s: %s' % (stream, item[3]))

    def _malformed(self, stream, problem):
        self.counters.malformed += 1
        self.log('watch %s: left out: %s' % (stream, problem))

    def _maybe_sync(self):
        if len(self.listed) < len(self.streams):
            return
        now = self.clock()
        full = self.next_resync is None or now >= self.next_resync
        if not full and (self.dirty_since is None or now < self._due()):
            return
        self.last_sync = now
        dirty_since, self.dirty_since = self.dirty_since, None
        try:
            done = self.sync(self.store.snapshot(self.source.origin), full)
        except Exception as exc:  # pylint: disable=broad-except
            done = False
            self.log('sync failed: %s: %s' % (type(exc).__name__, exc))
        if done:
            self.counters.syncs += 1
            if full:
                self.next_resync = now + self.interval
        else:
            self.counters.sync_failures += 1
            self.dirty_since = dirty_since if dirty_since is not None else now  # again after min_sync
            if full:
                self.next_resync = now + self.min_sync  # still owed: tried again, not in a tight loop

    # The streams' threads.

    def _put(self, item, stop):
        while not stop.is_set():
            try:
                self.queue.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def backoff(self, failures):
        """Seconds to wait after failures failures in a row: doubling, capped, jittered
        to between half and one and a half times that."""
        base = min(self.backoff_max, self.backoff_first * 2 ** min(failures - 1, 30))
        return base * (0.5 + self.rand())

    def _follow(self, stream, stop):
        channel = None
        version = None
        failures = 0
        try:
            channel = self.source.open(stream)
            while not stop.is_set():
                try:
                    if version is None:
                        items, version = channel.list()
                        if not self._put(('listed', stream, items), stop):
                            return
                    timeout = int(self.watch_timeout * (1 + self.rand()))
                    opened, events = self.clock(), 0
                    for event in channel.watch(version, timeout):
                        version = self._event(stream, event, version, stop)
                        failures, events = 0, events + 1
                        if stop.is_set():
                            return
                    if not events and self.clock() - opened < QUICK_END:
                        # Hung up at once, again and again (an API going away, a proxy): not a hot loop.
                        raise StreamError('the watch ended as soon as it began')
                    # The apiserver ended the watch (its timeout): resumed from version.
                except Gone as exc:
                    version = None
                    self._put(('restart', stream, 'gone', '410 Gone: %s; listing again' % exc), stop)
                except StreamError as exc:
                    failures += 1
                    delay = self.backoff(failures)
                    self._put(('restart', stream, 'error', '%s; again in %.1f s' % (exc, delay)), stop)
                    stop.wait(delay)
        finally:
            if channel is not None:
                channel.close()

    def _event(self, stream, event, version, stop):
        """Queue one decoded watch event; returns the resourceVersion to resume from."""
        kind = event.get('type') if isinstance(event, dict) else None
        obj = event.get('object') if isinstance(event, dict) else None
        if kind == 'ERROR':
            code = obj.get('code') if isinstance(obj, dict) else None
            message = obj.get('message') if isinstance(obj, dict) else None
            if code == 410:
                raise Gone(message or 'the watch expired')
            raise StreamError('the watch answered an error: %s' % (message or obj,))
        if kind == 'BOOKMARK':
            return resource_version(obj) or version
        if kind not in ('ADDED', 'MODIFIED', 'DELETED') or not isinstance(obj, dict):
            self._put(('malformed', stream, 'a watch event that is not one: %.120r' % (event,)), stop)
            return version
        self._put(('event', stream, kind, obj), stop)
        return resource_version(obj) or version
