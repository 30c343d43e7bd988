#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ipvs_virtual_server
short_description: Manage IPVS virtual services and their real servers, one or a whole table at a time
version_added: 0.1.0
description:
  - Makes the kernel's IPVS table hold the given virtual services and real servers, changing only what
    differs. Reads the table once, plans every change, then applies them in this order, so live traffic
    is disturbed no more than needed - add services, edit services, add real servers, edit real servers,
    delete real servers, delete services.
  - A service whose scheduler, scheduler flags, persistence or one-packet scheduling differ is edited in
    place, never deleted and added again. A real server whose weight, forwarding method, thresholds or
    tunnel settings differ is edited in place. New real servers are added before old ones are removed.
  - A scheduler change on a live service is made hitless for TCP and SCTP. The kernel unbinds the old
    scheduler, waits, and binds the new one, and a new connection arriving in between finds no scheduler
    and is refused (measured in the lab - 1 to 5 of 600 new connections over 20 such changes). So for just
    that moment the module drops (never rejects) the packets that open a connection to those services
    (TCP SYN, SCTP INIT) with a short-lived nftables table, C(inet netlb_ipvs_hold), deleted right after
    (its entries also expire by themselves after 10 seconds); the client's retransmission, about a second
    later, meets the new scheduler (measured in the lab - none of 600 refused over 20 changes, in three
    runs). Existing connections are not touched, and a service with no real servers still refuses at
    once. UDP cannot be held (without conntrack no rule can tell a datagram that opens a flow), so a
    datagram opening a flow during the swap is still refused. Without the C(nft) program, or with
    O(scheduler_hold=false), the change is made unheld. Check mode places nothing. A run that changes a
    scheduler says in a warning whether it was held.
  - "Single form: O(address) and O(port), or O(fwmark), name one service; the task touches that service
    only."
  - Table form (what a playbook at scale should use, never a task per service) - O(services) lists the
    whole table for O(scope), the VIPs and firewall marks this task owns. Services outside O(scope) are
    never touched, so keepalived, kube-proxy or hand-made rules stay exactly as they were. With
    O(exclusive=true), in-scope services that are not listed are deleted.
  - "All input is checked before the kernel is touched; every problem is reported at once with its field
    path, for example C(services[3].real_servers[1].weight: 70000 is out of range 0-65535)."
  - Graceful removal (O(graceful=true), TCP, SCTP and firewall-mark services) - a real server that is no
    longer listed is set to weight 0; the same run then reads the connection counters of just those
    servers again and deletes the ones that are idle (at weight 0 no new connection can reach them), so
    one run converges. A server that still has active or inactive connections is kept at weight 0 and
    deleted by a later run once it is idle, or once O(drain_timeout) seconds have passed since it was
    drained. UDP real servers, servers already at weight 0 without connections, and whole services are
    removed at once. A draining server that is listed again gets its weight back. A run that only waits
    on draining servers reports no change.
  - If the kernel refuses an action midway, the task fails naming the actions applied and the one that
    failed, with the kernel's message; the next run plans from a fresh read and converges.
author:
  - netlb.ipvs developers (@netlb)
attributes:
  check_mode:
    support: full
    description: Reads the kernel table and plans exactly as a real run, writes nothing (not even the drain
      state file), and reports the same actions and diff a real run would. A leaving server idle now is
      reported as drained and deleted, as a real run does unless a connection reaches it before its
      weight is 0.
  diff_mode:
    support: full
    description: Shows the in-scope services before and after, in C(ipvsadm -S -n) format.
  idempotent:
    support: full
    description: A second run with the same options reports no change (draining servers that are still
      waiting do not count as a change; idle ones are deleted by the first run).
options:
  protocol:
    description:
      - Single form - the protocol of the service, V(tcp), V(udp) or V(sctp). Defaults to V(tcp) when O(address)
        is given.
      - Cannot be used with O(fwmark).
      - Every single-form option is checked by the module rather than by Ansible (its type is C(raw)), with the
        same rules and messages as the same key of an O(services) entry, so a wrong type is reported with its
        field path, for example C(real_servers[1].weight).
    type: raw
  address:
    description:
      - Single form - the virtual IP address, IPv4 or IPv6.
      - Requires O(port); cannot be used with O(fwmark).
    type: raw
  port:
    description:
      - Single form - the service port, an integer 1-65535 (text such as V("80") is refused).
      - V(0) means all ports and needs O(persistence_timeout) above 0.
    type: raw
  fwmark:
    description:
      - Single form - a firewall-mark service (1-4294967295) instead of O(protocol), O(address) and O(port).
    type: raw
  family:
    description:
      - Single form - the address family of a firewall-mark service, V(ipv4) or V(ipv6).
      - Defaults to the family of its real servers, or V(ipv4) when it has none.
      - With O(address) it must match the address when given.
    type: raw
  scheduler:
    description:
      - Single form - as O(services[].scheduler).
    type: raw
  scheduler_flags:
    description:
      - Single form - as O(services[].scheduler_flags).
    type: raw
  persistence_timeout:
    description:
      - Single form - as O(services[].persistence_timeout).
    type: raw
  persistence_netmask:
    description:
      - Single form - as O(services[].persistence_netmask).
    type: raw
  persistence_engine:
    description:
      - Single form - as O(services[].persistence_engine).
    type: raw
  one_packet:
    description:
      - Single form - as O(services[].one_packet).
    type: raw
  real_servers:
    description:
      - Single form - the real servers of the service, a list of dictionaries. Omitted means none.
      - With O(purge_real_servers=true), real servers not listed are removed (gracefully, see O(graceful)).
    type: raw
    suboptions: &real_server_options
      address:
        description:
          - Address of the real server, of the same family as the service (the other family only with
            O(real_servers[].forwarding=tunnel)). Required.
        type: str
      port:
        description:
          - Port on the real server. Defaults to the service port (V(0), the packet's own port, for a
            firewall-mark service).
          - With O(real_servers[].forwarding=route) or V(tunnel) the kernel cannot remap ports, so only the
            service port (or nothing) is accepted.
        type: int
      weight:
        description:
          - Weight, 0-65535. V(0) sends no new connections to the server.
        type: int
        default: 1
      forwarding:
        description:
          - How packets reach the server - V(masq) (NAT), V(route) (direct routing) or V(tunnel) (encapsulated, see
            O(real_servers[].tunnel_type)).
        type: str
        choices: [masq, route, tunnel]
        default: masq
      upper_threshold:
        description:
          - Connections above which the server gets no new ones; V(0) means no limit.
        type: int
        default: 0
      lower_threshold:
        description:
          - Connections below which an overloaded server gets new ones again; at most
            O(real_servers[].upper_threshold).
        type: int
        default: 0
      tunnel_type:
        description:
          - With O(real_servers[].forwarding=tunnel) - the encapsulation, V(ipip) (IP-in-IP), V(gue) (UDP, needs
            O(real_servers[].tunnel_port)) or V(gre). Only V(ipip) for other forwarding methods.
        type: str
        choices: [ipip, gue, gre]
        default: ipip
      tunnel_port:
        description:
          - With O(real_servers[].tunnel_type=gue) - the UDP destination port of the tunnel, 1-65535. V(0) (none) for
            every other tunnel type.
        type: int
        default: 0
      tunnel_checksum:
        description:
          - With O(real_servers[].tunnel_type=gue) or V(gre) - tunnel checksums, V(none), V(csum) or V(remcsum)
            (remote checksum offload, V(gue) only).
        type: str
        choices: [none, csum, remcsum]
        default: none
  purge_real_servers:
    description:
      - Remove real servers of a managed service that are not listed.
      - With V(false), unlisted real servers are left as they are.
    type: bool
    default: true
  state:
    description:
      - V(present) creates or updates the service (or O(services)).
      - V(absent) deletes the named service (or every service listed in O(services), whose real servers
        are then ignored). Deleting a service is immediate.
    type: str
    choices: [present, absent]
    default: present
  services:
    description:
      - Table form - every service this task manages, each with the same keys as the single form.
      - A list of dictionaries, or the same list as JSON text, for example
        C("{{ lookup('ansible.builtin.file', 'lb-table.json') }}") or a template's output. Text is handed to
        the node as one string, which for a big table is many times faster than a list of 50,000 entries
        that ansible-core copies and checks one by one (see docs/performance.md).
      - Cannot be combined with the single-form options.
      - An empty list with O(exclusive=true) and a O(scope) would delete every service in scope, and is
        refused unless O(allow_empty=true). So is text that is not valid JSON of a list (an empty lookup
        result, for one), with the parse error.
    type: raw
    suboptions:
      protocol:
        description:
          - Protocol of the service. Defaults to V(tcp) when O(services[].address) is given.
        type: str
        choices: [tcp, udp, sctp]
      address:
        description:
          - Virtual IP address, IPv4 or IPv6. Requires O(services[].port); not with O(services[].fwmark).
        type: str
      port:
        description:
          - Service port, 1-65535; V(0) (all ports) needs O(services[].persistence_timeout).
        type: int
      fwmark:
        description:
          - Firewall mark (1-4294967295), instead of protocol, address and port.
        type: int
      family:
        description:
          - Address family of a firewall-mark service; defaults to that of its real servers, else V(ipv4).
        type: str
        choices: [ipv4, ipv6]
      scheduler:
        description:
          - The scheduler. Defaults to V(wlc), as in C(ipvsadm).
          - Changing it edits the service in place.
        type: str
        choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos]
        default: wlc
      scheduler_flags:
        description:
          - Scheduler flags. V(sh-fallback) and V(sh-port) only with scheduler V(sh); V(mh-fallback) and V(mh-port)
            only with V(mh). Defaults to none.
          - V(flag-1), V(flag-2) and V(flag-3) are the kernel's flag bits by number (C(ipvsadm -b flag-N)), for any
            scheduler; V(flag-1) and V(flag-2) of V(sh) and V(mh) mean their named flags.
        type: list
        elements: str
        choices: [sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3]
        default: []
      persistence_timeout:
        description:
          - Persistence timeout in seconds (0-4294967); V(0) turns persistence off. Defaults to V(0).
        type: int
        default: 0
      persistence_netmask:
        description:
          - Persistence granularity as a prefix length, 1-32 for IPv4 and 1-128 for IPv6.
          - Defaults to the full length (V(32) or V(128)), one client address per entry.
          - Has no effect without O(persistence_timeout).
        type: int
      persistence_engine:
        description:
          - Persistence engine (C(ipvsadm --pe)). V(sip) keeps a SIP call on one real server by its Call-ID; needs
            O(persistence_timeout) and the C(ip_vs_pe_sip) kernel module. Defaults to none.
        type: str
        choices: [sip]
      one_packet:
        description:
          - One-packet scheduling (C(ipvsadm -o)) - every UDP datagram is scheduled on its own, no connection entry is
            kept. The kernel applies it to UDP packets only. Defaults to V(false).
        type: bool
        default: false
      real_servers:
        description:
          - Real servers of the service.
        type: list
        elements: dict
        default: []
        suboptions: *real_server_options
  scope:
    description:
      - Table form - what this task owns. Each entry is a network (V(10.96.0.0/12), V(fd00:10:96::/108)),
        a single address (V(192.0.2.10), meaning /32 or /128), or a firewall-mark range (V(fwmark:10) or
        V(fwmark:10-20), both families).
      - Networks with host bits set are refused, not rounded.
      - Every service in O(services) must be inside the scope.
      - When omitted, the task owns exactly the services it lists, so O(exclusive) deletes nothing.
      - Real servers of an in-scope service are always owned by the task.
    type: list
    elements: str
  exclusive:
    description:
      - Table form - delete in-scope services that are not in O(services).
    type: bool
    default: true
  allow_empty:
    description:
      - Table form - allow an empty O(services) with O(exclusive=true) to delete every service in O(scope).
      - Off by default because an empty list is more often a failed lookup (inventory, API, template) than
        an intent, and acting on it would wipe live IPVS rules.
    type: bool
    default: false
  scheduler_hold:
    description:
      - Hold new TCP and SCTP connections to a live service while the kernel swaps its scheduler (see the
        description), with the short-lived nftables table C(inet netlb_ipvs_hold).
      - V(false) makes no nftables change at all, for a director whose firewall tool owns the whole ruleset;
        connections arriving during a swap may then be refused, and the warning says the change was not held.
    type: bool
    default: true
  graceful:
    description:
      - Drain real servers of TCP, SCTP and firewall-mark services before deleting them (see the description).
      - With V(false), unlisted real servers are deleted at once.
    type: bool
    default: true
  drain_timeout:
    description:
      - Seconds after which a draining real server is deleted even if it still has connections.
      - V(0) waits until it is idle, however long that takes.
    type: int
    default: 0
  drain_state_path:
    description:
      - File keeping when each draining real server was set to weight 0, written atomically.
      - One file can serve every task on a host; each task rewrites only the entries of its own scope.
    type: path
    default: /var/lib/netlb-ipvs/drain-state.json
  backend:
    description:
      - How to talk to the kernel. V(netlink) speaks the IPVS generic-netlink family directly (nothing to
        install); V(ipvsadm) runs C(ipvsadm); V(auto) uses netlink when the kernel answers, else ipvsadm.
    type: str
    choices: [auto, netlink, ipvsadm]
    default: auto
  return_services:
    description:
      - Which services the RV(services) return value lists. V(all) - every service in scope after the run;
        V(changed) - only those this run added or changed; V(none) - none. At most O(return_limit) either
        way.
      - The default, V(changed), suits big tables and timers - a converged run then returns nothing, where
        listing 50,000 real servers costs Ansible tens of seconds to return and the controller to keep.
        RV(summary) counts the table either way.
    type: str
    choices: [all, changed, none]
    default: changed
  return_actions:
    description:
      - Whether RV(actions) lists the kernel changes (at most O(return_limit) of them). RV(summary) counts
        them all by operation either way.
    type: bool
    default: true
  return_limit:
    description:
      - At most this many entries in each of RV(services), RV(actions) and RV(draining), the first by key
        or by the order applied. RV(truncated) then says how long each cut list was, and RV(summary) still
        counts everything. V(0) means no limit.
      - "Why a limit by default - a first load of 5,000 services makes 55,000 changes, and returning them
        one by one costs Ansible more time than the kernel takes to apply them. Even 100 changed services with
        their real servers took Ansible 0.4 s to return on a small node, 20 take 0.1 s (see
        docs/performance.md)."
    type: int
    default: 20
notes:
  - Needs root (C(CAP_NET_ADMIN)) and the C(ip_vs) kernel module; M(netlb.ipvs.ipvs_modules) loads it. The task
    fails with a message saying so when either is missing.
  - The C(services) return value and the diff cover the services in scope only (single form - the named
    service).
  - Connection counters in the C(services) return value are those read after the changes.
  - A real run holds the node's run lock (C(/run/netlb-ipvs/reconcile.lock)), shared with the C(ipvs_reconcile)
    role's C(netlb-ipvs reconcile) timer and pull runs, so the two never change the table at once; it waits up to
    300 seconds for a run in progress, then fails naming the holder. Check mode takes no lock.
  - Every setting the kernel (Debian 12's 6.1, Debian 13's 6.12) reports for a service and a real server is
    an option - scheduler and its flags, persistence (timeout, netmask, engine), one-packet scheduling;
    weight, forwarding, thresholds, tunnel type, port and checksums - so an edit (which replaces the whole
    entry in the kernel) carries every one of them over, and a change to any of them shows in the diff.
    Not configuration, so neither compared nor written - connection and traffic counters. A real server's
    address family is that of its address.
  - Not modelled - a tunnel with both checksum bits set at once, which no C(ipvsadm) command makes (only a
    raw netlink client can); it reads as V(none), so an edit of that real server writes V(none).
  - For big tables, hand O(services) to the task as JSON text, such as
    C("{{ lookup('ansible.builtin.file', 'lb-table.json') }}") - the same table as a list (from
    C(| from_json), C(-e @file) or C(group_vars)) costs ansible-core several times longer to move (see
    docs/performance.md). The defaults of O(return_services) and O(return_limit) already keep what comes
    back small.
seealso:
  - module: netlb.ipvs.ipvs_modules
  - name: ipvsadm(8)
    description: The IPVS administration tool, whose C(-S -n) format the diff uses.
    link: https://man7.org/linux/man-pages/man8/ipvsadm.8.html
'''

EXAMPLES = r'''
- name: One TCP service with two NAT real servers
  netlb.ipvs.ipvs_virtual_server:
    protocol: tcp
    address: 10.96.0.10
    port: 80
    scheduler: rr
    real_servers:
      - {address: 10.244.1.2, port: 8080}
      - {address: 10.244.2.3, port: 8080, weight: 2}

- name: Whole table for the cluster's service range in one call
  netlb.ipvs.ipvs_virtual_server:
    scope: [10.96.0.0/12]
    exclusive: true
    services:
      - protocol: tcp
        address: 10.96.0.1
        port: 443
        scheduler: rr
        real_servers:
          - {address: 192.0.2.11, port: 6443}
          - {address: 192.0.2.12, port: 6443}
      - protocol: udp
        address: 10.96.0.10
        port: 53
        real_servers:
          - {address: 10.244.1.5, port: 53}

- name: Direct routing (the real servers answer clients themselves; the port stays the service port)
  netlb.ipvs.ipvs_virtual_server:
    address: 198.51.100.10
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    real_servers:
      - {address: 198.51.100.21, forwarding: route}
      - {address: 198.51.100.22, forwarding: route, upper_threshold: 5000, lower_threshold: 4000}

- name: Firewall-mark service with persistence (all ports of a client go to one server for 5 minutes)
  netlb.ipvs.ipvs_virtual_server:
    fwmark: 10
    scheduler: sh
    persistence_timeout: 300
    persistence_netmask: 24
    real_servers:
      - {address: 10.0.1.2}
      - {address: 10.0.1.3}

- name: SIP over UDP - one-packet scheduling, calls kept together by the SIP persistence engine, GUE and GRE tunnels
  netlb.ipvs.ipvs_virtual_server:
    protocol: udp
    address: 198.51.100.20
    port: 5060
    persistence_timeout: 120
    persistence_engine: sip
    one_packet: true
    real_servers:
      - {address: 198.51.100.31, forwarding: tunnel, tunnel_type: gue, tunnel_port: 6080, tunnel_checksum: csum}
      - {address: 198.51.100.32, forwarding: tunnel, tunnel_type: gre}

- name: IPv6 service
  netlb.ipvs.ipvs_virtual_server:
    address: "fd00:10:96::10"
    port: 443
    real_servers:
      - {address: "fd00:10:244::2", port: 8443}

- name: Take a server out gracefully - drained now, deleted once idle or after 10 minutes
  netlb.ipvs.ipvs_virtual_server:
    address: 10.96.0.10
    port: 80
    scheduler: rr
    drain_timeout: 600
    real_servers:
      - {address: 10.244.2.3, port: 8080}

- name: Own a range and the firewall marks 100-199, next to kube-proxy's rules
  netlb.ipvs.ipvs_virtual_server:
    scope: [192.0.2.0/24, "fwmark:100-199"]
    services: "{{ lb_services }}"

- name: A big table kept in a JSON file, handed over as text (fast)
  netlb.ipvs.ipvs_virtual_server:
    scope: [10.96.0.0/12]
    services: "{{ lookup('ansible.builtin.file', 'lb-table.json') }}"

- name: Every service and every change listed, however many (slow for big tables)
  netlb.ipvs.ipvs_virtual_server:
    scope: [192.0.2.0/24]
    services: "{{ lb_services }}"
    return_services: all
    return_limit: 0

- name: Delete a service
  netlb.ipvs.ipvs_virtual_server:
    protocol: udp
    address: 10.96.0.10
    port: 53
    state: absent

- name: Really empty the scope (refused without allow_empty)
  netlb.ipvs.ipvs_virtual_server:
    scope: [192.0.2.0/24]
    services: []
    allow_empty: true
'''

RETURN = r'''
actions:
  description:
    - The kernel changes made (in check mode, that a real run would make), in the order applied.
    - C(op) is one of V(add_service), V(edit_service), V(add_server), V(edit_server), V(delete_server),
      V(delete_service); C(server) and C(weight) are given for real-server actions; C(reason) says why
      (V(new), the fields changed such as V(weight,forwarding), V(drain), V(undrain), V(idle),
      V(drain_timeout), V(purge), V(not listed)).
    - At most O(return_limit) of them, the first applied; RV(truncated) says when there were more.
  returned: unless O(return_actions=false)
  type: list
  elements: dict
  sample:
    - {op: add_server, service: tcp 10.96.0.10:80, server: "10.244.3.4:8080", weight: 1, reason: new}
    - {op: edit_server, service: tcp 10.96.0.10:80, server: "10.244.1.2:8080", weight: 0, reason: drain}
services:
  description:
    - The services in scope after the run (single form - the named service, or none once absent), with
      their real servers and connection counters, sorted by protocol, address and port - those O(return_services)
      names, at most O(return_limit) of them.
    - A firewall-mark service has C(fwmark) and C(family) instead of C(protocol), C(address) and C(port).
  returned: always
  type: list
  elements: dict
  sample:
    - protocol: tcp
      address: 10.96.0.10
      port: 80
      scheduler: rr
      scheduler_flags: []
      persistence_timeout: 0
      persistence_netmask: 32
      persistence_engine: null
      one_packet: false
      real_servers:
        - {address: 10.244.1.2, port: 8080, weight: 1, forwarding: masq, upper_threshold: 0,
           lower_threshold: 0, tunnel_type: ipip, tunnel_port: 0, tunnel_checksum: none,
           active_connections: 3, inactive_connections: 12}
summary:
  description:
    - Counts of the in-scope table after the run (C(services), C(real_servers)) and of the actions by C(op).
  returned: always
  type: dict
  sample: {services: 5000, real_servers: 50000, actions: {add_server: 500, edit_server: 500}}
draining:
  description:
    - Real servers at weight 0 that a later run will delete (they still had connections when this run
      looked), with the Unix time their drain began and their connections; at most O(return_limit).
  returned: always
  type: list
  elements: dict
  sample:
    - {service: tcp 10.96.0.10:80, server: "10.244.1.2:8080", since: 1732370000.5, connections: 4}
diff:
  description: The in-scope services before and after, in C(ipvsadm -S -n) format.
  returned: in diff mode
  type: dict
  sample:
    before: "-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n"
    after: "-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n"
truncated:
  description:
    - The lists cut to O(return_limit), each with the number of entries it had.
  returned: when a list was longer than O(return_limit)
  type: dict
  sample: {actions: 55000, services: 5000}
timings:
  description:
    - Seconds spent reading the kernel table, planning, applying, and in total; C(settle) is the re-read
      of drained servers' counters and the deletion of the idle ones, when a run drained any.
  returned: always
  type: dict
  sample: {read: 0.004, plan: 0.001, apply: 0.002, settle: 0.001, total: 0.012}
problems:
  description: On invalid input, every problem found, each starting with its field path.
  returned: failure
  type: list
  elements: str
  sample: ["services[3].real_servers[1].weight: 70000 is out of range 0-65535"]
applied:
  description: When the kernel refused an action midway, the actions applied before it.
  returned: failure
  type: list
  elements: dict
cmd:
  description: When an C(ipvsadm) call failed, the command line.
  returned: failure
  type: str
  sample: /usr/sbin/ipvsadm -S -n
rc:
  description: When an C(ipvsadm) call failed, its exit status.
  returned: failure
  type: int
  sample: 2
stdout:
  description: When an C(ipvsadm) call failed, its standard output.
  returned: failure
  type: str
stderr:
  description: When an C(ipvsadm) call failed, its standard error.
  returned: failure
  type: str
  sample: "Can't initialize ipvs: Protocol not available"
failed_action:
  description: When the kernel refused an action midway, that action.
  returned: failure
  type: dict
'''

import contextlib

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netlb.ipvs.plugins.module_utils import _gc, _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError, ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine, validation, validation_service
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import BACKEND_CHOICES, get_backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DEFAULT_PATH, DrainStore
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.hold import NftHold
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SERVICE_FIELD, ApplyError, BackendError

LOCK_HOLDER = 'ansible netlb.ipvs.ipvs_virtual_server'
FLAGS = list(SERVICE_FIELD['scheduler_flags'].choices)
# The single-form options (one per key of a services[] entry: validation_service.SERVICE_FIELDS,
# from the field table) are raw and carry no defaults: validation checks their types,
# values and real servers with the same rules, messages and field paths as a services[]
# entry (ansible-core would answer a wrong type in its own words, without the index of
# a real server, and turn "80" into 80 where the table form refuses it), and applies the
# defaults; giving any of them with services is then an error rather than ignored.
SINGLE_SPEC = dict((name, dict(type='raw')) for name in validation_service.SERVICE_FIELDS)
# services carries no nested options on purpose: AnsibleModule checking 5,000 services x
# 10 real servers against them took longer than the kernel work (seconds per 1,000 services
# on a small node). validation.parse_request checks every key, type and value of each
# service and real server instead, unknown keys included, applies the defaults documented
# above and names each problem's field path; tests/unit hold those docs, validation and
# the field table (model.SERVICE_SETTINGS, SERVER_SETTINGS) together, which validate-modules
# no longer does for a list without options. It is raw, not a list, so that JSON text
# reaches validation as one string (parsed there in C).
ARGUMENT_SPEC = dict(
    SINGLE_SPEC,
    purge_real_servers=dict(type='bool', default=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    services=dict(type='raw'),
    scope=dict(type='list', elements='str'),
    exclusive=dict(type='bool', default=True),
    allow_empty=dict(type='bool', default=False),
    graceful=dict(type='bool', default=True),
    scheduler_hold=dict(type='bool', default=True),
    drain_timeout=dict(type='int', default=0),
    drain_state_path=dict(type='path', default=DEFAULT_PATH),
    backend=dict(type='str', choices=list(BACKEND_CHOICES), default='auto'),
    return_services=dict(type='str', choices=['all', 'changed', 'none'], default='changed'),
    return_actions=dict(type='bool', default=True),
    return_limit=dict(type='int', default=20),
)
MUTUALLY_EXCLUSIVE = [('services', name) for name in SINGLE_SPEC] + [
    ('fwmark', 'address'), ('fwmark', 'port'), ('fwmark', 'protocol'), ('scope', 'address'), ('scope', 'fwmark'),
]


def run(module):
    """Validate, reconcile, and turn the result (or a known error) into exit/fail."""
    params = module.params
    try:
        if params['return_limit'] < 0:
            raise ValidationError('return_limit: %d is out of range 0 or more' % params['return_limit'])
        request = validation.parse_request(params)
        runner = Runner(module)
        options = engine.ReconcileOptions(
            exclusive=request.exclusive, purge_real_servers=params['purge_real_servers'],
            graceful=params['graceful'], drain_timeout=params['drain_timeout'], allow_empty=request.allow_empty,
            hold=NftHold(runner) if params['scheduler_hold'] else None)
        # Every input check before get_backend opens the kernel: bad input is reported as
        # such on a node without IPVS too.
        engine.check_input(request.services, request.scope, options)
        backend = get_backend(params['backend'], runner=runner, check_mode=module.check_mode)
        # One run at a time on a node: the timer's netlb-ipvs reconcile, a pull, this task.
        with contextlib.nullcontext() if module.check_mode else _run_lock.held(LOCK_HOLDER, wait=_run_lock.MODULE_WAIT):
            result = engine.reconcile(backend, request.services, request.scope, options,
                                      drain_store=DrainStore(params['drain_state_path']))
    except ValidationError as exc:
        module.fail_json(msg='invalid parameters: %s' % exc, problems=exc.problems)
    except ApplyError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.applied), applied=[action.as_dict() for action in exc.applied],
                         failed_action=exc.failed.as_dict() if exc.failed is not None else None, **exc.evidence)
    except BackendError as exc:
        module.fail_json(msg=str(exc), **exc.evidence)
    except IpvsError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.warnings:
        module.warn(warning)
    module.exit_json(**result.as_dict(diff=module._diff, services=params['return_services'],
                                      actions=params['return_actions'], limit=params['return_limit'] or None))


def main():
    # One short process holding a big table (ansible-core copies the parameters twice):
    # no collector passes over it, the arguments' copies included, and a short switch
    # interval for the batches (see _gc). The module decides this, never the library.
    with _gc.tuned():
        module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                               required_one_of=[('services', 'address', 'fwmark')],
                               required_together=[('address', 'port')], supports_check_mode=True)
        run(module)


if __name__ == '__main__':
    main()
