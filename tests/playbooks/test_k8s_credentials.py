# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/k8s-credentials.yml against the stand-in API server, two nodes played by the
controller itself (connection local): each gets its own token in a root-owned 0600
kubeconfig; a second run sends no write to the API and changes no file."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest
import yaml

from kube_api import tokens

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PLAYBOOK = os.path.join(REPO, 'playbooks', 'k8s-credentials.yml')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

pytestmark = [pytest.mark.playbook,  # runs ansible-playbook: `make test-playbooks`
              pytest.mark.skipif(os.geteuid() != 0, reason='the kubeconfig is written root-owned')]


def play(inventory, *extra):
    """ansible-playbook's output (it must succeed)."""
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')
    done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', inventory, PLAYBOOK] + list(extra), cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    return done.stdout


def run(inventory, *extra):
    """{host: tasks changed}."""
    out = play(inventory, *extra)
    return {host: int(changed) for host, changed in re.findall(r'^(\S+)\s*: ok=\d+\s+changed=(\d+)', out, re.M)}


def inventory_of(kube_api, tmp_path, names=('node-a', 'node-b')):
    """(inventory path, {node: its kubeconfig path}): nodes played by the controller."""
    admin = kube_api.write_kubeconfig(str(tmp_path / 'admin.conf'))
    paths = {name: str(tmp_path / name / 'etc' / 'kubeconfig') for name in names}
    inventory = str(tmp_path / 'hosts.yml')
    with open(inventory, 'w') as handle:
        json.dump({'kube_nodes': {
            'hosts': {name: {'k8s_service_proxy_kubeconfig': path} for name, path in paths.items()},
            'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                     'ansible_become': False, 'k8s_credentials_admin_kubeconfig': admin}}}, handle)
    return inventory, paths


def test_each_node_gets_a_private_kubeconfig_and_a_second_run_changes_nothing(kube_api, tmp_path):
    tokens.install(kube_api)
    inventory, paths = inventory_of(kube_api, tmp_path)

    assert run(inventory) == {'node-a': 3, 'node-b': 3}  # directory, token (delegated), file
    texts = {}
    for name, path in paths.items():
        info = os.stat(path)
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, 0, 0)
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700  # root's alone
        with open(path) as handle:
            texts[name] = handle.read()
        config = yaml.safe_load(texts[name])
        assert config['clusters'][0]['cluster']['server'] == kube_api.url
        assert config['users'][0]['user']['token'] in kube_api.tokens
    assert texts['node-a'] != texts['node-b']  # a token per node
    token_posts = [r for r in kube_api.requests if r.method == 'POST' and r.path.endswith('/token')]
    assert len(token_posts) == 2

    kube_api.requests.clear()
    assert run(inventory) == {'node-a': 0, 'node-b': 0}
    assert [r.method for r in kube_api.requests if r.method != 'GET'] == []
    for name, path in paths.items():
        with open(path) as handle:
            assert handle.read() == texts[name]

    kube_api.requests.clear()
    assert run(inventory, '-e', 'k8s_credentials_rotate=true', '--limit', 'node-a') == {'node-a': 2}
    assert [(r.method, r.path.rsplit('/', 1)[-1]) for r in kube_api.requests if r.method != 'GET'] == [
        ('POST', 'token')]


def test_the_token_is_not_in_the_output_even_without_no_log(kube_api, tmp_path):
    """k8s_credentials_no_log=false and -vvv: the module's result (the new token) and its
    invocation (the current one) stay hidden; the summary task still says when it expires."""
    tokens.install(kube_api)
    inventory, paths = inventory_of(kube_api, tmp_path, names=('node-a',))
    play(inventory)
    with open(paths['node-a']) as handle:
        current = yaml.safe_load(handle)['users'][0]['user']['token']
    out = play(inventory, '-e', 'k8s_credentials_no_log=false', '-e', 'k8s_credentials_rotate=true', '-vvv')
    with open(paths['node-a']) as handle:
        rotated = yaml.safe_load(handle)['users'][0]['user']['token']
    assert rotated != current
    assert current not in out and rotated not in out
    assert re.search(r'expires\W+20\d\d-', out), out[-3000:]  # the summary is shown
