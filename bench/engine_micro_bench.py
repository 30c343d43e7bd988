#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's pure-Python hot paths at one table size, on this machine, no kernel:

    .venv/bin/python bench/engine_micro_bench.py [--services 5000] [--servers 10] [--repeat 7]

- validate: parse_request() of the bench table as JSON text (what the module does);
- encode: the netlink request of every action of a full load (55,000 at 5,000 x 10);
- decode: a read of the same table from real-server dump datagrams laid out as a
  6.1/6.12 kernel sends them (built here with struct, not with the backend's code);
- save format: parse(`ipvsadm -S -n` text) and render(table).

Prints the median of --repeat runs per figure, in milliseconds. Runs from the repository
root against the collection in this checkout (bench/ipvs_node_bench.py makes the table).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'collections'))
sys.path.insert(0, HERE)

import ipvs_node_bench  # noqa: E402  (the table generator)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model, save_format, validation  # noqa: E402
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import netlink_decode, netlink_encode  # noqa: E402


def _tlv(kind, payload):
    data = struct.pack('=HH', 4 + len(payload), kind) + payload
    return data + b'\0' * (-len(data) % 4)


def dest_datagrams(service, per_datagram=30):
    """The real-server dump of one service as a kernel sends it (6.1 attribute order)."""
    messages = []
    for server in service.real_servers:
        attrs = (_tlv(1, socket.inet_pton(socket.AF_INET, server.address) + b'\0' * 12)
                 + _tlv(2, struct.pack('>H', server.port)) + _tlv(3, struct.pack('=I', 0))
                 + _tlv(4, struct.pack('=I', server.weight)) + _tlv(13, b'\0') + _tlv(14, b'\0\0')
                 + _tlv(15, b'\0\0') + _tlv(5, struct.pack('=I', 0)) + _tlv(6, struct.pack('=I', 0))
                 + _tlv(7, struct.pack('=I', 0)) + _tlv(8, struct.pack('=I', 0)) + _tlv(9, struct.pack('=I', 0))
                 + _tlv(11, struct.pack('=H', socket.AF_INET)) + _tlv(10, _tlv(1, struct.pack('=I', 0))))
        body = struct.pack('=BBH', 5, 1, 0) + _tlv(2, attrs)
        messages.append(struct.pack('=IHHII', 16 + len(body), 0x1c, 2, 7, 0) + body)
    return [b''.join(messages[i:i + per_datagram]) for i in range(0, len(messages), per_datagram)]


def timed(function, repeat):
    """Median CPU time of this process (other load on the host moves wall time a lot)."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        function()
        runs.append(time.process_time() - start)
    return statistics.median(runs) * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--services', type=int, default=5000)
    parser.add_argument('--servers', type=int, default=10)
    parser.add_argument('--repeat', type=int, default=7)
    args = parser.parse_args(argv)

    text = json.dumps(ipvs_node_bench.table_params(args.services, args.servers))
    params = {'services': text, 'scope': ipvs_node_bench.SCOPE}
    services = validation.parse_request(params).services
    actions = [model.Action(model.ADD_SERVICE, service) for service in services]
    actions += [model.Action(model.ADD_SERVER, service, server) for service in services
                for server in service.real_servers]
    datagrams = [dest_datagrams(service) for service in services]
    table = model.table_of(services)
    saved = save_format.render(table)

    def decode():
        for index, service in enumerate(services):
            servers, counters = [], {}
            for data in datagrams[index]:
                view = memoryview(bytearray(data))
                if not netlink_decode.decode_dest_rows(view, len(data), 4, 7, servers, counters):
                    raise SystemExit('the fast decoder declined the datagram')
            model.VirtualService(key=service.key, scheduler=service.scheduler, real_servers=tuple(servers),
                                 connections=counters)

    figures = [
        ('validate (parse_request, JSON text)', lambda: validation.parse_request(params)),
        ('encode (netlink request of every action)', lambda: [netlink_encode.request(action) for action in actions]),
        ('decode (real-server dump datagrams -> services)', decode),
        ('save format parse', lambda: save_format.parse(saved)),
        ('save format render', lambda: save_format.render(table)),
    ]
    print('%d x %d, median of %d, ms (Python %s)' % (args.services, args.servers, args.repeat,
                                                     sys.version.split()[0]))
    for name, function in figures:
        print('%-50s %8.1f' % (name, timed(function, args.repeat)))


if __name__ == '__main__':
    main()
