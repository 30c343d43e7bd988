# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The benchmarks' clock for one task: how long each task took on each host, from the
moment Ansible starts it (its arguments templated, the module shipped and run, its
answer read) to its result, without ansible-playbook's own start, the playbook's parse
or the tasks around it. One line per task result on stdout, which the benchmark scripts
parse: NETLB_TASK_SECONDS {"task": ..., "host": ..., "seconds": ...}.
"""

from __future__ import annotations

import json
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: netlb_task_clock
type: aggregate
short_description: seconds per task and host, for netlb.ipvs's benchmarks
description: Prints one NETLB_TASK_SECONDS line per task result.
'''

MARKER = 'NETLB_TASK_SECONDS '


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'netlb_task_clock'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.perf_counter()

    def _done(self, result):
        started = self._started.get(result._task._uuid)
        if started is None:
            return
        line = {'task': result._task.get_name(), 'host': result._host.get_name(),
                'seconds': round(time.perf_counter() - started, 6)}
        self._display.display(MARKER + json.dumps(line))

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _done
