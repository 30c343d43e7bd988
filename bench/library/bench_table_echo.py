#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper, not part of the collection: takes a table the way
ipvs_virtual_server does (one `services` list) and returns only its length, so the
wall time of a task running it is what Ansible alone costs to move that table to a
node and back: the floor under any module that takes the table as an argument."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(services=dict(type='list', elements='dict', required=True)),
                           supports_check_mode=True)
    module.exit_json(changed=False, count=len(module.params['services']))


if __name__ == '__main__':
    main()
