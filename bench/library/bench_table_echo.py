#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper, not part of the collection: takes a table the way
ipvs_virtual_server does (one `services` option: a list, or the list as JSON text) and
returns only its length, so the wall time of a task running it is what Ansible alone
costs to move that table to a node and back: the floor under any module that takes the
table that way."""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(services=dict(type='raw', required=True)), supports_check_mode=True)
    services = module.params['services']
    if isinstance(services, str):
        services = json.loads(services)  # as ipvs_virtual_server's validation does
    module.exit_json(changed=False, count=len(services))


if __name__ == '__main__':
    main()
