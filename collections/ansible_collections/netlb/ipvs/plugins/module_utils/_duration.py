# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Go duration strings ('30s', '1h0m0s'), as kube-proxy's configuration and the IPVS
timeouts take them; shared by _kube_proxy/config.py and _ipvs/timeouts.py.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r'(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)')
_UNIT_NS = {'ns': 1, 'us': 10 ** 3, '\u00b5s': 10 ** 3, '\u03bcs': 10 ** 3, 'ms': 10 ** 6, 's': 10 ** 9,
            'm': 60 * 10 ** 9, 'h': 3600 * 10 ** 9}


def parse_duration(text):
    """Nanoseconds of a Go duration string ('30s', '1h0m0s', '1.5m', '-2s', '0');
    ValueError for anything Go's time.ParseDuration refuses."""
    if not isinstance(text, str):
        raise ValueError('a duration is a string with a unit, e.g. "30s" (not %r)' % (text,))
    sign, rest = (-1, text[1:]) if text[:1] == '-' else (1, text[1:] if text[:1] == '+' else text)
    if rest == '0':
        return 0
    if not rest:
        raise ValueError('%r is not a duration (e.g. "30s", "1m30s", "2h")' % (text,))
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if not match:
            raise ValueError('%r is not a duration (a number and a unit ns, us, ms, s, m or h, '
                             'e.g. "30s", "1m30s")' % (text,))
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * int(round(total))
