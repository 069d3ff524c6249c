#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tls12_rsa_cke.py: a raw TLS 1.2 client that sends a chosen ClientKeyExchange.

    tls12_rsa_cke.py [--timeout S] [--no-sigalgs] HOST PORT CIPHERTEXT

CIPHERTEXT is hex or @FILE: the bytes of the RSA-encrypted premaster, sent
as they are (no padding to the modulus length, no check). The client offers
TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_128_CBC_SHA (no
extended master secret, no encrypt-then-MAC), reads the server's flight up
to ServerHelloDone, sends ClientKeyExchange, ChangeCipherSpec and a garbage
encrypted Finished record (40 bytes for GCM: nonce, Finished, tag; 64 for
CBC: IV and three blocks), then prints what the server answered, one line:

    alert fatal bad_record_mac    an alert (level, description)
    closed                        the server closed without an alert
    timeout                       no answer within the timeout

--no-sigalgs leaves the signature_algorithms extension out, as TLS 1.2
clients may: the server then assumes SHA-1 (RFC 5246 7.4.1.4.1) and libssl
checks that its key could sign rsa_pkcs1_sha1, even for RSA key exchange.

An alert before ServerHelloDone is printed the same way, prefixed with
"early ". The garbage Finished never verifies, so a server that accepted
the ClientKeyExchange answers bad_record_mac whatever the premaster was:
what a TLS client can observe is only that alert, or another one sent
earlier. The suite chosen is printed on standard error. Exit status 0 when
one of those lines was printed, 1 on a protocol surprise, 2 on usage.
Standard library only.
"""
import os
import socket
import struct
import sys

SUITES = {0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA"}
FINISHED_RECORD_LEN = {0x009C: 40, 0x002F: 64}

ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
    100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension",
    112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol",
}

CT_CCS, CT_ALERT, CT_HANDSHAKE = 20, 21, 22
HS_SERVER_HELLO, HS_SERVER_HELLO_DONE, HS_CLIENT_KEY_EXCHANGE = 2, 14, 16


class Surprise(Exception):
    """The server did something this client does not expect."""


class Alert(Exception):
    def __init__(self, level, desc):
        super().__init__()
        self.level, self.desc = level, desc

    def __str__(self):
        level = {1: "warning", 2: "fatal"}.get(self.level, "level%d" % self.level)
        return "alert %s %s" % (level, ALERTS.get(self.desc, "alert%d" % self.desc))


class Closed(Exception):
    pass


def record(ctype, body):
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def handshake(htype, body):
    return struct.pack("!B", htype) + len(body).to_bytes(3, "big") + body


def ext(etype, body):
    return struct.pack("!HH", etype, len(body)) + body


def client_hello(with_sigalgs=True):
    sigalgs = [0x0401, 0x0501, 0x0601, 0x0804, 0x0805, 0x0806, 0x0201]
    sa = struct.pack("!H", 2 * len(sigalgs)) + b"".join(struct.pack("!H", s) for s in sigalgs)
    exts = ext(0xFF01, b"\x00")  # renegotiation_info
    if with_sigalgs:
        exts = ext(0x000D, sa) + exts
    suites = b"".join(struct.pack("!H", s) for s in SUITES)
    body = (struct.pack("!H", 0x0303) + os.urandom(32) + b"\x00"
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    return handshake(1, body)


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed()
            self.buf += chunk

    def record(self):
        self._need(5)
        ctype, _version, length = struct.unpack("!BHH", self.buf[:5])
        self._need(5 + length)
        body, self.buf = self.buf[5:5 + length], self.buf[5 + length:]
        if ctype == CT_ALERT and len(body) >= 2:
            raise Alert(body[0], body[1])
        return ctype, body


def server_flight(reader):
    """Handshake messages up to ServerHelloDone; returns the chosen suite."""
    hs, suite = b"", None
    while True:
        ctype, body = reader.record()
        if ctype != CT_HANDSHAKE:
            raise Surprise("record type %d before ServerHelloDone" % ctype)
        hs += body
        while len(hs) >= 4:
            length = int.from_bytes(hs[1:4], "big")
            if len(hs) < 4 + length:
                break
            htype, msg, hs = hs[0], hs[4:4 + length], hs[4 + length:]
            if htype == HS_SERVER_HELLO:
                if len(msg) < 35 or len(msg) < 35 + msg[34] + 2:
                    raise Surprise("short ServerHello")
                version = struct.unpack("!H", msg[:2])[0]
                if version != 0x0303:
                    raise Surprise("server chose version 0x%04x" % version)
                suite = struct.unpack("!H", msg[35 + msg[34]:37 + msg[34]])[0]
            elif htype == HS_SERVER_HELLO_DONE:
                if suite not in SUITES:
                    raise Surprise("no ServerHello with an offered suite")
                return suite


def parse_ciphertext(arg):
    if arg.startswith("@"):
        with open(arg[1:], "rb") as f:
            return f.read()
    return bytes.fromhex(arg)


def main(argv):
    timeout = 10.0
    args = list(argv[1:])
    with_sigalgs = True
    while args and args[0].startswith("--"):
        if args[0] == "--timeout" and len(args) >= 2:
            timeout = float(args[1])
            args = args[2:]
        elif args[0] == "--no-sigalgs":
            with_sigalgs = False
            args = args[1:]
        else:
            break
    if len(args) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    host, port, ct = args[0], int(args[1]), parse_ciphertext(args[2])
    sock = socket.create_connection((host, port), timeout=timeout)
    reader = Reader(sock)
    try:
        sock.sendall(record(CT_HANDSHAKE, client_hello(with_sigalgs)))
        try:
            suite = server_flight(reader)
        except Alert as a:
            print("early %s" % a)
            return 0
        sys.stderr.write("suite %s\n" % SUITES[suite])
        cke = handshake(HS_CLIENT_KEY_EXCHANGE, struct.pack("!H", len(ct)) + ct)
        finished = os.urandom(FINISHED_RECORD_LEN[suite])
        sock.sendall(record(CT_HANDSHAKE, cke) + record(CT_CCS, b"\x01")
                     + record(CT_HANDSHAKE, finished))
        while True:
            ctype, _ = reader.record()
            sys.stderr.write("record type %d after Finished\n" % ctype)
    except Alert as a:
        print(a)
    except Closed:
        print("closed")
    except ConnectionResetError:
        print("closed")
    except socket.timeout:
        print("timeout")
    except Surprise as s:
        sys.stderr.write("tls12_rsa_cke: %s\n" % s)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
