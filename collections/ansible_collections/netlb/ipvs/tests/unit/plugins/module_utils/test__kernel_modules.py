# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules import (
    KernelModuleError,
    KernelSnapshot,
    KernelTree,
    LoadedModule,
    build_request,
    ensure_modules,
    missing_message,
    parse_aliases,
    parse_module_paths,
    parse_proc_modules,
    plan_absent,
    plan_present,
    render_persist_file,
    unload_roots,
)

RELEASE = '6.1.0-35-amd64'
IPVS_DIR = 'kernel/net/netfilter/ipvs/'
SCHEDULER_FILES = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos')

# Module -> what it depends on, as modules.dep of a Debian 12 kernel has it (trimmed).
DEPENDS = {
    'ip_vs': ('nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'),
    'nf_conntrack': ('nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'),
    'nf_defrag_ipv6': (),
    'nf_defrag_ipv4': (),
    'libcrc32c': (),
    'ip_vs_ftp': ('nf_nat', 'ip_vs'),
    'nf_nat': ('nf_conntrack',),
    'dummy': (),
}
for _s in SCHEDULER_FILES:
    DEPENDS['ip_vs_' + _s] = ('ip_vs',)

DEFAULTS = {
    'schedulers': ['rr', 'wrr', 'lc', 'wlc', 'sh'],
    'extra_modules': ['nf_conntrack'],
    'state': 'present',
    'persist': True,
    'persist_file': None,  # filled in per test: a path under tmp_path
}
DEFAULT_MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'nf_conntrack']


def ko_path(name):
    folder = IPVS_DIR if name.startswith('ip_vs') else 'kernel/net/netfilter/'
    return folder + name + '.ko.xz'


def proc_line(name, refcount, holders=()):
    return '%s 65536 %s %s Live 0x0000000000000000' % (name, refcount, ','.join(holders) + ',' if holders else '-')


class FakeKernel:
    """A kernel as files under tmp_path, plus a modprobe that edits /proc/modules the
    way the real one does (loads dependencies, removes those left unused)."""

    def __init__(self, root, modular=None, builtin=(), loaded=(), extra_refs=None, lib='lib', refuse=()):
        self.root = str(root)
        self.refuse = set(refuse)  # modprobe -r says "in use" though /proc/modules showed no user
        self.modular = set(DEPENDS if modular is None else modular)
        self.builtin = set(builtin)
        self.extra_refs = dict(extra_refs or {})  # name -> references not from modules
        self.loaded = []
        self.calls = []
        self.modules_dir = os.path.join(self.root, lib, 'modules', RELEASE)
        os.makedirs(self.modules_dir)
        os.makedirs(os.path.join(self.root, 'proc', 'sys', 'kernel'))
        os.makedirs(os.path.join(self.root, 'sys', 'module'))
        self._write('proc/sys/kernel/osrelease', RELEASE + '\n')
        dep_lines = ['%s: %s' % (ko_path(m), ' '.join(ko_path(d) for d in DEPENDS.get(m, ()) if d in self.modular))
                     for m in sorted(self.modular)]
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.dep'), '\n'.join(dep_lines) + '\n')
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.builtin'),
                    ''.join('kernel/net/%s.ko\n' % b for b in sorted(self.builtin)))
        self._write(os.path.join(lib, 'modules', RELEASE, 'modules.alias'),
                    'alias nf_conntrack_ipv4 nf_conntrack\nalias pci:v00008086d* e1000\n')
        for name in loaded:
            self._insert(name)
        self._sync()

    def _write(self, rel, text):
        with open(os.path.join(self.root, rel), 'w') as handle:
            handle.write(text)

    def _insert(self, name):
        for dep in DEPENDS.get(name, ()):
            if dep in self.modular and dep not in self.loaded:
                self._insert(dep)
        if name not in self.loaded:
            self.loaded.append(name)

    def holders(self, name):
        return [m for m in self.loaded if name in DEPENDS.get(m, ())]

    def refcount(self, name):
        # As on the lab kernel: ip_vs counts each scheduler twice (module use + registration).
        holders = self.holders(name)
        registered = len([h for h in holders if h.startswith('ip_vs_')]) if name == 'ip_vs' else 0
        return len(holders) + registered + self.extra_refs.get(name, 0)

    def _sync(self):
        lines = [proc_line(m, self.refcount(m), self.holders(m)) for m in self.loaded]
        self._write('proc/modules', '\n'.join(lines) + ('\n' if lines else ''))
        sysmod = os.path.join(self.root, 'sys', 'module')
        for name in os.listdir(sysmod):
            os.rmdir(os.path.join(sysmod, name))
        for name in set(self.loaded) | self.builtin:
            os.mkdir(os.path.join(sysmod, name))

    def modprobe(self, args):
        self.calls.append(args)
        remove = '-r' in args
        names = [a for a in args if not a.startswith('-')]
        errors = []
        for name in names:
            if remove:
                # kmod 30 (Debian 12): a module not loaded is no error; one in use is
                # reported and the others are still removed.
                if name not in self.loaded:
                    continue
                if self.refcount(name) or name in self.refuse:
                    errors.append('modprobe: WARNING: Module %s is in use.\n' % name)
                    continue
                self._remove(name)
            else:
                if name in self.builtin:
                    continue
                if name not in self.modular:
                    return 1, '', 'modprobe: FATAL: Module %s not found in directory /lib/modules/%s\n' % (name, RELEASE)
                self._insert(name)
        self._sync()
        return (1 if errors else 0), '', ''.join(errors)

    def _remove(self, name):
        self.loaded.remove(name)
        for dep in DEPENDS.get(name, ()):
            if dep in self.loaded and not self.refcount(dep):
                self._remove(dep)


class FakeRunner(Runner):
    def __init__(self, kernel):
        super(FakeRunner, self).__init__(module=None)
        self.kernel = kernel

    def which(self, name, required=True):
        return '/usr/sbin/' + name

    def _execute(self, argv, data):
        assert argv[0] == '/usr/sbin/modprobe'
        return self.kernel.modprobe(argv[1:])


def run(tmp_path, kernel, check_mode=False, **params):
    args = dict(DEFAULTS, persist_file=str(tmp_path / 'etc' / 'netlb-ipvs.conf'))
    args.update(params)
    return ensure_modules(args, KernelTree(kernel.root), FakeRunner(kernel), check_mode=check_mode)


@pytest.fixture
def etc(tmp_path):
    path = tmp_path / 'etc'
    path.mkdir()
    return path


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize('line, expect', [
    pytest.param('ip_vs_rr 12288 1 - Live 0xffffffffc0a2e000', LoadedModule('ip_vs_rr', 1, (), False), id='scheduler-in-use'),
    pytest.param('ip_vs 192512 6 ip_vs_sh,ip_vs_wlc,ip_vs_rr, Live 0x0', LoadedModule('ip_vs', 6, ('ip_vs_sh', 'ip_vs_wlc', 'ip_vs_rr'), False),
                 id='holders'),
    pytest.param('nf-conntrack 1 0 - Live 0x0', LoadedModule('nf_conntrack', 0, (), False), id='dash-normalised'),
    pytest.param('crc32c_intel 24576 1 [permanent], Live 0x0', LoadedModule('crc32c_intel', 1, (), True), id='permanent'),
    pytest.param('foo 1 - - Live 0x0', LoadedModule('foo', 0, (), True), id='no-unload-support'),
])
def test_parse_proc_modules(line, expect):
    assert parse_proc_modules(line + '\n') == {expect.name: expect}


@pytest.mark.parametrize('text, expect', [
    pytest.param('kernel/net/netfilter/ipvs/ip_vs.ko\n', {'ip_vs'}, id='builtin'),
    pytest.param('kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n', {'ip_vs_rr'}, id='dep-xz'),
    pytest.param('kernel/a/x-y.ko.zst:\nkernel/b/z.ko.gz:\n\n', {'x_y', 'z'}, id='zst-gz-dash'),
])
def test_parse_module_paths(text, expect):
    assert parse_module_paths(text) == expect


def test_parse_aliases_skips_wildcards():
    text = 'alias nf_conntrack_ipv4 nf_conntrack\nalias pci:v00008086d* e1000\nalias net-pf-10 ipv6\n'
    assert parse_aliases(text) == {'nf_conntrack_ipv4': 'nf_conntrack', 'net_pf_10': 'ipv6'}


# ---------------------------------------------------------------- request

@pytest.mark.parametrize('params, expect_modules, expect_problems', [
    pytest.param({}, DEFAULT_MODULES, [], id='defaults'),
    pytest.param({'schedulers': [], 'extra_modules': []}, ['ip_vs'], [], id='only-ip-vs'),
    pytest.param({'schedulers': ['rr', 'rr'], 'extra_modules': ['ip_vs_rr', 'nf-conntrack']}, ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], [],
                 id='deduplicated-and-normalised'),
    pytest.param({'schedulers': ['rr', 'fastest']}, None, ["schedulers[1]: unknown scheduler 'fastest'"], id='unknown-scheduler'),
    pytest.param({'schedulers': ['']}, None, ['schedulers[0]: empty scheduler name'], id='empty-scheduler'),
    pytest.param({'extra_modules': ['', '  ']}, None, ['extra_modules[0]: empty module name', 'extra_modules[1]: empty module name'],
                 id='empty-modules'),
    pytest.param({'extra_modules': ['a;b', '-r', 'ok', 'x' * 56]}, None,
                 ["extra_modules[0]: 'a;b' is not a kernel module name", "extra_modules[1]: '-r' is not",
                  'extra_modules[3]: '], id='odd-characters'),
    pytest.param({'persist_file': 'relative.conf'}, None, ["persist_file: must be an absolute path, got 'relative.conf'"], id='relative'),
    pytest.param({'persist_file': '/etc/modules'}, None, ["persist_file: '/etc/modules' must end in .conf"], id='not-conf'),
    pytest.param({'persist_file': 'relative', 'persist': False}, DEFAULT_MODULES, [], id='persist-off-ignores-file'),
    pytest.param({'state': 'gone'}, None, ["state: must be 'present' or 'absent'"], id='bad-state'),
])
def test_build_request(params, expect_modules, expect_problems):
    args = dict(DEFAULTS, persist_file='/etc/modules-load.d/netlb-ipvs.conf')
    args.update(params)
    if expect_problems:
        with pytest.raises(ValidationError) as info:
            build_request(args)
        assert len(info.value.problems) == len(expect_problems)
        for problem, expected in zip(info.value.problems, expect_problems):
            assert problem.startswith(expected)
    else:
        request = build_request(args)
        assert request.modules == expect_modules
        assert request.persist_file == (args['persist_file'] if args['persist'] else None)


def test_render_persist_file():
    text = render_persist_file(['ip_vs', 'ip_vs_rr'])
    assert text.endswith('\nip_vs\nip_vs_rr\n')
    assert all(line.startswith('#') for line in text.splitlines()[:-2])


# ---------------------------------------------------------------- planning

def snapshot_of(proc_lines, builtin=(), available=None):
    return KernelSnapshot(RELEASE, parse_proc_modules('\n'.join(proc_lines)), frozenset(builtin),
                          None if available is None else frozenset(available), {'nf_conntrack_ipv4': 'nf_conntrack'})


@pytest.mark.parametrize('proc_lines, builtin, available, modules, expect_load, expect_present, expect_builtin, expect_missing', [
    pytest.param([], (), DEPENDS, ['ip_vs', 'ip_vs_rr'], ['ip_vs', 'ip_vs_rr'], [], [], [], id='fresh'),
    pytest.param([proc_line('ip_vs', 1, ['ip_vs_rr']), proc_line('ip_vs_rr', 0)], (), DEPENDS, ['ip_vs', 'ip_vs_rr', 'ip_vs_sh'],
                 ['ip_vs_sh'], ['ip_vs', 'ip_vs_rr'], [], [], id='partly-loaded'),
    pytest.param([], ('ip_vs', 'ip_vs_rr'), ('nf_conntrack',), ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], ['nf_conntrack'], [], ['ip_vs', 'ip_vs_rr'], [],
                 id='builtin'),
    pytest.param([], (), ('ip_vs',), ['ip_vs', 'ip_vs_twos', 'dummy'], ['ip_vs'], [], [], ['ip_vs_twos', 'dummy'], id='missing'),
    pytest.param([], (), None, ['ip_vs', 'whatever'], ['ip_vs', 'whatever'], [], [], [], id='no-modules-dep-modprobe-decides'),
    pytest.param([proc_line('nf_conntrack', 0)], (), (), ['nf_conntrack_ipv4'], [], ['nf_conntrack_ipv4'], [], [], id='alias'),
])
def test_plan_present(proc_lines, builtin, available, modules, expect_load, expect_present, expect_builtin, expect_missing):
    plan = plan_present(modules, snapshot_of(proc_lines, builtin, available))
    assert plan == (expect_load, expect_present, expect_builtin, expect_missing)


IPVS_LOADED = [
    proc_line('ip_vs_rr', 0), proc_line('ip_vs_sh', 0),
    proc_line('ip_vs', 4, ['ip_vs_rr', 'ip_vs_sh']),  # each scheduler counts twice
    proc_line('nf_conntrack', 1, ['ip_vs']),
]


@pytest.mark.parametrize('proc_lines, builtin, modules, expect_unload, expect_in_use', [
    pytest.param(IPVS_LOADED, (), ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_rr', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], {},
                 id='all-free-holders-first'),
    pytest.param([proc_line('ip_vs_rr', 1)] + IPVS_LOADED[1:], (), ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_sh'],
                 {'ip_vs_rr': 'in use (refcount 1', 'ip_vs': 'used by ip_vs_rr', 'nf_conntrack': 'used by ip_vs'},
                 id='service-on-rr-blocks-the-chain'),
    pytest.param(IPVS_LOADED[:3] + [proc_line('nf_conntrack', 2, ['nf_nat', 'ip_vs']), proc_line('nf_nat', 0)], (),
                 ['ip_vs', 'ip_vs_rr', 'ip_vs_sh', 'nf_conntrack'], ['ip_vs_rr', 'ip_vs_sh', 'ip_vs'], {'nf_conntrack': 'used by nf_nat'},
                 id='conntrack-shared'),
    pytest.param(IPVS_LOADED, (), ['ip_vs', 'ip_vs_rr'], ['ip_vs_rr'], {'ip_vs': 'used by ip_vs_sh'}, id='holder-outside-request'),
    pytest.param([proc_line('nf_conntrack', 0)], ('ip_vs',), ['ip_vs', 'nf_conntrack'], ['nf_conntrack'], {}, id='builtin-ip-vs'),
    pytest.param(['ip_vs 1 0 [permanent], Live 0x0'], (), ['ip_vs'], [], {'ip_vs': 'the kernel cannot unload it'}, id='permanent'),
    pytest.param([], (), ['ip_vs', 'ip_vs_rr'], [], {}, id='nothing-loaded'),
])
def test_plan_absent(proc_lines, builtin, modules, expect_unload, expect_in_use):
    plan = plan_absent(modules, snapshot_of(proc_lines, builtin, DEPENDS))
    assert plan.unload == expect_unload
    assert sorted(plan.in_use) == sorted(expect_in_use)
    for name, reason in expect_in_use.items():
        assert plan.in_use[name].startswith(reason)
    assert plan.builtin == [m for m in modules if m in builtin]


def test_unload_roots():
    snapshot = snapshot_of(IPVS_LOADED, (), DEPENDS)
    assert unload_roots(['ip_vs_rr', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], snapshot) == ['ip_vs_rr', 'ip_vs_sh']
    assert unload_roots(['ip_vs', 'nf_conntrack'], snapshot) == ['ip_vs']


# ---------------------------------------------------------------- the kernel tree

@pytest.mark.parametrize('lib', ['lib', 'usr/lib'])
def test_kernel_tree_snapshot(tmp_path, lib):
    kernel = FakeKernel(tmp_path, builtin=('ip_vs_twos',), loaded=('ip_vs_rr',), lib=lib)
    # Built-in code with parameters appears in /sys/module only.
    os.mkdir(os.path.join(kernel.root, 'sys', 'module', 'vt'))
    snapshot = KernelTree(kernel.root).snapshot()
    assert snapshot.release == RELEASE
    assert sorted(snapshot.loaded) == sorted(['ip_vs_rr', 'ip_vs', 'nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'])
    assert snapshot.builtin == {'ip_vs_twos', 'vt'}
    assert 'ip_vs_mh' in snapshot.available
    assert snapshot.state('nf_conntrack_ipv4') == 'loaded'
    assert snapshot.offered_schedulers() == list(SCHEDULER_FILES)


def test_kernel_tree_without_module_files(tmp_path):
    snapshot = KernelTree(str(tmp_path), release='6.6.0-test').snapshot()
    assert (snapshot.release, snapshot.loaded, snapshot.builtin, snapshot.available) == ('6.6.0-test', {}, frozenset(), None)


def test_offered_schedulers(tmp_path):
    """Loaded, built in, or a module file in the IPVS directory (the kernel loads it when
    a service asks); not the IPVS modules that are no scheduler. Without the release's
    modules directory nothing can be told."""
    tree = KernelTree(str(tmp_path), release=RELEASE)
    assert tree.offered_schedulers() is None
    ipvs = os.path.join(str(tmp_path), 'lib', 'modules', RELEASE, *IPVS_DIR.strip('/').split('/'))
    os.makedirs(ipvs)
    for name in ('ip_vs.ko', 'ip_vs_ftp.ko', 'ip_vs_wrr.ko.xz', 'ip_vs_lc.ko.zst', 'ip_vs_mh.ko'):
        open(os.path.join(ipvs, name), 'w').close()
    with open(os.path.join(str(tmp_path), 'lib', 'modules', RELEASE, 'modules.builtin'), 'w') as handle:
        handle.write('kernel/net/netfilter/ipvs/ip_vs_rr.ko\n')
    os.makedirs(os.path.join(str(tmp_path), 'proc'))
    with open(os.path.join(str(tmp_path), 'proc', 'modules'), 'w') as handle:
        handle.write(proc_line('ip_vs_sh', 0) + '\n')
    assert tree.offered_schedulers() == frozenset(['rr', 'wrr', 'lc', 'sh', 'mh'])


# ---------------------------------------------------------------- the flow

def test_present_fresh_then_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    first = run(tmp_path, kernel)
    assert first['changed'] is True
    assert first['loaded'] == DEFAULT_MODULES and first['present'] == [] and first['builtin'] == []
    assert kernel.calls == [['-a'] + DEFAULT_MODULES]
    text = (etc / 'netlb-ipvs.conf').read_text()
    assert text == render_persist_file(DEFAULT_MODULES)
    assert oct(os.stat(str(etc / 'netlb-ipvs.conf')).st_mode & 0o777) == '0o644'
    assert first['diff'][0] == {'before': {'modules': []}, 'after': {'modules': DEFAULT_MODULES}}
    assert first['diff'][1]['before'] == '' and first['diff'][1]['after'] == text

    second = run(tmp_path, kernel)
    assert second['changed'] is False
    assert second['loaded'] == [] and second['present'] == DEFAULT_MODULES
    assert len(kernel.calls) == 1, 'modprobe not called when nothing is missing'


def test_present_check_mode_predicts_and_writes_nothing(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=('ip_vs_rr',))
    checked = run(tmp_path, kernel, check_mode=True)
    assert kernel.calls == [] and not (etc / 'netlb-ipvs.conf').exists()
    real = run(tmp_path, kernel)
    for key in ('changed', 'loaded', 'present', 'builtin', 'diff'):
        assert checked[key] == real[key], key


def test_present_builtin_is_never_a_change(tmp_path, etc):
    kernel = FakeKernel(tmp_path, modular=(), builtin=['ip_vs', 'ip_vs_rr', 'nf_conntrack'])
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(['ip_vs', 'ip_vs_rr', 'nf_conntrack']))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o644)
    result = run(tmp_path, kernel, schedulers=['rr'])
    assert result['changed'] is False and result['builtin'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert kernel.calls == []


def test_present_mode_only_change(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES)
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(DEFAULT_MODULES))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o600)
    result = run(tmp_path, kernel)
    assert result['changed'] is True
    assert result['diff'][0]['before']['persist_file_mode'] == '0600'


@pytest.mark.parametrize('modular, params, expect_message', [
    pytest.param(set(DEPENDS) - {'ip_vs_twos', 'ip_vs_mh'}, {'schedulers': ['rr', 'twos']},
                 'schedulers: this kernel (%s) has no module ip_vs_twos; it offers rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf'
                 % RELEASE, id='scheduler'),
    pytest.param(set(DEPENDS), {'extra_modules': ['no_such_mod']},
                 'extra_modules: this kernel (%s) has no module no_such_mod' % RELEASE, id='extra-module'),
    pytest.param({'nf_conntrack'}, {'schedulers': []}, 'ip_vs: this kernel (%s) has no IPVS' % RELEASE, id='no-ipvs'),
])
def test_present_missing_fails_before_loading(tmp_path, etc, modular, params, expect_message):
    kernel = FakeKernel(tmp_path, modular=modular)
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, **params)
    assert str(info.value).startswith(expect_message)
    assert kernel.calls == [] and not (etc / 'netlb-ipvs.conf').exists()


def test_present_unwritable_persist_file_fails_before_loading(tmp_path):
    kernel = FakeKernel(tmp_path)
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, persist_file=str(tmp_path / 'nodir' / 'x.conf'))
    assert str(info.value).startswith('persist_file: cannot write %s' % (tmp_path / 'nodir' / 'x.conf'))
    assert kernel.calls == []


def test_present_modprobe_failure_carries_command(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    kernel.modular.discard('ip_vs_sh')  # listed in modules.dep, but modprobe cannot find it
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel)
    assert 'modprobe could not load' in str(info.value)
    assert info.value.details['rc'] == 1 and 'ip_vs_sh' in info.value.details['stderr']
    assert info.value.details['cmd'].startswith('/usr/sbin/modprobe -a ip_vs')


def test_persist_false_leaves_file_alone(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    (etc / 'netlb-ipvs.conf').write_text('mine\n')
    result = run(tmp_path, kernel, persist=False)
    assert result['persisted_file'] is None and result['diff'] == {'before': {'modules': []}, 'after': {'modules': DEFAULT_MODULES}}
    assert (etc / 'netlb-ipvs.conf').read_text() == 'mine\n'


def test_absent_unloads_and_removes_then_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path)
    run(tmp_path, kernel)
    checked = run(tmp_path, kernel, state='absent', check_mode=True)
    assert (etc / 'netlb-ipvs.conf').exists() and len(kernel.calls) == 1
    result = run(tmp_path, kernel, state='absent')
    assert result['changed'] is True and checked['changed'] is True
    assert result['unloaded'] == checked['unloaded'] == ['ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs', 'nf_conntrack']
    assert kernel.calls[1] == ['-r', '-a', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert kernel.loaded == [] and not (etc / 'netlb-ipvs.conf').exists()
    assert result['warnings'] == []
    again = run(tmp_path, kernel, state='absent')
    assert again['changed'] is False and len(kernel.calls) == 2


def test_absent_in_use_warns_and_stays_idempotent(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES + ['nf_nat'], extra_refs={'ip_vs_rr': 1})
    result = run(tmp_path, kernel, state='absent')
    assert result['unloaded'] == ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert result['in_use'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert result['warnings'][0].startswith('ip_vs stays loaded: used by ip_vs_rr')
    assert 'ip_vs_rr' in kernel.loaded and 'ip_vs_sh' not in kernel.loaded
    again = run(tmp_path, kernel, state='absent')
    assert again['changed'] is False and again['in_use'] == result['in_use']


def test_absent_kernel_refuses_midway(tmp_path, etc):
    """A service appeared between plan and unload: a warning, not a failure."""
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES, refuse={'ip_vs_rr'})
    result = run(tmp_path, kernel, state='absent')
    assert result['changed'] is True
    assert result['unloaded'] == ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh']
    assert result['in_use'] == ['ip_vs', 'ip_vs_rr', 'nf_conntrack']
    assert 'ip_vs_rr stays loaded: the kernel refused (modprobe: WARNING: Module ip_vs_rr is in use.)' in result['warnings']
    assert 'ip_vs stays loaded: used by ip_vs_rr' in result['warnings']
    assert len(kernel.calls) == 1


def test_absent_other_modprobe_failure_is_an_error(tmp_path, etc):
    kernel = FakeKernel(tmp_path, loaded=['ip_vs_rr'])

    def broken(args):
        kernel.calls.append(args)
        return 1, '', 'modprobe: FATAL: Module ip_vs_rr: Operation not permitted\n'
    kernel.modprobe = broken
    with pytest.raises(KernelModuleError) as info:
        run(tmp_path, kernel, state='absent', schedulers=['rr'], extra_modules=[])
    assert str(info.value).startswith('modprobe could not unload ip_vs_rr: modprobe: FATAL: Module ip_vs_rr: Operation not permitted')
    assert info.value.details['cmd'] == '/usr/sbin/modprobe -r -a ip_vs_rr'


# ---------------------------------------------------------------- captured on the lab (see fixtures/kernel_modules/README.md)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'kernel_modules')
LAB_RELEASE = '6.1.0-56-amd64'


def captured_tree(tmp_path, proc_modules):
    root = tmp_path / 'root'
    modules_dir = root / 'lib' / 'modules' / LAB_RELEASE
    modules_dir.mkdir(parents=True)
    (root / 'proc').mkdir()
    for name in ('modules.dep', 'modules.builtin'):
        with open(os.path.join(FIXTURES, name)) as handle:
            (modules_dir / name).write_text(handle.read())
    with open(os.path.join(FIXTURES, proc_modules)) as handle:
        (root / 'proc' / 'modules').write_text(handle.read())
    return KernelTree(str(root), release=LAB_RELEASE)


ALL_SCHEDULER_MODULES = ['ip_vs_' + s for s in SCHEDULER_FILES]


@pytest.mark.parametrize('proc_modules, modules, expect_load, expect_present, expect_missing', [
    pytest.param('proc_modules.fresh', DEFAULT_MODULES, DEFAULT_MODULES, [], [], id='fresh'),
    pytest.param('proc_modules.ipvs_loaded', DEFAULT_MODULES, [], DEFAULT_MODULES, [], id='loaded'),
    pytest.param('proc_modules.rr_in_use', DEFAULT_MODULES, ['ip_vs_wrr', 'ip_vs_lc', 'ip_vs_sh'],
                 ['ip_vs', 'ip_vs_rr', 'ip_vs_wlc', 'nf_conntrack'], [], id='partly'),
    pytest.param('proc_modules.fresh', ['ip_vs'] + ALL_SCHEDULER_MODULES, ['ip_vs'] + ALL_SCHEDULER_MODULES[:-1], [], ['ip_vs_twos'],
                 id='no-twos-on-6.1'),
])
def test_captured_plan_present(tmp_path, proc_modules, modules, expect_load, expect_present, expect_missing):
    snapshot = captured_tree(tmp_path, proc_modules).snapshot()
    assert plan_present(modules, snapshot) == (expect_load, expect_present, [], expect_missing)


@pytest.mark.parametrize('proc_modules, expect_unload, expect_in_use', [
    pytest.param('proc_modules.ipvs_loaded', ['ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs', 'nf_conntrack'], [],
                 id='all-free'),
    pytest.param('proc_modules.rr_in_use', ['ip_vs_wlc'], ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], id='service-on-rr'),
    pytest.param('proc_modules.fresh', [], [], id='nothing-loaded'),
])
def test_captured_plan_absent(tmp_path, proc_modules, expect_unload, expect_in_use):
    snapshot = captured_tree(tmp_path, proc_modules).snapshot()
    plan = plan_absent(DEFAULT_MODULES, snapshot)
    assert plan.unload == expect_unload
    assert sorted(plan.in_use) == expect_in_use


def test_captured_missing_scheduler_message(tmp_path):
    snapshot = captured_tree(tmp_path, 'proc_modules.fresh').snapshot()
    plan = plan_present(['ip_vs', 'ip_vs_twos'], snapshot)
    assert missing_message(plan.missing, snapshot) == (
        'schedulers: this kernel (6.1.0-56-amd64) has no module ip_vs_twos; '
        'it offers rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf')


def test_present_read_only_directory_is_fine_when_nothing_to_write(tmp_path, etc, monkeypatch):
    kernel = FakeKernel(tmp_path, loaded=DEFAULT_MODULES)
    (etc / 'netlb-ipvs.conf').write_text(render_persist_file(DEFAULT_MODULES))
    os.chmod(str(etc / 'netlb-ipvs.conf'), 0o644)
    monkeypatch.setattr(os, 'access', lambda path, mode: False)
    assert run(tmp_path, kernel)['changed'] is False
