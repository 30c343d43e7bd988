# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The canonical text of an IP address, as str(ipaddress.ip_address(x)) spells it, at
the C library's speed.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

A resync of a big node turns every address of the dummy interface (one per Service IP)
into text and compares it with as many wanted ones: ipaddress costs about five times
inet_pton/inet_ntop. The two spell every address alike but one kind: glibc writes an
IPv4 tail for ::/96 and ::ffff:0:0/96 (::ffff:1.2.3.4), so a text with a dot takes
ipaddress's way, as does anything inet_pton refuses (a zone index, an error: ipaddress
then raises with its own message). tests/unit/.../test_address_text.py holds the two to
the same answers.
"""

from __future__ import annotations

import ipaddress
import socket

_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6


def from_packed(packed):
    """The text of a 4-byte (IPv4) or 16-byte (IPv6) address."""
    if len(packed) == 4:
        return socket.inet_ntop(_AF_INET, packed)
    text = socket.inet_ntop(_AF_INET6, packed)
    return text if '.' not in text else str(ipaddress.ip_address(bytes(packed)))


def canonical(text):
    """The canonical text of an address text (raises ValueError, ipaddress's, if it is
    not one)."""
    try:
        if ':' not in text:
            return socket.inet_ntop(_AF_INET, socket.inet_pton(_AF_INET, text))
        if '.' not in text:
            spelled = socket.inet_ntop(_AF_INET6, socket.inet_pton(_AF_INET6, text))
            if '.' not in spelled:
                return spelled
    except (OSError, ValueError, TypeError):  # refused (or not a text): ipaddress says why
        pass
    return str(ipaddress.ip_address(text))
