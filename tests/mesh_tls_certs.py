"""Throwaway certificates for the mutual-TLS MESH sandbox
(tests/mesh_sandbox.sh start-tls): a CA, a server certificate for 127.0.0.1
and a client certificate (as live MESH issues one per mailbox), all signed
by that CA. EC P-256 keys, PKCS#8 PEM, valid for a day.

Usage (with target/mesh-venv's python, which has `cryptography` through
mesh-sandbox): mesh_tls_certs.py DIR
Writes DIR/ca.pem, DIR/server.pem, DIR/server.key, DIR/client.pem,
DIR/client.key, and DIR/other-ca.pem (a CA that signed nothing here).
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject, subject_key, issuer, issuer_key, ca, extensions=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write(directory, filename, data):
    with open(os.path.join(directory, filename), "wb") as f:
        f.write(data)


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def main(directory):
    os.makedirs(directory, exist_ok=True)
    ca_key = key()
    ca = certificate(name("cpis test MESH CA"), ca_key, name("cpis test MESH CA"), ca_key, ca=True)
    server_key = key()
    server = certificate(
        name("127.0.0.1"), server_key, ca.subject, ca_key, ca=False,
        extensions=[
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    client_key = key()
    client = certificate(
        name("X26ABC1"), client_key, ca.subject, ca_key, ca=False,
        extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])],
    )
    other_key = key()
    other = certificate(name("cpis other CA"), other_key, name("cpis other CA"), other_key, ca=True)
    write(directory, "ca.pem", pem_cert(ca))
    write(directory, "server.pem", pem_cert(server))
    write(directory, "server.key", pem_key(server_key))
    write(directory, "client.pem", pem_cert(client))
    write(directory, "client.key", pem_key(client_key))
    write(directory, "other-ca.pem", pem_cert(other))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
