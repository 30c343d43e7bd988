# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A test-only callback: every task result, in order, written as JSON to the file named by
NETLB_RESULTS_FILE when the playbook ends (ansible-core has no json callback of its own).
Each entry is the module's result with `task` (the task's name) and `failed` set."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: netlb_results
type: aggregate
short_description: task results as JSON, for the VM tests
description: Writes every task result to the file named by NETLB_RESULTS_FILE.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'netlb_results'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = []

    def _record(self, result, failed):
        entry = dict(result._result, task=result._task.get_name(), host=result._host.get_name())
        entry['failed'] = failed
        self.results.append(entry)

    def v2_runner_on_ok(self, result):
        self._record(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, True)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['NETLB_RESULTS_FILE'], 'w') as handle:
            json.dump(self.results, handle)
