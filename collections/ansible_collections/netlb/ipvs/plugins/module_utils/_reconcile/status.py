# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a run leaves for people and monitoring: the journal line, the counters kept
between runs, and the Prometheus textfile node_exporter reads.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Each run is a new process, so counters live in a small JSON file
(/var/lib/netlb-ipvs/reconcile-status.json) and the textfile is rendered from it; both
are replaced atomically (node_exporter never reads half a file). render_metrics() and
journal_line() are pure.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ansible_collections.netlb.ipvs.plugins.module_utils._files import (
    FileError,
    locked as _locked,
    make_parent_directory,
    read_text,
    write_atomic,
)

DEFAULT_PATH = '/var/lib/netlb-ipvs/reconcile-status.json'
METRICS_FILE = 'netlb_ipvs.prom'
RESULTS = ('ok', 'failed', 'paused', 'busy')
PARTS = ('node', 'static', 'kubernetes', 'pull')


@dataclasses.dataclass
class Report:
    """One run. result: ok, failed, paused or busy. changes: part -> {what: count} (what
    a run corrected: IPVS actions by op, addresses, rules, modules, sysctls). drift: the
    parts whose changes were drift (the input was the same as at the last good run).
    errors: 'part: message' lines. tables: part -> (virtual servers, real servers)."""

    result: str
    started: float
    duration: float = 0.0
    changes: dict = dataclasses.field(default_factory=dict)
    drift: tuple = ()
    errors: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    tables: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)  # part -> fingerprint of its input
    timings: dict = dataclasses.field(default_factory=dict)  # part -> {step: seconds}, for --verbose
    paused: str = None  # the reason, when paused

    def change_count(self, part=None):
        parts = [part] if part else list(self.changes)
        return sum(sum(self.changes.get(name, {}).values()) for name in parts)


@dataclasses.dataclass
class Status:
    """Kept between runs."""

    runs: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    changes: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    drift_corrections: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    last_run: float = 0.0
    last_success: float = 0.0
    last_duration: float = 0.0
    last_result: str = ''
    tables: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)

    def record(self, report):
        """The counters after report (a new Status)."""
        status = Status(runs=dict(self.runs), changes=dict(self.changes),
                        drift_corrections=dict(self.drift_corrections), last_run=report.started,
                        last_success=self.last_success, last_duration=round(report.duration, 6),
                        last_result=report.result, tables=dict(self.tables), inputs=dict(self.inputs))
        status.runs[report.result] = status.runs.get(report.result, 0) + 1
        for part in report.changes:
            count = report.change_count(part)
            status.changes[part] = status.changes.get(part, 0) + count
            if part in report.drift and count:
                status.drift_corrections[part] = status.drift_corrections.get(part, 0) + count
        status.tables.update(report.tables)
        if report.result == 'ok':
            status.tables = dict(report.tables)  # a part the node no longer has leaves the gauges
            status.last_success = report.started + report.duration
            status.inputs = dict(report.inputs)
        return status


def load(path=DEFAULT_PATH):
    """The Status in path; a missing or unreadable file starts afresh (counters reset,
    which Prometheus' rate() handles as a restart)."""
    try:
        text = read_text(path)
        document = json.loads(text) if text else {}
        fields = dict((field.name, document[field.name]) for field in dataclasses.fields(Status)
                      if field.name in document)
        status = Status(**fields)
        for name in ('runs', 'changes', 'drift_corrections'):
            counters = getattr(status, name)
            if not isinstance(counters, dict) or not all(
                    isinstance(value, int) and not isinstance(value, bool) for value in counters.values()):
                return Status()
        if not isinstance(status.tables, dict) or not isinstance(status.inputs, dict) or not all(
                isinstance(getattr(status, name), (int, float)) for name in
                ('last_run', 'last_success', 'last_duration')):
            return Status()
        return status
    except (FileError, ValueError, TypeError):
        return Status()


def locked(path=DEFAULT_PATH):
    """A context manager serialising load + record + save of the status (FileError)."""
    make_parent_directory(path)
    return _locked(path)


def save(status, path=DEFAULT_PATH):
    make_parent_directory(path)  # like the lock's and the pause switch's: a new node has none
    write_atomic(path, json.dumps(dataclasses.asdict(status), sort_keys=True) + '\n', mode=0o644, durable=False)


def _metric(lines, name, kind, help_text, samples):
    lines.append('# HELP %s %s' % (name, help_text))
    lines.append('# TYPE %s %s' % (name, kind))
    for labels, value in samples:
        label_text = ','.join('%s="%s"' % (key, _escape(text)) for key, text in labels)
        lines.append('%s%s %s' % (name, '{%s}' % label_text if label_text else '', _number(value)))


def _escape(text):
    return str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _number(value):
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(int(value))


def render_metrics(status, paused):
    """The textfile for node_exporter (Prometheus text format 0.0.4)."""
    lines = []
    _metric(lines, 'netlb_ipvs_reconcile_runs_total', 'counter', 'Reconcile runs by result.',
            [((('result', result),), status.runs.get(result, 0)) for result in RESULTS])
    _metric(lines, 'netlb_ipvs_reconcile_failures_total', 'counter',
            'Runs that failed (bad config, unreachable API, refused plan, kernel error).',
            [((), status.runs.get('failed', 0))])
    _metric(lines, 'netlb_ipvs_reconcile_changes_total', 'counter',
            'Changes made by reconcile runs (IPVS actions, addresses, rules, modules, sysctls), by part.',
            [((('part', part),), status.changes.get(part, 0)) for part in PARTS])
    _metric(lines, 'netlb_ipvs_reconcile_drift_corrections_total', 'counter',
            'Changes that corrected drift: made while the input was the same as at the last good run.',
            [((('part', part),), status.drift_corrections.get(part, 0)) for part in PARTS])
    _metric(lines, 'netlb_ipvs_reconcile_last_run_timestamp_seconds', 'gauge', 'Start of the last run.',
            [((), float(status.last_run))])
    _metric(lines, 'netlb_ipvs_reconcile_last_success_timestamp_seconds', 'gauge',
            'End of the last run that converged the node.', [((), float(status.last_success))])
    _metric(lines, 'netlb_ipvs_reconcile_duration_seconds', 'gauge', 'Duration of the last run.',
            [((), float(status.last_duration))])
    _metric(lines, 'netlb_ipvs_reconcile_last_run_success', 'gauge', '1 when the last run converged the node.',
            [((), 1 if status.last_result == 'ok' else 0)])
    _metric(lines, 'netlb_ipvs_reconcile_paused', 'gauge', '1 while reconciling is paused for maintenance.',
            [((), 1 if paused is not None else 0)])
    tables = sorted(status.tables.items())
    _metric(lines, 'netlb_ipvs_virtual_servers', 'gauge', 'Virtual services this node manages, by table.',
            [((('table', table),), counts[0]) for table, counts in tables])
    _metric(lines, 'netlb_ipvs_real_servers', 'gauge', 'Real servers of the managed virtual services, by table.',
            [((('table', table),), counts[1]) for table, counts in tables])
    return '\n'.join(lines) + '\n'


def write_metrics(directory, status, paused):
    """Replace directory/netlb_ipvs.prom atomically (the directory made when missing:
    node_exporter may come later). Raises FileError."""
    make_parent_directory(os.path.join(directory, METRICS_FILE))
    write_atomic(os.path.join(directory, METRICS_FILE), render_metrics(status, paused), mode=0o644,
                 durable=False)


def _quote(text):
    text = ' '.join(str(text).split())
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def _counts(changes):
    return ','.join('%s:%d' % (what, count) for what, count in sorted(changes.items()) if count) or 'none'


def timing_lines(report):
    """--verbose's lines after the journal line: 'timings PART: step=1.234s ...', a line per part."""
    return ['timings %s: %s' % (part, ' '.join('%s=%.3fs' % (step, seconds) for step, seconds in sorted(timings.items())))
            for part, timings in sorted(report.timings.items())]


def journal_line(report):
    """One line (logfmt) saying what the run did, how long it took, or why it refused."""
    words = ['result=%s' % report.result, 'duration=%.2fs' % report.duration]
    if report.paused is not None:
        words.append('reason=%s' % _quote(report.paused or 'not given'))
    if report.result in ('ok', 'failed'):
        words.append('changes=%d' % report.change_count())
        for part in PARTS:
            if part in report.changes:
                words.append('%s=%s' % (part, _counts(report.changes[part])))
        if report.drift:
            words.append('drift=%s' % ','.join(part for part in PARTS if part in report.drift))
        for table, (virtual, real) in sorted(report.tables.items()):
            words.append('%s_table=%d/%d' % (table, virtual, real))
    if report.warnings:
        words.append('warnings=%d' % len(report.warnings))
    if report.errors:
        words.append('error=%s' % _quote('; '.join(report.errors)))
    return ' '.join(words)
