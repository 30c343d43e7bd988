# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in API server seen from the lab node: 10.0.2.2 is the host's loopback there,
and the server certificate is valid for it."""

import json

from kube_api import objects
from kube_api.server import VM_HOST


def test_the_lab_node_reaches_the_stand_in_api_server(lab_node, kube_api, tmp_path):
    kube_api.add(objects.service('web', namespace='shop'))
    path = kube_api.write_kubeconfig(str(tmp_path / 'kubeconfig'), host=VM_HOST)
    with open(path) as handle:
        config = json.load(handle)
    assert config['clusters'][0]['cluster']['server'] == 'https://%s:%d' % (VM_HOST, kube_api.port)
    lab_node.run('install -d -m 700 /root/.kube && umask 077 && cat > /root/.kube/netlb-stand-in.conf',
                 input=json.dumps(config))
    lab_node.run('cat > /tmp/netlb-stand-in-ca.crt', input=kube_api.pki.read('ca_cert').decode())
    # curl verifies the certificate against 10.0.2.2 (no -k): the SAN must hold it.
    out = lab_node.run(['curl', '-sS', '--fail', '--max-time', '20', '--cacert', '/tmp/netlb-stand-in-ca.crt',
                        '-H', 'Authorization: Bearer %s' % kube_api.token,
                        'https://%s:%d/api/v1/namespaces/shop/services' % (VM_HOST, kube_api.port)]).stdout
    assert [item['metadata']['name'] for item in json.loads(out)['items']] == ['web']
    request = kube_api.requests_to('/api/v1/namespaces/shop/services')[0]
    assert request.headers['user-agent'].startswith('curl/')
