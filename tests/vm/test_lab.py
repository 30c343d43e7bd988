# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab itself: a node is a fresh cloud-like Debian with IPVS in its kernel (bookworm
carrying the roles' packages, trixie bare: lab/README.md). That a reboot keeps the disk
is checked where a test reboots anyway (test_reconcile.py), to share the boot."""

import pytest

pytestmark = pytest.mark.vm


@pytest.mark.parametrize(
    'check, command',
    [
        pytest.param('python for Ansible', 'test -x /usr/bin/python3', id='python3'),
        pytest.param('ip_vs loads', 'modprobe ip_vs && grep -qw ^ip_vs /proc/modules', id='ip_vs'),
        pytest.param('ipvsadm as the suite has it: on bookworm preinstalled, on trixie the role installs it',
                     '[ "$(. /etc/os-release; echo $VERSION_CODENAME)" != trixie ]'
                     ' && command -v ipvsadm || ! command -v ipvsadm', id='ipvsadm'),
        pytest.param('ipset likewise', '[ "$(. /etc/os-release; echo $VERSION_CODENAME)" != trixie ] && command -v ipset'
                     ' || ! command -v ipset', id='ipset'),
        pytest.param('apt sees the mirror', 'apt-get -q update && apt-cache policy ipvsadm | grep -q Candidate',
                     id='apt'),
    ],
)
def test_fresh_node(lab_node, check, command):
    if not lab_node.fresh:
        pytest.skip('reused lab (NETLB_VM_RUN_DIR): may be converged already')
    proc = lab_node.run(command, check=False, timeout=600)
    assert proc.returncode == 0, '%s: %s\n%s%s' % (check, command, proc.stdout, proc.stderr)
