# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs module k8s_node_credentials and hides its result from the output, as a task's
no_log does: the result holds the node's token (`kubeconfig`) and its invocation the
current one (`current_kubeconfig`), and neither may be marked no_log inside the module,
which would mask the very text the caller writes to the node. A task without no_log then
leaks nothing; the registered variable keeps the whole result. A failure stays readable
(its message names no credential), without the invocation. No async: async_status would
show the result unhidden."""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.5
        result.update(self._execute_module(task_vars=task_vars))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return hide(result)


def hide(result):
    """The module's result as shown: no_log when it succeeded, without the invocation when
    it failed."""
    if result.get('failed'):
        result.pop('invocation', None)
    else:
        result['_ansible_no_log'] = True
    return result
