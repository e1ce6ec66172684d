#!/usr/bin/env python3
"""A tiny DNS responder for dnsredir's demo and tests (standard library only).

    dns-responder.py [--udp | --tcp] ADDR[:PORT] ANSWER [LOGFILE] [NAME=IP ...]

Serves UDP and TCP on ADDR:PORT (port 53 by default), or only one of them. Every A query gets one record: the IP
given for its name, else ANSWER, so an answer shows which resolver gave it. Other types get
NOERROR with no records. One log line per query goes to LOGFILE (default: stderr).
"""
import socket
import struct
import sys
import threading
import time


def main():
    args = sys.argv[1:]
    only = args.pop(0)[2:] if args and args[0] in ("--udp", "--tcp") else None
    if len(args) < 2:
        sys.exit(__doc__)
    host, _, port = args[0].partition(":")
    port = int(port or 53)
    default = socket.inet_aton(args[1])
    rest = args[2:]
    log = sys.stderr
    if rest and "=" not in rest[0]:
        log = open(rest.pop(0), "a", buffering=1)
    names = {}
    for pair in rest:
        name, _, ip = pair.partition("=")
        names[name.rstrip(".").lower() + "."] = socket.inet_aton(ip)
    lock = threading.Lock()

    def qname(msg):
        i, labels = 12, []
        while i < len(msg):
            n = msg[i]
            if n == 0:
                return ".".join(labels) + ".", i + 1
            if n & 0xC0:
                return None, None
            labels.append(msg[i + 1 : i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        return None, None

    def respond(msg, peer, proto):
        if len(msg) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        name, end = qname(msg)
        if name is None or end + 4 > len(msg):
            return None
        qtype, qclass = struct.unpack("!HH", msg[end : end + 4])
        rflags = 0x8000 | 0x0400 | (flags & 0x7900) | 0x0080  # QR, AA, opcode and RD copied, RA
        record, count = b"", 0
        if qtype in (1, 255) and qclass == 1:
            address = names.get(name.lower(), default)
            record, count = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + address, 1
        with lock:
            log.write("%.3f %s %s:%d %s type=%d id=%d answers=%d\n" % (time.time(), proto, peer[0], peer[1], name, qtype, qid, count))
        return struct.pack("!HHHHHH", qid, rflags, 1, count, 0, 0) + msg[12 : end + 4] + record

    def serve_udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        while True:
            msg, peer = s.recvfrom(65535)
            answer = respond(msg, peer, "udp")
            if answer:
                s.sendto(answer, peer)

    def read_exact(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def tcp_connection(c, peer):
        try:
            c.settimeout(10)
            while True:
                head = read_exact(c, 2)
                if head is None:
                    return
                msg = read_exact(c, struct.unpack("!H", head)[0])
                if msg is None:
                    return
                answer = respond(msg, peer, "tcp")
                if answer:
                    c.sendall(struct.pack("!H", len(answer)) + answer)
        except OSError:
            pass
        finally:
            c.close()

    def serve_tcp():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(128)
        while True:
            c, peer = s.accept()
            threading.Thread(target=tcp_connection, args=(c, peer), daemon=True).start()

    log.write("listening on %s:%d %s, A -> %s\n" % (host, port, only or "udp+tcp", args[1]))
    if only == "tcp":
        serve_tcp()
    elif only == "udp":
        serve_udp()
    else:
        threading.Thread(target=serve_tcp, daemon=True).start()
        serve_udp()


if __name__ == "__main__":
    main()
