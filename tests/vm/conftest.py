# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for tests that need a real kernel with IPVS: a node of the qemu lab.

`lab_node` boots one node for the whole session (in its own run directory, so it
runs beside `make lab-up` and Molecule) and stops it at the end. To reuse a lab you
already started, point NETLB_VM_RUN_DIR at its run directory (e.g. lab/run/lab after
`make lab-up`); it is then left running. NETLB_LAB_SUITE=trixie picks Debian 13.

A test that runs a driver script of tests/vm/ on the node sets it up with
`with lab_node.workspace(REMOTE, tools=..., modules=..., namespaces=...)` and calls it
with `lab_node.driver('x_driver.py', REMOTE, args, netns=...)` (its JSON answer).

Every test under tests/vm/ is marked `vm`, so `pytest -m 'not vm'` never boots a VM;
test_lab.py (the lab's own checks, on the pristine node) runs first, then test_reconcile.py,
whose site.yml run prepares the node for the others.
"""

import base64
import contextlib
import io
import json
import os
import shlex
import subprocess
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO, 'lab', 'netlb-lab')
HERE = os.path.dirname(os.path.abspath(__file__))
# The files that run first in a session, in this order (see pytest_collection_modifyitems).
SESSION_ORDER = {'test_lab.py': 0, 'test_reconcile.py': 1}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.vm)
    # The lab's own checks look at the pristine node, before other tests install things.
    # Then test_reconcile.py: the session's one site.yml run, which prepares the node (the
    # ipvs_node role's packages, modules, sysctls) for the files after it, so they skip
    # their own preparation; it ends with ipvs_reconcile_mode=off and its teardown leaves
    # no unit, table or address behind. sort() is stable: the rest keep their order.
    items.sort(key=lambda item: SESSION_ORDER.get(os.path.basename(str(item.fspath)), len(SESSION_ORDER)))


class LabNode:
    """A running lab node: where to ssh, and helpers to run commands or reboot it."""

    def __init__(self, run_dir, inventory, info, fresh):
        self.run_dir = run_dir
        self.fresh = fresh  # booted for this session (False: a reused, maybe converged lab)
        self.inventory = inventory  # Ansible inventory (groups lab, ipvs_nodes)
        self.name = info['name']
        self.host = info['host']
        self.port = info['port']
        self.user = info['user']
        self.key = info['key']
        self.suite = info['suite']
        self.console_log = info['console']

    def _lab(self, *args, timeout=900):
        subprocess.run([LAB, '--run-dir', self.run_dir, '--inventory', self.inventory] + list(args),
                       check=True, timeout=timeout)

    def ssh_argv(self, command):
        return ['ssh', '-i', self.key, '-p', str(self.port), '-o', 'BatchMode=yes',
                '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no',
                '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
                '-o', 'ConnectTimeout=10',
                # a rebooting guest never closes its connections: notice it is gone
                '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=6',
                '%s@%s' % (self.user, self.host), command]

    def run(self, command, check=True, timeout=300, input=None):
        """Run a shell command (string, or argv list quoted for you) on the node as root.

        Returns the CompletedProcess (text stdout/stderr); raises AssertionError with
        both streams when check is set and the command fails.
        """
        if not isinstance(command, str):
            command = ' '.join(shlex.quote(str(arg)) for arg in command)
        proc = subprocess.run(self.ssh_argv(command), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError('on %s: %s -> rc=%d\nstdout:\n%s\nstderr:\n%s' % (
                self.name, command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def ship_collection(self, remote):
        """Copy this checkout's collection (no tests, no caches) to remote on the node,
        replacing what was there; remote then goes first on sys.path of a driver."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w:gz') as tar:
            tar.add(os.path.join(REPO, 'collections', 'ansible_collections'), arcname='ansible_collections',
                    filter=lambda info: None if ('__pycache__' in info.name or '/tests' in info.name) else info)
        self.run('rm -rf {0} && mkdir -p {0} && base64 -d | tar -xz -C {0}'.format(remote),
                 input=base64.b64encode(buf.getvalue()).decode('ascii'))

    @contextlib.contextmanager
    def workspace(self, remote, tools=(), modules=(), files=(), namespaces=()):
        """The node made ready for a driver script, for a with block: the Debian packages of
        the missing tools installed (tools: (command, package) pairs), the kernel modules
        loaded, the collection and files (of tests/vm/) shipped to remote, the network
        namespaces made afresh; the namespaces and remote go on the way out."""
        if tools:
            self.run('%s || (apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -qy install %s)' % (
                ' && '.join('command -v %s >/dev/null' % command for command, _package in tools),
                ' '.join(package for _command, package in tools)), timeout=900)
        if modules:
            self.run(' && '.join('modprobe %s' % module for module in modules))
        self.ship_collection(remote)
        for name in files:
            with open(os.path.join(HERE, name)) as f:
                self.run('cat > %s/%s' % (remote, name), input=f.read())
        for netns in namespaces:
            self.run('ip netns del {0} 2>/dev/null; ip netns add {0}'.format(netns))
        try:
            yield self
        finally:
            for netns in namespaces:
                self.run(['ip', 'netns', 'del', netns], check=False)
            self.run(['rm', '-rf', remote], check=False)

    def driver(self, script, remote, args, netns, prefix=(), timeout=600):
        """Run tests/vm/<script> on the node as `python3 - remote args...` in netns (after the
        prefix argv, e.g. setpriv), and return what it printed, as JSON."""
        with open(os.path.join(HERE, script)) as f:
            source = f.read()
        argv = ['ip', 'netns', 'exec', netns] + list(prefix) + ['python3', '-', remote] + [str(arg) for arg in args]
        return json.loads(self.run(argv, input=source, timeout=timeout).stdout)

    def reboot(self):
        """Reboot the node (same disk) and return once the new boot answers on ssh."""
        self._lab('reboot', self.name)

    def wait(self):
        """Wait until ssh answers (e.g. after a reboot the test triggered itself)."""
        self._lab('wait', self.name)


def _status(run_dir, inventory):
    out = subprocess.run([LAB, '--run-dir', run_dir, '--inventory', inventory, 'status', '--json'],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    return json.loads(out)


@pytest.fixture(scope='session')
def lab_node(tmp_path_factory):
    """One running lab node for the session (see the module doc string)."""
    reuse = os.environ.get('NETLB_VM_RUN_DIR')
    if reuse:
        run_dir = os.path.abspath(reuse)
        inventory = os.environ.get('NETLB_LAB_INVENTORY', os.path.join(REPO, 'inventories', 'lab', 'hosts.yml'))
        nodes = [n for n in _status(run_dir, inventory) if n['pid']]
        if not nodes:
            pytest.fail('NETLB_VM_RUN_DIR=%s has no running node (make lab-up?)' % run_dir)
        yield LabNode(run_dir, inventory, nodes[0], fresh=False)
        return
    run_dir = str(tmp_path_factory.mktemp('lab'))
    inventory = os.path.join(run_dir, 'hosts.yml')
    lab = [LAB, '--run-dir', run_dir, '--inventory', inventory]
    subprocess.run(lab + ['up', '--nodes', '1'], check=True, timeout=1800)
    try:
        yield LabNode(run_dir, inventory, _status(run_dir, inventory)[0], fresh=True)
    finally:
        subprocess.run(lab + ['down'], check=False, timeout=120)
