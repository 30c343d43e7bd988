# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""backends/__init__.py: get_backend()."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import backends, model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import netlink


class Which(_command.Runner):
    def __init__(self, installed):
        super(Which, self).__init__(None)
        self.installed = installed

    def which(self, name, required=True):
        if self.installed:
            return '/usr/sbin/' + name
        if required:
            raise _command.CommandError([name], 127, msg='%s: command not found' % name)
        return None


@pytest.fixture
def ipvs(monkeypatch, kernel):
    """Make every NetlinkBackend talk to the fake kernel."""
    original = netlink.NetlinkBackend.__init__

    def init(self, check_mode=False, sock=None):
        original(self, check_mode=check_mode, sock=kernel)

    monkeypatch.setattr(netlink.NetlinkBackend, '__init__', init)
    return kernel


@pytest.mark.parametrize('name, loaded, installed, expect', [
    pytest.param('auto', True, True, 'netlink', id='auto-prefers-netlink'),
    pytest.param('auto', False, True, 'ipvsadm', id='auto-falls-back-when-ip_vs-absent'),
    pytest.param('auto', False, False, 'ip_vs module is not loaded', id='auto-nothing-works'),
    pytest.param('netlink', True, True, 'netlink', id='netlink'),
    pytest.param('netlink', False, True, 'ip_vs module is not loaded', id='netlink-never-falls-back'),
    pytest.param('ipvsadm', True, True, 'ipvsadm', id='ipvsadm'),
    pytest.param('pyroute2', True, True, 'unknown backend', id='unknown'),
])
def test_get_backend(ipvs, name, loaded, installed, expect):
    ipvs.loaded = loaded
    try:
        backend = backends.get_backend(name, runner=Which(installed), check_mode=True)
    except model.BackendError as exc:
        assert expect in str(exc)
    else:
        assert (backend.name, backend.check_mode) == (expect, True)
