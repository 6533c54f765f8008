# The lab's traffic tool (python3, standard library only), run inside a namespace with
# `ip netns exec NS python3 -c <this file> MODE JSON`. Every mode prints one JSON document.
#
#   serve   {"tcp": [ports], "udp": [ports], "join": [[group, ifname], ...]}
#           TCP on [::] (dual-stack): every connection gets "peer=IP me=IP\n", then is closed.
#           UDP on 0.0.0.0 and [::] (separate sockets, so a v4 multicast group can be joined):
#           every datagram is answered with "reply peer=IP me=IP". Prints {"ready": true} once
#           bound, then serves until killed.
#   tcp     [{"addr", "port", "timeout"}, ...]: connects to all at once; per target
#           {"ok", "reply", "ms", "error"}.
#   udp     {"wait": s, "probes": [{"addr", "port", "payload" (hex), "ifname"?, "sport"?}]}:
#           sends every probe from its own socket, then collects what comes back for `wait`
#           seconds; per probe {"replies": [[from, text, length], ...], "error"}.
#   connect {"addr", "port", "seconds", "interval", "timeout"}: opens one TCP connection after
#           another for `seconds`; per attempt [ok, ms].
import json
import select
import socket
import sys
import threading
import time

# Linux's value; python before 3.12 does not name it.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def unmap(ip):
    return ip[7:] if ip.startswith("::ffff:") else ip


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def sockaddr(addr, port, ifname):
    if ":" in addr:
        scope = socket.if_nametoindex(ifname) if ifname else 0
        return (addr, port, 0, scope)
    return (addr, port)


def serve(spec):
    tcp, udp = [], []
    for port in spec.get("tcp", []):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        s.listen(512)
        tcp.append(s)
    for port in spec.get("udp", []):
        for fam, any_ in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            s.bind((any_, port))
            for group, ifname in spec.get("join", []):
                index = socket.if_nametoindex(ifname)
                if fam == socket.AF_INET and ":" not in group:
                    mreqn = socket.inet_aton(group) + bytes(4) + index.to_bytes(4, sys.byteorder)
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                elif fam == socket.AF_INET6 and ":" in group:
                    mreq = socket.inet_pton(socket.AF_INET6, group) + index.to_bytes(4, sys.byteorder)
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            udp.append(s)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        readable, _, _ = select.select(tcp + udp, [], [])
        for s in readable:
            if s.type == socket.SOCK_STREAM:
                try:
                    c, peer = s.accept()
                    me = c.getsockname()[0]
                    c.sendall(f"peer={unmap(peer[0])} me={unmap(me)}\n".encode())
                    c.close()
                except OSError:
                    pass
                continue
            data, anc, _, peer = s.recvmsg(2048, 256)
            # The address the datagram was sent to (a multicast group, or one of ours).
            me = "?"
            for level, kind, value in anc:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                    me = socket.inet_ntop(socket.AF_INET6, value[:16])
                elif level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    me = socket.inet_ntop(socket.AF_INET, value[8:12])
            try:
                s.sendto(f"reply peer={peer[0]} me={me}".encode(), peer)
            except OSError:
                pass


def tcp(targets):
    out = [None] * len(targets)

    def one(i, t):
        start = time.monotonic()
        try:
            with socket.create_connection((t["addr"], t["port"]), timeout=t["timeout"]) as c:
                c.settimeout(t["timeout"])
                reply = c.makefile().readline().strip()
            out[i] = {"ok": True, "reply": reply, "ms": (time.monotonic() - start) * 1e3}
        except OSError as e:
            out[i] = {"ok": False, "error": str(e) or type(e).__name__,
                      "ms": (time.monotonic() - start) * 1e3}

    threads = [threading.Thread(target=one, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def udp(spec):
    socks, out = [], []
    for p in spec["probes"]:
        result = {"replies": []}
        out.append(result)
        try:
            s = socket.socket(family(p["addr"]), socket.SOCK_DGRAM)
            if p.get("ifname"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, p["ifname"].encode())
            if p.get("sport"):
                s.bind(("::" if ":" in p["addr"] else "0.0.0.0", p["sport"]))
            s.sendto(bytes.fromhex(p["payload"]), sockaddr(p["addr"], p["port"], p.get("ifname")))
            socks.append((s, result))
        except OSError as e:
            result["error"] = str(e)
    deadline = time.monotonic() + spec["wait"]
    while socks and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([s for s, _ in socks], [], [], left)
        for s, result in socks:
            if s in readable:
                try:
                    data, peer = s.recvfrom(4096)
                    text = data[:120].decode("ascii", "replace")
                    result["replies"].append([peer[0], text, len(data)])
                except OSError as e:
                    result["error"] = str(e)
    return out


def connect(spec):
    attempts = []
    end = time.monotonic() + spec["seconds"]
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            socket.create_connection((spec["addr"], spec["port"]), timeout=spec["timeout"]).close()
            ok = True
        except OSError:
            ok = False
        attempts.append([ok, (time.monotonic() - start) * 1e3])
        time.sleep(spec["interval"])
    return attempts


mode, arg = sys.argv[1], json.loads(sys.argv[2])
if mode == "serve":
    serve(arg)
else:
    print(json.dumps({"tcp": tcp, "udp": udp, "connect": connect}[mode](arg)))
