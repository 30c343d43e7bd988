# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One field of user input checked: its value, or None with the problem recorded under
its path (Problems), so validation reports every problem at once, before any change.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The pieces validation_service.py and validation.py read a table with: integers in a
range, choices, booleans, a setting of the model's field table, addresses, lists and
known keys. A wrong value is shown with its type (``'80' (text)``). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError


class Problems(object):
    def __init__(self):
        self.items = []

    def add(self, path, message):
        self.items.append('%s: %s' % (path, message))

    def raise_if_any(self):
        if self.items:
            raise ValidationError(self.items)


def join_path(prefix, field):
    return '%s.%s' % (prefix, field) if prefix else field


def int_field(value, path, problems, low, high, range_text=None, text=False):
    """An integer in [low, high] or None (problem recorded). Whole floats (80.0) are
    integers, as JSON may spell them; a bool is not, nor is text (``'80'``: a quoted number
    in a table is a mistake upstream, reported rather than guessed at), except where the
    input is text by nature (text=True: a scope entry)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and text:
        digits = value.strip()
        if not digits.lstrip('-').isdigit():
            problems.add(path, '%r is not an integer' % (value,))
            return None
        value = int(digits)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, '%s is not an integer' % shown(value))
        return None
    if not low <= value <= high:
        problems.add(path, '%d is out of range %s' % (value, range_text or '%d-%d' % (low, high)))
        return None
    return value


def shown(value):
    """A wrong value as a message shows it: text with its quotes and type named, so
    ``'80' (text)`` cannot be mistaken for the number."""
    if isinstance(value, str):
        return '%r (text)' % (value,)
    if isinstance(value, (list, tuple)):
        return '%r (a list)' % (value,)
    if isinstance(value, dict):
        return '%r (a dictionary)' % (value,)
    if isinstance(value, bool):
        return '%r (a boolean)' % (value,)
    return repr(value)


def wanted_text(value):
    """A value where text was wanted: text as is (quoted), anything else with its type."""
    return repr(value) if isinstance(value, str) else shown(value)


def choice_field(value, path, problems, choices):
    """value when it is one of choices (text), else None with the problem recorded."""
    if isinstance(value, str) and value in choices:
        return value
    problems.add(path, '%s is not one of %s' % (wanted_text(value), ', '.join(choices)))
    return None


def bool_field(value, path, problems):
    if isinstance(value, bool):
        return value
    problems.add(path, '%s is not a boolean (true or false)' % shown(value))
    return None


def setting_field(field, params, path, problems):
    """The value of a plain setting (int with a range, str with choices, bool) of
    params, its default when absent or null; None with the problem recorded."""
    value = params.get(field.name)
    if value is None:
        return field.default
    path = join_path(path, field.name)
    if field.kind == 'int':
        return int_field(value, path, problems, field.low, field.high)
    if field.kind == 'bool':
        return bool_field(value, path, problems)
    return choice_field(value, path, problems, field.choices)


def address_field(value, path, problems):
    """Canonical address text or None. Scoped, unspecified and prefixed forms are refused:
    the kernel has no use for them and they are easy typos."""
    text = str(value).strip() if value is not None else ''
    if value is not None and not isinstance(value, str):
        problems.add(path, '%s is not an IP address (text)' % shown(value))
        return None
    if '%' in text:
        problems.add(path, '%r: scoped IPv6 addresses are not supported' % (value,))
        return None
    fast = plain_ipv4(text)
    if fast is not None and fast != '0.0.0.0':
        return fast
    try:
        address = ipaddress.ip_address(text.strip('[]'))
    except ValueError:
        problems.add(path, '%r is not a valid IP address' % (value,))
        return None
    if address.is_unspecified:
        problems.add(path, '%s is the unspecified address' % address)
        return None
    return str(address)


def plain_ipv4(text):
    """text when it is an IPv4 address already in canonical form, else None (then
    ipaddress decides). The common case, checked at a fraction of ipaddress's cost,
    which a table of 50,000 real servers feels (seconds on a small node)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    return text if socket.inet_ntop(socket.AF_INET, packed) == text else None


def ip_version_name(family):
    return 'IPv%d' % family


def check_keys(params, fields, path, problems):
    if not isinstance(params, dict):
        problems.add(path or '(top)', 'expected a dictionary, got %s' % shown(params))
        return False
    for name in sorted(set(params) - set(fields)):
        problems.add(join_path(path, name), 'unknown option')
    return True


def list_field(value, path, problems):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        problems.add(path, 'expected a list, got %s' % shown(value))
        return []
    return list(value)
