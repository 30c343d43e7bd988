# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kernel's IPVS connection timeouts (TCP established, TCP FIN_WAIT, UDP), as
kube-proxy's ipvs.tcpTimeout, tcpFinTimeout and udpTimeout set them.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

kube-proxy applies its three timeouts to the kernel at start; with kube-proxy gone nobody
does, and the kernel's 900 s idle timeout for established TCP resets long-lived quiet
connections (kubernetes#71358). The values live in the network namespace, not on disk: a
reboot resets them, so the ipvs_node role applies them and every `netlb-ipvs reconcile`
run re-asserts them (_reconcile/kernel.py).

Rules:
- A timeout is a Go duration as kube-proxy's configuration writes it ("900s", "1h0m0s") or
  a number of seconds; fractions of a second are dropped, as kube-proxy's netlink call
  does. 0 leaves the kernel's value alone (kube-proxy's rule, and the kernel's: a 0 in
  IPVS_CMD_SET_CONFIG / `ipvsadm --set` changes nothing), so all three 0 never runs a
  command at all.
- The kernel refuses more than INT_MAX / HZ seconds; MAX_SECONDS is that bound for the
  largest HZ (1000), so a value is refused here, naming its field, before any change.
- One `ipvsadm --set TCP TCPFIN UDP` sets the three; read with `ipvsadm -L --timeout`.

seconds(), parse() and plan() are pure; read() and ensure() run ipvsadm.
"""

from __future__ import annotations

import collections
import re

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._duration import parse_duration
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError, ValidationError

# The order of `ipvsadm --set` and of its listing; the kube-proxy field each stands for.
FIELDS = ('tcp', 'tcp_fin', 'udp')
KUBE_PROXY_FIELDS = {'tcp': 'ipvs.tcpTimeout', 'tcp_fin': 'ipvs.tcpFinTimeout', 'udp': 'ipvs.udpTimeout'}
MAX_SECONDS = 2147483647 // 1000
_LISTING = re.compile(r'Timeout \(tcp tcpfin udp\):\s*(\d+)\s+(\d+)\s+(\d+)')
NANOS = 1000000000


class TimeoutsError(IpvsError):
    """ipvsadm could not read or set the timeouts."""


class Timeouts(collections.namedtuple('Timeouts', FIELDS)):
    """Seconds per field; 0: the kernel's value (wanted) or unknown."""

    __slots__ = ()

    def text(self):
        """One `field seconds` line each, the form of the diff."""
        return ''.join('%s %d\n' % (name, value) for name, value in zip(FIELDS, self))


Result = collections.namedtuple('Result', ('changed', 'before', 'after'))


def seconds(field, value):
    """Seconds of one timeout (a Go duration text, or an integer of seconds). Raises
    ValidationError naming field."""
    if isinstance(value, bool):
        raise ValidationError('%s: %r is not a duration (e.g. "900s", "1h0m0s") or seconds' % (field, value))
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value.strip().isdigit():
        result = int(value.strip())
    else:
        try:
            result = parse_duration(value.strip() if isinstance(value, str) else value) // NANOS
        except ValueError as exc:
            raise ValidationError('%s: %s' % (field, exc))
    if not 0 <= result <= MAX_SECONDS:
        raise ValidationError('%s: %r is out of range 0 to %d seconds' % (field, value, MAX_SECONDS))
    return result


def wanted(values):
    """Timeouts from {field: value} (missing fields 0); every bad field reported at once."""
    problems, result = [], []
    for field in FIELDS:
        try:
            result.append(seconds(field, values.get(field, 0)))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    return Timeouts(*result)


def parse(text):
    """Timeouts of `ipvsadm -L --timeout` output. Raises TimeoutsError."""
    match = _LISTING.search(text)
    if match is None:
        raise TimeoutsError('unexpected `ipvsadm -L --timeout` output: %r' % (text[:200],))
    return Timeouts(*(int(group) for group in match.groups()))


def plan(current, want):
    """The Timeouts after applying want to current: each nonzero wanted value, else the
    current one."""
    return Timeouts(*(wish or now for wish, now in zip(want, current)))


def read(runner):
    """The kernel's Timeouts (ipvsadm). Raises TimeoutsError."""
    try:
        result = runner.run([runner.which('ipvsadm'), '-L', '--timeout'], timeout=_command.NODE_TIMEOUT)
    except _command.CommandError as exc:
        raise TimeoutsError('cannot read the IPVS timeouts: %s' % exc)
    return parse(result.stdout)


def ensure(runner, want, check_mode=False):
    """Make the kernel hold want (Timeouts; 0 fields left alone). Returns Result with the
    before and after Timeouts; runs nothing when want is all 0, reads only when the kernel
    holds want already, sets nothing in check mode. Raises TimeoutsError."""
    if not any(want):
        return Result(False, None, None)
    before = read(runner)
    after = plan(before, want)
    if after == before:
        return Result(False, before, after)
    if not check_mode:
        try:
            runner.run([runner.which('ipvsadm'), '--set'] + [str(value) for value in want],
                       timeout=_command.NODE_TIMEOUT)
        except _command.CommandError as exc:
            raise TimeoutsError('cannot set the IPVS timeouts %s: %s' % (' '.join(map(str, want)), exc))
    return Result(True, before, after)
