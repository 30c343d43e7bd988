# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.server
import os
import threading

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import kube_proxy


def _proc(root, pid, comm, argv, files=None, uid=0, host_network=True):
    """A fake /proc/PID: host_network links its net/dev to self's, as one namespace's
    files share their inode numbers."""
    base = root / str(pid)
    base.mkdir(parents=True)
    (base / 'comm').write_text(comm + '\n')
    (base / 'cmdline').write_bytes(b'\0'.join(a.encode() for a in argv) + b'\0')
    (base / 'status').write_text('Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n' % (comm, uid, uid, uid, uid))
    (base / 'net').mkdir()
    if host_network:
        os.link(root / 'self' / 'net' / 'dev', base / 'net' / 'dev')
    else:
        (base / 'net' / 'dev').write_text('lo eth0\n')
    for path, text in (files or {}).items():
        target = base / 'root' / path.lstrip('/')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.fixture
def proc(tmp_path):
    (tmp_path / 'self' / 'net').mkdir(parents=True)  # not a pid: this process
    (tmp_path / 'self' / 'net' / 'dev').write_text('lo eth0 ens3\n')
    _proc(tmp_path, 1, 'systemd', ['/sbin/init'])
    _proc(tmp_path, 77, 'sshd', ['sshd: /usr/sbin/sshd -D'])
    return tmp_path


CONFIG = '''apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
metricsBindAddress: 0.0.0.0:10249
ipvs:
  scheduler: rr
  mode: nested-not-read
mode: "ipvs"
'''


class Asked:
    def __init__(self, answer=None, error='connection refused'):
        self.answer, self.error, self.urls = answer, error, []

    def __call__(self, url):
        self.urls.append(url)
        return (self.answer, '') if self.answer is not None else (None, self.error)


@pytest.mark.parametrize('argv, files, answer, running, mode, source, ipvs, url', [
    pytest.param(None, None, None, False, '', '', False, None, id='none'),
    pytest.param(['/usr/local/bin/kube-proxy', '--config=/var/lib/kube-proxy/config.conf'],
                 {'/var/lib/kube-proxy/config.conf': CONFIG}, 'ipvs', True, 'ipvs', 'metrics', True,
                 'http://127.0.0.1:10249/proxyMode', id='metrics-answers'),
    pytest.param(['/usr/local/bin/kube-proxy', '--config', '/var/lib/kube-proxy/config.conf'],
                 {'/var/lib/kube-proxy/config.conf': CONFIG}, None, True, 'ipvs', 'config', True,
                 'http://127.0.0.1:10249/proxyMode', id='config-in-container-root'),
    pytest.param(['kube-proxy', '--proxy-mode=iptables', '--metrics-bind-address=127.0.0.2:10999'], None, None,
                 True, 'iptables', 'flag', False, 'http://127.0.0.2:10999/proxyMode', id='flag'),
    pytest.param(['kube-proxy', '--proxy-mode=iptables', '--metrics-bind-address=10.0.0.5:10999'], None, 'ipvs',
                 True, 'iptables', 'flag', False, None, id='flag-metrics-elsewhere-not-asked'),
    pytest.param(['kube-proxy', '--proxy-mode='], None, None, True, 'iptables', 'flag', False,
                 'http://127.0.0.1:10249/proxyMode', id='empty-flag-is-default'),
    pytest.param(['kube-proxy', '--v=2'], None, None, True, 'unknown', '', None,
                 'http://127.0.0.1:10249/proxyMode', id='unknown'),
    pytest.param(['kube-proxy', '--config=/missing.yaml'], None, 'nftables\n', True, 'nftables', 'metrics', False,
                 'http://127.0.0.1:10249/proxyMode', id='metrics-beats-missing-config'),
])
def test_detect(proc, argv, files, answer, running, mode, source, ipvs, url):
    if argv is not None:
        _proc(proc, 4242, 'kube-proxy', argv, files)
    asked = Asked(answer)
    status = kube_proxy.detect(str(proc), ask=asked)
    assert (status.running, status.mode, status.source, status.ipvs) == (running, mode, source, ipvs)
    assert asked.urls == ([url] if url else [])
    if running:
        assert status.pids == (4242,)


def test_unknown_says_why(proc):
    _proc(proc, 9, 'kube-proxy', ['kube-proxy'])
    status = kube_proxy.detect(str(proc), ask=Asked(None, 'http://127.0.0.1:10249/proxyMode: timed out'))
    assert status.detail == ('kube-proxy (pid 9) is running in an unknown mode: '
                             'http://127.0.0.1:10249/proxyMode: timed out')


def test_found_by_argv0_when_comm_differs(proc):
    _proc(proc, 12, 'hyperkube', ['/usr/bin/kube-proxy', '--proxy-mode', 'ipvs'])
    assert kube_proxy.find_processes(str(proc)) == [(12, ['/usr/bin/kube-proxy', '--proxy-mode', 'ipvs'])]


@pytest.mark.parametrize('text, expected', [
    pytest.param(CONFIG, ('ipvs', '0.0.0.0:10249'), id='yaml'),
    pytest.param('{"kind": "KubeProxyConfiguration", "mode": "ipvs"}', (None, None), id='json-one-line-not-top'),
    pytest.param('{\n"mode": "iptables",\n"metricsBindAddress": "127.0.0.1:10249"\n}', ('iptables', '127.0.0.1:10249'),
                 id='json-lines'),
    pytest.param('mode: ""\n', ('', None), id='empty-mode'),
])
def test_config_values(text, expected):
    assert kube_proxy.config_values(text) == expected


@pytest.mark.parametrize('bind, url', [
    pytest.param(None, 'http://127.0.0.1:10249/proxyMode', id='default'),
    pytest.param('0.0.0.0:10249', 'http://127.0.0.1:10249/proxyMode', id='any'),
    pytest.param('[::]:10250', 'http://127.0.0.1:10250/proxyMode', id='v6-any'),
    pytest.param('[::1]:10249', 'http://[::1]:10249/proxyMode', id='v6-loopback'),
    pytest.param('127.3.0.1:10249', 'http://127.3.0.1:10249/proxyMode', id='loopback-net'),
    pytest.param('[fd00::1]:10249', None, id='v6-elsewhere'),
    pytest.param('169.254.169.254:80', None, id='metadata-service'),
    pytest.param('kube-apiserver.example:443', None, id='name'),
    pytest.param('127.0.0.1:80/latest', None, id='path-in-port'),
])
def test_metrics_url(bind, url):
    got, why = kube_proxy.metrics_url(bind)
    assert got == url
    assert (why == '') == (url is not None)


def test_metrics_elsewhere_said(proc):
    _proc(proc, 9, 'kube-proxy', ['kube-proxy', '--metrics-bind-address=10.0.0.5:10249'])
    asked = Asked('ipvs')
    status = kube_proxy.detect(str(proc), ask=asked)
    assert asked.urls == []
    assert (status.mode, status.ipvs) == ('unknown', None)
    assert status.detail == ('kube-proxy (pid 9) is running in an unknown mode: '
                             'metrics address 10.0.0.5:10249 not contacted (only loopback is asked)')


@pytest.mark.parametrize('uid, host_network, believed', [
    pytest.param(0, True, True, id='root-host-network'),
    pytest.param(0, False, False, id='root-in-a-pod-network'),
    pytest.param(1000, True, False, id='user-host-network'),
    pytest.param(100000, False, False, id='user-namespaced-pod-root'),
])
def test_believes_only_root_in_our_network(proc, uid, host_network, believed):
    _proc(proc, 4242, 'kube-proxy', ['kube-proxy', '--proxy-mode=ipvs'], uid=uid, host_network=host_network)
    asked = Asked('ipvs')
    status = kube_proxy.detect(str(proc), ask=asked)
    assert (status.running, status.ipvs) == (believed, believed)
    assert bool(asked.urls) == believed


def test_effective_uid_counts_too(proc):
    _proc(proc, 5, 'kube-proxy', ['kube-proxy'])
    (proc / '5' / 'status').write_text('Uid:\t0\t1000\t0\t0\n')
    assert kube_proxy.find_processes(str(proc)) == []


def test_our_network_unknown_compares_uid_only(proc):
    _proc(proc, 5, 'kube-proxy', ['kube-proxy'], host_network=False)
    os.unlink(proc / 'self' / 'net' / 'dev')
    assert kube_proxy.find_processes(str(proc)) == [(5, ['kube-proxy'])]


def test_real_proc_net_identity():
    # The identity the check relies on, on this kernel: our own process matches itself.
    assert kube_proxy._network_namespace('/proc/self') == kube_proxy._network_namespace('/proc/%d' % os.getpid())
    assert kube_proxy._network_namespace('/proc/self') is not None


@pytest.mark.parametrize('make', [
    pytest.param(os.mkfifo, id='fifo'),
    pytest.param(lambda path: os.symlink('/dev/zero', path), id='link-to-device'),
    pytest.param(lambda path: path.write_text('mode: ipvs\n' + '#' * kube_proxy.CONFIG_MAX_BYTES), id='too-big'),
    pytest.param(lambda path: path.mkdir(), id='directory'),
])
def test_config_read_regular_capped(proc, make):
    _proc(proc, 4242, 'kube-proxy', ['kube-proxy', '--config=/etc/kube-proxy.yaml'])
    target = proc / '4242' / 'root' / 'etc' / 'kube-proxy.yaml'
    target.parent.mkdir(parents=True)
    make(target)
    status = kube_proxy.detect(str(proc), ask=Asked(None))  # a FIFO would block here if opened plainly
    assert (status.mode, status.source) == ('unknown', '')


def test_config_through_relative_links(proc):
    # A ConfigMap volume: config.conf -> ..data/config.conf, ..data -> a timestamped directory.
    _proc(proc, 4242, 'kube-proxy', ['kube-proxy', '--config=/var/lib/kube-proxy/config.conf'])
    volume = proc / '4242' / 'root' / 'var' / 'lib' / 'kube-proxy'
    (volume / '..2024_01_01').mkdir(parents=True)
    (volume / '..2024_01_01' / 'config.conf').write_text(CONFIG)
    os.symlink('..2024_01_01', volume / '..data')
    os.symlink('..data/config.conf', volume / 'config.conf')
    status = kube_proxy.detect(str(proc), ask=Asked(None))
    assert (status.mode, status.source) == ('ipvs', 'config')


def test_read_regular_exact_limit(tmp_path):
    path = tmp_path / 'c'
    path.write_text('x' * 10)
    assert kube_proxy.read_regular(str(path), limit=10) == 'x' * 10
    assert kube_proxy.read_regular(str(path), limit=9) is None


def test_missing_proc_root(tmp_path):
    assert kube_proxy.find_processes(os.path.join(str(tmp_path), 'nope')) == []


def test_ask_reads_proxy_mode_over_loopback():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'ipvs' if self.path == '/proxyMode' else b'?')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        assert kube_proxy._ask('http://127.0.0.1:%d/proxyMode' % server.server_port) == ('ipvs', '')
    finally:
        thread.join(5)
        server.server_close()


def test_ask_unreachable_says_where():
    body, error = kube_proxy._ask('http://127.0.0.1:1/proxyMode')
    assert body is None and error.startswith('http://127.0.0.1:1/proxyMode: ')
