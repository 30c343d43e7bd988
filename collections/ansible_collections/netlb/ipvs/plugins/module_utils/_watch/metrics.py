# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watcher's metrics: counters, gauges and histograms with labels, and their
Prometheus text exposition (format 0.0.4). Stdlib only, thread-safe.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    registry = Registry()
    syncs = registry.counter('netlb_ipvs_watch_syncs_total', 'Reconciles by result.', ('result',))
    latency = registry.histogram('netlb_ipvs_watch_sync_duration_seconds', 'Reconcile latency.')
    syncs.inc(result='ok'); latency.observe(0.042)
    registry.forget(namespace='shop', name='web')   # a Service went: all its series go
    traffic = TrafficMetrics(registry)              # per-Service IPVS counters
    traffic.update(backend.read_traffic(), ports)   # at each scrape or sync
    text = registry.render()                         # served with CONTENT_TYPE

Bounded for a process that runs for months: a series exists only while something sets
it, and whoever owns the label values removes them when their object goes (remove(),
retain(), forget()); nothing here grows on its own.
"""

from __future__ import annotations

import bisect
import math
import re
import threading

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

# Reconcile latencies from a one-service change (~1 ms) to a full resync of a big node
# under load (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_METRIC_NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
_LABEL_NAME = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
# Names a histogram writes itself; a user label of that name would clash.
_RESERVED_LABELS = ('le',)


def escape_label_value(value):
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def escape_help(text):
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return str(text).replace('\\', '\\\\').replace('\n', '\\n')


def format_value(value):
    """A sample value: integers as integers, floats in Go's spellings of the specials."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(value)


def _labels_text(pairs):
    if not pairs:
        return ''
    return '{%s}' % ','.join('%s="%s"' % (name, escape_label_value(value)) for name, value in pairs)


class _Family:
    """One metric name: its HELP, TYPE, label names and series (label values -> state)."""

    kind = None

    def __init__(self, lock, name, help_text, labels):
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise ValueError('metric name %r: not a Prometheus metric name' % (name,))
        labels = tuple(labels)
        for label in labels:
            if not isinstance(label, str) or not _LABEL_NAME.match(label) or label.startswith('__') \
                    or label in _RESERVED_LABELS:
                raise ValueError('metric %s: label name %r is not allowed' % (name, label))
        if len(set(labels)) != len(labels):
            raise ValueError('metric %s: label names repeat: %s' % (name, ', '.join(labels)))
        self.name = name
        self.help = help_text
        self.labels = labels
        self._lock = lock
        self._series = {}

    def _key(self, values):
        """The label values of a call (keywords, each label exactly once) as a tuple of str."""
        if set(values) != set(self.labels):
            raise ValueError('metric %s takes the labels (%s), got (%s)'
                             % (self.name, ', '.join(self.labels), ', '.join(sorted(values))))
        return tuple(str(values[label]) for label in self.labels)

    def _matches(self, match):
        """The series keys whose labels include every pair of match (unknown labels: none)."""
        if not set(match) <= set(self.labels):
            return []
        wanted = [(self.labels.index(label), str(value)) for label, value in match.items()]
        return [key for key in self._series if all(key[i] == value for i, value in wanted)]

    def remove(self, **match):
        """Drop every series whose labels include match (all of them when match is empty);
        returns how many went."""
        with self._lock:
            keys = self._matches(match)
            for key in keys:
                del self._series[key]
            return len(keys)

    def retain(self, keep):
        """Keep only the series whose label values (tuples, in label order) are in keep."""
        keep = set(tuple(str(v) for v in values) for values in keep)
        with self._lock:
            for key in [key for key in self._series if key not in keep]:
                del self._series[key]

    def series(self):
        """{label values tuple: value} (a histogram's value: (bucket counts, sum, count))."""
        with self._lock:
            return dict((key, self._copy(state)) for key, state in self._series.items())

    def value(self, **labels):
        """One series' value (None when it does not exist)."""
        key = self._key(labels)
        with self._lock:
            state = self._series.get(key)
            return None if state is None else self._copy(state)

    @staticmethod
    def _copy(state):
        return state

    def render(self, lines):
        with self._lock:
            items = sorted((key, self._copy(state)) for key, state in self._series.items())
        lines.append('# HELP %s %s' % (self.name, escape_help(self.help)))
        lines.append('# TYPE %s %s' % (self.name, self.kind))
        for key, state in items:
            self._render_series(lines, list(zip(self.labels, key)), state)

    def _render_series(self, lines, pairs, value):
        lines.append('%s%s %s' % (self.name, _labels_text(pairs), format_value(value)))


class Counter(_Family):
    """A value that only goes up (or restarts at zero, as a kernel counter does when its
    virtual service is made again)."""

    kind = 'counter'

    def inc(self, amount=1, **labels):
        if amount < 0:
            raise ValueError('metric %s: a counter cannot go down (inc by %r)' % (self.name, amount))
        key = self._key(labels)
        with self._lock:
            self._series[key] = self._series.get(key, 0) + amount

    def set(self, value, **labels):
        """Mirror a total counted elsewhere (the kernel's IPVS counters)."""
        if value < 0:
            raise ValueError('metric %s: a counter cannot be negative (%r)' % (self.name, value))
        key = self._key(labels)
        with self._lock:
            self._series[key] = value


class Gauge(_Family):
    """A value that goes up and down (table sizes, a timestamp)."""

    kind = 'gauge'

    def set(self, value, **labels):
        key = self._key(labels)
        with self._lock:
            self._series[key] = value

    def inc(self, amount=1, **labels):
        key = self._key(labels)
        with self._lock:
            self._series[key] = self._series.get(key, 0) + amount

    def dec(self, amount=1, **labels):
        self.inc(-amount, **labels)


class Histogram(_Family):
    """Observations counted into cumulative buckets (upper bounds, +Inf added), with their
    sum and count."""

    kind = 'histogram'

    def __init__(self, lock, name, help_text, labels, buckets=LATENCY_BUCKETS):
        super(Histogram, self).__init__(lock, name, help_text, labels)
        bounds = [float(bound) for bound in buckets if not math.isinf(float(bound))]
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError('metric %s: buckets must be increasing and not empty: %r' % (name, tuple(buckets)))
        self.buckets = tuple(bounds)

    def observe(self, value, **labels):
        key = self._key(labels)
        value = float(value)
        index = bisect.bisect_left(self.buckets, value)  # "le": a value on a bound counts in it
        with self._lock:
            state = self._series.get(key)
            if state is None:
                state = self._series[key] = [[0] * (len(self.buckets) + 1), 0.0, 0]
            state[0][index] += 1
            state[1] += value
            state[2] += 1

    @staticmethod
    def _copy(state):
        return (tuple(state[0]), state[1], state[2])

    def _render_series(self, lines, pairs, value):
        counts, total, count = value
        cumulative = 0
        for bound, number in zip(self.buckets + (math.inf,), counts):
            cumulative += number
            lines.append('%s_bucket%s %d' % (self.name, _labels_text(pairs + [('le', format_value(bound))]),
                                             cumulative))
        lines.append('%s_sum%s %s' % (self.name, _labels_text(pairs), format_value(total)))
        lines.append('%s_count%s %d' % (self.name, _labels_text(pairs), count))


# The labels of a virtual service's traffic: the Service it serves and the virtual
# service itself (a Service port has one per cluster IP, node address, external and
# load-balancer IP).
TRAFFIC_LABELS = ('namespace', 'name', 'kind', 'protocol', 'address', 'port')


class TrafficMetrics:
    """Per-Service traffic from the kernel's IPVS counters, as kube-router exports it:
    connections, packets and bytes (direction in / out) of each managed virtual service.

    update(traffic, ports) after each read of the counters: traffic {ServiceKey: counts
    with connections, packets_in, packets_out, bytes_in, bytes_out} (the netlink backend's
    read_traffic()), ports {ServiceKey: ServicePort} of the services this node manages
    (the translation's). Keys in only one of them are left out; the series of a virtual
    service gone are dropped. The values are the kernel's totals: they restart at zero
    when a virtual service is made again, as Prometheus counters may.
    """

    def __init__(self, registry, prefix='netlb_ipvs_service'):
        self.connections = registry.counter(
            prefix + '_connections_total', 'Connections IPVS scheduled to the real servers of a virtual service.',
            TRAFFIC_LABELS)
        self.packets = registry.counter(
            prefix + '_packets_total', 'Packets of a virtual service, by direction (in: from clients, out: '
            'replies IPVS forwarded, NAT only).', TRAFFIC_LABELS + ('direction',))
        self.bytes = registry.counter(
            prefix + '_bytes_total', 'Bytes of a virtual service, by direction (in: from clients, out: replies '
            'IPVS forwarded, NAT only).', TRAFFIC_LABELS + ('direction',))

    def update(self, traffic, ports):
        present = []
        for key, counts in traffic.items():
            port = ports.get(key)
            if port is None:
                continue
            namespace, _sep, name = port.service.partition('/')
            labels = dict(namespace=namespace, name=name, kind=port.kind, protocol=port.protocol,
                          address=port.address, port=port.port)
            self.connections.set(counts.connections, **labels)
            for direction, packets, size in (('in', counts.packets_in, counts.bytes_in),
                                             ('out', counts.packets_out, counts.bytes_out)):
                self.packets.set(packets, direction=direction, **labels)
                self.bytes.set(size, direction=direction, **labels)
            present.append(tuple(str(labels[label]) for label in TRAFFIC_LABELS))
        self.connections.retain(present)
        both = [values + (direction,) for values in present for direction in ('in', 'out')]
        self.packets.retain(both)
        self.bytes.retain(both)


class Registry:
    """The metric families of one process, rendered in the order they were made."""

    def __init__(self):
        self._lock = threading.RLock()
        self._families = {}

    def _add(self, family):
        with self._lock:
            if family.name in self._families:
                raise ValueError('metric %s is registered already' % family.name)
            self._families[family.name] = family
        return family

    def counter(self, name, help_text, labels=()):
        return self._add(Counter(self._lock, name, help_text, labels))

    def gauge(self, name, help_text, labels=()):
        return self._add(Gauge(self._lock, name, help_text, labels))

    def histogram(self, name, help_text, labels=(), buckets=LATENCY_BUCKETS):
        return self._add(Histogram(self._lock, name, help_text, labels, buckets))

    def forget(self, **match):
        """Drop the series matching match in every family that has all of its labels
        (a Service gone: forget(namespace=..., name=...)); returns how many went."""
        if not match:
            raise ValueError('forget() needs at least one label: it would empty every family')
        with self._lock:
            return sum(family.remove(**match) for family in self._families.values()
                       if set(match) <= set(family.labels))

    def render(self):
        """The whole exposition, one consistent snapshot (taken under the lock)."""
        lines = []
        with self._lock:
            for family in self._families.values():
                family.render(lines)
        return '\n'.join(lines) + '\n' if lines else ''
