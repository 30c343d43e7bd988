#!/usr/bin/python3
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test fixtures of the ipvs_virtual_server Molecule scenario: classic LVS-NAT on one node.

    netns nlbt-c   10.250.0.2 --veth-- 10.250.0.1  client, default route via the node
    netns nlbt-b1  10.250.1.2 --veth-- 10.250.1.1  backend b1, default route via the node
    netns nlbt-b2  10.250.2.2 --veth-- 10.250.2.1  backend b2, default route via the node
    dummy nlbt-vip                                  the VIPs, /32 each

The client reaches a VIP through the node (IPVS on INPUT), IPVS NATs to a backend, the
backend answers through the node, where IPVS un-NATs.

    fixtures.py up DIR VIP...          build all that, install this file as DIR/fixtures.py,
                                       start the backends, wait until they answer
    fixtures.py down DIR               remove all that and DIR; fine when nothing is there
    fixtures.py clear ERE              delete, with ipvsadm itself (not the module under test),
                                       the services whose `ipvsadm -S -n` -A line matches ERE
    fixtures.py client HOST PORT DIR   start the long-lived client (a systemd unit)

and, run by the systemd units:

    fixtures.py backend NAME           answer with NAME: HTTP on tcp 8080, a line every
                                       TICK s on tcp 9000 (a long-lived stream), udp 5353
    fixtures.py read-stream HOST PORT DIR
                                       read HOST:PORT's stream, keep DIR/client.progress at
                                       the line count; when DIR/client.stop appears, reset
                                       the connection and write DIR/client.json:
                                       {"lines", "backends", "max_gap", "error"}

Stdlib only: the lab image has python3 and iproute2, nothing else to serve with. Run as
an Ansible `script` (one transfer, no Python module to start: cheap under TCG).
"""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

NAMESPACES = (('nlbt-c', 0), ('nlbt-b1', 1), ('nlbt-b2', 2))
BACKENDS = (('b1', '10.250.1.2'), ('b2', '10.250.2.2'))
UNITS = ('nlbt-client', 'nlbt-b1', 'nlbt-b2')
VIP_LINK = 'nlbt-vip'
TICK = 0.2
READY_TIMEOUT = 240  # python starts slowly under TCG on a shared host
READ_TIMEOUT = 30


def run(*argv, check=True, data=None):
    return subprocess.run(argv, input=data, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=dict(os.environ, LANG='C', LC_ALL='C'))


# ---------------------------------------------------------------------------- fixtures

def up(directory, *vips):
    down(directory)
    os.makedirs(directory)
    script = os.path.join(directory, 'fixtures.py')
    shutil.copy(os.path.abspath(__file__), script)
    run('ip', 'link', 'add', VIP_LINK, 'type', 'dummy')
    run('ip', 'link', 'set', VIP_LINK, 'up')
    for vip in vips:
        run('ip', 'address', 'add', vip + '/32', 'dev', VIP_LINK)
    for ns, octet in NAMESPACES:
        host = ns + '-h'
        run('ip', 'netns', 'add', ns)
        run('ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
        run('ip', 'address', 'add', '10.250.%d.1/24' % octet, 'dev', host)
        run('ip', 'link', 'set', host, 'up')
        run('ip', '-n', ns, 'address', 'add', '10.250.%d.2/24' % octet, 'dev', 'eth0')
        run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        run('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
        run('ip', '-n', ns, 'route', 'add', 'default', 'via', '10.250.%d.1' % octet)
    for name, _ in BACKENDS:
        run('systemd-run', '--quiet', '--collect', '--unit', 'nlbt-' + name,
            'ip', 'netns', 'exec', 'nlbt-' + name, 'python3', script, 'backend', name)
    deadline = time.monotonic() + READY_TIMEOUT
    for _, address in BACKENDS:
        while True:
            try:
                socket.create_connection((address, 8080), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit('backend %s does not answer on 8080 after %ds' % (address, READY_TIMEOUT))
                time.sleep(0.5)


def down(directory):
    for unit in UNITS:
        run('systemctl', 'stop', unit + '.service', check=False)
    for ns, _ in NAMESPACES:
        run('ip', 'netns', 'delete', ns, check=False)  # takes its veth pair along
    run('ip', 'link', 'delete', VIP_LINK, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def clear(pattern):
    rules = run('ipvsadm', '-S', '-n').stdout.splitlines()
    # -A lines become -D lines (a fwmark service keeps its -6); -R takes them all at once.
    deletes = [re.sub(r'^-A (-[tusf] \S+)( -6)?.*$', r'-D \1\2', line)
               for line in rules if re.search(pattern, line)]
    if deletes:
        run('ipvsadm', '-R', data='\n'.join(deletes) + '\n')
    print('deleted %d service(s)' % len(deletes))


def client(host, port, directory):
    run('systemd-run', '--quiet', '--collect', '--unit', 'nlbt-client', 'ip', 'netns', 'exec', 'nlbt-c',
        'python3', os.path.join(directory, 'fixtures.py'), 'read-stream', host, port, directory)


# ---------------------------------------------------------------------------- backend

def backend(name):
    # Imported here: they take seconds under TCG, and only the backends need them.
    import http.server
    import socketserver
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ('%s\n' % name).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Content-Length', str(len(body)))
            # One request per connection: each curl is a new IPVS scheduling decision.
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Ticks(socketserver.StreamRequestHandler):
        def handle(self):
            count = 0
            try:
                while True:
                    count += 1
                    self.wfile.write(('%s %d\n' % (name, count)).encode())
                    self.wfile.flush()
                    time.sleep(TICK)
            except OSError:
                pass  # the client closed or reset the connection

    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            self.request[1].sendto(('%s\n' % name).encode(), self.client_address)

    class TCPServer(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    servers = [http.server.ThreadingHTTPServer(('0.0.0.0', 8080), Hello),
               TCPServer(('0.0.0.0', 9000), Ticks),
               socketserver.ThreadingUDPServer(('0.0.0.0', 5353), Echo)]
    threads = []
    for server in servers:
        server.daemon_threads = True
        threads.append(threading.Thread(target=server.serve_forever))
        threads[-1].start()
    for thread in threads:
        thread.join()


# ---------------------------------------------------------------------------- client

def write_atomic(path, text):
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)


def read_stream(host, port, directory):
    """A connection broken by a service delete/re-add ends early with an error (reset,
    EOF or a read timeout); one that lives shows a small max_gap between lines."""
    stop = os.path.join(directory, 'client.stop')
    lines, backends, max_gap, error = 0, set(), 0.0, None
    sock = socket.create_connection((host, int(port)), timeout=READ_TIMEOUT)
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


COMMANDS = {'up': up, 'down': down, 'clear': clear, 'client': client, 'backend': backend,
            'read-stream': read_stream}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(__doc__)
    try:
        COMMANDS[argv[0]](*argv[1:])
    except subprocess.CalledProcessError as exc:
        raise SystemExit('%s failed (rc=%d): %s' % (' '.join(exc.cmd), exc.returncode, exc.stderr.strip()))


if __name__ == '__main__':
    main(sys.argv[1:])
