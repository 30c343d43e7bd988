# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kube-proxy's KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) from the role's
``kube_proxy_*`` variables: one table of fields, kube-proxy's own validation rules, the
rendered document and its YAML text.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    rendered = render({'kube_proxy_mode': 'ipvs', 'kube_proxy_cluster_cidr': '10.244.0.0/16'})
    rendered.config     # the document as a dict, in kube-proxy's field order
    rendered.warnings   # e.g. the IPVS-mode deprecation, an unknown scheduler
    to_yaml(rendered.config)

Rules (read from kube-proxy's types, defaults, v1alpha1 conversion and validation):
- One row of FIELDS per variable: its name, where it goes, its kind and its default.
  Missing or None variables take the default. Every layer (role defaults, argument
  specs, README) is held equal to this table by tests.
- Sync periods go in the section of the chosen mode (``ipvs:``, ``iptables:`` or
  ``nftables:``); that is the only place kube-proxy reads them. masqueradeAll and
  masqueradeBit go in ``iptables:`` in iptables and ipvs mode, in ``nftables:`` in
  nftables mode. ``ipvs:`` is written in ipvs mode only. Sections of other modes are
  not written.
- Empty strings and empty dicts are not written (kube-proxy's default applies); lists
  are always written, so an empty list clears one in a ConfigMap merge.
- All problems are collected and raised at once (ConfigError), each naming its variable.
- Each value is checked by its kind (config_values.py).
No I/O here: the caller writes the text.
"""

from __future__ import annotations

import collections

from ansible_collections.netlb.ipvs.plugins.module_utils._duration import parse_duration
from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config_values import MODES, check_value, to_bool

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as err:  # the controller always has PyYAML; a node may not
    HAS_YAML = False
    YAML_IMPORT_ERROR = err

API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1'
KIND = 'KubeProxyConfiguration'
# The schedulers of the Linux IPVS code (ip_vs_<name>.ko). kube-proxy stopped checking the
# name in 1.27 (kubernetes#114878): a typo only shows when the kernel refuses it.
KNOWN_SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos')
IPVS_DEPRECATION = (
    "kube-proxy's IPVS mode is deprecated upstream (Kubernetes 1.35) and will be removed; "
    'netlb.ipvs.k8s_service_proxy keeps IPVS Service load balancing without kube-proxy '
    '(see playbooks/migrate-from-kube-proxy.yml)')

# Where a field goes: a path from the document's root. '@sync' is the section of the
# chosen mode, '@masq' the section kube-proxy reads masquerading from in that mode.
Field = collections.namedtuple('Field', ('variable', 'path', 'kind', 'default'))
FIELDS = (
    Field('kube_proxy_feature_gates', ('featureGates',), 'feature_gates', {}),
    Field('kube_proxy_client_kubeconfig', ('clientConnection', 'kubeconfig'), 'str', ''),
    Field('kube_proxy_client_accept_content_types', ('clientConnection', 'acceptContentTypes'), 'str', ''),
    Field('kube_proxy_client_content_type', ('clientConnection', 'contentType'), 'str',
          'application/vnd.kubernetes.protobuf'),
    Field('kube_proxy_client_qps', ('clientConnection', 'qps'), 'qps', 5),
    Field('kube_proxy_client_burst', ('clientConnection', 'burst'), 'nonneg_int', 10),
    Field('kube_proxy_logging', ('logging',), 'dict', {}),
    Field('kube_proxy_hostname_override', ('hostnameOverride',), 'str', ''),
    Field('kube_proxy_bind_address', ('bindAddress',), 'ip', '0.0.0.0'),
    Field('kube_proxy_healthz_bind_address', ('healthzBindAddress',), 'hostport', '0.0.0.0:10256'),
    Field('kube_proxy_metrics_bind_address', ('metricsBindAddress',), 'hostport', '127.0.0.1:10249'),
    Field('kube_proxy_enable_profiling', ('enableProfiling',), 'bool', False),
    Field('kube_proxy_mode', ('mode',), 'mode', 'ipvs'),
    Field('kube_proxy_masquerade_all', ('@masq', 'masqueradeAll'), 'bool', False),
    Field('kube_proxy_masquerade_bit', ('@masq', 'masqueradeBit'), 'masquerade_bit', 14),
    Field('kube_proxy_sync_period', ('@sync', 'syncPeriod'), 'duration', '30s'),
    # '': kube-proxy's default for the mode (MIN_SYNC_DEFAULTS).
    Field('kube_proxy_min_sync_period', ('@sync', 'minSyncPeriod'), 'duration', ''),
    Field('kube_proxy_scheduler', ('ipvs', 'scheduler'), 'str', 'rr'),
    Field('kube_proxy_exclude_cidrs', ('ipvs', 'excludeCIDRs'), 'cidrs', []),
    Field('kube_proxy_strict_arp', ('ipvs', 'strictARP'), 'bool', False),
    Field('kube_proxy_tcp_timeout', ('ipvs', 'tcpTimeout'), 'nonneg_duration', '0s'),
    Field('kube_proxy_tcp_fin_timeout', ('ipvs', 'tcpFinTimeout'), 'nonneg_duration', '0s'),
    Field('kube_proxy_udp_timeout', ('ipvs', 'udpTimeout'), 'nonneg_duration', '0s'),
    Field('kube_proxy_detect_local_mode', ('detectLocalMode',), 'detect_local_mode', ''),
    Field('kube_proxy_detect_local_bridge_interface', ('detectLocal', 'bridgeInterface'), 'str', ''),
    Field('kube_proxy_detect_local_interface_name_prefix', ('detectLocal', 'interfaceNamePrefix'), 'str', ''),
    Field('kube_proxy_cluster_cidr', ('clusterCIDR',), 'cluster_cidr', ''),
    Field('kube_proxy_nodeport_addresses', ('nodePortAddresses',), 'nodeport_addresses', []),
    Field('kube_proxy_oom_score_adj', ('oomScoreAdj',), 'oom_score_adj', -999),
    Field('kube_proxy_conntrack_max_per_core', ('conntrack', 'maxPerCore'), 'nonneg_int', 32768),
    Field('kube_proxy_conntrack_min', ('conntrack', 'min'), 'nonneg_int', 131072),
    Field('kube_proxy_conntrack_tcp_established_timeout', ('conntrack', 'tcpEstablishedTimeout'),
          'nonneg_duration', '24h0m0s'),
    Field('kube_proxy_conntrack_tcp_close_wait_timeout', ('conntrack', 'tcpCloseWaitTimeout'),
          'nonneg_duration', '1h0m0s'),
    Field('kube_proxy_conntrack_tcp_be_liberal', ('conntrack', 'tcpBeLiberal'), 'bool', False),
    Field('kube_proxy_conntrack_udp_timeout', ('conntrack', 'udpTimeout'), 'nonneg_duration', '0s'),
    Field('kube_proxy_conntrack_udp_stream_timeout', ('conntrack', 'udpStreamTimeout'), 'nonneg_duration', '0s'),
    Field('kube_proxy_config_sync_period', ('configSyncPeriod',), 'positive_duration', '15m0s'),
)
FIELD_BY_VARIABLE = dict((field.variable, field) for field in FIELDS)
# Variables that shape the checks but are not fields of the document.
ARP_LOAD_BALANCER = 'kube_proxy_arp_load_balancer'
CHECK_DEFAULTS = {ARP_LOAD_BALANCER: False}
DEFAULTS = dict([(field.variable, field.default) for field in FIELDS] + list(CHECK_DEFAULTS.items()))

# kube-proxy's minSyncPeriod when none is given (v1alpha1 defaults).
MIN_SYNC_DEFAULTS = {'ipvs': '0s', 'iptables': '1s', 'nftables': '1s'}
SYNC_SECTION = {'ipvs': 'ipvs', 'iptables': 'iptables', 'nftables': 'nftables'}
MASQ_SECTION = {'ipvs': 'iptables', 'iptables': 'iptables', 'nftables': 'nftables'}

Rendered = collections.namedtuple('Rendered', ('config', 'warnings'))


class ConfigError(ValueError):
    """Variables kube-proxy would refuse. problems: one line each, naming the variable."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__('; '.join(self.problems))


def _resolve(path, mode):
    head = path[0]
    if head == '@sync':
        return (SYNC_SECTION[mode],) + path[1:]
    if head == '@masq':
        return (MASQ_SECTION[mode],) + path[1:]
    return path


def _applies(path, mode):
    """Whether a resolved path is written in this mode: no ipvs: outside ipvs mode."""
    return not (path[0] == 'ipvs' and mode != 'ipvs')


def _empty(value):
    return value is None or value == '' or value == {}


def render(variables):
    """Rendered(config, warnings) for a dict of kube_proxy_* variables (others ignored).

    Raises ConfigError with every problem when kube-proxy would refuse the result.
    """
    values = dict(DEFAULTS)
    values.update((key, value) for key, value in (variables or {}).items()
                  if key in DEFAULTS and value is not None)
    problems, checked = [], {}
    for field in FIELDS:
        if field.variable == 'kube_proxy_min_sync_period' and values[field.variable] in (None, ''):
            continue  # filled in below, once the mode is known
        checked[field.variable] = check_value(field, values[field.variable], problems)
    mode = checked.get('kube_proxy_mode')
    if mode is None:
        raise ConfigError(problems)
    if 'kube_proxy_min_sync_period' not in checked:
        checked['kube_proxy_min_sync_period'] = MIN_SYNC_DEFAULTS[mode]
    warnings = []
    _cross_checks(checked, values, mode, problems, warnings)
    if problems:
        raise ConfigError(problems)

    config = collections.OrderedDict([('apiVersion', API_VERSION), ('kind', KIND)])
    for field in FIELDS:
        path = _resolve(field.path, mode)
        value = checked[field.variable]
        if not _applies(path, mode) or _empty(value):
            continue
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, collections.OrderedDict())
        node[path[-1]] = value
    return Rendered(_plain(config), warnings)


def config_problems(config, prefix='config'):
    """The problems of a rendered KubeProxyConfiguration handed back (the `config` option
    of k8s_kube_proxy_configmap): apiVersion and kind, and each field render() writes,
    checked as render() checks it and named by its path (config.ipvs.scheduler). Keys
    render() does not write are left to kube-proxy."""
    if not isinstance(config, dict):
        return ['%s: %r is not a mapping' % (prefix, config)]
    problems = []
    for key, want in (('apiVersion', API_VERSION), ('kind', KIND)):
        if config.get(key) != want:
            problems.append('%s.%s: %r is not %s' % (prefix, key, config.get(key), want))
    mode = config.get('mode') if config.get('mode') in MODES else 'ipvs'  # a bad mode is its field's problem
    for field in FIELDS:
        path = _resolve(field.path, mode)
        node = config
        for depth, key in enumerate(path[:-1], 1):
            node = node.get(key)
            if not isinstance(node, dict):
                if node is not None:
                    problems.append('%s.%s: %r is not a mapping' % (prefix, '.'.join(path[:depth]), node))
                break
        else:
            if path[-1] in node:
                found = []
                check_value(field, node[path[-1]], found)
                where = '%s.%s' % (prefix, '.'.join(path))
                problems.extend(where + problem[len(field.variable):] for problem in found)
    return list(collections.OrderedDict.fromkeys(problems))  # a section that is no mapping, once


def _cross_checks(checked, values, mode, problems, warnings):
    """The rules that relate two variables, and the warnings."""
    sync, min_sync = checked.get('kube_proxy_sync_period'), checked.get('kube_proxy_min_sync_period')
    if sync is not None and parse_duration(sync) <= 0:
        problems.append('kube_proxy_sync_period: %s must be greater than 0' % sync)
    if min_sync is not None and parse_duration(min_sync) < 0:
        problems.append('kube_proxy_min_sync_period: %s must be >= 0' % min_sync)
    elif sync is not None and min_sync is not None and parse_duration(min_sync) > parse_duration(sync):
        problems.append('kube_proxy_min_sync_period: %s is longer than kube_proxy_sync_period (%s); '
                        'kube-proxy needs 0 <= min sync period <= sync period' % (min_sync, sync))
    local_mode = checked.get('kube_proxy_detect_local_mode')
    needs = {'BridgeInterface': 'kube_proxy_detect_local_bridge_interface',
             'InterfaceNamePrefix': 'kube_proxy_detect_local_interface_name_prefix'}
    if local_mode in needs and not checked.get(needs[local_mode]):
        problems.append('%s: detectLocalMode %s needs the interface in %s' % (needs[local_mode], local_mode,
                                                                              needs[local_mode]))
    if mode == 'ipvs':
        scheduler = checked.get('kube_proxy_scheduler')
        if scheduler and scheduler not in KNOWN_SCHEDULERS:
            warnings.append('kube_proxy_scheduler: %r is not a scheduler of the Linux IPVS code (%s); kube-proxy '
                            'no longer checks the name and the kernel will refuse it'
                            % (scheduler, ' '.join(KNOWN_SCHEDULERS)))
        try:
            arp_lb = to_bool(values.get(ARP_LOAD_BALANCER))
        except ValueError as err:
            problems.append('%s: %s' % (ARP_LOAD_BALANCER, err))
            arp_lb = False
        if arp_lb and checked.get('kube_proxy_strict_arp') is False:
            problems.append('kube_proxy_strict_arp: must be true in ipvs mode with an ARP-announcing load balancer '
                            '(%s is true: MetalLB L2, kube-vip ARP): without strict ARP every node answers ARP for '
                            'the addresses on kube-ipvs0' % ARP_LOAD_BALANCER)
        warnings.append(IPVS_DEPRECATION)


def _plain(value):
    """Plain dicts, lists, str, int, float and bool (insertion order kept): Ansible hands
    over subclasses (tagged values) that a YAML dumper refuses."""
    if isinstance(value, dict):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def to_yaml(config):
    """The YAML text of a document, keys in the order given, block style."""
    if not HAS_YAML:
        raise RuntimeError('rendering YAML needs PyYAML: %s' % YAML_IMPORT_ERROR)
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False, allow_unicode=True)
