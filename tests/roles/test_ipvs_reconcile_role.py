# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ipvs_reconcile role: its defaults, argument specs and README hold the same variables;
the k8s_service_proxy options are mapped from variables in one place, with the module's
own defaults, and every playbook passes them through one task file; and, rendered by
ansible-playbook on the controller, the node config is what the entry point accepts and the
units pass systemd-analyze (verify, and the sandbox's exposure). The probe (files/probe.sh)
names exactly the paths whose state differs; the whole role, run on the controller against
a stand-in systemctl, installs what runs, then reaches a converged node with that one task
(check mode too), and for drift of every kind runs the tasks that correct it and no other."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.modules import ipvs_virtual_server, k8s_service_proxy

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLE = os.path.join(REPO, 'roles', 'ipvs_reconcile')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
UNITS = ('netlb-ipvs-reconcile.service', 'netlb-ipvs-reconcile.timer', 'netlb-ipvs-pull.service',
         'netlb-ipvs-pull.timer', 'netlb-ipvs-watch.service')
# systemd-analyze security's exposure (0-10) each service must stay at or below.
EXPOSURE = {'netlb-ipvs-reconcile.service': 3.0, 'netlb-ipvs-pull.service': 6.0, 'netlb-ipvs-watch.service': 3.0}


def load(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return yaml.safe_load(handle)


def test_argument_specs_list_every_default_with_its_value():
    defaults = load('roles', 'ipvs_reconcile', 'defaults', 'main.yml')
    options = load('roles', 'ipvs_reconcile', 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert set(options) == set(defaults)
    assert {name: spec.get('default') for name, spec in options.items()} == defaults
    assert options['ipvs_reconcile_mode']['choices'] == ['timer', 'pull', 'watch', 'off']


def test_readme_names_every_variable():
    with open(os.path.join(ROLE, 'README.md')) as handle:
        text = handle.read()
    missing = [name for name in load('roles', 'ipvs_reconcile', 'defaults', 'main.yml') if '`%s`' % name not in text]
    assert missing == []


def test_the_example_inventory_names_every_variable():
    with open(os.path.join(REPO, 'inventories', 'example', 'group_vars', 'ipvs_nodes', 'reconcile.yml')) as handle:
        text = handle.read()
    missing = [name for name in load('roles', 'ipvs_reconcile', 'defaults', 'main.yml')
               if not re.search(r'^# ?%s:' % name, text, re.M)]
    assert missing == []


def _defaults(options):
    """{option: the literal in its default(...)} of a vars file's option mapping."""
    found = {}
    for name, template in options.items():
        match = re.search(r'\| default\((.*?)\)( \|[^}]*)? }}$', template)
        if match and match.group(1) != 'omit':
            found[name] = yaml.safe_load(match.group(1))  # a Jinja literal: YAML reads it
    return found


def test_k8s_service_proxy_options_carry_the_module_defaults():
    options = load('playbooks', 'vars', 'k8s_service_proxy.yml')['k8s_service_proxy_options']
    spec = k8s_service_proxy.ARGUMENT_SPEC
    assert set(options) <= set(spec)
    assert all(template.startswith('{{ k8s_service_proxy_%s ' % name) for name, template in options.items())
    defaults = _defaults(options)
    assert defaults == {name: spec[name]['default'] for name in defaults}
    # Only what has no module default is left out when its variable is undefined.
    assert set(options) - set(defaults) == {name for name in options if spec[name].get('default') is None}
    assert 'force' not in options  # one run's override, never a node's timer


def test_ipvs_virtual_server_options_carry_the_module_defaults():
    options = load('playbooks', 'vars', 'ipvs_virtual_server.yml')['ipvs_virtual_server_options']
    spec = ipvs_virtual_server.ARGUMENT_SPEC
    defaults = _defaults(options)
    assert set(options) == set(defaults) | {'scope'}
    assert defaults == {name: spec[name]['default'] for name in defaults}


def test_one_task_file_passes_the_options_to_the_module():
    tasks = load('playbooks', 'tasks', 'k8s_service_proxy.yml')
    args = tasks[0]['netlb.ipvs.k8s_service_proxy']
    options = load('playbooks', 'vars', 'k8s_service_proxy.yml')['k8s_service_proxy_options']
    assert set(args) == set(options) | {'force'}
    for name in options:
        assert re.match(r'^{{ k8s_service_proxy_options\.%s( \| default\(omit\))? }}$' % name, args[name]), name

    def calls(path):
        with open(os.path.join(REPO, path)) as handle:
            text = handle.read()
        return text.count('netlb.ipvs.k8s_service_proxy:'), text.count('tasks/k8s_service_proxy.yml')

    for path in ('site.yml', 'playbooks/k8s-services.yml', 'playbooks/migrate-from-kube-proxy.yml'):
        direct, through_the_file = calls(path)
        assert (direct, through_the_file > 0) == (0, True), path


def test_site_yml_is_the_only_entry_point():
    assert not os.path.exists(os.path.join(REPO, 'playbooks', 'site.yml'))
    site = load('site.yml')
    assert len(site) == 1 and site[0]['hosts'] == 'ipvs_nodes'
    assert site[0]['serial'] == "{{ netlb_ipvs_serial | default('100%') }}"
    assert site[0]['max_fail_percentage'] == '{{ netlb_ipvs_max_fail_percentage | default(0) }}'
    steps = [task.get('ansible.builtin.include_role', task.get('ansible.builtin.import_role', {})).get('name')
             or task.get('ansible.builtin.import_tasks') or next(key for key in task if key.startswith('netlb.'))
             for task in site[0]['tasks'] if 'ansible.builtin.debug' not in task]
    assert [role['role'] for role in site[0]['roles']] + steps == [
        'ipvs_node', 'kube_proxy', 'ipvs_reconcile', 'playbooks/tasks/k8s_service_proxy.yml', 'kube_proxy',
        'netlb.ipvs.ipvs_virtual_server']


# ---------------------------------------------------------------------------- rendered

RENDER = [{
    'hosts': 'localhost', 'gather_facts': False,
    'vars_files': [os.path.join(REPO, path) for path in (
        'roles/ipvs_node/defaults/main.yml', 'roles/ipvs_node/vars/main.yml',
        'roles/ipvs_reconcile/defaults/main.yml', 'playbooks/vars/k8s_service_proxy.yml',
        'playbooks/vars/ipvs_virtual_server.yml')],
    'tasks': [
        {'ansible.builtin.include_vars': os.path.join(ROLE, 'vars', 'main.yml')},
        {'ansible.builtin.copy': {'content': '{{ ipvs_reconcile_config | to_nice_json(sort_keys=true) }}\n',
                                  'dest': '{{ out }}/reconcile.json', 'mode': '0600'}},
        {'ansible.builtin.template': {'src': os.path.join(ROLE, 'templates', '{{ item }}.j2'),
                                      'dest': '{{ out }}/{{ item }}', 'mode': '0644'},
         'loop': list(UNITS)}]}]


def render(directory, **variables):
    """The role's config and units as it renders them, with the variables as extra vars."""
    directory.mkdir()
    playbook = directory / 'render.yml'
    playbook.write_text(json.dumps(RENDER))
    extra = dict(variables, out=str(directory), ansible_managed='test')
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', json.dumps(extra),
                           str(playbook)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return json.loads((directory / 'reconcile.json').read_text())


def accepted(document):
    """The entry point's own check of the config (every problem at once) passes."""
    config = pytest.importorskip('ansible_collections.netlb.ipvs.plugins.module_utils._reconcile.config')
    return config.parse(document)


TABLE = [{'protocol': 'tcp', 'address': '192.0.2.10', 'port': 80, 'scheduler': 'wrr',
          'real_servers': [{'address': '10.0.0.11', 'port': 8080, 'weight': 2}]}]
NODE = {'modules': ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'nf_conntrack'],
        'sysctl': {'net.ipv4.ip_forward': '1', 'net.ipv4.vs.conntrack': '1', 'net.ipv4.vs.expire_nodest_conn': '1',
                   'net.ipv4.vs.expire_quiescent_template': '1'},
        'ipvs_timeouts': {'tcp': '0s', 'tcp_fin': '0s', 'udp': '0s'}}


@pytest.mark.playbook  # runs ansible-playbook: `make test-playbooks`
def test_a_directors_config_holds_its_table_options_and_what_ipvs_node_set(tmp_path):
    services = tmp_path / 'ipvs-services.json'
    services.write_text(json.dumps(TABLE))
    director = render(
        tmp_path / 'director', ipvs_reconcile_static=True, ipvs_reconcile_kubernetes=False,
        ipvs_virtual_servers=TABLE, ipvs_virtual_server_scope=['192.0.2.0/24'],
        ipvs_virtual_server_drain_timeout='60', ipvs_node_schedulers=['rr', 'wrr', 'mh'],
        ipvs_node_strict_arp=True, ipvs_node_sysctl_extra={'vm.swappiness': 10}, ipvs_reconcile_metrics_dir='',
        ipvs_reconcile_services_file=str(services))
    assert director == {
        'version': 1,
        'node': {'modules': ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_mh', 'nf_conntrack'],
                 'sysctl': dict(NODE['sysctl'], **{'net.ipv4.conf.all.arp_ignore': '1',
                                                   'net.ipv4.conf.all.arp_announce': '2', 'vm.swappiness': '10'}),
                 'ipvs_timeouts': NODE['ipvs_timeouts']},
        'static': {'services_file': str(services), 'scope': ['192.0.2.0/24'], 'exclusive': True,
                   'allow_empty': False, 'drain_timeout': 60, 'scheduler_hold': True},
        'kubernetes': None, 'pull': None, 'metrics_dir': None, 'timeout': 300}
    # The service may write the /proc/sys subtrees of its sysctls, and no other.
    unit = (tmp_path / 'director' / 'netlb-ipvs-reconcile.service').read_text()
    assert re.search(r'^ReadWritePaths=/proc/sys/net /proc/sys/vm$', unit, re.M), unit
    assert re.search(r'^IPAddressDeny=any$', unit, re.M) and 'AF_INET' not in unit
    accepted(director)


# Columns: the node's kernel release (ansible_facts.kernel), more variables, the
# conn_reuse_mode ipvs_node writes (None: not written), the IPVS timeouts in the node config.
@pytest.mark.playbook
@pytest.mark.parametrize('release, variables, conn_reuse_mode, ipvs_timeouts', [
    pytest.param('5.4.0-42-generic', {}, '0', NODE['ipvs_timeouts'], id='before-5.9-kube-proxy-writes-0'),
    pytest.param('5.9.0', {'kube_proxy_tcp_timeout': '2h0m0s', 'kube_proxy_udp_timeout': 60}, None,
                 {'tcp': '2h0m0s', 'tcp_fin': '0s', 'udp': '60'}, id='from-5.9-left-the-kube-proxy-timeouts'),
    pytest.param('4.0.9', {}, None, NODE['ipvs_timeouts'], id='before-4.1-no-such-sysctl'),
    pytest.param('5.8.18', {'ipvs_node_sysctl_extra': {'net.ipv4.vs.conn_reuse_mode': 1},
                            'ipvs_node_ipvs_tcp_fin_timeout': '30s'}, '1',
                 {'tcp': '0s', 'tcp_fin': '30s', 'udp': '0s'}, id='the-inventory-has-the-last-word'),
])
def test_the_node_part_follows_kube_proxy_conn_reuse_mode_and_timeouts(tmp_path, release, variables,
                                                                        conn_reuse_mode, ipvs_timeouts):
    """What the ipvs_node role sets and the timer re-asserts: conn_reuse_mode by the kernel as
    kube-proxy sets it (kubernetes#70747, #81775), the IPVS timeouts from kube_proxy_*."""
    node = render(tmp_path / 'node', ipvs_node_kernel_release=release, ipvs_reconcile_kubernetes=False,
                  ipvs_reconcile_static=False, **variables)['node']
    assert node['sysctl'].get('net.ipv4.vs.conn_reuse_mode') == conn_reuse_mode
    assert node['ipvs_timeouts'] == ipvs_timeouts
    accepted({'version': 1, 'node': node})


@pytest.mark.playbook
def test_a_kubernetes_nodes_config_holds_the_module_options_site_yml_passes(tmp_path):
    kube = render(
        tmp_path / 'kube', ipvs_reconcile_kubernetes=True, ipvs_reconcile_static=False,
        k8s_service_proxy_kubeconfig='/etc/netlb-ipvs/kubeconfig', k8s_service_proxy_cluster_cidrs=['10.244.0.0/16'],
        k8s_service_proxy_scheduler_hold='false', k8s_service_proxy_force=True, ipvs_reconcile_mode='pull',
        ipvs_reconcile_repo_url='https://git.example.net/fleet.git', ipvs_reconcile_pull_inventory='inv/hosts.yml',
        ipvs_reconcile_verify_commit=True, ipvs_reconcile_timeout=120)
    assert kube == {
        'version': 1, 'node': NODE, 'static': None,
        # The module's defaults, what the inventory set, no option left undefined, never force.
        'kubernetes': {'source': 'api', 'kubeconfig': '/etc/netlb-ipvs/kubeconfig', 'namespaces': [],
                       'service_cidrs': ['10.96.0.0/12'], 'cluster_cidrs': ['10.244.0.0/16'],
                       'node_port_range': '30000-32767', 'node_port_addresses': [], 'families': ['ipv4', 'ipv6'],
                       'external_ips_allowed_cidrs': [], 'scheduler': 'rr', 'scheduler_flags': ['mh-port'],
                       'masquerade': 'external', 'max_delete_ratio': 0.5, 'scheduler_hold': False},
        'pull': {'url': 'https://git.example.net/fleet.git', 'branch': 'main', 'directory': '/var/lib/netlb-ipvs/pull',
                 'playbook': 'site.yml', 'inventory': 'inv/hosts.yml', 'verify_commit': True,
                 'gnupg_home': '/etc/netlb-ipvs/gnupg'},
        'metrics_dir': '/var/lib/prometheus/node-exporter', 'timeout': 120}
    accepted(kube)


@pytest.mark.playbook
@pytest.mark.skipif(not shutil.which('systemd-analyze'), reason='systemd-analyze is not installed')
@pytest.mark.parametrize('kubernetes', [True, False], ids=['kubernetes', 'no-kubernetes'])
def test_the_units_are_valid_and_the_services_sandboxed(tmp_path, kubernetes):
    out = tmp_path / 'units'
    render(out, ipvs_reconcile_kubernetes=kubernetes, ipvs_reconcile_static=False,
           ipvs_reconcile_repo_url='https://git.example.net/fleet.git', ipvs_reconcile_pull_inventory='inv/hosts.yml')
    units = [str(out / unit) for unit in UNITS]
    done = subprocess.run(['systemd-analyze', 'verify', '--man=no'] + units, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0 and done.stdout == '', done.stdout
    for service, most in EXPOSURE.items():
        done = subprocess.run(['systemd-analyze', 'security', '--offline=true', '--no-pager', str(out / service)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        exposure = re.search(r'Overall exposure level for \S+: ([0-9.]+)', done.stdout)
        assert exposure and float(exposure.group(1)) <= most, done.stdout
    # A stop signals the watcher alone, so a command its sync in flight runs finishes too.
    assert re.search(r'^KillMode=mixed$', (out / 'netlb-ipvs-watch.service').read_text(), re.M)


# ---------------------------------------------------------------------------- the probe

PROBE_SH = os.path.join(ROLE, 'files', 'probe.sh')


def probe(*pairs, path=None):
    """files/probe.sh with (name, pattern) pairs: {name: state} of those it prints."""
    env = dict(os.environ, PATH=path or os.environ['PATH'])
    with open(PROBE_SH) as handle:
        done = subprocess.run(['sh', '-s', '--'] + [word for pair in pairs for word in pair], input=handle.read(),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              check=False)
    assert done.returncode == 0 and done.stderr == '', done.stderr
    return dict(line.split('\t') for line in done.stdout.splitlines())


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


@pytest.fixture
def probed(tmp_path):
    """A directory with one of each kind of path the role makes, and its owner's ids."""
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'dir').chmod(0o755)
    (tmp_path / 'file').write_text('text\n')
    (tmp_path / 'file').chmod(0o600)
    (tmp_path / 'empty').write_text('')
    (tmp_path / 'empty').chmod(0o644)
    (tmp_path / 'link').symlink_to('/nowhere/netlb-ipvs')
    return tmp_path, '%d %d' % (os.getuid(), os.getgid())


# name: the path under the directory; want: the pattern, with {ids} the owner's "UID GID";
# state: what the probe prints, None when the path matches and it prints nothing.
PROBE_CASES = [
    ('dir', 'directory 755 {ids}', None),
    ('dir', 'directory 755 * *', None),
    ('dir', 'directory 700 {ids}', 'directory 755 {ids}'),
    ('file', 'file 600 {ids} %s' % sha1('text\n'), None),
    ('file', 'file 644 {ids} %s' % sha1('text\n'), 'file 600 {ids} %s' % sha1('text\n')),
    ('file', 'file 600 {ids} %s' % sha1('text'), 'file 600 {ids} %s' % sha1('text\n')),
    ('empty', 'file 644 {ids} %s' % sha1(''), None),  # not stat's "regular empty file"
    ('file', 'absent', 'file 600 {ids} %s' % sha1('text\n')),
    ('missing', 'absent', None),
    ('missing', 'file 644 0 0 %s' % sha1(''), 'absent'),
    ('link', 'link /nowhere/netlb-ipvs', None),  # a dangling link is still the link
    ('link', 'link /elsewhere', 'link /nowhere/netlb-ipvs'),
    ('dir', 'file 644 {ids} *', 'directory 755 {ids}'),
]


@pytest.mark.parametrize('name, want, state', PROBE_CASES)
def test_the_probe_prints_each_path_whose_state_does_not_match(probed, name, want, state):
    directory, ids = probed
    path = str(directory / name)
    found = probe((path, want.format(ids=ids)))
    assert found == ({} if state is None else {path: state.format(ids=ids)})


def test_the_probe_reads_units_through_systemctl_and_many_pairs_at_once(probed, tmp_path):
    """A unit's properties sorted by name, whatever systemctl's order; a failing systemctl
    (no systemd) differs from every pattern."""
    directory, ids = probed
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'systemctl').write_text('#!/bin/sh\nfor unit; do :; done\ncase $unit in\n'
                                       'on.timer) printf "UnitFileState=enabled\\nActiveState=active\\n'
                                       'NeedDaemonReload=no\\n";;\n'
                                       'old.service) printf "NeedDaemonReload=yes\\nActiveState=inactive\\n'
                                       'UnitFileState=static\\n";;\n'
                                       '*) echo "System has not been booted with systemd" >&2; exit 1;;\nesac\n')
    (bin_dir / 'systemctl').chmod(0o755)
    found = probe(('on.timer', 'ActiveState=active NeedDaemonReload=no UnitFileState=enabled'),
                  (str(directory / 'dir'), 'directory 755 {}'.format(ids)),
                  ('old.service', 'ActiveState=* NeedDaemonReload=no UnitFileState=*'),
                  ('gone.timer', 'ActiveState=* NeedDaemonReload=no UnitFileState=*'),
                  (str(directory / 'missing'), 'absent'),
                  path='%s:%s' % (bin_dir, os.environ['PATH']))
    assert found == {'old.service': 'ActiveState=inactive NeedDaemonReload=yes UnitFileState=static',
                     'gone.timer': 'System has not been booted with systemd'}


# ---------------------------------------------------------------------------- installed

PYTHON = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable  # a node's Python
FAKE_SYSTEMCTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fake_systemctl.py')
PROBE = 'Read what differs on the node (files/probe.sh)'
# Tasks reported for the node that never reach it: the play's fact gathering (site.yml
# gathers anyway), and action plugins that run on the controller alone (the argument
# specs, assert).
CONTROLLER = ('Gathering Facts', 'Validating arguments against arg spec', 'Check what the node config is made of',
              'Check the pull settings')


class Node:
    """Role ipvs_reconcile, whole, run by ansible-playbook on the controller itself as host
    `node`: every path the role writes under one directory, systemd a stand-in
    (fake_systemctl.py, first on PATH) whose unit directory is there too."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = tmp_path / 'node'
        self.systemd = tmp_path / 'systemd'
        (self.systemd / 'system').mkdir(parents=True)
        (self.root / 'sbin').mkdir(parents=True)
        bin_dir = tmp_path / 'bin'
        bin_dir.mkdir()
        (bin_dir / 'systemctl').symlink_to(FAKE_SYSTEMCTL)
        self.env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default',
                        NETLB_FAKE_SYSTEMD=str(self.systemd), PATH='%s:%s' % (bin_dir, os.environ['PATH']))
        self.paths = dict(
            ipvs_reconcile_lib_dir=str(self.root / 'lib'), ipvs_reconcile_command=str(self.root / 'sbin' / 'netlb-ipvs'),
            ipvs_reconcile_config_dir=str(self.root / 'etc'), ipvs_reconcile_state_dir=str(self.root / 'state'),
            ipvs_reconcile_metrics_dir=str(self.root / 'metrics'), ipvs_reconcile_unit_dir=str(self.systemd / 'system'),
            ipvs_reconcile_python=PYTHON, ipvs_reconcile_kubernetes=False, ipvs_reconcile_static=False)
        play = [{'hosts': 'node', 'gather_facts': True, 'gather_subset': ['min'],  # as site.yml
                 'vars_files': RENDER[0]['vars_files'], 'roles': [{'role': 'ipvs_reconcile'}]}]
        self.playbook = tmp_path / 'role.yml'
        self.playbook.write_text(json.dumps(play))

    def run(self, *extra, **variables):
        """The tasks that ran on the node (not skipped, not delegated to the controller, not
        one of the CONTROLLER actions), in order, and the recap's changed count."""
        (self.systemd / 'calls.log').write_text('')
        done = subprocess.run(
            [ANSIBLE_PLAYBOOK, '-i', 'node,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable,
             '-e', json.dumps(dict(self.paths, **variables)), str(self.playbook)] + list(extra),
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        assert done.returncode == 0, done.stdout
        tasks, task = [], None
        for line in done.stdout.splitlines():
            heading = re.match(r'^TASK \[(?:ipvs_reconcile : )?(.*)\] \*+$', line)
            if heading:
                task = heading.group(1)
            elif re.match(r'^(ok|changed): \[node\]', line) and task not in tasks and not task.startswith(CONTROLLER):
                tasks.append(task)
        return tasks, int(re.search(r'^node\s*: ok=\d+\s+changed=(\d+)', done.stdout, re.M).group(1))

    def calls(self):
        """systemctl's calls in the last run, but the probe's and the module's questions."""
        lines = (self.systemd / 'calls.log').read_text().splitlines()
        return [line for line in lines if line.split()[0] not in ('show', 'is-enabled', 'is-active')]

    def units(self):
        """{unit file: (enabled, active)} as the stand-in systemd has them."""
        with open(self.systemd / 'state.json') as handle:
            state = json.load(handle)
        return {name: (name in state['enabled'], name in state['active'])
                for name in sorted(os.listdir(self.systemd / 'system'))}


# What a first run in timer mode does on the node, and the task that alone runs on it
# once it is converged.
INSTALL = [PROBE, "Make the entry point's directory", 'Copy the bundle to the node',
           'Unpack, byte-compile and swap in the new tree', 'Write /usr/local/sbin/netlb-ipvs, the entry point\'s wrapper for people',
           'Make the config, state and metrics directories', 'Write the node config', 'Write the units of this mode',
           'Reload systemd, enable and start the timer']
RECONCILE_UNITS = {'netlb-ipvs-reconcile.service': (False, False), 'netlb-ipvs-reconcile.timer': (True, True)}


@pytest.mark.playbook
@pytest.mark.skipif(os.geteuid() != 0, reason='the role installs root-owned files')
def test_the_entry_point_installs_runs_and_a_converged_node_runs_one_task(tmp_path):
    node = Node(tmp_path)
    root = node.root
    tree = root / 'lib' / 'ansible_collections'
    paused = dict(ipvs_reconcile_paused=True, ipvs_reconcile_pause_reason='a NIC swap', ipvs_reconcile_static=True,
                  ipvs_virtual_servers=TABLE, ipvs_virtual_server_scope=['192.0.2.0/24'])

    # Check mode on a new node: every change reported, nothing written, nothing started.
    tasks, changed = node.run('--check', **paused)
    assert changed > 0 and not (root / 'lib').exists() and not os.listdir(node.systemd / 'system')
    assert node.calls() == []

    tasks, changed = node.run(**paused)
    assert tasks == INSTALL[:7] + ['Write the static table', "Pause the node's runs (ipvs_reconcile_paused)"] + INSTALL[7:]
    assert node.units() == RECONCILE_UNITS
    assert node.calls() == ['daemon-reload', 'enable netlb-ipvs-reconcile.timer', 'start netlb-ipvs-reconcile.timer']
    bundle = (root / 'lib' / 'bundle.tar').read_bytes()
    assert (tree / '.bundle.sha1').read_text().strip() == hashlib.sha1(bundle).hexdigest()
    assert sorted(os.listdir(root / 'lib')) == ['ansible_collections', 'bundle.tar']  # no staging left
    wrapper = (root / 'sbin' / 'netlb-ipvs').read_text()  # runs the tree's entry point with the node's Python
    assert wrapper.startswith('#!/bin/sh\n') and str(tree / 'netlb' / 'ipvs' / 'bin' / 'netlb-ipvs') in wrapper
    assert os.stat(root / 'sbin' / 'netlb-ipvs').st_mode & 0o777 == 0o755
    compiled = [name for _dir, _dirs, files in os.walk(tree) for name in files if name.endswith('.pyc')]
    assert compiled and not [name for name in tarfile.open(root / 'lib' / 'bundle.tar').getnames()
                             if '__pycache__' in name]  # compiled on the node, not shipped
    assert oct(os.stat(root / 'etc' / 'reconcile.json').st_mode & 0o777) == '0o600'
    assert oct(os.stat(root / 'etc').st_mode & 0o777) == '0o700'  # the kubeconfig's too: root's alone
    assert json.loads((root / 'etc' / 'ipvs-services.json').read_text()) == TABLE

    # The installed entry point runs on the node's Python and reads the role's pause file.
    done = subprocess.run([str(root / 'sbin' / 'netlb-ipvs'), '--state-dir', str(root / 'state'),
                           '--lock-file', str(tmp_path / 'lock'), 'status'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)['paused'] == 'a NIC swap'

    # The same collection and variables again: one task on the node, not a byte copied,
    # nothing changed, systemd only asked; in check mode too.
    assert node.run(**paused) == ([PROBE], 0)
    assert node.calls() == []
    assert node.run('--check', **paused) == ([PROBE], 0)
    assert (root / 'lib' / 'bundle.tar').read_bytes() == bundle  # the same files give the same bytes


@pytest.mark.playbook
@pytest.mark.skipif(os.geteuid() != 0, reason='the role installs root-owned files')
def test_drift_of_every_kind_runs_the_tasks_that_correct_it_and_no_other(tmp_path):
    node = Node(tmp_path)
    root = node.root
    tree = root / 'lib' / 'ansible_collections'
    node.run()
    converged = {path: (path.read_bytes(), path.stat().st_mode) for path in
                 (root / 'etc' / 'reconcile.json', root / 'lib' / 'bundle.tar',
                  node.systemd / 'system' / 'netlb-ipvs-reconcile.service')}

    with open(root / 'etc' / 'reconcile.json', 'a') as handle:
        handle.write(' ')  # the config edited
    (root / 'state').chmod(0o700)  # a directory's mode
    (root / 'metrics').rmdir()  # a directory removed
    (root / 'lib' / 'bundle.tar').chmod(0o600)  # the bundle's mode, its content intact
    (tree / '.bundle.sha1').write_text('0' * 40 + '\n')  # a tree that is not the bundle's
    (tree / 'netlb' / 'ipvs' / 'stray.py').write_text('')
    (root / 'sbin' / 'netlb-ipvs').write_text('#!/bin/sh\nexec true\n')  # the wrapper edited
    (root / 'state' / 'reconcile.paused').write_text('by hand\n')  # a pause made by hand
    (root / 'etc' / 'ipvs-services.json').write_text('[]\n')  # a table on a node that has none
    with open(node.systemd / 'system' / 'netlb-ipvs-reconcile.service', 'a') as handle:
        handle.write('# edited\n')  # a unit edited
    subprocess.run([FAKE_SYSTEMCTL, 'disable', 'netlb-ipvs-reconcile.timer'], env=node.env, check=True)
    subprocess.run([FAKE_SYSTEMCTL, 'stop', 'netlb-ipvs-reconcile.timer'], env=node.env, check=True)
    drifted = (root / 'etc' / 'reconcile.json').read_bytes()

    corrections = [PROBE, 'Copy the bundle to the node', 'Unpack, byte-compile and swap in the new tree',
                   'Write /usr/local/sbin/netlb-ipvs, the entry point\'s wrapper for people', 'Make the config, state and metrics directories',
                   'Write the node config', 'Remove the static table of a node that has none',
                   'Lift a pause (ipvs_reconcile_paused is false)', 'Write the units of this mode',
                   'Reload systemd, enable and start the timer']
    # Check mode: the same tasks but those check mode cannot run, reporting; nothing touched.
    tasks, changed = node.run('--check')
    assert tasks == [task for task in corrections if task not in (corrections[2], corrections[-1])] and changed > 0
    assert (root / 'etc' / 'reconcile.json').read_bytes() == drifted and node.calls() == []

    tasks, changed = node.run()
    assert tasks == corrections and changed > 0
    assert {path: (path.read_bytes(), path.stat().st_mode) for path in converged} == converged
    assert not (tree / 'netlb' / 'ipvs' / 'stray.py').exists()  # the tree replaced whole
    assert not (root / 'state' / 'reconcile.paused').exists() and not (root / 'etc' / 'ipvs-services.json').exists()
    assert node.units() == RECONCILE_UNITS
    assert node.calls() == ['daemon-reload', 'enable netlb-ipvs-reconcile.timer', 'start netlb-ipvs-reconcile.timer']
    assert node.run() == ([PROBE], 0)

    # systemd holding an older unit than its file (a reload that never came) is made to read it.
    subprocess.run([FAKE_SYSTEMCTL, 'daemon-reload'], env=node.env, check=True)
    with open(node.systemd / 'state.json') as handle:
        state = json.load(handle)
    state['read']['netlb-ipvs-reconcile.service'] = '0' * 40
    with open(node.systemd / 'state.json', 'w') as handle:
        json.dump(state, handle)
    assert node.run() == ([PROBE, 'Reload systemd, enable and start the timer'], 0)  # a reload is no change
    assert node.calls() == ['daemon-reload']


@pytest.mark.playbook
@pytest.mark.skipif(os.geteuid() != 0, reason='the role installs root-owned files')
def test_mode_off_removes_the_units_leaves_the_rest_and_then_runs_one_task(tmp_path):
    node = Node(tmp_path)
    node.run(ipvs_reconcile_paused=True)
    kept = sorted(str(path) for path in node.root.rglob('*'))
    tasks, changed = node.run(ipvs_reconcile_mode='off')
    assert tasks == [PROBE, 'Stop and disable the timers this mode does not use',
                     'Stop a reconcile run this mode no longer wants', 'Remove the units this mode does not use',
                     'Reload systemd, enable and start the timer',
                     'Forget the failed runs of the units removed above'] and changed > 0
    assert node.units() == {}
    assert node.calls() == ['disable netlb-ipvs-reconcile.timer', 'stop netlb-ipvs-reconcile.timer', 'daemon-reload',
                            'reset-failed netlb-ipvs-reconcile.service netlb-ipvs-reconcile.timer']
    assert sorted(str(path) for path in node.root.rglob('*')) == kept  # the config, the pause, the tree stay
    assert node.run(ipvs_reconcile_mode='off') == ([PROBE], 0)

    # Back to timer: the units again, nothing else (the tree and the config are still right).
    tasks, changed = node.run(ipvs_reconcile_paused=True)
    assert tasks == [PROBE, 'Write the units of this mode', 'Reload systemd, enable and start the timer']
    assert node.units() == RECONCILE_UNITS
