# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""read -> plan -> apply -> confirm against an in-memory kernel."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine, model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStore, MemoryDrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.hold import HoldError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ApplyError, RefusedError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation import parse_scope
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import (
    FakeBackend,
    brief,
    drain,
    drain_names,
    key,
    table,
)

NOW = 5000.0
SCOPE = parse_scope(['10.0.0.0/24'])
OLD = '''
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1
-A -t 10.0.0.2:80 -s rr
'''
NEW = '''
-A -t 10.0.0.1:80 -s wrr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1
-A -t 10.0.0.3:80 -s rr
-a -t 10.0.0.3:80 -r 10.1.0.1:80 -m -w 1
'''
FOREIGN = '''
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.9.0.1:80 -m -w 1
'''
LEAVING = 'tcp 10.0.0.1:80 10.1.0.2:80'


def reconcile(backend, desired, drain_store=None, now=NOW, scope=SCOPE, **options):
    return engine.reconcile(backend, list(table(desired).values()), scope, engine.ReconcileOptions(**options),
                            drain_store=drain_store, now=now)


def in_scope(backend):
    return dict((k, v) for k, v in backend.table.items() if SCOPE.contains(k))


def test_converges_and_reports():
    backend = FakeBackend(table(OLD + FOREIGN, {LEAVING: (2, 0)}))
    store = MemoryDrainStore()
    result = reconcile(backend, NEW, drain_store=store)
    assert [brief(a) for a in result.actions] == [
        'add_service tcp 10.0.0.3:80 new',
        'edit_service tcp 10.0.0.1:80 scheduler',
        'add_server tcp 10.0.0.1:80 10.1.0.3:80 w1 new',
        'add_server tcp 10.0.0.3:80 10.1.0.1:80 w1 new',
        'edit_server tcp 10.0.0.1:80 10.1.0.1:80 w2 weight',
        'edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain',
        'delete_service tcp 10.0.0.2:80 not listed',
    ]
    assert result.changed
    assert backend.table[key('tcp 192.0.2.1:80')] == table(FOREIGN)[key('tcp 192.0.2.1:80')]
    assert drain_names(store.state) == {LEAVING: NOW}
    report = result.as_dict()
    assert report['diff']['before'] == '-A -t 10.0.0.1:80 -s rr\n' \
        '-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n' \
        '-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n' \
        '-A -t 10.0.0.2:80 -s rr\n'
    assert '-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 0\n' in report['diff']['after']
    assert '192.0.2.1' not in report['diff']['after']
    assert [s['address'] for s in report['services']] == ['10.0.0.1', '10.0.0.3']
    assert report['draining'] == [{'service': 'tcp 10.0.0.1:80', 'server': '10.1.0.2:80', 'since': NOW,
                                   'connections': 2}]
    assert set(report['timings']) == {'read', 'plan', 'apply', 'settle', 'total'}
    assert result.warnings == ['scheduler changed on 1 live service(s) (tcp 10.0.0.1:80): new connections '
                               'arriving while the kernel swaps schedulers are refused (not held: no hold '
                               'configured)']

    # Waiting on the draining server is not a change.
    again = reconcile(backend, NEW, drain_store=store, now=NOW + 30)
    assert (again.changed, again.actions) == (False, ())
    assert drain_names(store.state) == {LEAVING: NOW}

    # Once idle it goes, and leaves the drain state.
    backend.table = table(backend_text(backend), {})
    last = reconcile(backend, NEW, drain_store=store, now=NOW + 60)
    assert [brief(a) for a in last.actions] == ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle']
    assert in_scope(backend) == table(NEW)
    assert store.state == {}


def backend_text(backend):
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
    return save_format.render(backend.table)


def test_check_mode_plans_the_same_and_writes_nothing(tmp_path):
    path = str(tmp_path / 'state' / 'drain-state.json')
    checked = FakeBackend(table(OLD + FOREIGN, {LEAVING: (1, 1)}), check_mode=True)
    real = FakeBackend(table(OLD + FOREIGN, {LEAVING: (1, 1)}))
    predicted = reconcile(checked, NEW, drain_store=DrainStore(path))
    assert checked.table == table(OLD + FOREIGN) and checked.applied == []
    assert not os.path.exists(os.path.dirname(path))  # not even the lock file
    done = reconcile(real, NEW, drain_store=DrainStore(path))
    assert predicted.actions == done.actions
    assert predicted.as_dict()['diff'] == done.as_dict()['diff']
    assert 'confirm' not in predicted.timings
    assert drain_names(DrainStore(path).load()) == {LEAVING: NOW}


def test_apply_error_midway_then_next_run_converges():
    refused = 'add_server tcp 10.0.0.3:80 10.1.0.1:80 w1 new'
    backend = FakeBackend(table(OLD), refuse=lambda action: 'Invalid argument' if brief(action) == refused else None)
    store = MemoryDrainStore()
    with pytest.raises(ApplyError) as caught:
        reconcile(backend, NEW, drain_store=store)
    assert [brief(a) for a in caught.value.applied] == [
        'add_service tcp 10.0.0.3:80 new',
        'edit_service tcp 10.0.0.1:80 scheduler',
        'add_server tcp 10.0.0.1:80 10.1.0.3:80 w1 new',
    ]
    assert brief(caught.value.failed) == refused
    assert 'Invalid argument' in str(caught.value)
    assert store.saves == 0

    backend.refuse = None
    result = reconcile(backend, NEW, drain_store=store, graceful=False)
    assert [brief(a) for a in result.actions] == [
        'add_server tcp 10.0.0.3:80 10.1.0.1:80 w1 new',
        'edit_server tcp 10.0.0.1:80 10.1.0.1:80 w2 weight',
        'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w1 purge',
        'delete_service tcp 10.0.0.2:80 not listed',
    ]
    assert in_scope(backend) == table(NEW)
    assert reconcile(backend, NEW, drain_store=store).changed is False


@pytest.mark.parametrize('scope_entries, allow_empty, refused', [
    pytest.param(['10.0.0.0/24'], False, True, id='network-scope-refused'),
    pytest.param(['fwmark:1-10'], False, True, id='fwmark-scope-refused'),
    pytest.param(['10.0.0.0/24'], True, False, id='allowed-explicitly'),
])
def test_empty_table_needs_allow_empty(scope_entries, allow_empty, refused):
    backend = FakeBackend(table(OLD))
    scope = parse_scope(scope_entries)
    if refused:
        with pytest.raises(ValidationError, match='allow_empty'):
            engine.reconcile(backend, [], scope, engine.ReconcileOptions(allow_empty=allow_empty))
        assert backend.reads == 0  # refused before the kernel is read
    else:
        result = engine.reconcile(backend, [], scope, engine.ReconcileOptions(allow_empty=allow_empty))
        assert [a.op for a in result.actions] == ['delete_service', 'delete_service']
        assert backend.table == {}


def test_empty_table_is_fine_when_not_exclusive():
    backend = FakeBackend(table(OLD))
    assert engine.reconcile(backend, [], SCOPE, engine.ReconcileOptions(exclusive=False)).changed is False


def test_corrupt_drain_state_warns_and_carries_on(tmp_path):
    path = tmp_path / 'drain-state.json'
    path.write_text('garbage')
    backend = FakeBackend(table(OLD, {LEAVING: (1, 0)}))
    result = reconcile(backend, OLD.replace('-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1', ''),
                       drain_store=DrainStore(str(path)))
    assert [brief(a) for a in result.actions] == ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain']
    assert result.warnings == ['%s: drain state is not valid: Expecting value: line 1 column 1 (char 0); '
                               'starting with an empty drain state' % path]
    assert drain_names(DrainStore(str(path)).load()) == {LEAVING: NOW}


def test_unsaved_drain_state_is_a_warning(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')

    class Unwritable(DrainStore):
        """Reads nothing, cannot write (its directory is a file)."""

        def load(self):
            return {}

        def lock(self):
            return MemoryDrainStore().lock()

    backend = FakeBackend(table(OLD, {LEAVING: (1, 0)}))
    result = reconcile(backend, OLD.replace('-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1', ''),
                       drain_store=Unwritable(str(blocker / 'state.json')))
    assert result.changed
    assert len(result.warnings) == 1 and 'cannot save drain state' in result.warnings[0]


def test_drain_timeout_from_saved_state():
    backend = FakeBackend(table(OLD.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), {LEAVING: (9, 9)}))
    store = MemoryDrainStore(drain({LEAVING: NOW - 600}))
    result = reconcile(backend, OLD.replace('-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1', ''), drain_store=store,
                       drain_timeout=600)
    assert [brief(a) for a in result.actions] == ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain_timeout']
    assert store.state == {}


def test_confirm_reports_a_kernel_that_disagrees():
    class Forgetful(FakeBackend):
        """Drops thresholds, as a backend with a translation bug would."""

        def _apply(self, actions):
            super(Forgetful, self)._apply(actions)
            self.table = dict((k, v.replace(real_servers=tuple(rs.replace(upper_threshold=0, lower_threshold=0)
                                                               for rs in v.real_servers)))
                              for k, v in self.table.items())

    backend = Forgetful({})
    result = reconcile(backend, NEW.replace('10.1.0.3:80 -m -w 1', '10.1.0.3:80 -m -w 1 -x 10 -y 5'), confirm=True)
    assert 'confirm' in result.timings
    assert result.warnings == ['after apply the kernel differs from the plan for 1 service(s): tcp 10.0.0.1:80']
    assert result.after == in_scope(backend)


def test_no_drain_store_keeps_no_state():
    backend = FakeBackend(table(OLD, {LEAVING: (1, 0)}))
    result = reconcile(backend, OLD.replace('-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1', ''))
    assert drain_names(result.drain_state) == {LEAVING: NOW}


def test_desired_outside_scope_is_refused_before_the_kernel_is_read():
    backend = FakeBackend(table(OLD))
    with pytest.raises(ValidationError, match=r'tcp 192\.0\.2\.1:80: outside scope'):
        engine.reconcile(backend, list(table(FOREIGN).values()), SCOPE)
    assert backend.reads == 0


WITHOUT_LEAVING = OLD.replace('-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1', '')


class Counting(FakeBackend):
    """Records which services read_counters was asked for."""

    def __init__(self, *args, **kwargs):
        super(Counting, self).__init__(*args, **kwargs)
        self.counted = []

    def read_counters(self, keys):
        self.counted.append([str(k) for k in keys])
        return super(Counting, self).read_counters(keys)


@pytest.mark.parametrize('check_mode', [pytest.param(False, id='real'), pytest.param(True, id='check')])
def test_an_idle_leaving_server_goes_in_one_run(check_mode):
    backend = Counting(table(OLD), check_mode=check_mode)
    store = MemoryDrainStore()
    result = reconcile(backend, WITHOUT_LEAVING, drain_store=store)
    assert [brief(a) for a in result.actions] == ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain',
                                                  'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle']
    assert result.after == table(WITHOUT_LEAVING) and result.draining == ()
    # Check mode judges by the counters it read (nothing was set to 0): no second read.
    assert backend.counted == ([] if check_mode else [['tcp 10.0.0.1:80']])
    if check_mode:
        assert backend.table == table(OLD) and store.saves == 0
    else:
        assert in_scope(backend) == table(WITHOUT_LEAVING) and store.state == {}
        assert reconcile(backend, WITHOUT_LEAVING, drain_store=store).changed is False


def test_a_busy_leaving_server_waits_then_goes_once_idle():
    backend = Counting(table(OLD, {LEAVING: (1, 0)}))
    store = MemoryDrainStore()
    result = reconcile(backend, WITHOUT_LEAVING, drain_store=store)
    assert [brief(a) for a in result.actions] == ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain']
    assert drain_names(store.state) == {LEAVING: NOW}
    # Still busy: waiting is no change, and nothing is re-read (the read was at weight 0).
    assert reconcile(backend, WITHOUT_LEAVING, drain_store=store, now=NOW + 5).changed is False
    assert backend.counted == [['tcp 10.0.0.1:80']]
    backend.table = table(backend_text(backend))  # the connection closed
    last = reconcile(backend, WITHOUT_LEAVING, drain_store=store, now=NOW + 10)
    assert [brief(a) for a in last.actions] == ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle']
    assert store.state == {}


@pytest.mark.parametrize('check_mode', [pytest.param(False, id='real'), pytest.param(True, id='check')])
def test_review_sees_the_plan_and_may_refuse_it(check_mode):
    seen = []

    def review(plan):
        seen.append([brief(a) for a in plan.actions])
        if any(a.op == 'delete_service' for a in plan.actions):
            raise RefusedError('would delete a service')

    backend = FakeBackend(table(OLD, {LEAVING: (1, 0)}), check_mode=check_mode)
    store = MemoryDrainStore()
    with pytest.raises(RefusedError, match='would delete a service'):
        reconcile(backend, NEW, drain_store=store, review=review)
    assert seen and 'delete_service tcp 10.0.0.2:80 not listed' in seen[0]
    assert backend.applied == [] and store.saves == 0
    # A plan it accepts is applied.
    assert reconcile(backend, OLD, drain_store=store, review=review).changed is False


@pytest.mark.parametrize('check_mode', [pytest.param(False, id='real'), pytest.param(True, id='check')])
def test_prepare_runs_after_review_before_the_first_write_in_real_runs_only(check_mode):
    log = []
    backend = FakeBackend(table(OLD), check_mode=check_mode,
                          refuse=lambda action: log.append('apply') or None)
    reconcile(backend, NEW, review=lambda plan: log.append('review'),
              prepare=lambda plan: log.append('prepare %d' % len(plan.actions)))
    # (A backend in check mode writes nothing, so it logs no apply.)
    assert log == ['review'] if check_mode else log[:3] == ['review', 'prepare 7', 'apply']

    def refusing(plan):
        raise RefusedError('no')

    backend = FakeBackend(table(OLD))
    with pytest.raises(RefusedError):
        reconcile(backend, NEW, prepare=refusing)
    assert backend.applied == [] and backend.table == table(OLD)


def test_a_refused_delete_after_the_drain_reports_the_whole_run():
    backend = FakeBackend(table(OLD), refuse=lambda action: 'Busy' if action.op == 'delete_server' else None)
    store = MemoryDrainStore()
    with pytest.raises(ApplyError) as caught:
        reconcile(backend, WITHOUT_LEAVING, drain_store=store)
    assert [brief(a) for a in caught.value.applied] == ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain']
    assert brief(caught.value.failed) == 'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle'
    assert drain_names(store.state) == {LEAVING: NOW}  # the drain took: its clock is kept


def test_check_input_refuses_before_any_backend_exists():
    with pytest.raises(ValidationError, match='allow_empty'):
        engine.check_input((), SCOPE)
    with pytest.raises(ValidationError, match='outside scope'):
        engine.check_input(tuple(table(FOREIGN).values()), SCOPE)
    engine.check_input((), SCOPE, engine.ReconcileOptions(allow_empty=True))


def test_reconcile_options_are_frozen_with_the_documented_defaults():
    options = engine.ReconcileOptions()
    assert (options.exclusive, options.purge_real_servers, options.graceful, options.drain_timeout,
            options.allow_empty, options.confirm, options.review, options.hold, options.prepare) == (
        True, True, True, 0, False, False, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.exclusive = False


class Holding(FakeBackend):
    """Logs each apply into log, shared with a RecordingHold."""

    def __init__(self, *args, **kwargs):
        self.log = kwargs.pop('log')
        super(Holding, self).__init__(*args, **kwargs)

    def _apply(self, actions):
        self.log.append('apply ' + ', '.join(brief(a) for a in actions))
        super(Holding, self)._apply(actions)


class RecordingHold(object):
    """The hold interface (hold.NftHold) logging each call; fail names a step that raises."""

    def __init__(self, log, fail=()):
        self.log = log
        self.fail = fail

    def _step(self, text, name):
        self.log.append(text)
        if name in self.fail:
            raise HoldError('%s: nft: command not found' % name)

    def check(self):
        self._step('check', 'check')

    def place(self, keys):
        self._step('place ' + ', '.join(str(k) for k in keys), 'place')

    def release(self):
        self._step('release', 'release')


FLIP = '''
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-A -u 10.0.0.2:53 -s rr
-a -u 10.0.0.2:53 -r 10.1.0.1:53 -m -w 1
-A -f 7 -s rr
-a -f 7 -r 10.1.0.1:0 -m -w 1
'''
FLIP_SCOPE = parse_scope(['10.0.0.0/24', 'fwmark:1-10'])
HELD = 'held (dropped for that moment, not refused: clients retry)'
TCP_WRR = FLIP.replace('-A -t 10.0.0.1:80 -s rr', '-A -t 10.0.0.1:80 -s wrr')
ALL_WRR = FLIP.replace('-s rr', '-s wrr')
NEW_SERVER = '-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n'
UDP_NOTE = ('UDP cannot be held (without conntrack no rule tells a datagram opening a flow): one arriving while '
            'the kernel swaps schedulers is refused')


@pytest.mark.parametrize('desired, fail, check_mode, log, warning', [
    pytest.param(FLIP + NEW_SERVER, (), False,
                 ['apply add_server tcp 10.0.0.1:80 10.1.0.2:80 w1 new'], None, id='no-scheduler-change-no-hold'),
    pytest.param(TCP_WRR + NEW_SERVER, (), False,
                 ['place tcp 10.0.0.1:80', 'apply edit_service tcp 10.0.0.1:80 scheduler', 'release',
                  'apply add_server tcp 10.0.0.1:80 10.1.0.2:80 w1 new'],
                 'scheduler changed on 1 live service(s) (tcp 10.0.0.1:80): new TCP/SCTP connections arriving '
                 'while the kernel swapped schedulers were ' + HELD, id='held-then-the-rest'),
    pytest.param(ALL_WRR, (), False,
                 ['place fwmark 7, tcp 10.0.0.1:80', 'apply edit_service fwmark 7 scheduler, '
                  'edit_service tcp 10.0.0.1:80 scheduler', 'release', 'apply edit_service udp 10.0.0.2:53 scheduler'],
                 'scheduler changed on 3 live service(s) (fwmark 7, tcp 10.0.0.1:80, udp 10.0.0.2:53): new TCP/SCTP '
                 'connections arriving while the kernel swapped schedulers were ' + HELD + '; ' + UDP_NOTE,
                 id='fwmark-held-udp-not'),
    pytest.param(FLIP.replace('-A -u 10.0.0.2:53 -s rr', '-A -u 10.0.0.2:53 -s wrr'), (), False,
                 ['apply edit_service udp 10.0.0.2:53 scheduler'],
                 'scheduler changed on 1 live service(s) (udp 10.0.0.2:53): ' + UDP_NOTE, id='udp-only-no-hold'),
    pytest.param(TCP_WRR, (), True, ['check'],
                 'scheduler would change on 1 live service(s) (tcp 10.0.0.1:80): a real run holds new TCP/SCTP '
                 'connections while the kernel swaps schedulers (dropped for that moment, not refused: clients '
                 'retry)', id='check-mode-places-nothing'),
    pytest.param(TCP_WRR, ('check',), True, ['check'],
                 'scheduler would change on 1 live service(s) (tcp 10.0.0.1:80): new connections arriving while '
                 'the kernel swaps schedulers are refused (not held: check: nft: command not found)',
                 id='check-mode-nft-missing'),
    pytest.param(TCP_WRR + NEW_SERVER, ('place',), False,
                 ['place tcp 10.0.0.1:80', 'apply edit_service tcp 10.0.0.1:80 scheduler',
                  'apply add_server tcp 10.0.0.1:80 10.1.0.2:80 w1 new'],
                 'scheduler changed on 1 live service(s) (tcp 10.0.0.1:80): new connections arriving while the '
                 'kernel swaps schedulers are refused (not held: place: nft: command not found)',
                 id='nft-missing-applies-unheld'),
    pytest.param(TCP_WRR, ('release',), False,
                 ['place tcp 10.0.0.1:80', 'apply edit_service tcp 10.0.0.1:80 scheduler', 'release'],
                 'scheduler changed on 1 live service(s) (tcp 10.0.0.1:80): new TCP/SCTP connections arriving '
                 'while the kernel swapped schedulers were ' + HELD + '; release: nft: command not found',
                 id='release-fails-a-warning'),
])
def test_scheduler_changes_are_held(desired, fail, check_mode, log, warning):
    calls = []
    backend = Holding(table(FLIP), check_mode=check_mode, log=calls)
    result = engine.reconcile(backend, list(table(desired).values()), FLIP_SCOPE,
                              engine.ReconcileOptions(hold=RecordingHold(calls, fail)))
    assert calls == log
    assert result.warnings == ([warning] if warning else [])
    assert backend.table == (table(FLIP) if check_mode else table(desired))
    # Reported in plan order whatever the apply order.
    assert list(result.actions) == sorted(result.actions, key=lambda a: model.ACTION_ORDER.index(a.op))


def test_a_refused_scheduler_edit_still_releases_the_hold():
    calls = []
    backend = Holding(table(FLIP), log=calls, refuse=lambda action: 'Busy' if action.op == 'edit_service' else None)
    with pytest.raises(ApplyError, match='Busy') as caught:
        engine.reconcile(backend, list(table(TCP_WRR + NEW_SERVER).values()), FLIP_SCOPE,
                         engine.ReconcileOptions(hold=RecordingHold(calls)))
    assert calls == ['place tcp 10.0.0.1:80', 'apply edit_service tcp 10.0.0.1:80 scheduler', 'release']
    assert caught.value.applied == [] and brief(caught.value.failed) == 'edit_service tcp 10.0.0.1:80 scheduler'


def test_a_refusal_after_the_held_edits_reports_them_applied():
    calls = []
    backend = Holding(table(FLIP), log=calls, refuse=lambda action: 'Busy' if action.op == 'add_server' else None)
    with pytest.raises(ApplyError) as caught:
        engine.reconcile(backend, list(table(TCP_WRR + NEW_SERVER).values()), FLIP_SCOPE,
                         engine.ReconcileOptions(hold=RecordingHold(calls)))
    assert [brief(a) for a in caught.value.applied] == ['edit_service tcp 10.0.0.1:80 scheduler']
    assert calls[-2:] == ['release', 'apply add_server tcp 10.0.0.1:80 10.1.0.2:80 w1 new']


def test_many_scheduler_changes_are_held_a_batch_at_a_time():
    count = engine.HOLD_BATCH + 3
    old = ''.join('-A -t 10.0.0.%d:80 -s rr\n' % n for n in range(1, count + 1))
    calls = []
    backend = Holding(table(old), log=calls)
    engine.reconcile(backend, list(table(old.replace('rr', 'wrr')).values()), SCOPE,
                     engine.ReconcileOptions(hold=RecordingHold(calls)))
    assert [call.split(' ', 1)[0] for call in calls] == ['place', 'apply', 'place', 'apply', 'release']
    assert [len(call.split(', ')) for call in calls[:4]] == [engine.HOLD_BATCH] * 2 + [3] * 2
