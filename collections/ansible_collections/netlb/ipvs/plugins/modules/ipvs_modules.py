#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ipvs_modules
short_description: Load and persist the kernel modules IPVS needs
version_added: 0.1.0
description:
  - Loads C(ip_vs), the C(ip_vs_<scheduler>) module of each requested scheduler and any
    extra modules, with one C(modprobe -a) call for those not loaded yet.
  - Writes them to a C(modules-load.d) file so C(systemd-modules-load.service) loads them
    again at boot.
  - Modules compiled into the kernel (listed in C(modules.builtin), or present in
    C(/sys/module) without a line in C(/proc/modules)) count as present and never report a change.
  - A module the running kernel does not have (not in C(modules.dep), C(modules.builtin) or
    C(modules.alias)) fails the task before anything is loaded; for a scheduler the message lists
    the schedulers this kernel offers.
  - With O(state=absent), unloads what can be unloaded and removes the persist file. A module
    still in use (by an IPVS service, a connection or a module outside the request) is left
    loaded with a warning rather than failing, so the task stays idempotent on a node where,
    for example, netfilter still uses C(nf_conntrack); it is not loaded at the next boot.
author:
  - netlb.ipvs developers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads the kernel and the persist file, loads and writes nothing; reports what a real run would do.
  diff_mode:
    support: full
    description: Shows the requested modules loaded before and after, and the persist file's text before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
options:
  schedulers:
    description:
      - IPVS schedulers to load; each maps to the module C(ip_vs_<name>).
      - C(ip_vs) itself is always loaded.
      - Not every kernel has every scheduler (C(mh) and C(twos) are recent); when one is missing the
        task fails and names those this kernel offers.
    type: list
    elements: str
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos]
    default: [rr, wrr, lc, wlc, sh]
  extra_modules:
    description:
      - Other modules to load with IPVS, by kernel name (C(-) and C(_) are equivalent).
      - Names are letters, digits, C(_) and C(-), not starting with C(-).
      - With O(state=absent) these are unloaded too when nothing else uses them; set V([]) to leave shared
        modules such as C(nf_conntrack) alone.
    type: list
    elements: str
    default: [nf_conntrack]
  state:
    description:
      - V(present) loads the modules and writes the persist file.
      - V(absent) unloads what it can and removes the persist file.
    type: str
    choices: [present, absent]
    default: present
  persist:
    description:
      - Whether to manage O(persist_file). With V(false) the file is neither written nor removed.
    type: bool
    default: true
  persist_file:
    description:
      - The C(modules-load.d) file listing the modules, written atomically with mode C(0644).
      - Must be an absolute path ending in C(.conf) (C(systemd-modules-load) ignores other names);
        its directory must exist.
    type: path
    default: /etc/modules-load.d/netlb-ipvs.conf
notes:
  - Needs root. Uses C(modprobe) from kmod.
  - On Linux, C(systemd-sysctl.service) runs after C(systemd-modules-load.service), so C(net.ipv4.vs.*)
    sysctls in C(/etc/sysctl.d) apply at boot once this module has persisted C(ip_vs).
seealso:
  - name: modules-load.d(5)
    description: The format of the persist file.
    link: https://www.freedesktop.org/software/systemd/man/latest/modules-load.d.html
'''

EXAMPLES = r'''
- name: Load IPVS with the default schedulers and keep it across reboots
  netlb.ipvs.ipvs_modules:

- name: Load the schedulers kube-proxy may be configured with
  netlb.ipvs.ipvs_modules:
    schedulers: [rr, wrr, lc, wlc, sh, mh]
    extra_modules: [nf_conntrack, ip_vs_ftp]

- name: Load now, but do not write a modules-load.d file
  netlb.ipvs.ipvs_modules:
    persist: false

- name: Stop loading IPVS at boot and unload it, leaving nf_conntrack alone
  netlb.ipvs.ipvs_modules:
    state: absent
    extra_modules: []
'''

RETURN = r'''
modules:
  description: Every requested module, in the order given (C(ip_vs), schedulers, extra modules).
  returned: always
  type: list
  elements: str
  sample: [ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_lc, ip_vs_wlc, ip_vs_sh, nf_conntrack]
loaded:
  description: Modules this run loaded (in check mode, would load).
  returned: always
  type: list
  elements: str
  sample: [ip_vs_sh]
present:
  description: Requested modules that were already loaded.
  returned: always
  type: list
  elements: str
  sample: [ip_vs, nf_conntrack]
builtin:
  description: Requested modules compiled into the kernel.
  returned: always
  type: list
  elements: str
  sample: []
unloaded:
  description: With O(state=absent), modules this run unloaded (in check mode, would unload).
  returned: always
  type: list
  elements: str
  sample: [ip_vs_rr, ip_vs]
in_use:
  description: With O(state=absent), modules left loaded because something still uses them (each also gives a warning).
  returned: always
  type: list
  elements: str
  sample: [nf_conntrack]
persisted_file:
  description: The persist file managed, or V(null) when O(persist=false).
  returned: always
  type: str
  sample: /etc/modules-load.d/netlb-ipvs.conf
kernel_release:
  description: The running kernel's release.
  returned: always
  type: str
  sample: 6.1.0-35-amd64
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SCHEDULERS
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.ensure import KernelModuleError, ensure_modules
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import (
    DEFAULT_EXTRA_MODULES,
    DEFAULT_PERSIST_FILE,
    DEFAULT_SCHEDULERS,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.tree import KernelTree


def main():
    module = AnsibleModule(
        argument_spec=dict(
            schedulers=dict(type='list', elements='str', choices=list(SCHEDULERS), default=list(DEFAULT_SCHEDULERS)),
            extra_modules=dict(type='list', elements='str', default=list(DEFAULT_EXTRA_MODULES)),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            persist=dict(type='bool', default=True),
            persist_file=dict(type='path', default=DEFAULT_PERSIST_FILE),
        ),
        supports_check_mode=True,
    )
    try:
        result = ensure_modules(module.params, KernelTree(), Runner(module), check_mode=module.check_mode)
    except ValidationError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems)
    except KernelModuleError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
