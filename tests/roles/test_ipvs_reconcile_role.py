# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ipvs_reconcile role: its defaults, argument specs and README hold the same variables;
the k8s_service_proxy options are mapped from variables in one place, with the module's
own defaults, and every playbook passes them through one task file; and, rendered by
ansible-playbook on the controller, the node config is what the entry point accepts and the
units pass systemd-analyze (verify, and the sandbox's exposure)."""

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
         'netlb-ipvs-pull.timer')
# systemd-analyze security's exposure (0-10) each service must stay at or below.
EXPOSURE = {'netlb-ipvs-reconcile.service': 3.0, 'netlb-ipvs-pull.service': 6.0}


def load(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return yaml.safe_load(handle)


def test_argument_specs_list_every_default_with_its_value():
    defaults = load('roles', 'ipvs_reconcile', 'defaults', 'main.yml')
    options = load('roles', 'ipvs_reconcile', 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert set(options) == set(defaults)
    assert {name: spec.get('default') for name, spec in options.items()} == defaults
    assert options['ipvs_reconcile_mode']['choices'] == ['timer', 'pull', 'off']


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
        'ipvs_node', 'kube_proxy', 'playbooks/tasks/k8s_service_proxy.yml', 'kube_proxy',
        'netlb.ipvs.ipvs_virtual_server', 'ipvs_reconcile']


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
                   'net.ipv4.vs.expire_quiescent_template': '1'}}


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
                                                   'net.ipv4.conf.all.arp_announce': '2', 'vm.swappiness': '10'})},
        'static': {'services_file': str(services), 'scope': ['192.0.2.0/24'], 'exclusive': True,
                   'allow_empty': False, 'drain_timeout': 60, 'scheduler_hold': True},
        'kubernetes': None, 'pull': None, 'metrics_dir': None, 'timeout': 300}
    # The service may write the /proc/sys subtrees of its sysctls, and no other.
    unit = (tmp_path / 'director' / 'netlb-ipvs-reconcile.service').read_text()
    assert re.search(r'^ReadWritePaths=/proc/sys/net /proc/sys/vm$', unit, re.M), unit
    assert re.search(r'^IPAddressDeny=any$', unit, re.M) and 'AF_INET' not in unit
    accepted(director)


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
                       'scheduler': 'rr', 'masquerade': 'external', 'max_delete_ratio': 0.5, 'scheduler_hold': False},
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


# ---------------------------------------------------------------------------- installed

def install(tmp_path, *extra, **variables):
    """The role's bundle and config steps on the controller itself, every path under
    tmp_path (systemd is the VM tests' part); {host: changed}."""
    root = tmp_path / 'node'
    paths = dict(ipvs_reconcile_lib_dir=str(root / 'lib'), ipvs_reconcile_command=str(root / 'sbin' / 'netlb-ipvs'),
                 ipvs_reconcile_config_dir=str(root / 'etc'), ipvs_reconcile_state_dir=str(root / 'state'),
                 ipvs_reconcile_metrics_dir=str(root / 'metrics'), ipvs_reconcile_python=PYTHON,
                 ipvs_reconcile_kubernetes=False, ipvs_reconcile_static=False)
    (root / 'sbin').mkdir(parents=True, exist_ok=True)
    play = [dict(RENDER[0], tasks=[{'ansible.builtin.include_role': {'name': 'ipvs_reconcile', 'tasks_from': name}}
                                   for name in ('bundle', 'config')])]
    playbook = tmp_path / 'install.yml'
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', json.dumps(dict(paths, **variables)),
                           str(playbook)] + list(extra), cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return int(re.search(r'^localhost\s*: ok=\d+\s+changed=(\d+)', done.stdout, re.M).group(1))


PYTHON = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable  # a node's Python


@pytest.mark.playbook
@pytest.mark.skipif(os.geteuid() != 0, reason='the role installs root-owned files')
def test_the_entry_point_installs_runs_and_a_second_run_changes_nothing(tmp_path):
    root = tmp_path / 'node'
    tree = root / 'lib' / 'ansible_collections'
    assert install(tmp_path, ipvs_reconcile_paused=True, ipvs_reconcile_pause_reason='a NIC swap') > 0
    bundle = (root / 'lib' / 'bundle.tar').read_bytes()
    assert (tree / '.bundle.sha1').read_text().strip() == hashlib.sha1(bundle).hexdigest()
    assert sorted(os.listdir(root / 'lib')) == ['ansible_collections', 'bundle.tar']  # no staging left
    assert os.readlink(root / 'sbin' / 'netlb-ipvs') == str(tree / 'netlb' / 'ipvs' / 'bin' / 'netlb-ipvs')
    compiled = [name for _dir, _dirs, files in os.walk(tree) for name in files if name.endswith('.pyc')]
    assert compiled and not [name for name in tarfile.open(root / 'lib' / 'bundle.tar').getnames()
                             if '__pycache__' in name]  # compiled on the node, not shipped
    assert oct(os.stat(root / 'etc' / 'reconcile.json').st_mode & 0o777) == '0o600'

    # The installed entry point runs on the node's Python and reads the role's pause file.
    done = subprocess.run([PYTHON, str(root / 'sbin' / 'netlb-ipvs'), '--state-dir', str(root / 'state'),
                           '--lock-file', str(tmp_path / 'lock'), 'status', '--config', str(root / 'etc' / 'reconcile.json')],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)['paused'] == 'a NIC swap'

    # The same collection again: not a byte copied, nothing changed; in check mode too.
    assert install(tmp_path, ipvs_reconcile_paused=True, ipvs_reconcile_pause_reason='a NIC swap') == 0
    assert install(tmp_path, '--check', ipvs_reconcile_paused=True, ipvs_reconcile_pause_reason='a NIC swap') == 0
    assert (root / 'lib' / 'bundle.tar').read_bytes() == bundle  # the same files give the same bytes

    # A tree that is not the bundle's (an install cut short, a file left behind) is replaced whole.
    (tree / '.bundle.sha1').write_text('0' * 40 + '\n')
    (tree / 'netlb' / 'ipvs' / 'stray.py').write_text('')
    assert install(tmp_path) > 0
    assert not (tree / 'netlb' / 'ipvs' / 'stray.py').exists()
    assert not (root / 'state' / 'reconcile.paused').exists()  # ipvs_reconcile_paused false lifts the pause
