#!/usr/bin/python3
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A test backend, run inside a network namespace by the ipvs_virtual_server scenario.

    backend.py NAME

Answers with its NAME on three ports, so a client through the VIP sees which real
server it reached:
  tcp 8080  HTTP, one short answer per connection;
  tcp 9000  a long-lived stream, one line "NAME N" every TICK seconds until the client
            goes away (the connection that must survive edits and drains);
  udp 5353  one datagram back per datagram.
Stdlib only: the lab image has python3 and nothing else to serve with.
"""

import http.server
import socketserver
import sys
import threading
import time

NAME = sys.argv[1]
TICK = 0.2


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('%s\n' % NAME).encode()
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
                self.wfile.write(('%s %d\n' % (NAME, count)).encode())
                self.wfile.flush()
                time.sleep(TICK)
        except OSError:
            pass  # the client closed (or reset) the connection


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request[1].sendto(('%s\n' % NAME).encode(), self.client_address)


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    http_server = http.server.ThreadingHTTPServer(('0.0.0.0', 8080), Hello)
    http_server.daemon_threads = True
    servers = [http_server, TCPServer(('0.0.0.0', 9000), Ticks),
               socketserver.ThreadingUDPServer(('0.0.0.0', 5353), Echo)]
    threads = [threading.Thread(target=server.serve_forever) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == '__main__':
    main()
