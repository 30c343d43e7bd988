# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action of k8s_node_credentials: a successful result is hidden as no_log hides it
(the token is in it), a failed one is shown without its invocation (the current token
is in that), and async is refused (async_status would show the result). That the output
really lacks the token: tests/playbooks/test_k8s_credentials.py."""

from __future__ import annotations

from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.netlb.ipvs.plugins.action import k8s_node_credentials

INVOCATION = {'module_args': {'current_kubeconfig': 'users: [{user: {token: old-token}}]'}}


def action(result, async_val=0):
    task = mock.MagicMock(async_val=async_val, check_mode=False, args={}, action='netlb.ipvs.k8s_node_credentials')
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    plugin = k8s_node_credentials.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(),
                                               mock.MagicMock(), None)
    plugin._execute_module = mock.MagicMock(return_value=dict(result))
    plugin._remove_tmp_path = mock.MagicMock()
    plugin._early_needs_tmp_path = mock.MagicMock(return_value=False)
    return plugin


def test_a_result_with_the_token_is_hidden():
    result = action({'changed': True, 'kubeconfig': 'token: new-token', 'invocation': INVOCATION}).run(task_vars={})
    assert result['_ansible_no_log'] is True
    assert result['kubeconfig'] == 'token: new-token'  # the registered variable keeps it


def test_a_failure_is_shown_without_its_invocation():
    result = action({'failed': True, 'msg': 'creating ServiceAccount: 403 Forbidden',
                     'invocation': INVOCATION}).run(task_vars={})
    assert '_ansible_no_log' not in result and 'invocation' not in result
    assert result['msg'] == 'creating ServiceAccount: 403 Forbidden'


def test_async_is_refused():
    plugin = action({'changed': False}, async_val=30)
    with pytest.raises(AnsibleActionFail, match='does not support async'):
        plugin.run(task_vars={})
    plugin._execute_module.assert_not_called()
