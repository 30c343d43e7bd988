# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab itself: a node is a fresh cloud-like Debian with IPVS in its kernel,
and a reboot keeps its disk (the acceptance test relies on both)."""

import pytest

pytestmark = pytest.mark.vm


@pytest.mark.parametrize(
    'check, command',
    [
        pytest.param('python for Ansible', 'test -x /usr/bin/python3', id='python3'),
        pytest.param('ip_vs loads', 'modprobe ip_vs && grep -qw ^ip_vs /proc/modules', id='ip_vs'),
        pytest.param('no ipvsadm preinstalled (the role installs it)', '! command -v ipvsadm', id='no-ipvsadm'),
        pytest.param('no ipset preinstalled', '! command -v ipset', id='no-ipset'),
        pytest.param('apt sees the mirror', 'apt-get -q update && apt-cache policy ipvsadm | grep -q Candidate',
                     id='apt'),
    ],
)
def test_fresh_node(lab_node, check, command):
    if not lab_node.fresh:
        pytest.skip('reused lab (NETLB_VM_RUN_DIR): may be converged already')
    proc = lab_node.run(command, check=False, timeout=600)
    assert proc.returncode == 0, '%s: %s\n%s%s' % (check, command, proc.stdout, proc.stderr)


def test_reboot_keeps_disk_and_brings_ssh_back(lab_node):
    lab_node.run('echo kept > /var/tmp/netlb-reboot-marker')
    before = lab_node.run('cat /proc/sys/kernel/random/boot_id').stdout
    lab_node.reboot()
    assert lab_node.run('cat /proc/sys/kernel/random/boot_id').stdout != before
    assert lab_node.run('cat /var/tmp/netlb-reboot-marker').stdout.strip() == 'kept'
    lab_node.run('rm /var/tmp/netlb-reboot-marker')
