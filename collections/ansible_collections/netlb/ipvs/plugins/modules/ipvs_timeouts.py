#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ipvs_timeouts
short_description: Set the kernel's IPVS connection timeouts, as kube-proxy's ipvs.tcpTimeout, tcpFinTimeout and udpTimeout
version_added: 0.3.0
description:
  - Sets the idle timeouts the kernel gives IPVS connections - TCP established, TCP after a FIN, and UDP - with one
    C(ipvsadm --set), when a running value differs from the one asked for.
  - kube-proxy in IPVS mode applies its C(ipvs.tcpTimeout), C(ipvs.tcpFinTimeout) and C(ipvs.udpTimeout) itself; once
    it is gone nobody does, and the kernel's 900 second idle timeout resets long-lived quiet TCP connections
    (kubernetes#71358). The C(ipvs_node) role calls this module with the C(kube_proxy_*) variables of the same name.
  - A value of 0 leaves the kernel's value as it is, as in kube-proxy; with all three 0 nothing is read or run.
  - The values live in the kernel only and a reboot resets them; the C(ipvs_reconcile) role's timer sets them again
    on every run.
author:
  - netlb.ipvs developers (@netlb)
requirements:
  - ipvsadm (the C(ipvsadm) command), and the C(ip_vs) kernel module loaded (M(netlb.ipvs.ipvs_modules))
attributes:
  check_mode:
    support: full
    description: Reads the running timeouts and sets nothing; reports what a real run would change.
  diff_mode:
    support: full
    description: Shows the three timeouts in seconds before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
options:
  tcp:
    description:
      - Idle timeout of an established TCP connection (kube-proxy's C(ipvs.tcpTimeout)), a Go duration such as
        V(900s) or V(2h0m0s), or a number of seconds. Fractions of a second are dropped. V(0) leaves the kernel's.
    type: raw
    default: 0
  tcp_fin:
    description:
      - Timeout of a TCP connection after a FIN (kube-proxy's C(ipvs.tcpFinTimeout)), as O(tcp).
    type: raw
    default: 0
  udp:
    description:
      - Idle timeout of a UDP connection (kube-proxy's C(ipvs.udpTimeout)), as O(tcp).
    type: raw
    default: 0
notes:
  - Needs root. A value above 2147483 seconds (the kernel's bound with C(HZ=1000)) is refused naming the option.
seealso:
  - module: netlb.ipvs.ipvs_modules
'''

EXAMPLES = r'''
- name: Keep idle TCP connections through IPVS for two hours, UDP for five minutes
  netlb.ipvs.ipvs_timeouts:
    tcp: 2h0m0s
    udp: 300

- name: The timeouts of a kube-proxy configuration, after kube-proxy is gone
  netlb.ipvs.ipvs_timeouts:
    tcp: "{{ kube_proxy_tcp_timeout }}"
    tcp_fin: "{{ kube_proxy_tcp_fin_timeout }}"
    udp: "{{ kube_proxy_udp_timeout }}"
'''

RETURN = r'''
before:
  description: The kernel's timeouts in seconds before the run; V(null) when all three options are 0 (not read).
  returned: always
  type: dict
  sample: {tcp: 900, tcp_fin: 120, udp: 300}
after:
  description: The timeouts after the run (in check mode, what a real run would leave); V(null) as RV(before).
  returned: always
  type: dict
  sample: {tcp: 7200, tcp_fin: 120, udp: 300}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import timeouts


def main():
    module = AnsibleModule(
        argument_spec=dict((field, dict(type='raw', default=0)) for field in timeouts.FIELDS),
        supports_check_mode=True,
    )
    try:
        want = timeouts.wanted(module.params)
        result = timeouts.ensure(Runner(module), want, check_mode=module.check_mode)
    except ValidationError as exc:
        module.fail_json(msg='invalid parameters: %s' % exc, problems=exc.problems)
    except timeouts.TimeoutsError as exc:
        module.fail_json(msg=str(exc))
    before = result.before._asdict() if result.before else None
    after = result.after._asdict() if result.after else None
    returns = dict(changed=result.changed, before=before, after=after)
    if module._diff:
        returns['diff'] = {'before': result.before.text() if result.before else '',
                           'after': result.after.text() if result.after else ''}
    module.exit_json(**returns)


if __name__ == '__main__':
    main()
