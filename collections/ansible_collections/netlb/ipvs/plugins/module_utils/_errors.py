# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's error base and the one error for bad input, shared by every room.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Every error raised on purpose derives from IpvsError (named after the collection), so a
shell (a module's main(), bin/netlb-ipvs, the watcher) turns any of them into one
message. The errors of one room stay in it: the engine's (BackendError, ApplyError,
RefusedError) in _ipvs/model.py, the node's, the sources' and kube-proxy's beside their
code.
"""

from __future__ import annotations


class IpvsError(Exception):
    """Base of the errors this collection raises on purpose; modules turn them into fail_json."""


class ValidationError(IpvsError):
    """Bad input. Carries every problem found, each starting with its field path."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super(ValidationError, self).__init__('; '.join(self.problems))
