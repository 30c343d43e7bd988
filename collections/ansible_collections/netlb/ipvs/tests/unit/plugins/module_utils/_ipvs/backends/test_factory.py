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


NO_IPVS = ('the kernel has no IPVS generic netlink family: the ip_vs module is not loaded (modprobe ip_vs) '
           'or IPVS is not built in')


# Either a backend (its name) or an error (its exact text, naming the option's value).
@pytest.mark.parametrize('name, loaded, installed, backend_name, error', [
    pytest.param('auto', True, True, 'netlink', None, id='auto-prefers-netlink'),
    pytest.param('auto', False, True, 'ipvsadm', None, id='auto-falls-back-when-ip_vs-absent'),
    pytest.param('auto', False, False, None, NO_IPVS, id='auto-nothing-works'),
    pytest.param('netlink', True, True, 'netlink', None, id='netlink'),
    pytest.param('netlink', False, True, None, NO_IPVS, id='netlink-never-falls-back'),
    pytest.param('ipvsadm', True, True, 'ipvsadm', None, id='ipvsadm'),
    pytest.param('pyroute2', True, True, None, "unknown backend 'pyroute2' (choose from auto, netlink, ipvsadm)",
                 id='unknown'),
])
def test_get_backend(ipvs, name, loaded, installed, backend_name, error):
    ipvs.loaded = loaded
    if error is None:
        backend = backends.get_backend(name, runner=Which(installed), check_mode=True)
        assert (backend.name, backend.check_mode) == (backend_name, True)
    else:
        with pytest.raises(model.BackendError) as caught:
            backends.get_backend(name, runner=Which(installed), check_mode=True)
        assert (type(caught.value), str(caught.value)) == (model.BackendError, error)


def test_ipvsadm_without_a_runner_is_refused():
    with pytest.raises(model.BackendError) as caught:
        backends.get_backend('ipvsadm')
    assert (type(caught.value), str(caught.value)) == (model.BackendError, 'backend ipvsadm needs a command runner')
