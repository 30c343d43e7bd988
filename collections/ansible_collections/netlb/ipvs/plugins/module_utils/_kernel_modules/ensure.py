# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ensure_modules(): the kernel and the persist file made to match a request, the
one flow the ipvs_modules module calls (modprobe, the modules-load.d file).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import re

from ansible_collections.netlb.ipvs.plugins.module_utils._command import CommandError
from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError, ensure_absent, ensure_content
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.plan import (
    missing_message,
    plan_absent,
    plan_present,
    unload_roots,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import build_request, render_persist_file

PERSIST_MODE = 0o644


class KernelModuleError(Exception):
    """The kernel lacks a module, modprobe failed, or the persist file could not be written.
    details holds extra fail_json keys (cmd, rc, stdout, stderr, missing)."""

    def __init__(self, msg, **details):
        self.details = details
        super(KernelModuleError, self).__init__(msg)


def _modprobe(runner, args, what):
    try:
        runner.run([runner.which('modprobe')] + list(args))
    except CommandError as exc:
        raise KernelModuleError('modprobe could not %s: %s' % (what, exc), **exc.as_dict())


def ensure_modules(params, tree, runner, check_mode=False):
    """Make the kernel and the persist file match params. Returns the module result,
    with 'diff' and 'warnings' keys for the caller to pass on."""
    request = build_request(params)
    snapshot = tree.snapshot()
    diff = DiffTracker()
    result = {
        'modules': list(request.modules),
        'kernel_release': snapshot.release,
        'loaded': [], 'present': [], 'builtin': [], 'unloaded': [], 'in_use': [],
        'persisted_file': request.persist_file,
        'warnings': [],
    }
    if request.state == 'present':
        changed = _ensure_present(request, snapshot, tree, runner, check_mode, diff, result)
    else:
        changed = _ensure_absent(request, snapshot, tree, runner, check_mode, diff, result)
    result['changed'] = changed
    result['diff'] = diff.diff()
    return result


def _ensure_present(request, snapshot, tree, runner, check_mode, diff, result):
    plan = plan_present(request.modules, snapshot)
    if plan.missing:
        raise KernelModuleError(missing_message(plan.missing, snapshot), missing=plan.missing)
    result.update(loaded=plan.load, present=plan.present, builtin=plan.builtin)
    there = set(plan.present + plan.builtin)
    diff.add('modules', [n for n in request.modules if n in there], list(request.modules))

    content = render_persist_file(request.modules) if request.persist else None
    try:
        if content is not None:
            # A dry run first, so a file that needs writing but cannot be written fails
            # the task before the kernel is touched, not halfway.
            ensure_content(request.persist_file, content, PERSIST_MODE, check_mode=True)
        if plan.load and not check_mode:
            _modprobe(runner, ['-a'] + plan.load, 'load %s' % ', '.join(plan.load))
            after = tree.snapshot()
            absent = [n for n in plan.load if after.state(n) not in ('loaded', 'builtin')]
            if absent:
                raise KernelModuleError('modprobe reported success but %s is not loaded' % ', '.join(absent))
        file_changed = False
        if content is not None:
            change = ensure_content(request.persist_file, content, PERSIST_MODE, check_mode)
            diff.add_text(request.persist_file, change.before, change.after)
            if change.mode_before not in (None, PERSIST_MODE):
                diff.add('persist_file_mode', '%04o' % change.mode_before, '%04o' % PERSIST_MODE)
            file_changed = change.changed
    except FileError as exc:
        raise KernelModuleError('persist_file: %s' % exc)
    return bool(plan.load) or file_changed


def _ensure_absent(request, snapshot, tree, runner, check_mode, diff, result):
    plan = plan_absent(request.modules, snapshot)
    before = [n for n in request.modules if snapshot.state(n) in ('loaded', 'builtin')]
    file_changed = False
    try:
        if request.persist:
            # Remove the boot-time file first: whatever stays loaded now, the next boot is clean.
            change = ensure_absent(request.persist_file, check_mode)
            diff.add_text(request.persist_file, change.before, change.after)
            file_changed = change.changed
    except FileError as exc:
        raise KernelModuleError('persist_file: %s' % exc)
    in_use = dict(plan.in_use)
    if plan.unload and not check_mode:
        in_use.update(_unload(request.modules, plan, tree, runner))
    unloaded = [n for n in plan.unload if n not in in_use]
    result.update(unloaded=unloaded, in_use=sorted(in_use), builtin=plan.builtin)
    for name in request.modules:
        if name in in_use:
            result['warnings'].append('%s stays loaded: %s' % (name, in_use[name]))
    diff.add('modules', before, [n for n in before if n not in unloaded])
    return bool(unloaded) or file_changed


def _unload(modules, plan, tree, runner):
    """Unload plan.unload; return {name: reason} for those the kernel kept.

    Only roots are named: `modprobe -r` takes along dependencies left unused. If the
    kernel refuses one (a service appeared since the plan), modprobe goes on with the
    others; the refusal becomes a reason, and the next round re-plans with the refused
    module staying, so what it holds stays too. Each round must make progress.
    """
    refused = {}
    modprobe = runner.which('modprobe')
    pending_before = None
    snapshot = None
    while plan.unload:
        roots = unload_roots(plan.unload, snapshot or tree.snapshot())
        done = runner.run([modprobe, '-r', '-a'] + roots, check=False)
        snapshot = tree.snapshot()
        for name in roots:
            if snapshot.resolve(name) not in snapshot.loaded:
                continue
            mention = re.compile(r'\b%s\b' % re.escape(name))
            said = [line.strip() for line in (done.stderr or '').splitlines() if mention.search(line)]
            if done.rc == 0 or not any('in use' in line for line in said):
                raise KernelModuleError('modprobe could not unload %s: %s' % (name, '; '.join(said) or 'no reason given'),
                                        cmd=done.cmd, rc=done.rc, stdout=done.stdout, stderr=done.stderr)
            refused[name] = 'the kernel refused (%s)' % said[0]
        pending = [n for n in modules if snapshot.resolve(n) in snapshot.loaded and n not in refused]
        if pending_before is not None and len(pending) >= len(pending_before):
            raise KernelModuleError('modprobe -r left %s loaded' % ', '.join(pending), remaining=pending)
        pending_before = pending
        plan = plan_absent([n for n in modules if n not in refused], snapshot)
        refused.update(plan.in_use)
    return refused
