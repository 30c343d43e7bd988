#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for systemctl, for running role ipvs_reconcile on the controller
(tests/roles/test_ipvs_reconcile_role.py): installed as `systemctl` first on PATH, it
answers what the role and ansible.builtin.systemd_service ask (show, is-enabled,
is-active, daemon-reload, enable, disable, start, stop, restart) from a state kept in
$NETLB_FAKE_SYSTEMD: unit files in system/, what daemon-reload last read, which units are
enabled and active, and every call in calls.log, one a line.

Like systemd: a unit is loaded from its file in system/ (LoadState not-found without one);
a file that differs from what the last daemon-reload read says NeedDaemonReload=yes; a
unit without [Install] is static; starting a unit without a file fails."""

import hashlib
import json
import os
import sys

HOME = os.environ['NETLB_FAKE_SYSTEMD']
UNITS = os.path.join(HOME, 'system')
STATE = os.path.join(HOME, 'state.json')


def load():
    try:
        with open(STATE) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {'read': {}, 'enabled': [], 'active': []}


def save(state):
    with open(STATE, 'w') as handle:
        json.dump(state, handle)


def text(unit):
    try:
        with open(os.path.join(UNITS, unit)) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def digest(unit):
    found = text(unit)
    return None if found is None else hashlib.sha1(found.encode()).hexdigest()


def properties(state, unit):
    found = text(unit)
    if found is None:
        file_state = ''
    elif '[Install]' not in found:
        file_state = 'static'
    else:
        file_state = 'enabled' if unit in state['enabled'] else 'disabled'
    read = state['read'].get(unit)
    return {
        'Id': unit,
        'LoadState': 'loaded' if found is not None else 'not-found',
        'ActiveState': 'active' if unit in state['active'] else 'inactive',
        'SubState': 'waiting' if unit in state['active'] else 'dead',
        'UnitFileState': file_state,
        'NeedDaemonReload': 'yes' if read is not None and read != digest(unit) else 'no',
    }


def main(argv):
    with open(os.path.join(HOME, 'calls.log'), 'a') as log:
        log.write(' '.join(argv) + '\n')
    words = [word for word in argv if word not in ('--', '-l', '--no-pager')]
    wanted = [word.split('=', 1)[1] for word in words if word.startswith('--property=')]
    words = [word for word in words if not word.startswith('--')]
    verb, units = words[0], words[1:]
    state = load()
    if verb == 'daemon-reload':
        state['read'] = {unit: digest(unit) for unit in os.listdir(UNITS)}
        save(state)
        return 0
    unit = units[0]
    props = properties(state, unit)
    if verb == 'show':
        for name, value in props.items():
            if not wanted or name in wanted:
                print('%s=%s' % (name, value))
        return 0
    if verb == 'is-enabled':
        print(props['UnitFileState'] or 'not-found')
        return 0 if props['UnitFileState'] in ('enabled', 'static') else 1
    if verb == 'is-active':
        print(props['ActiveState'])
        return 0 if props['ActiveState'] == 'active' else 3
    if props['LoadState'] == 'not-found':
        sys.stderr.write('Unit %s not found.\n' % unit)
        return 5
    group, add = {'enable': ('enabled', True), 'disable': ('enabled', False), 'start': ('active', True),
                  'restart': ('active', True), 'stop': ('active', False)}[verb]
    state[group] = sorted(set(state[group]) - {unit} | ({unit} if add else set()))
    save(state)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
