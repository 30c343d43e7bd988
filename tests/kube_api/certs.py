# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A throw-away PKI for the stand-in API server: one CA, a server certificate valid for
127.0.0.1, 10.0.2.2 (the lab VM's address of the host's loopback) and localhost, and a
client certificate (for the client_cert/client_key options).

Uses the `cryptography` package when it is importable (it comes with ansible-core),
else the `openssl` command line tool.
"""

import datetime
import ipaddress
import os
import subprocess

SERVER_IPS = ('127.0.0.1', '10.0.2.2')
SERVER_DNS = ('localhost',)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False


class Pki:
    """Paths of the PEM files written into a directory."""

    def __init__(self, directory):
        self.directory = directory
        self.ca_cert = os.path.join(directory, 'ca.crt')
        self.ca_key = os.path.join(directory, 'ca.key')
        self.server_cert = os.path.join(directory, 'server.crt')
        self.server_key = os.path.join(directory, 'server.key')
        self.client_cert = os.path.join(directory, 'client.crt')
        self.client_key = os.path.join(directory, 'client.key')

    def read(self, name):
        with open(getattr(self, name), 'rb') as handle:
            return handle.read()


def make_pki(directory, use_openssl=False):
    """Write a CA, a server and a client certificate into directory; return a Pki."""
    pki = Pki(directory)
    if HAS_CRYPTOGRAPHY and not use_openssl:
        _with_cryptography(pki)
    else:
        _with_openssl(pki)
    return pki


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)


def _with_cryptography(pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    before, after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name('netlb stand-in CA')).issuer_name(name('netlb stand-in CA'))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(before).not_valid_after(after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    _write(pki.ca_key, key_pem(ca_key))
    _write(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM))

    def issue(cert_path, key_path, common_name, usage, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(before).not_valid_after(after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write(key_path, key_pem(key))
        _write(cert_path, builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    sans += [x509.DNSName(dns) for dns in SERVER_DNS]
    issue(pki.server_cert, pki.server_key, 'kube-apiserver', ExtendedKeyUsageOID.SERVER_AUTH, sans)
    issue(pki.client_cert, pki.client_key, 'netlb-test-client', ExtendedKeyUsageOID.CLIENT_AUTH, [])


def _with_openssl(pki):
    def run(*argv, **kwargs):
        subprocess.run(['openssl'] + list(argv), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kwargs)

    ext = os.path.join(pki.directory, 'openssl.ext')
    with open(ext, 'w') as handle:
        handle.write('[server]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n'
                     'subjectAltName=%s\n' % ','.join(['IP:%s' % ip for ip in SERVER_IPS]
                                                      + ['DNS:%s' % dns for dns in SERVER_DNS]))
        handle.write('[client]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n')
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', pki.ca_key, '-out', pki.ca_cert, '-days', '2', '-subj', '/CN=netlb stand-in CA')
    for cert, key, common_name, section in ((pki.server_cert, pki.server_key, 'kube-apiserver', 'server'),
                                            (pki.client_cert, pki.client_key, 'netlb-test-client', 'client')):
        csr = cert + '.csr'
        run('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-keyout', key, '-out', csr, '-subj', '/CN=%s' % common_name)
        run('x509', '-req', '-in', csr, '-CA', pki.ca_cert, '-CAkey', pki.ca_key, '-CAcreateserial',
            '-out', cert, '-days', '2', '-extfile', ext, '-extensions', section)
