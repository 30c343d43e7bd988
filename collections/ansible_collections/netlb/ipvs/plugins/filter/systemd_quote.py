# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
name: systemd_quote
short_description: Quote a value for a systemd unit file, as systemd reads it
version_added: 0.3.0
description:
  - Makes a value one word of a unit's command line (C(ExecStart=)) by systemd's rules, not a shell's -
    C(%) is doubled (systemd expands specifiers first), C($) is doubled (it expands variables in
    command lines), and a word with any character but letters, digits and C(_@+=:,./-) is put in double quotes
    with C(\) and C(") escaped. A plain word stays as it is.
  - A value holding a newline or another control character fails, naming O(name) - a newline would end
    the setting and start another one in the unit.
  - Runs on the controller.
author:
  - netlb.ipvs developers (@netlb)
options:
  _input:
    description: The value (text; numbers are written as text).
    type: raw
    required: true
  name:
    description: The variable the value comes from, named in the error.
    type: str
    required: true
  command:
    description:
      - V(true) - a word of a command line (C(ExecStart=)).
      - V(false) - the value of a setting that takes no quotes, such as C(WorkingDirectory=) - only C(%) is doubled.
    type: bool
    default: true
  first:
    description:
      - The command line's first word, its executable - a leading C(@), C(-), C(:), C(+) or C(!) is quoted, so
        systemd does not read it as a prefix.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Write a unit whose arguments come from variables
  ansible.builtin.copy:
    dest: /etc/systemd/system/example.service
    content: |
      [Service]
      WorkingDirectory={{ example_dir | netlb.ipvs.systemd_quote('example_dir', command=false) }}
      ExecStart={{ example_binary | netlb.ipvs.systemd_quote('example_binary', first=true) }}
      {%- for arg in example_args %} {{ arg | netlb.ipvs.systemd_quote('example_args[%d]' % loop.index0) }}{% endfor %}
    mode: "0644"
'''

RETURN = r'''
_value:
  description: The value as the unit file holds it, e.g. C(--v=2) as is, C(a b) as C("a b"), C(100%) as C("100%%").
  type: str
'''

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# What needs no quotes in a command line (systemd.service, "Command lines"); `%` and `$`
# are doubled in any case, so they count as unsafe here and the word is quoted too.
_PLAIN = re.compile(r'[A-Za-z0-9_@+=:,./-]+$')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
# Prefixes systemd reads at the start of an unquoted executable (ignore failure, argv[0], ...).
_PREFIXES = '@-:+!'


def systemd_quote(value, name, command=True, first=False):
    """value as a unit file holds it (see DOCUMENTATION)."""
    if value is None or isinstance(value, (dict, list)):
        raise AnsibleFilterError('%s: %r is not a text systemd can take' % (name, value))
    text = to_text(value, errors='surrogate_or_strict')
    found = _CONTROL.search(text)
    if found:
        raise AnsibleFilterError('%s: %r holds a %s, which a systemd unit cannot carry (it would end the setting)'
                                 % (name, text, 'newline' if found.group() in '\r\n' else 'control character'))
    text = text.replace('%', '%%')
    if not command:
        return text
    if _PLAIN.match(text) and not (first and text[0] in _PREFIXES):
        return text
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace('$', '$$')


class FilterModule:
    """systemd unit filters."""

    def filters(self):
        return {'systemd_quote': systemd_quote}
