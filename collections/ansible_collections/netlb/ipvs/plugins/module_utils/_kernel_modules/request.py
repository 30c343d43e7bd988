# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ipvs_modules parameters checked into a Request, and the persist file it
asks for (pure).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import collections
import os
import re

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import (
    BASE_MODULE,
    SCHEDULER_PREFIX,
    normalise,
)

DEFAULT_SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'sh')
DEFAULT_EXTRA_MODULES = ('nf_conntrack',)
DEFAULT_PERSIST_FILE = '/etc/modules-load.d/netlb-ipvs.conf'

# Kernel module names: letters, digits, '_' and '-'. A leading '-' would read as a
# modprobe option, so it is refused. 55 = MODULE_NAME_LEN (64 - sizeof(long)) - NUL.
MODULE_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_-]*$')
MODULE_NAME_MAX = 55

Request = collections.namedtuple('Request', 'modules state persist persist_file')


def _check_module_name(field, name, problems):
    if not isinstance(name, str) or not name.strip():
        problems.append('%s: empty module name' % field)
        return False
    if not MODULE_NAME_RE.match(name) or len(name) > MODULE_NAME_MAX:
        problems.append("%s: %r is not a kernel module name (letters, digits, '_' and '-', not starting "
                        "with '-', at most %d characters)" % (field, name, MODULE_NAME_MAX))
        return False
    return True


def build_request(params):
    """Validate module parameters; return a Request or raise ValidationError listing
    every problem, each starting with the parameter it is about.

    modules: ip_vs, then the schedulers' ip_vs_<name>, then extra_modules, each once.
    """
    problems = []
    modules = [BASE_MODULE]
    for index, scheduler in enumerate(params.get('schedulers') or []):
        field = 'schedulers[%d]' % index
        if not isinstance(scheduler, str) or not scheduler.strip():
            problems.append('%s: empty scheduler name' % field)
        elif scheduler not in SCHEDULERS:
            problems.append('%s: unknown scheduler %r; choose from %s' % (field, scheduler, ', '.join(SCHEDULERS)))
        else:
            modules.append(SCHEDULER_PREFIX + scheduler)
    for index, name in enumerate(params.get('extra_modules') or []):
        if _check_module_name('extra_modules[%d]' % index, name, problems):
            modules.append(normalise(name))

    state = params.get('state') or 'present'
    if state not in ('present', 'absent'):
        problems.append("state: must be 'present' or 'absent', got %r" % (state,))
    persist = params.get('persist', True)
    persist_file = params.get('persist_file') or ''
    if persist:
        if not persist_file or not os.path.isabs(persist_file) or '\0' in persist_file:
            problems.append('persist_file: must be an absolute path, got %r' % (persist_file,))
        elif not persist_file.endswith('.conf'):
            # systemd-modules-load reads only *.conf; any other name would silently not persist.
            problems.append('persist_file: %r must end in .conf (systemd-modules-load ignores other files)'
                            % (persist_file,))
    if problems:
        raise ValidationError(problems)
    unique = list(dict.fromkeys(modules))
    return Request(unique, state, bool(persist), persist_file if persist else None)


def render_persist_file(modules):
    """The modules-load.d file: every requested module, one a line, in request order.

    Built-in modules are listed too (systemd-modules-load accepts them), so the file
    is the same whatever the kernel, and stays right if a later kernel has them as modules.
    """
    lines = [
        '# Managed by netlb.ipvs.ipvs_modules: kernel modules IPVS needs, loaded at boot',
        '# by systemd-modules-load.service. Local changes are overwritten.',
    ]
    lines.extend(modules)
    return '\n'.join(lines) + '\n'
