# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a run leaves: the counters (record), their file (load, save), the Prometheus
textfile (valid text format, replaced atomically) and the journal line (one logfmt line)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import status
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import (
    parse_logfmt,
    parse_prometheus,
    sample,
)

STARTED, DURATION = 1_700_000_000.0, 2.5


def previous():
    """Counters of earlier runs, every one different from zero."""
    return status.Status(runs={'ok': 7, 'failed': 2, 'paused': 1, 'busy': 3},
                         changes={'node': 1, 'static': 10, 'kubernetes': 20, 'pull': 0},
                         drift_corrections={'node': 1, 'static': 4, 'kubernetes': 0, 'pull': 0},
                         last_run=1_600_000_000.0, last_success=1_600_000_001.0, last_duration=1.0,
                         last_result='ok', tables={'static': (3, 6)}, inputs={'static': 'old'})


RECORD = [
    # id, result, changes, drift, tables, inputs,
    # then what the counters gain: runs (by result), changes (by part), drift corrections (by part),
    # and whether the run counts as the last success (its end) and its inputs are kept
    ('ok with changes, no drift', 'ok', {'static': {'add_service': 1, 'add_server': 2}}, (),
     {'static': (4, 8)}, {'static': 'new'},
     {'ok': 1}, {'static': 3}, {}, True),
    ('ok correcting drift in one part only', 'ok',
     {'static': {'delete_server': 2}, 'kubernetes': {'add_server': 1, 'addresses': 1}}, ('static',),
     {}, {'static': 'old', 'kubernetes': 'k'},
     {'ok': 1}, {'static': 2, 'kubernetes': 2}, {'static': 2}, True),
    ('a drifted part without changes adds no correction', 'ok', {'node': {'modules': 0, 'sysctls': 0}}, ('node',),
     {}, {}, {'ok': 1}, {}, {}, True),
    ('failed: counted, changes kept, no success, inputs of the last good run kept', 'failed',
     {'node': {'modules': 1, 'sysctls': 1}, 'static': {'add_server': 1}}, ('node',), {'static': (3, 7)},
     {'static': 'half'},
     {'failed': 1}, {'node': 2, 'static': 1}, {'node': 2}, False),
    ('paused', 'paused', {}, (), {}, {}, {'paused': 1}, {}, {}, False),
    ('busy', 'busy', {}, (), {}, {}, {'busy': 1}, {}, {}, False),
]


@pytest.mark.parametrize('result, changes, drift, tables, inputs, runs_gained, changes_gained, drift_gained, success',
                         [row[1:] for row in RECORD], ids=[row[0] for row in RECORD])
def test_record(result, changes, drift, tables, inputs, runs_gained, changes_gained, drift_gained, success):
    before = previous()
    untouched = dataclasses.replace(before, runs=dict(before.runs), changes=dict(before.changes),
                                    drift_corrections=dict(before.drift_corrections), tables=dict(before.tables),
                                    inputs=dict(before.inputs))
    report = status.Report(result=result, started=STARTED, duration=DURATION, changes=changes, drift=drift,
                           tables=tables, inputs=inputs)
    after = before.record(report)

    def gained(counters_after, counters_before):
        return dict((name, count - counters_before.get(name, 0)) for name, count in counters_after.items()
                    if count != counters_before.get(name, 0))

    assert gained(after.runs, before.runs) == runs_gained
    assert gained(after.changes, before.changes) == changes_gained
    assert gained(after.drift_corrections, before.drift_corrections) == drift_gained
    assert (after.last_run, after.last_duration, after.last_result) == (STARTED, DURATION, result)
    assert after.last_success == (STARTED + DURATION if success else before.last_success)
    assert after.inputs == (inputs if success else before.inputs)
    # A good run's tables replace the gauges (a part the node lost leaves them); others add.
    assert after.tables == (dict(tables) if success else dict(before.tables, **tables))
    assert before == untouched  # a new Status; the one read from the file is not changed


@pytest.mark.parametrize('text', [
    pytest.param(None, id='missing'),
    pytest.param('', id='empty'),
    pytest.param('{"runs": {"ok": 3}', id='cut short'),
    pytest.param('[1, 2]', id='a list'),
    pytest.param('"runs"', id='a string'),
    pytest.param('{"runs": [1], "last_run": 5}', id='a counter that is not an object'),
    pytest.param('\xff\xfe', id='not UTF-8'),
])
def test_a_missing_or_corrupt_file_starts_afresh(tmp_path, text):
    path = tmp_path / 'reconcile-status.json'
    if text is not None:
        path.write_bytes(text.encode('latin-1'))
    assert status.load(str(path)) == status.Status()


def test_save_then_load_gives_the_same_counters(tmp_path):
    path = str(tmp_path / 'reconcile-status.json')
    recorded = previous().record(status.Report(result='ok', started=STARTED, duration=DURATION,
                                               changes={'static': {'add_service': 2}}, tables={'static': (5, 9)}))
    status.save(recorded, path)
    loaded = status.load(path)
    # JSON has no tuples: the table counts come back as lists.
    assert dataclasses.replace(loaded, tables=dict((name, tuple(counts)) for name, counts in loaded.tables.items())) \
        == recorded


def test_save_makes_the_state_directory(tmp_path):
    """Like the lock and the pause switch: the first run on a node finds no directory."""
    path = str(tmp_path / 'var-lib-netlb-ipvs' / 'reconcile-status.json')
    status.save(previous(), path)
    assert status.load(path).runs == previous().runs


FAMILIES = {
    'netlb_ipvs_reconcile_runs_total': 'counter', 'netlb_ipvs_reconcile_failures_total': 'counter',
    'netlb_ipvs_reconcile_changes_total': 'counter', 'netlb_ipvs_reconcile_drift_corrections_total': 'counter',
    'netlb_ipvs_reconcile_last_run_timestamp_seconds': 'gauge',
    'netlb_ipvs_reconcile_last_success_timestamp_seconds': 'gauge', 'netlb_ipvs_reconcile_duration_seconds': 'gauge',
    'netlb_ipvs_reconcile_last_run_success': 'gauge', 'netlb_ipvs_reconcile_paused': 'gauge',
    'netlb_ipvs_virtual_servers': 'gauge', 'netlb_ipvs_real_servers': 'gauge',
}


@pytest.mark.parametrize('paused, last_result, paused_gauge, success_gauge', [
    pytest.param(None, 'ok', 0, 1, id='running, last run good'),
    pytest.param('kernel upgrade', 'paused', 1, 0, id='paused with a reason'),
    pytest.param('', 'paused', 1, 0, id='paused without a reason'),
    pytest.param(None, 'failed', 0, 0, id='last run failed'),
])
def test_render_metrics_is_prometheus_text(paused, last_result, paused_gauge, success_gauge):
    counters = dataclasses.replace(previous(), last_result=last_result,
                                   tables={'static': (3, 6), 'kubernetes': (120, 480), 'we"ird\\\n': (1, 2)})
    families = parse_prometheus(status.render_metrics(counters, paused))
    assert dict((name, family['type']) for name, family in families.items()) == FAMILIES
    assert all(family['help'] for family in families.values())
    for result, count in counters.runs.items():
        assert sample(families, 'netlb_ipvs_reconcile_runs_total', result=result) == count
    assert sample(families, 'netlb_ipvs_reconcile_failures_total') == counters.runs['failed']
    for part in status.PARTS:
        assert sample(families, 'netlb_ipvs_reconcile_changes_total', part=part) == counters.changes[part]
        assert sample(families, 'netlb_ipvs_reconcile_drift_corrections_total', part=part) == \
            counters.drift_corrections[part]
    assert sample(families, 'netlb_ipvs_reconcile_last_run_timestamp_seconds') == counters.last_run
    assert sample(families, 'netlb_ipvs_reconcile_last_success_timestamp_seconds') == counters.last_success
    assert sample(families, 'netlb_ipvs_reconcile_duration_seconds') == counters.last_duration
    assert sample(families, 'netlb_ipvs_reconcile_paused') == paused_gauge
    assert sample(families, 'netlb_ipvs_reconcile_last_run_success') == success_gauge
    for table, (virtual, real) in counters.tables.items():  # label values escaped and read back
        assert sample(families, 'netlb_ipvs_virtual_servers', table=table) == virtual
        assert sample(families, 'netlb_ipvs_real_servers', table=table) == real


def test_render_metrics_of_a_fresh_node():
    families = parse_prometheus(status.render_metrics(status.Status(), None))
    assert families['netlb_ipvs_virtual_servers']['samples'] == {}  # described, no table yet
    assert sample(families, 'netlb_ipvs_reconcile_runs_total', result='ok') == 0


def test_write_metrics_replaces_the_file_atomically(tmp_path):
    directory = str(tmp_path)
    path = os.path.join(directory, status.METRICS_FILE)
    with open(path, 'w') as handle:
        handle.write('old\n')
    counters = previous()
    with open(path) as reader:  # node_exporter in the middle of reading the old file
        status.write_metrics(directory, counters, None)
        assert reader.read() == 'old\n'  # a new file took the name: the old one was not rewritten
    with open(path) as handle:
        assert handle.read() == status.render_metrics(counters, None)
    assert os.listdir(directory) == [status.METRICS_FILE]  # no temporary file left
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    directory = str(tmp_path)
    path = os.path.join(directory, status.METRICS_FILE)
    with open(path, 'w') as handle:
        handle.write('old\n')

    def no_rename(source, target):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', no_rename)
    with pytest.raises(FileError):
        status.write_metrics(directory, previous(), None)
    with open(path) as handle:
        assert handle.read() == 'old\n'
    assert os.listdir(directory) == [status.METRICS_FILE]


JOURNAL = [
    # id, report fields, the line's key=value pairs (in order)
    ('ok with changes, drift and tables',
     dict(result='ok', duration=1.234, changes={'static': {'add_server': 2, 'delete_server': 1, 'edit_service': 0},
                                                'node': {'modules': 0, 'sysctls': 0}},
          drift=('static',), tables={'static': (2, 3), 'kubernetes': (10, 40)}, warnings=['w1', 'w2']),
     [('result', 'ok'), ('duration', '1.23s'), ('changes', '3'), ('node', 'none'),
      ('static', 'add_server:2,delete_server:1'), ('drift', 'static'), ('kubernetes_table', '10/40'),
      ('static_table', '2/3'), ('warnings', '2')]),
    ('failed: the errors quoted, newlines and quotes escaped',
     dict(result='failed', duration=0.5,
          errors=['static: services[0].port: "80x"\nis not a port', 'kubernetes: C:\\path\ttab']),
     [('result', 'failed'), ('duration', '0.50s'), ('changes', '0'),
      ('error', 'static: services[0].port: "80x" is not a port; kubernetes: C:\\path tab')]),
    ('paused with a reason',
     dict(result='paused', paused='kernel "6.12" upgrade'),
     [('result', 'paused'), ('duration', '0.00s'), ('reason', 'kernel "6.12" upgrade')]),
    ('paused without a reason', dict(result='paused', paused=''),
     [('result', 'paused'), ('duration', '0.00s'), ('reason', 'not given')]),
    ('busy', dict(result='busy', duration=0.01, errors=['another run holds /run/x: pid 1, timer']),
     [('result', 'busy'), ('duration', '0.01s'), ('error', 'another run holds /run/x: pid 1, timer')]),
]


@pytest.mark.parametrize('fields, pairs', [row[1:] for row in JOURNAL], ids=[row[0] for row in JOURNAL])
def test_journal_line(fields, pairs):
    line = status.journal_line(status.Report(started=STARTED, **fields))
    assert parse_logfmt(line) == pairs
