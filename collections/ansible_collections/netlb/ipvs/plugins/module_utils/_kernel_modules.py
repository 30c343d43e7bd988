# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kernel modules IPVS needs: what the running kernel has, loading, unloading, persisting.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Layers:
  parse_* and plan_* functions are pure: text and values in, values out.
  KernelTree reads /proc/modules, /sys/module and /lib/modules/<release>/modules.*
  under an injectable root (unit tests build a fake tree in tmp_path).
  ensure_modules() is the one flow the ipvs_modules module calls; it returns the
  result (never exits) and raises ValidationError or KernelModuleError.

Rules:
  - A module compiled into the kernel (modules.builtin, or in /sys/module without a
    line in /proc/modules) counts as present: it never makes a run "changed".
  - Names are compared as the kernel does: '-' and '_' are the same character.
  - Check mode reads everything and writes nothing; the plan, the result and the diff
    are those of a real run.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from ansible_collections.netlb.ipvs.plugins.module_utils._command import CommandError
from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError, ensure_absent, ensure_content
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS

BASE_MODULE = 'ip_vs'
SCHEDULER_PREFIX = 'ip_vs_'
IPVS_DIR = ('kernel', 'net', 'netfilter', 'ipvs')  # where a kernel's IPVS modules are, under modules_dir()
DEFAULT_SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'sh')
DEFAULT_EXTRA_MODULES = ('nf_conntrack',)
DEFAULT_PERSIST_FILE = '/etc/modules-load.d/netlb-ipvs.conf'
PERSIST_MODE = 0o644

# Kernel module names: letters, digits, '_' and '-'. A leading '-' would read as a
# modprobe option, so it is refused. 55 = MODULE_NAME_LEN (64 - sizeof(long)) - NUL.
MODULE_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_-]*$')
MODULE_NAME_MAX = 55

_KO_SUFFIX_RE = re.compile(r'\.ko(\.(xz|gz|zst|bz2))?$')


class KernelModuleError(Exception):
    """The kernel lacks a module, modprobe failed, or the persist file could not be written.
    details holds extra fail_json keys (cmd, rc, stdout, stderr, missing)."""

    def __init__(self, msg, **details):
        self.details = details
        super(KernelModuleError, self).__init__(msg)


def normalise(name):
    """The kernel's spelling of a module name ('-' and '_' are interchangeable)."""
    return name.replace('-', '_')


# ---------------------------------------------------------------- parsing (pure)

LoadedModule = collections.namedtuple('LoadedModule', 'name refcount holders permanent')


def parse_proc_modules(text):
    """/proc/modules -> {name: LoadedModule}.

    A line is 'name size refcount holders state address'; holders is '-' or
    'a,b,'. refcount '-' (kernel without module unloading) and holders
    '[permanent]' (module without an exit function) both mean it cannot be unloaded.
    """
    modules = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        name = normalise(fields[0])
        permanent = not fields[2].isdigit() or '[permanent]' in fields[3]
        holders = tuple(normalise(h) for h in fields[3].split(',') if h and h not in ('-', '[permanent]'))
        modules[name] = LoadedModule(name, int(fields[2]) if fields[2].isdigit() else 0, holders, permanent)
    return modules


def parse_module_paths(text):
    """modules.builtin or modules.dep -> set of module names.

    modules.builtin lines are 'kernel/net/netfilter/ipvs/ip_vs.ko'; modules.dep lines
    are 'kernel/.../ip_vs_rr.ko.xz: kernel/.../ip_vs.ko.xz ...' (only the part before
    ':' names the module; the rest are its dependencies).
    """
    names = set()
    for line in text.splitlines():
        path = line.split(':', 1)[0].strip()
        if not path:
            continue
        names.add(normalise(_KO_SUFFIX_RE.sub('', os.path.basename(path))))
    return names


def parse_aliases(text):
    """modules.alias -> {alias: module} for plain aliases (wildcard device aliases skipped)."""
    aliases = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == 'alias' and not any(c in fields[1] for c in '*?['):
            aliases.setdefault(normalise(fields[1]), normalise(fields[2]))
    return aliases


@dataclasses.dataclass(frozen=True)
class KernelSnapshot:
    """What the running kernel has. available is None when modules.dep could not be
    read: then nothing is known to be missing and modprobe has the last word."""

    release: str
    loaded: dict
    builtin: frozenset
    available: frozenset = None
    aliases: dict = dataclasses.field(default_factory=dict)

    def resolve(self, name):
        """The real module name behind name (follows plain aliases)."""
        name = normalise(name)
        known = name in self.loaded or name in self.builtin or (self.available is not None and name in self.available)
        if not known and name in self.aliases:
            return self.aliases[name]
        return name

    def state(self, name):
        """'loaded', 'builtin', 'available' or 'missing'."""
        real = self.resolve(name)
        if real in self.loaded:
            return 'loaded'
        if real in self.builtin:
            return 'builtin'
        if self.available is None or real in self.available:
            return 'available'
        return 'missing'

    def offered_schedulers(self):
        """Schedulers this kernel has (loaded, built in or loadable), in SCHEDULERS order."""
        return [s for s in SCHEDULERS if self.state(SCHEDULER_PREFIX + s) != 'missing']


# ---------------------------------------------------------------- request (pure)

Request = collections.namedtuple('Request', 'modules state persist persist_file')


def _check_module_name(field, name, problems):
    if not isinstance(name, str) or not name.strip():
        problems.append('%s: empty module name' % field)
        return False
    if not MODULE_NAME_RE.match(name) or len(name) > MODULE_NAME_MAX:
        problems.append("%s: %r is not a kernel module name (letters, digits, '_' and '-', not starting "
                        "with '-', at most %d characters)" % (field, name, MODULE_NAME_MAX))
        return False
    return True


def build_request(params):
    """Validate module parameters; return a Request or raise ValidationError listing
    every problem, each starting with the parameter it is about.

    modules: ip_vs, then the schedulers' ip_vs_<name>, then extra_modules, each once.
    """
    problems = []
    modules = [BASE_MODULE]
    for index, scheduler in enumerate(params.get('schedulers') or []):
        field = 'schedulers[%d]' % index
        if not isinstance(scheduler, str) or not scheduler.strip():
            problems.append('%s: empty scheduler name' % field)
        elif scheduler not in SCHEDULERS:
            problems.append('%s: unknown scheduler %r; choose from %s' % (field, scheduler, ', '.join(SCHEDULERS)))
        else:
            modules.append(SCHEDULER_PREFIX + scheduler)
    for index, name in enumerate(params.get('extra_modules') or []):
        if _check_module_name('extra_modules[%d]' % index, name, problems):
            modules.append(normalise(name))

    state = params.get('state') or 'present'
    if state not in ('present', 'absent'):
        problems.append("state: must be 'present' or 'absent', got %r" % (state,))
    persist = params.get('persist', True)
    persist_file = params.get('persist_file') or ''
    if persist:
        if not persist_file or not os.path.isabs(persist_file) or '\0' in persist_file:
            problems.append('persist_file: must be an absolute path, got %r' % (persist_file,))
        elif not persist_file.endswith('.conf'):
            # systemd-modules-load reads only *.conf; any other name would silently not persist.
            problems.append('persist_file: %r must end in .conf (systemd-modules-load ignores other files)'
                            % (persist_file,))
    if problems:
        raise ValidationError(problems)
    unique = list(dict.fromkeys(modules))
    return Request(unique, state, bool(persist), persist_file if persist else None)


def render_persist_file(modules):
    """The modules-load.d file: every requested module, one a line, in request order.

    Built-in modules are listed too (systemd-modules-load accepts them), so the file
    is the same whatever the kernel, and stays right if a later kernel has them as modules.
    """
    lines = [
        '# Managed by netlb.ipvs.ipvs_modules: kernel modules IPVS needs, loaded at boot',
        '# by systemd-modules-load.service. Local changes are overwritten.',
    ]
    lines.extend(modules)
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- planning (pure)

PresentPlan = collections.namedtuple('PresentPlan', 'load present builtin missing')
AbsentPlan = collections.namedtuple('AbsentPlan', 'unload in_use builtin')


def plan_present(modules, snapshot):
    """Sort requested modules into to-load, already loaded, built in and missing."""
    groups = {'available': [], 'loaded': [], 'builtin': [], 'missing': []}
    for name in modules:
        groups[snapshot.state(name)].append(name)
    return PresentPlan(groups['available'], groups['loaded'], groups['builtin'], groups['missing'])


def plan_absent(modules, snapshot):
    """Which requested modules can be unloaded now, and why the others cannot.

    A loaded module can go when it is not permanent and every module holding it goes
    too. A module nothing holds must also have no references: a scheduler's count is
    the number of services using it. With holders, the count says nothing more (ip_vs
    counts each registered scheduler twice, plus each service), and its holders'
    refusal covers the services case since every service holds a scheduler. Blocking
    one module can block what it holds, so this repeats until nothing changes. unload
    is ordered holders first, the order `modprobe -r` needs; in_use maps name -> reason.
    """
    candidates = [name for name in modules if snapshot.resolve(name) in snapshot.loaded]
    builtin = [name for name in modules if snapshot.state(name) == 'builtin']
    in_use = {}
    changed = True
    while changed:
        changed = False
        going = set(snapshot.resolve(n) for n in candidates if n not in in_use)
        for name in candidates:
            if name in in_use:
                continue
            module = snapshot.loaded[snapshot.resolve(name)]
            staying = [h for h in module.holders if h not in going]
            if module.permanent:
                in_use[name] = 'the kernel cannot unload it'
            elif staying:
                in_use[name] = 'used by %s' % ', '.join(staying)
            elif not module.holders and module.refcount > 0:
                in_use[name] = 'in use (refcount %d, e.g. IPVS services using it)' % module.refcount
            else:
                continue
            changed = True
    removable = [n for n in candidates if n not in in_use]
    return AbsentPlan(_holders_first(removable, snapshot), in_use, builtin)


def _holders_first(names, snapshot):
    ordered = []
    pending = list(names)
    while pending:
        waiting = set(snapshot.resolve(n) for n in pending)
        for name in pending:
            if not [h for h in snapshot.loaded[snapshot.resolve(name)].holders if h in waiting]:
                ordered.append(name)
                pending.remove(name)
                break
        else:  # a holder cycle cannot happen in a real kernel; keep the rest as given
            ordered.extend(pending)
            break
    return ordered


def unload_roots(names, snapshot):
    """Those of names no other of names holds: `modprobe -r` on them takes the
    rest along, since it also removes dependencies that become unused."""
    real = set(snapshot.resolve(n) for n in names)
    return [n for n in names
            if not [h for h in snapshot.loaded[snapshot.resolve(n)].holders if h in real]]


def missing_message(missing, snapshot):
    """One sentence per missing module, naming the parameter it came from."""
    sentences = []
    for name in missing:
        if name == BASE_MODULE:
            sentences.append('ip_vs: this kernel (%s) has no IPVS (no module ip_vs in modules.dep or '
                             'modules.builtin)' % snapshot.release)
        elif name.startswith(SCHEDULER_PREFIX) and name[len(SCHEDULER_PREFIX):] in SCHEDULERS:
            offered = snapshot.offered_schedulers()
            sentences.append('schedulers: this kernel (%s) has no module %s; it offers %s' % (
                snapshot.release, name, ', '.join(offered) if offered else 'no IPVS scheduler'))
        else:
            sentences.append('extra_modules: this kernel (%s) has no module %s (not in modules.dep, '
                             'modules.builtin or modules.alias)' % (snapshot.release, name))
    return '; '.join(sentences)


# ---------------------------------------------------------------- the kernel (I/O)

class KernelTree:
    """Reads the kernel's module state under root ('/' on a host, tmp_path in tests)."""

    def __init__(self, root='/', release=None):
        self.root = root
        self._release = release

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    @staticmethod
    def _read(path):
        try:
            with open(path, 'r', encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    @property
    def release(self):
        if self._release is None:
            text = self._read(self._path('proc', 'sys', 'kernel', 'osrelease'))
            self._release = text.strip() if text else os.uname()[2]
        return self._release

    def modules_dir(self):
        for base in (('lib', 'modules'), ('usr', 'lib', 'modules')):
            path = self._path(*(base + (self.release,)))
            if os.path.isdir(path):
                return path
        return self._path('lib', 'modules', self.release)

    def offered_schedulers(self):
        """The IPVS schedulers this kernel offers, read cheaply (every sync asks): loaded
        (/proc/modules), built in (modules.builtin) or loadable (a file under
        kernel/net/netfilter/ipvs/; the kernel loads ip_vs_<name> itself when a service
        asks for it). A frozenset of names, or None when the modules directory is missing
        (a container without /lib/modules): then only the kernel knows."""
        modules_dir = self.modules_dir()
        if not os.path.isdir(modules_dir):
            return None
        names = set(parse_proc_modules(self._read(self._path('proc', 'modules')) or ''))
        names |= parse_module_paths(self._read(os.path.join(modules_dir, 'modules.builtin')) or '')
        try:
            names |= parse_module_paths('\n'.join(os.listdir(os.path.join(modules_dir, *IPVS_DIR))))
        except OSError:
            pass
        return frozenset(name for name in SCHEDULERS if SCHEDULER_PREFIX + name in names)

    def snapshot(self):
        loaded = parse_proc_modules(self._read(self._path('proc', 'modules')) or '')
        builtin = set()
        modules_dir = self.modules_dir()
        builtin_text = self._read(os.path.join(modules_dir, 'modules.builtin'))
        if builtin_text is not None:
            builtin |= parse_module_paths(builtin_text)
        try:
            # Built-in code with parameters shows in /sys/module without a /proc/modules line.
            builtin |= set(normalise(n) for n in os.listdir(self._path('sys', 'module'))) - set(loaded)
        except OSError:
            pass
        dep_text = self._read(os.path.join(modules_dir, 'modules.dep'))
        available = frozenset(parse_module_paths(dep_text)) if dep_text is not None else None
        aliases = parse_aliases(self._read(os.path.join(modules_dir, 'modules.alias')) or '')
        return KernelSnapshot(self.release, loaded, frozenset(builtin), available, aliases)


# ---------------------------------------------------------------- the flow

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
