# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kube_proxy role's defaults, argument specs and README hold the renderer's table:
one field, one default, wherever it is written; its unit quotes arguments as systemd
reads them and refuses a newline (playbook-marked: rendered by ansible-playbook)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import config as kp

ROLE = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'kube_proxy'))
REPO = os.path.dirname(os.path.dirname(ROLE))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as handle:
        return yaml.safe_load(handle)


def test_role_defaults_equal_the_renderer_table():
    defaults = load('defaults', 'main.yml')
    assert {name: defaults[name] for name in kp.DEFAULTS} == kp.DEFAULTS


def test_argument_specs_list_every_default_with_its_value():
    defaults = load('defaults', 'main.yml')
    options = load('meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert set(options) == set(defaults)
    assert {name: spec.get('default') for name, spec in options.items()} == defaults
    assert options['kube_proxy_mode']['choices'] == list(kp.MODES)


def test_readme_names_every_variable():
    with open(os.path.join(ROLE, 'README.md')) as handle:
        text = handle.read()
    missing = [name for name in load('defaults', 'main.yml') if '`%s`' % name not in text]
    assert missing == []


def render_unit(tmp_path, **role_vars):
    """(rc, output, unit text) of the role's unit template rendered with its defaults and role_vars."""
    dest = tmp_path / 'kube-proxy.service'
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars_files': [os.path.join(ROLE, 'defaults', 'main.yml')],
             'tasks': [{'ansible.builtin.template': {'src': os.path.join(ROLE, 'templates', 'kube-proxy.service.j2'),
                                                     'dest': str(dest), 'mode': '0644'}}]}]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps(play))
    extra = tmp_path / 'vars.json'
    extra.write_text(json.dumps(role_vars))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', '@%s' % extra, str(playbook),
                           '-e', 'ansible_python_interpreter=%s' % sys.executable], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    return done.returncode, done.stdout, dest.read_text() if dest.exists() else None


@pytest.mark.playbook
def test_the_unit_quotes_arguments_as_systemd_reads_them(tmp_path):
    rc, out, unit = render_unit(tmp_path, kube_proxy_config_dir='/srv/kube proxy 100%',
                                kube_proxy_extra_args=['--v=2', '--hostname-override=node 1', '--cluster-cidr=$CIDR',
                                                       'a\\b "c"'])
    assert rc == 0, out
    lines = unit.splitlines()
    assert 'WorkingDirectory=/srv/kube proxy 100%%' in lines
    assert ('ExecStart=/usr/local/bin/kube-proxy "--config=/srv/kube proxy 100%%/kube-proxy-config.yaml" --v=2 '
            '"--hostname-override=node 1" "--cluster-cidr=$$CIDR" "a\\\\b \\"c\\""') in lines
    assert [line for line in lines if line.startswith('Exec')] == [line for line in lines if 'ExecStart=' in line]


@pytest.mark.playbook
def test_a_newline_in_an_argument_fails_naming_it(tmp_path):
    rc, out, unit = render_unit(tmp_path, kube_proxy_extra_args=['--v=2', '--v=3\nExecStartPre=/bin/sh -c id'])
    assert rc != 0 and unit is None
    assert "kube_proxy_extra_args[1]: '--v=3\\nExecStartPre=/bin/sh -c id' holds a newline" in out, out
