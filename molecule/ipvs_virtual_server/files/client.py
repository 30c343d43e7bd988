#!/usr/bin/python3
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A long-lived TCP client for the ipvs_virtual_server scenario.

    client.py HOST PORT DIR

Connects to HOST:PORT (a VIP whose backends run backend.py), reads the backend's
lines and keeps DIR/client.progress at the number read so far. When DIR/client.stop
appears it resets the connection and writes DIR/client.json:
  {"lines": N, "backends": [...], "max_gap": seconds, "error": null or why it ended early}
A connection broken by a service delete/re-add ends with an error (reset, EOF or a
read timeout) and a short line count.
"""

import json
import os
import socket
import struct
import sys
import time

READ_TIMEOUT = 30  # generous: TCG is slow and the host is shared


def write_atomic(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    stop = os.path.join(directory, 'client.stop')
    lines, backends, max_gap, error = 0, set(), 0.0, None
    sock = socket.create_connection((host, port), timeout=READ_TIMEOUT)
    stream = sock.makefile('rb')
    last = time.monotonic()
    try:
        while not os.path.exists(stop):
            line = stream.readline()
            if not line:
                error = 'connection closed by the other end'
                break
            now = time.monotonic()
            max_gap, last = max(max_gap, now - last), now
            lines += 1
            backends.add(line.split()[0].decode())
            write_atomic(os.path.join(directory, 'client.progress'), '%d\n' % lines)
    except OSError as exc:
        error = str(exc) or type(exc).__name__
    # Reset rather than close: IPVS then forgets the connection after its short CLOSE
    # timeout (10 s) instead of holding it in TIME_WAIT for two minutes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()
    write_atomic(os.path.join(directory, 'client.json'), json.dumps(
        {'lines': lines, 'backends': sorted(backends), 'max_gap': round(max_gap, 3), 'error': error}) + '\n')
    return 0 if error is None else 1


if __name__ == '__main__':
    sys.exit(main())
