#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: k8s_service_proxy
short_description: Serve Kubernetes Services on this node through IPVS, with kube-proxy's semantics
version_added: 0.2.0
description:
  - Reads the cluster's Services and EndpointSlices (live from the API, or from manifest files), computes the
    IPVS table kube-proxy's IPVS mode would build for this node, and makes the node hold it - the IPVS
    virtual services and real servers, the Service addresses on a dummy interface, and the packet rules
    (return-path masquerade, C(loadBalancerSourceRanges), and a reject for ports that are no service).
  - One call handles the whole table. Changes go through the same engine as M(netlb.ipvs.ipvs_virtual_server)
    - in place, new real servers before old ones go, leaving real servers drained.
  - "Semantics per node: headless, ExternalName and Services labelled C(service.kubernetes.io/service-proxy-name)
    or C(service.kubernetes.io/headless) are skipped; a virtual service per port for the cluster IP(s) of each
    family, the NodePort on each node address, each external IP O(external_ips_allowed_cidrs) admits and each
    load-balancer ingress IP (unless its C(ipMode) is C(Proxy)); real servers are ready endpoints, else serving
    and terminating ones, narrowed by topology hints (C(hints.forNodes) to this node's, PreferSameNode, else
    C(hints.forZones) to this zone's, when every ready endpoint has such hints and one names this node or zone);
    C(externalTrafficPolicy: Local) and C(internalTrafficPolicy: Local) use this node's endpoints only;
    C(sessionAffinity: ClientIP) becomes persistence."
  - "C(externalTrafficPolicy: Local) on a node without a local endpoint - as kube-proxy's IPVS mode
    (kubernetes#97081), the NodePort, external and load-balancer services get every endpoint of the cluster
    instead (topology hints applied), so pods reach them, and the node its NodePorts (IPVS cannot tell their
    traffic from an external client's). External clients do not: their packets reach a pod on another node
    unmasqueraded, and its reply does not come back through this node; nor do the node's own connections to an
    external or load-balancer IP (their source is that IP itself, held by the other node too), as under
    kube-proxy. A Service whose C(internalTrafficPolicy) is C(Local) too gets no fallback (kube-proxy has none
    then either)."
  - "C(internalTrafficPolicy: Local) never falls back - a node without a local endpoint has a cluster IP with no
    real server, and its pods' connections to it fail, as the Service API says. kube-proxy's IPVS mode falls back to
    every endpoint when the Service is also a NodePort or load balancer with C(externalTrafficPolicy: Cluster)."
  - "C(healthCheckNodePort) (a C(LoadBalancer) Service with C(externalTrafficPolicy: Local)) is not served yet - a
    run of this module is short-lived and cannot answer probes, so a load balancer that probes it sees no node
    healthy. The ports are returned in RV(health_check_node_ports); until a long-running process of this
    collection serves them, have the load balancer probe the Service's NodePort instead."
  - IPVS services outside this module's scope (keepalived VIPs, firewall-mark services, hand-made rules) are
    never touched (kubernetes#59507), unlike kube-proxy.
  - "C(loadBalancerSourceRanges) filter the traffic arriving at the node and the connections the node itself opens
    to the load-balancer IP. The node gets through when its source address is inside a range, and also from the
    load-balancer IP itself (the source the kernel picks toward a local address) when a range of that family holds
    one of the node's addresses (all but loopback, IPv6 link-local and O(dummy_interface)'s; kube-proxy's
    allowFromNode, which tests its one primary node IP)."
  - "Scope - the O(service_cidrs), the O(node_port_range) on the node's addresses, and the external and
    load-balancer services this module created before (kept in O(state_path)). A service of the kernel that
    equals a wanted one is adopted without a change, so a node kube-proxy served converges with no IPVS action."
  - Safety - a failed, refused, slow or truncated read of the cluster fails the task and changes nothing. A run
    that would delete more than O(max_delete_ratio) of the managed virtual services or of their serving real
    servers, or all of either, is refused unless O(force=true). A malformed object is skipped with a warning
    naming it and its field - the Service, or only the bad EndpointSlice, endpoint or slice port. A translation
    that stops early (a fault of this module) fails the task and changes nothing.
  - "A run that stops half-way (killed, timed out, refused by the kernel) leaks nothing and opens nothing - it
    records in O(state_path) what it is about to create before creating it, loads the packet rules (a new
    load-balancer IP's C(loadBalancerSourceRanges)) before binding and serving an address, removes a gone
    service's rules only after its virtual service and address, and queues the UDP conntrack flows to clear
    there; the next run removes and clears what it left."
  - "Trust - anyone who can create a Service writes what every node then serves. Cluster IPs and NodePorts are
    claimed before any external or load-balancer IP, so neither can take a protocol, address and port that a
    cluster IP or NodePort holds (the Service asking is warned about, naming the holder); no external or
    load-balancer IP may be an address of the node, loopback, link-local or multicast; external IPs are served
    only inside O(external_ips_allowed_cidrs) and never inside O(service_cidrs)."
extends_documentation_fragment:
  - netlb.ipvs.k8s_auth
author:
  - netlb.ipvs developers (@netlb)
requirements:
  - nftables (the C(nft) command)
  - conntrack (the C(conntrack) command), to clear the flows of UDP real servers that went, and of UDP services
    that had no endpoint and have one now (as kube-proxy)
  - "O(source=api) with an exec plugin, an auth provider, a proxy, in-cluster configuration or a merged
    kubeconfig - the Python C(kubernetes) client on the node (Debian package C(python3-kubernetes); the
    C(ipvs_node) role installs it). Static credentials (a token or client certificate, as options or in one
    kubeconfig) need no client: the module makes its own HTTPS requests then."
  - "O(source=manifests) with YAML files - PyYAML (Debian package C(python3-yaml))"
attributes:
  check_mode:
    support: full
    description: Reads the cluster, the IPVS table, the dummy interface and the packet rules, plans exactly as a
      real run, has the kernel check the rule set, and writes nothing (not even the state files).
  diff_mode:
    support: full
    description: Shows the managed IPVS services in C(ipvsadm -S -n) form, the dummy interface's addresses, and
      the nftables table, before and after.
  idempotent:
    support: full
    description: A second run against an unchanged cluster reports no change.
options:
  source:
    description:
      - Where the cluster's objects come from. V(api) reads the live API; V(manifests) reads files written by
        C(kubectl get -o yaml) or C(-o json) (a C(List), multi-document YAML, or single objects).
    type: str
    choices: [api, manifests]
    default: api
  path:
    description:
      - With O(source=manifests), a file or a directory of C(.yaml), C(.yml) and C(.json) files (not recursive).
    type: path
  namespaces:
    description: Read only these namespaces. Empty reads the whole cluster.
    type: list
    elements: str
    default: []
  label_selector:
    description: Only Services matching this label selector.
    type: str
  request_timeout:
    description:
      - Seconds each API request may take in all - connecting, sending and the whole answer - more than 0, at most
        3600. An answer is also refused past 256 MiB.
    type: int
    default: 30
  page_size:
    description: Objects per page when listing (C(limit) and C(continue)), 1 to 10000.
    type: int
    default: 500
  node_name:
    description:
      - This node's name in the cluster (for C(externalTrafficPolicy Local), C(internalTrafficPolicy Local) and
        the Node object's zone). Defaults to the host name, lower-cased, as kube-proxy's does.
    type: str
  node_zone:
    description:
      - This node's zone, for topology hints. Defaults to the C(topology.kubernetes.io/zone) label of the Node
        object; when given, the Node object is not read (no access to Nodes needed), unless
        O(node_port_addresses) is V([primary]).
    type: str
  service_cidrs:
    description:
      - The cluster's service CIDRs (kube-apiserver C(--service-cluster-ip-range)), one per family. Every IPVS
        service on an address inside them belongs to this module.
    type: list
    elements: str
    default: [10.96.0.0/12]
  cluster_cidrs:
    description:
      - The pod CIDRs. With O(masquerade=external), traffic to a cluster IP from outside them is masqueraded
        (kube-proxy's C(clusterCIDR)). A family without one masquerades only the connections whose source is a
        cluster IP - the node's own, see O(masquerade).
    type: list
    elements: str
    default: []
  node_port_range:
    description: The NodePort range (kube-apiserver C(--service-node-port-range)), C(FIRST-LAST).
    type: str
    default: 30000-32767
  node_port_addresses:
    description:
      - Where NodePorts are served, as kube-proxy's C(nodePortAddresses). Empty - every local address except
        loopback, IPv6 link-local and the dummy interface's.
      - CIDRs - per family, the node's addresses inside that family's CIDRs, never loopback. A family without a
        CIDR here gets every address of that family (the default choice), as does a zero-length CIDR
        (V(0.0.0.0/0), V(::/0)); so V([10.0.0.0/8]) on a dual-stack node still serves NodePorts on its IPv6
        addresses.
      - The single word V(primary) - the node's primary address of each family. With O(source=api) that is the
        Node object's first C(InternalIP) of the family, else its first C(ExternalIP), as kube-proxy picks its node
        IPs; the Node object is read for it even when O(node_zone) is given. With O(source=manifests) it is the Node
        object in the manifests whose name is O(node_name), when there is one. Without a Node object it is the
        source address of the node's default route of each family.
    type: list
    elements: str
    default: []
  external_ips_allowed_cidrs:
    description:
      - The CIDRs a Service's C(spec.externalIPs) must be inside to be served. Empty - no external IP is served,
        as Kubernetes advises since CVE-2020-8554 (whoever can create a Service can set an external IP and so
        intercept traffic to that address from every pod and node).
      - Whatever this lists, an external IP inside O(service_cidrs) or equal to an address of this node is
        refused with a warning naming the Service and the address.
      - Load-balancer IPs (C(status.loadBalancer.ingress), written by the load-balancer controller, not by the
        Service's author) are not checked against this list, but are never an address of this node either.
      - Restrict external IPs in the cluster too, so the API and the nodes agree - the C(DenyServiceExternalIPs)
        admission plugin (kube-apiserver C(--enable-admission-plugins=DenyServiceExternalIPs)) refuses every new
        external IP; a policy engine (Kyverno, Gatekeeper) can limit them to the CIDRs listed here.
    type: list
    elements: str
    default: []
  scheduler:
    description:
      - The IPVS scheduler of every virtual service. A Service's annotation C(ipvs.netlb.io/scheduler) (or
        kube-router's C(kube-router.io/service.scheduler)) chooses its own; an unknown value there is a warning
        and this default.
      - A scheduler the kernel does not offer (no C(ip_vs_<name>) module loaded, built in or under
        C(/lib/modules/<release>/kernel/net/netfilter/ipvs/); C(twos) needs Linux 5.12) is a warning naming the
        Service, and the service gets this default instead, or V(rr) when the kernel lacks this one too.
      - Changing it changes every live service in place. New TCP and SCTP connections arriving while the kernel
        swaps schedulers are dropped for that moment by a short-lived nftables table (C(inet netlb_ipvs_hold)),
        not refused, so clients retry once the new scheduler is bound (unless O(scheduler_hold=false)); UDP
        ones are refused (see M(netlb.ipvs.ipvs_virtual_server)).
    type: str
    default: rr
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos]
  scheduler_flags:
    description:
      - Scheduler flags, each given to the virtual services whose scheduler reads it (chosen by O(scheduler) or by
        a Service's annotation) - V(sh-fallback) and V(sh-port) to V(sh) ones, V(mh-fallback) and V(mh-port) to
        V(mh) ones. C(*-fallback) picks another real server when the hashed one is unavailable (weight 0 or
        overloaded); C(*-port) hashes the source port too, not only the source address.
      - The default, V([mh-port]), is what kube-proxy sets on its V(mh) services; V([]) sets none.
    type: list
    elements: str
    choices: [sh-fallback, sh-port, mh-fallback, mh-port]
    default: [mh-port]
  families:
    description: The address families served.
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4, ipv6]
  dummy_interface:
    description:
      - The dummy interface that holds cluster, external and load-balancer IPs (created if missing, left down).
        Only addresses this module bound are ever removed from it.
    type: str
    default: kube-ipvs0
  masquerade:
    description:
      - Which traffic is source-NATed on its way to a real server so the reply comes back through this node.
      - V(external) - traffic to NodePorts, external IPs and load-balancer IPs (not of services with
        C(externalTrafficPolicy Local), which keep the client's address), and to cluster IPs from outside
        O(cluster_cidrs); and hairpin traffic - a pod
        on this node that reaches itself through any service address - so its reply comes back through the node
        (kube-proxy's C(KUBE-LOOP-BACK)).
      - "With V(external) and no O(cluster_cidrs) of a family (the default), only connections whose source is a
        cluster IP are masqueraded toward cluster IPs, as kube-proxy does without C(clusterCIDR) and
        C(masqueradeAll): the node's and host-network pods' own connections, to which the kernel gives the
        cluster IP itself as the source, so a real server on another node (where that address is local) could
        not answer them otherwise. Pods and off-node clients keep their address."
      - V(all) - all traffic to every virtual service. V(none) - nothing.
    type: str
    choices: [external, all, none]
    default: external
  max_delete_ratio:
    description:
      - Refuse a run that would delete more than this share of the managed virtual services, or all of them.
      - The same share of real servers - of the serving real servers (weight above 0) of the virtual services
        that stay, refuse a run that would take away more than this share, or all of them. Counted per virtual
        service as serving before less serving after, so a real server replaced by a new one is no loss - a
        rollout passes whatever the cluster's size, even one Service with its one pod replaced - while an empty
        or stale EndpointSlice answer, which empties every service at once, is refused. Draining (weight 0)
        counts as taken away. Scaling most of the cluster's pods away in one run (more than half, by default)
        needs a higher value or O(force=true) once.
    type: float
    default: 0.5
  force:
    description:
      - Apply even what O(max_delete_ratio) refuses, including deleting every managed virtual service or taking
        every real server away.
    type: bool
    default: false
  allow_kube_proxy:
    description:
      - Run even though kube-proxy runs on this node in IPVS mode. Two owners of one table undo each other's work;
        use it only for a hand-over you control.
    type: bool
    default: false
  scheduler_hold:
    description:
      - Hold new TCP and SCTP connections while the kernel swaps a live service's scheduler (see O(scheduler)).
        V(false) leaves nftables alone during the swap; connections arriving then may be refused.
    type: bool
    default: true
  drain_timeout:
    description:
      - Seconds after which a drained real server is deleted even with connections left. V(0) waits until it is
        idle, as kube-proxy does.
    type: int
    default: 0
  apply:
    description:
      - V(false) only returns the desired table (RV(services), in the format M(netlb.ipvs.ipvs_virtual_server)
        takes) without reading or touching anything on the node but its addresses.
    type: bool
    default: true
  backend:
    description: How the IPVS table is read and written (see M(netlb.ipvs.ipvs_virtual_server)).
    type: str
    choices: [auto, netlink, ipvsadm]
    default: auto
  state_path:
    description: Where the module keeps what it created (external and load-balancer services, bound addresses).
    type: path
    default: /var/lib/netlb-ipvs/k8s-service-proxy.json
  drain_state_path:
    description: When each draining real server began to drain (shared with M(netlb.ipvs.ipvs_virtual_server)).
    type: path
    default: /var/lib/netlb-ipvs/drain-state.json
  return_services:
    description:
      - Which virtual services to list in RV(services) - V(none), the V(changed) ones, or V(all). With
        O(apply=false) the whole desired table is returned.
    type: str
    choices: [all, changed, none]
    default: none
  return_actions:
    description: List every IPVS action in RV(actions) (RV(summary) counts them anyway).
    type: bool
    default: false
  return_limit:
    description:
      - At most this many entries in each of RV(services), RV(actions) and RV(draining); RV(truncated) then gives
        the full length of each list that was cut, and RV(summary) counts everything. V(0) lists everything;
        a negative value is refused.
      - The same default as M(netlb.ipvs.ipvs_virtual_server)'s, for the same reason.
    type: int
    default: 20
notes:
  - The C(ipvs_node) role prepares a node for this module - ipvsadm, conntrack, nftables, the kernel modules and
    sysctls, and the Python packages.
  - Connection options follow kubernetes.core's names and C(K8S_AUTH_*) environment variables; without any, the
    in-cluster configuration is used in a pod, else C(~/.kube/config).
  - A real run holds the node's run lock (C(/run/netlb-ipvs/reconcile.lock)), shared with the C(ipvs_reconcile)
    role's C(netlb-ipvs reconcile) timer and pull runs, so the two never change the table at once; it waits up to
    300 seconds for a run in progress, then fails naming the holder. Check mode takes no lock.
  - Inside it, the state's lock (O(state_path) with C(.lock)) waits up to 60 seconds, then fails naming its holder;
    C(nft), C(conntrack) and C(modprobe) are killed after 60 seconds (through C(timeout) of coreutils), so a hung
    command never blocks the runs after it.
seealso:
  - module: netlb.ipvs.ipvs_virtual_server
'''

EXAMPLES = r'''
- name: Serve the cluster's Services on this node (credentials from the netlb-ipvs kubeconfig)
  netlb.ipvs.k8s_service_proxy:
    kubeconfig: /etc/netlb-ipvs/kubeconfig
    service_cidrs: [10.96.0.0/12]
    cluster_cidrs: [10.244.0.0/16]

- name: Air-gapped - from manifests copied to the node
  netlb.ipvs.k8s_service_proxy:
    source: manifests
    path: /var/lib/netlb-ipvs/cluster.yaml
    service_cidrs: [10.96.0.0/12]
    node_zone: zone-a

- name: What would this node hold? (no change on the node)
  netlb.ipvs.k8s_service_proxy:
    source: manifests
    path: /srv/review/cluster.json
    apply: false
  register: desired

- name: Dual-stack, NodePorts on the primary addresses only, least-connection by default
  netlb.ipvs.k8s_service_proxy:
    kubeconfig: /etc/netlb-ipvs/kubeconfig
    service_cidrs: [10.96.0.0/12, fd00:10:96::/112]
    cluster_cidrs: [10.244.0.0/16, fd00:10:244::/56]
    node_port_addresses: [primary]
    scheduler: lc

- name: Serve external IPs of the ingress range only (others are warned about, never served)
  netlb.ipvs.k8s_service_proxy:
    kubeconfig: /etc/netlb-ipvs/kubeconfig
    service_cidrs: [10.96.0.0/12]
    external_ips_allowed_cidrs: [198.51.100.0/27]
'''

RETURN = r'''
summary:
  description:
    - Counts - Services seen, skipped by reason, virtual services and real servers wanted; after a sync also the
      IPVS actions by op, addresses bound and removed, and whether the packet rules changed.
  returned: always
  type: dict
  sample:
    services_seen: 120
    skipped: {headless: 4, external_name: 1}
    virtual_services: 230
    real_servers: 610
    actions: {add_server: 2, edit_server: 1}
    addresses: {added: 1, removed: 0}
    packet_rules_changed: false
health_check_node_ports:
  description:
    - C(spec.healthCheckNodePort) of each proxied C(LoadBalancer) Service with C(externalTrafficPolicy Local), by
      C(namespace/name). This module does not serve them (see the description).
  returned: always
  type: dict
  sample: {ingress-nginx/ingress-nginx-controller: 31234}
skipped_services:
  description:
    - The Services not proxied, by reason, as C(namespace/name). (Not C(skipped) - Ansible reads that key as
      "the task was skipped".)
  returned: always
  type: dict
  sample: {headless: [default/db], external_name: [default/mail]}
services:
  description:
    - Virtual services as M(netlb.ipvs.ipvs_virtual_server) takes them - with O(apply=false) the whole desired
      table, otherwise the managed ones after the run chosen by O(return_services).
  returned: always
  type: list
  elements: dict
actions:
  description: The IPVS changes made (see M(netlb.ipvs.ipvs_virtual_server)).
  returned: when O(return_actions=true)
  type: list
  elements: dict
addresses:
  description: Addresses bound on and removed from the dummy interface.
  returned: when O(apply=true)
  type: dict
  sample: {added: [10.96.0.12], removed: []}
draining:
  description: Real servers at weight 0 that a later run will delete.
  returned: when O(apply=true)
  type: list
  elements: dict
truncated:
  description: The full length of each list that O(return_limit) cut.
  returned: when a list was cut
  type: dict
  sample: {actions: 2200}
diff:
  description: The managed IPVS services, the dummy interface's addresses and the nftables table, before and after.
  returned: in diff mode
  type: list
  elements: dict
timings:
  description:
    - Seconds spent reading the cluster (C(read_cluster)) and by each step of the sync - C(node) (kube-proxy check,
      node addresses), C(translate), C(rules_check), C(ipvs_read), C(ipvs_plan), C(ipvs_apply), C(dummy),
      C(rules_apply), C(udp_flows), C(diff) - and the sync's C(total).
  returned: always
  type: dict
problems:
  description: On invalid options, every problem found, each starting with the option's name.
  returned: failure
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils import _gc
from ansible_collections.netlb.ipvs.plugins.module_utils._command import CommandError, Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError, ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ApplyError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import option_table, pipeline
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC, redact_kubeconfig

ARGUMENT_SPEC = dict(AUTH_ARG_SPEC, **option_table.argument_spec())


def run(module):
    """Check the options, read the cluster, sync the node; known errors become fail_json."""
    params = module.params
    runner = Runner(module)
    try:
        if (params['return_limit'] or 0) < 0:
            raise ValidationError('return_limit: %d is out of range 0 or more' % params['return_limit'])
        if not params['apply']:
            result, services = pipeline.translate(params, runner)
            _exit(module, result, services=services)
        result = pipeline.run(params, runner, check_mode=module.check_mode, want_diff=module._diff)
    except ValidationError as exc:
        module.fail_json(msg='invalid parameters: %s' % exc, problems=exc.problems)
    except SourceError as exc:
        module.fail_json(msg='cannot read the cluster, nothing was changed: %s' % exc)
    except ApplyError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.applied), applied=[action.as_dict() for action in exc.applied],
                         failed_action=exc.failed.as_dict() if exc.failed is not None else None)
    except CommandError as exc:
        module.fail_json(msg=str(exc), **exc.as_dict())
    except (IpvsError, FileError) as exc:
        module.fail_json(msg=str(exc))
    listed = result.reconcile.as_dict(diff=False, services=params['return_services'],
                                      actions=params['return_actions'], limit=params['return_limit'] or None)
    _exit(module, result, services=listed['services'], actions=listed.get('actions'),
          draining=listed['draining'], truncated=listed.get('truncated'),
          addresses={'added': list(result.addresses_added), 'removed': list(result.addresses_removed)},
          diff=result.diff if module._diff else None)


def _exit(module, result, **returns):
    for warning in result.warnings:
        module.warn(warning)
    values = dict((name, value) for name, value in returns.items() if value is not None)
    module.exit_json(changed=result.changed, summary=result.summary(),
                     skipped_services=result.translation.skipped, timings=result.timings,
                     health_check_node_ports=result.translation.health_check_node_ports, **values)


def main():
    # One short process holding a whole cluster's objects: no collector passes over them
    # while they are read, translated and reconciled (see _gc).
    with _gc.tuned():
        module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=[('source', 'manifests', ('path',))],
                               supports_check_mode=True)
        redact_kubeconfig(module)
        run(module)


if __name__ == '__main__':
    main()
