#!/usr/bin/python3
"""The packet-field oracle (issue 18): every field swtrace prints against scapy's dissection.

A corpus of packets (sockets, and crafted frames sent through a raw socket) goes from
namespace A to namespace B over a veth pair while tcpdump captures both ends and swtrace
prints every packet field at net_dev_queue on the sending veth and netif_receive_skb on the
receiving one. Each event is paired with its captured frame (by length, in order, between
two marker frames), and each field is compared with what scapy reads from the frame's
bytes, under the presence rules swtrace documents (grammar/README.md, "Packet fields"):

- A header is present when the skb's protocol says so (IPv4, IPv6), its fixed part lies
  within the packet's data and within what the IP header says is the datagram, and (IPv4)
  its version is 4 and its IHL at least 5 (IPv6: version 6).
- Transport headers (tcp, udp, icmp) are present only in a first fragment (IPv4 offset 0;
  IPv6 without a fragment header or with offset 0), after walking at most MAX_EXTENSIONS
  IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH).
- icmp.* is ICMP over IPv4 and ICMPv6 over IPv6; icmp.id and icmp.seq exist for echo
  requests and replies only.
- `protocol` is skb->protocol in host order, by name where swtrace knows one.
- saddr, daddr, proto, sport and dport are those of whichever IP version the packet has.

Subcommands:
  spec IFA IFB           print the swtrace spec (events for IFA's sends, IFB's receives)
  serve                  in namespace B: a TCP sink on both address families
  send ...               in namespace A: the corpus, between a begin and an end marker
  compare ...            pair events with the two captures and compare every field
  run ...                all of it: tcpdump on both ends, swtrace -c 'send', compare

Only the standard library and scapy (Debian's python3-scapy) are used; run it with
/usr/bin/python3, which is the interpreter that package installs into.
"""

import argparse
import json
import re
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

PORT_UDP = 9100
PORT_TCP = 9101
VXLAN_PORT = 4789
GENEVE_PORT = 6081
MAX_EXTENSIONS = 8
BEGIN_LENGTH = 999
END_LENGTH = 997

FIELDS = [
    "len", "protocol", "gso_type", "gso_size", "gso_segs",
    "ip.tos", "ip.len", "ip.id", "ip.ttl", "ip.proto", "ip.saddr", "ip.daddr",
    "ip6.len", "ip6.nexthdr", "ip6.hoplimit", "ip6.saddr", "ip6.daddr",
    "tcp.sport", "tcp.dport", "tcp.seq", "tcp.ack", "tcp.flags", "tcp.window",
    "udp.sport", "udp.dport", "udp.len",
    "icmp.type", "icmp.code", "icmp.id", "icmp.seq",
    "saddr", "daddr", "proto", "sport", "dport",
    "inner.eth.src", "inner.eth.dst", "inner.eth.type",
    "inner.ip.tos", "inner.ip.len", "inner.ip.id", "inner.ip.ttl", "inner.ip.proto", "inner.ip.saddr", "inner.ip.daddr",
    "inner.ip6.len", "inner.ip6.nexthdr", "inner.ip6.hoplimit", "inner.ip6.saddr", "inner.ip6.daddr",
    "inner.tcp.sport", "inner.tcp.dport", "inner.tcp.seq", "inner.tcp.ack", "inner.tcp.flags", "inner.tcp.window",
    "inner.udp.sport", "inner.udp.dport", "inner.udp.len",
    "inner.icmp.type", "inner.icmp.code", "inner.icmp.id", "inner.icmp.seq",
]

SEND_PROBE = "net_dev_queue"
RECEIVE_PROBE = "netif_receive_skb"

ETHERTYPE_NAMES = {
    0x0800: "ip", 0x0806: "arp", 0x86DD: "ipv6", 0x8100: "vlan", 0x88A8: "qinq",
    0x8847: "mpls", 0x8848: "mpls_mc", 0x8035: "rarp", 0x88CC: "lldp",
}
TCP_FLAG_NAMES = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"]
ECHO_TYPES = {4: {0, 8}, 6: {128, 129}}
# IPv6 extension headers the walk steps over: hop-by-hop, routing, fragment, AH, dest. opts.
IPV6_EXTENSIONS = {0, 43, 44, 51, 60}


def spec(send_if, receive_if):
    values = ", ".join(FIELDS)
    return (
        f'skb:{SEND_PROBE} /ifname == "{send_if}"/ {{ print({values}) }}\n'
        f'skb:{RECEIVE_PROBE} /ifname == "{receive_if}"/ {{ print({values}) }}\n'
    )


# MARK: - Traffic


def serve(args):
    """A TCP sink on both families; stops after --seconds."""
    listeners = []
    for family, address in ((socket.AF_INET, args.v4), (socket.AF_INET6, args.v6)):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, PORT_TCP))
        s.listen(8)
        listeners.append(s)
    for family, address in ((socket.AF_INET, args.v4), (socket.AF_INET6, args.v6)):
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.bind((address, PORT_UDP))
        listeners.append(u)

    def drain(conn):
        with conn:
            conn.settimeout(args.seconds)
            try:
                while conn.recv(1 << 16):
                    pass
            except OSError:
                pass

    def accept(listener):
        listener.settimeout(args.seconds)
        try:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=drain, args=(conn,), daemon=True).start()
        except OSError:
            pass

    for listener in listeners:
        if listener.type == socket.SOCK_STREAM:
            threading.Thread(target=accept, args=(listener,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(args.seconds)


def tagged(tag, size):
    """A payload of `size` bytes that starts with the class tag, for reading pcaps by eye."""
    text = f"ORACLE:{tag}:".encode()
    return (text + b"." * size)[:size]


class Sender:
    def __init__(self, args):
        from scapy.all import Ether  # noqa: F401  (fail early when scapy is missing)

        self.args = args
        self.iface = args.iface
        with open(f"/sys/class/net/{args.iface}/address") as f:
            self.src_mac = f.read().strip()
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.raw.bind((self.iface, 0))
        self.sent = 0

    def pause(self):
        # One packet at a time keeps the capture's order and the events' order the same.
        time.sleep(0.002)

    def frame(self, payload, ethertype=None):
        from scapy.all import Ether, raw

        frame = raw(Ether(src=self.src_mac, dst=self.args.dst_mac) / payload)
        self.send_bytes(frame, ethertype)

    def send_bytes(self, frame, ethertype=None):
        if ethertype is None:
            ethertype = struct.unpack("!H", frame[12:14])[0]
        self.raw.sendto(frame, (self.iface, ethertype))
        self.sent += 1
        self.pause()

    def marker(self, name, length):
        from scapy.all import IP, UDP, Ether, raw

        base = Ether(src=self.src_mac, dst=self.args.dst_mac) / IP(src=self.args.src4, dst=self.args.dst4) / UDP(
            sport=9, dport=9)
        payload = tagged("marker-" + name, length - len(raw(base)))
        self.send_bytes(raw(base / payload))
        time.sleep(0.05)

    # Socket traffic: what the kernel itself builds.

    def udp_sockets(self):
        a = self.args
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for size in (0, 1, 7, 100, 1000, 1472):
            s.sendto(tagged("udp4", size), (a.dst4, PORT_UDP))
            self.pause()
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xB8)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 3)
        s.sendto(tagged("udp4-tos", 60), (a.dst4, PORT_UDP))
        self.pause()
        # Fragmented by the kernel: three and four fragments.
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
        for size in (3000, 4100):
            s.sendto(tagged("udp4-frag", size), (a.dst4, PORT_UDP))
            self.pause()
        # IP options: NOPs and a record-route option (the kernel fills in our address).
        o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        o.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 0]))
        o.sendto(tagged("udp4-options", 50), (a.dst4, PORT_UDP))
        self.pause()
        o.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([7, 11, 4] + [0] * 8 + [0]))
        o.sendto(tagged("udp4-rr", 50), (a.dst4, PORT_UDP))
        self.pause()
        o.close()
        s.close()
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        for size in (0, 100, 1000):
            s6.sendto(tagged("udp6", size), (a.dst6, PORT_UDP))
            self.pause()
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 5)
        s6.sendto(tagged("udp6-tclass", 80), (a.dst6, PORT_UDP))
        self.pause()
        for size in (3000,):
            s6.sendto(tagged("udp6-frag", size), (a.dst6, PORT_UDP))
            self.pause()
        s6.close()

    def tcp_flows(self):
        a = self.args
        for family, address, tag in ((socket.AF_INET, a.dst4, "tcp4"), (socket.AF_INET6, a.dst6, "tcp6")):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.settimeout(10)
            c.connect((address, PORT_TCP))
            self.pause()
            for size in (1, 100, 1000):
                c.sendall(tagged(tag, size))
                time.sleep(0.01)
            # Large writes: GSO packets on the veth, which offloads segmentation.
            c.sendall(tagged(tag + "-gso", 200_000))
            time.sleep(0.05)
            c.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
            c.close()
            time.sleep(0.05)

    def icmp_echo(self):
        a = self.args

        def checksum(data):
            if len(data) % 2:
                data += b"\0"
            total = sum(struct.unpack(f"!{len(data) // 2}H", data))
            while total >> 16:
                total = (total & 0xFFFF) + (total >> 16)
            return ~total & 0xFFFF

        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        for seq, size in ((1, 8), (2, 56), (3, 1000)):
            body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + tagged("icmp4", size)
            body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
            s.sendto(body, (a.dst4, 0))
            self.pause()
        s.close()
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        for seq, size in ((1, 8), (2, 56)):
            # The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
            s6.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4343, seq) + tagged("icmp6", size), (a.dst6, 0))
            self.pause()
        s6.close()

    def multicast_listener(self):
        """Joining a group makes the kernel send its own MLDv2 report (hop-by-hop + ICMPv6 143)."""
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        index = socket.if_nametoindex(self.iface)
        group = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:4242")
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + struct.pack("@I", index))
        time.sleep(0.05)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, group + struct.pack("@I", index))
        time.sleep(0.05)
        s.close()

    # Crafted frames: what sockets do not make, sent as they are through a raw socket.

    def crafted(self):
        from scapy.all import (
            ARP, GRE, ICMP, IP, TCP, UDP, VXLAN, Dot1Q, Dot1AD, Ether, ICMPv6DestUnreach, ICMPv6EchoReply,
            ICMPv6EchoRequest, ICMPv6MLReport2, ICMPv6ND_NS, IPOption_NOP, IPOption_RR, IPv6,
            IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, RouterAlert, raw)
        from scapy.layers.ipsec import AH
        from scapy.contrib.geneve import GENEVE

        a = self.args
        ip4 = IP(src=a.src4, dst=a.dst4)
        ip6 = IPv6(src=a.src6, dst=a.dst6)

        # TCP flag bytes, IPv4 and IPv6, with assorted sequence numbers and windows.
        flag_bytes = [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x11, 0x12, 0x14, 0x18, 0x20, 0x29, 0x3F, 0x40, 0x80,
                      0xC2, 0xFF]
        for index, flags in enumerate(flag_bytes):
            tcp = TCP(sport=40000 + index, dport=PORT_TCP, flags=flags, seq=(0xF0000000 + index * 0x01010101) & 0xFFFFFFFF,
                      ack=0x12345678 ^ index, window=65535 - index * 1000)
            self.frame(ip4 / tcp / tagged("tcp4-flags", index))
            self.frame(ip6 / tcp / tagged("tcp6-flags", index + 1))
        # TCP with options (data offset 15).
        self.frame(ip4 / TCP(sport=1, dport=2, flags="S", options=[("MSS", 1460), ("NOP", None), ("WScale", 7),
                                                                    ("Timestamp", (1, 2)), ("SAckOK", b"")] +
                             [("NOP", None)] * 16) / tagged("tcp4-options", 3))
        # IPv4 options from scapy (the longest: 40 bytes).
        self.frame(IP(src=a.src4, dst=a.dst4, options=[IPOption_RR(routers=["1.2.3.4"] * 9)]) /
                   UDP(sport=5, dport=PORT_UDP) / tagged("ip4-rr40", 12))
        self.frame(IP(src=a.src4, dst=a.dst4, options=[IPOption_NOP()] * 3 + [IPOption_NOP()]) /
                   TCP(sport=6, dport=7, flags="PA") / tagged("ip4-nop", 5))
        # ICMP types other than echo: id and seq do not exist there.
        self.frame(ip4 / ICMP(type=0, id=77, seq=9) / tagged("icmp4-reply", 20))
        self.frame(ip4 / ICMP(type=3, code=3) / raw(IP(src=a.dst4, dst=a.src4) / UDP(sport=1, dport=2)))
        self.frame(ip4 / ICMP(type=11, code=0) / raw(IP(src=a.dst4, dst=a.src4) / UDP(sport=1, dport=2)))
        self.frame(ip4 / ICMP(type=13, id=5, seq=6) / tagged("icmp4-ts", 12))

        # IPv4 fragments: first, later, last; a 21-byte first fragment; a first fragment too short
        # for the UDP header; a later fragment whose payload looks like ports.
        udp_datagram = raw(UDP(sport=1111, dport=2222, len=3008) / tagged("frag4", 3000))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4001, flags="MF", frag=0, proto=17) / Raw(udp_datagram[:1480]))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4001, flags="MF", frag=185, proto=17) / Raw(
            b"\x12\x34\x56\x78\x00\x10\xff\xff" + udp_datagram[1488:2960]))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4001, frag=370, proto=17) / Raw(udp_datagram[2960:]))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4002, flags="MF", frag=0, proto=17) / Raw(b"\x99"))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4003, flags="MF", frag=0, proto=17) / Raw(b"\x01\x02\x03\x04"))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4004, flags="MF", frag=0, proto=6) / Raw(b"\x05" * 12))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4005, frag=3, proto=6) / Raw(b"\x07\x08" * 12))
        self.frame(IP(src=a.src4, dst=a.dst4, id=0x4006, frag=1, proto=1) / Raw(b"\x08\x00" * 8))

        # IPv6 extension headers.
        udp6 = UDP(sport=6001, dport=PORT_UDP)
        self.frame(ip6 / IPv6ExtHdrHopByHop() / udp6 / tagged("ip6-hbh", 20))
        self.frame(ip6 / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / TCP(sport=6002, dport=80, flags="S") /
                   tagged("ip6-hbh-tcp", 4))
        self.frame(ip6 / IPv6ExtHdrDestOpt() / TCP(sport=6003, dport=81, flags="SA") / tagged("ip6-dst", 4))
        self.frame(ip6 / IPv6ExtHdrRouting(addresses=["fd00:200:100::9", "fd00:200:100::8"]) / udp6 /
                   tagged("ip6-rt", 10))
        self.frame(ip6 / IPv6ExtHdrFragment(offset=0, m=1, id=0x6001) / udp6 / tagged("ip6-frag-first", 30))
        self.frame(ip6 / IPv6ExtHdrFragment(offset=185, m=0, id=0x6001, nh=17) / Raw(b"\x43\x21\x00\x35" * 6))
        self.frame(ip6 / IPv6ExtHdrFragment(offset=0, m=1, id=0x6002, nh=17) / Raw(b"\x43\x21"))
        self.frame(ip6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() /
                   IPv6ExtHdrFragment(offset=0, m=0, id=0x6003) / IPv6ExtHdrDestOpt() / udp6 / tagged("ip6-chain", 8))
        self.frame(ip6 / AH(nh=17, payloadlen=4, spi=7, seq=1, icv=b"\0" * 12) / udp6 / tagged("ip6-ah", 8))
        self.frame(ip6 / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(id=0x99, seq=3) / tagged("ip6-hbh-icmp", 8))
        self.frame(ip6 / IPv6ExtHdrHopByHop(options=[RouterAlert()]) /
                   ICMPv6MLReport2() / tagged("ip6-mld", 0))
        chain = ip6
        for _ in range(MAX_EXTENSIONS):
            chain = chain / IPv6ExtHdrDestOpt()
        self.frame(chain / udp6 / tagged("ip6-chain-max", 4))
        self.frame(chain / IPv6ExtHdrDestOpt() / udp6 / tagged("ip6-chain-over", 4))
        # ICMPv6 types.
        self.frame(ip6 / ICMPv6EchoReply(id=0x55, seq=0x66) / tagged("icmp6-reply", 10))
        self.frame(ip6 / ICMPv6DestUnreach(code=4) / raw(IPv6(src=a.dst6, dst=a.src6) / UDP(sport=1, dport=2)))
        self.frame(IPv6(src="::", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=a.dst6))

        # Frames that are not IP: ARP, VLAN tags in the frame, other EtherTypes.
        self.frame(ARP(op=1, hwsrc=self.src_mac, psrc=a.src4, pdst=a.dst4))
        self.frame(ARP(op=2, hwsrc=self.src_mac, psrc=a.src4, hwdst=a.dst_mac, pdst=a.dst4))
        self.frame(Dot1Q(vlan=100) / ip4 / UDP(sport=7001, dport=PORT_UDP) / tagged("vlan", 20))
        self.frame(Dot1AD(vlan=10) / Dot1Q(vlan=20) / ip6 / UDP(sport=7002, dport=PORT_UDP) / tagged("qinq", 20))
        self.send_bytes(raw(Ether(src=self.src_mac, dst=a.dst_mac, type=0x88B5) / tagged("local-exp", 46)))
        self.send_bytes(raw(Ether(src=self.src_mac, dst=a.dst_mac, type=0x88CC) / tagged("lldp", 46)))
        self.send_bytes(raw(Ether(src=self.src_mac, dst=a.dst_mac, type=0x8847) / b"\x00\x06\x41\x40" /
                            raw(ip4 / UDP(sport=8, dport=9))))

        # Truncated and odd packets.
        header4 = raw(ip4 / UDP(sport=3001, dport=3002) / tagged("trunc", 40))
        eth = raw(Ether(src=self.src_mac, dst=a.dst_mac, type=0x0800))
        eth6 = raw(Ether(src=self.src_mac, dst=a.dst_mac, type=0x86DD))
        self.send_bytes(eth + header4[:10])                       # IPv4 header cut at 10 bytes
        self.send_bytes(eth + header4[:19])                       # one byte short
        self.send_bytes(eth + header4[:24])                       # UDP header cut at 4 bytes
        self.send_bytes(eth + header4[:27])                       # UDP header cut at 7 bytes
        self.send_bytes(eth + bytes([0x44]) + header4[1:])        # IHL 4: not a valid header
        self.send_bytes(eth + bytes([0x4F]) + header4[1:30])      # IHL 15 but 30 bytes
        self.send_bytes(eth + bytes([0x65]) + header4[1:])        # version 6 in an IPv4 frame
        short = bytearray(raw(IP(src=a.src4, dst=a.dst4, proto=17, len=24) / Raw(b"\x0b\xb8\x0b\xb9")))
        self.send_bytes(eth + bytes(short) + b"\x0b\xb8\x0b\xb9\x00\x08\x00\x00" * 3)  # UDP bytes past ip.len
        self.send_bytes(eth + raw(IP(src=a.src4, dst=a.dst4, len=1000) / UDP(sport=4, dport=5)))  # ip.len too big
        tcp4 = raw(ip4 / TCP(sport=3003, dport=3004, flags="S"))
        self.send_bytes(eth + tcp4[:20 + 13])                     # TCP cut before the flags
        self.send_bytes(eth + tcp4[:20 + 19])                     # TCP one byte short
        icmp4 = raw(ip4 / ICMP(type=8, id=1, seq=2))
        self.send_bytes(eth + icmp4[:20 + 6])                     # ICMP echo cut inside the id
        header6 = raw(ip6 / UDP(sport=3005, dport=3006) / tagged("trunc6", 20))
        self.send_bytes(eth6 + header6[:30])                      # IPv6 header cut
        self.send_bytes(eth6 + header6[:39])                      # one byte short
        self.send_bytes(eth6 + header6[:44])                      # UDP cut at 4 bytes
        self.send_bytes(eth6 + bytes([0x45]) + header6[1:])       # version 4 in an IPv6 frame
        hbh = raw(ip6 / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / udp6)
        self.send_bytes(eth6 + hbh[:44])                          # hop-by-hop cut
        self.send_bytes(eth6 + hbh[:48 + 4])                      # UDP after hop-by-hop cut
        padded6 = bytearray(raw(IPv6(src=a.src6, dst=a.dst6, nh=17, plen=4) / Raw(b"\x0b\xbd\x0b\xbe")))
        self.send_bytes(eth6 + bytes(padded6) + b"\x00\x08\x00\x00" * 4)  # UDP bytes past the payload length

        # Tunnels: VXLAN and Geneve around IPv4 and IPv6 inner packets.
        inner_eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        self.frame(ip4 / UDP(sport=50001, dport=VXLAN_PORT) / VXLAN(vni=42) / inner_eth /
                   IP(src="192.168.7.1", dst="192.168.7.2", ttl=9) / UDP(sport=1234, dport=5678) / tagged("vxlan4", 8))
        self.frame(ip4 / UDP(sport=50002, dport=VXLAN_PORT) / VXLAN(vni=43) / inner_eth /
                   IPv6(src="fd00:aa::1", dst="fd00:aa::2") / TCP(sport=1000, dport=2000, flags="S") /
                   tagged("vxlan6", 8))
        self.frame(ip6 / UDP(sport=50003, dport=VXLAN_PORT) / VXLAN(vni=44) / inner_eth /
                   IP(src="192.168.8.1", dst="192.168.8.2") / ICMP(type=8, id=3, seq=4) / tagged("vxlan-in-6", 8))
        self.frame(ip4 / UDP(sport=50004, dport=GENEVE_PORT) / GENEVE(vni=45, proto=0x6558) / inner_eth /
                   IP(src="192.168.9.1", dst="192.168.9.2") / TCP(sport=3000, dport=4000, flags="PA") /
                   tagged("geneve4", 8))
        self.frame(ip4 / UDP(sport=50005, dport=GENEVE_PORT) /
                   GENEVE(vni=46, proto=0x6558, options=b"\x01\x02\x03\x04\x00\x00\x00\x00") / inner_eth /
                   IP(src="192.168.9.3", dst="192.168.9.4") / UDP(sport=3333, dport=4444) / tagged("geneve-options", 8))
        self.frame(ip4 / UDP(sport=50006, dport=GENEVE_PORT) / GENEVE(vni=47, proto=0x0800) /
                   IP(src="192.168.9.5", dst="192.168.9.6") / UDP(sport=5, dport=6))  # IP in Geneve: no Ethernet
        self.frame(ip4 / UDP(sport=50007, dport=VXLAN_PORT) / VXLAN(vni=48) / inner_eth /
                   ARP(op=1, psrc="192.168.7.1", pdst="192.168.7.2"))
        self.frame(ip4 / UDP(sport=50008, dport=VXLAN_PORT) / VXLAN(vni=49) / inner_eth /
                   IPv6(src="fd00:aa::3", dst="fd00:aa::4") / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=8) / b"x")
        self.frame(ip4 / UDP(sport=50009, dport=VXLAN_PORT) / VXLAN(vni=50) / raw(inner_eth)[:10])  # inner cut
        self.frame(ip4 / UDP(sport=50010, dport=VXLAN_PORT) / VXLAN(vni=51) /
                   Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800) / raw(IP(src="192.168.7.3", dst="192.168.7.4") / TCP(sport=1, dport=2))[:30])  # inner TCP cut
        self.frame(ip4 / GRE() / IP(src="192.168.10.1", dst="192.168.10.2") / UDP(sport=1, dport=2))

    def vxlan_device(self):
        """The kernel's own VXLAN encapsulation: a vxlan device over the veth, and traffic
        through it (its ARP, ICMP echo, UDP and a TCP handshake attempt)."""
        a = self.args
        commands = [
            ["ip", "link", "add", "swtvx0", "type", "vxlan", "id", "42", "remote", a.dst4, "local", a.src4,
             "dstport", str(VXLAN_PORT), "dev", self.iface],
            ["ip", "link", "set", "swtvx0", "address", "02:00:00:00:42:01"],
            ["ip", "addr", "add", "192.168.42.1/24", "dev", "swtvx0"],
            ["ip", "link", "set", "swtvx0", "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True)
        time.sleep(0.05)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for size in (1, 200):
            # The first waits for ARP, sent through the tunnel too.
            u.sendto(tagged("vxlan-device", size), ("192.168.42.2", PORT_UDP))
            time.sleep(0.3 if size == 1 else 0.01)
        subprocess.run(["ip", "neigh", "replace", "192.168.42.2", "lladdr", "02:00:00:00:42:02", "dev", "swtvx0",
                        "nud", "permanent"], check=True)
        for size in (50, 1000):
            u.sendto(tagged("vxlan-device", size), ("192.168.42.2", PORT_UDP))
            self.pause()
        u.close()
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setblocking(False)
        try:
            t.connect(("192.168.42.2", PORT_TCP))
        except BlockingIOError:
            pass
        time.sleep(0.05)
        t.close()
        subprocess.run(["ip", "link", "del", "swtvx0"], check=True)
        time.sleep(0.05)

    def run(self):
        self.marker("begin", BEGIN_LENGTH)
        self.udp_sockets()
        self.icmp_echo()
        self.tcp_flows()
        self.multicast_listener()
        self.vxlan_device()
        self.crafted()
        self.marker("end", END_LENGTH)
        print(f"sent {self.sent} crafted frames and the socket traffic", flush=True)


def send(args):
    Sender(args).run()


# MARK: - Dissection


def ip4_text(data):
    return socket.inet_ntop(socket.AF_INET, data)


def ip6_text(data):
    return socket.inet_ntop(socket.AF_INET6, data)


def flags_text(value):
    if value == 0:
        return "none"
    return "|".join(name for bit, name in enumerate(TCP_FLAG_NAMES) if value & (1 << bit))


def ethertype_text(value):
    return ETHERTYPE_NAMES.get(value, f"0x{value:04x}")


def dissect_ip(ethertype, network, out, prefix, classes):
    """The IP layer from its EtherType and network header bytes: fills `prefix`ip.* and
    `prefix`ip6.*, and returns (version, upper protocol, (protocol, transport bytes) or None).
    """
    from scapy.all import IP, IPv6

    version = upper = transport = None
    first_fragment = True
    if ethertype == 0x0800:
        classes.append("ip4")
        if len(network) >= 20 and network[0] >> 4 == 4 and network[0] & 0xF >= 5:
            ip = IP(network[:20])  # the fixed header only: options and payload are ours to place
            version = 4
            header_length = (network[0] & 0xF) * 4
            datagram = network[: ip.len] if ip.len else network
            out.update({
                prefix + "ip.tos": ip.tos, prefix + "ip.len": ip.len, prefix + "ip.id": ip.id,
                prefix + "ip.ttl": ip.ttl, prefix + "ip.proto": ip.proto, prefix + "ip.saddr": ip.src,
                prefix + "ip.daddr": ip.dst,
            })
            upper = ip.proto
            if header_length > 20:
                classes.append("options")
            first_fragment = ip.frag == 0
            if ip.frag != 0 or ip.flags.MF:
                classes.append("fragment" if ip.frag == 0 else "later-fragment")
            if header_length <= len(datagram) and first_fragment:
                transport = (ip.proto, datagram[header_length:])
            elif header_length > len(datagram):
                classes.append("truncated")
        else:
            classes.append("truncated" if len(network) < 20 else "invalid")
    elif ethertype == 0x86DD:
        classes.append("ip6")
        if len(network) >= 40 and network[0] >> 4 == 6:
            ip = IPv6(network[:40])
            version = 6
            out.update({
                prefix + "ip6.len": ip.plen, prefix + "ip6.nexthdr": ip.nh, prefix + "ip6.hoplimit": ip.hlim,
                prefix + "ip6.saddr": ip.src, prefix + "ip6.daddr": ip.dst,
            })
            datagram = network[: 40 + ip.plen] if ip.plen else network
            next_header, offset, walked = ip.nh, 40, 0
            while next_header in IPV6_EXTENSIONS:
                classes.append({0: "hbh", 43: "routing", 44: "fragment", 51: "ah", 60: "dstopts"}[next_header])
                if walked == MAX_EXTENSIONS or offset + 8 > len(datagram):
                    classes.append("chain-too-long" if walked == MAX_EXTENSIONS else "truncated")
                    next_header = None
                    break
                following = datagram[offset]
                if next_header == 44:
                    fragment_offset = struct.unpack("!H", datagram[offset + 2: offset + 4])[0] >> 3
                    if fragment_offset != 0:
                        first_fragment = False
                        classes.append("later-fragment")
                    length = 8
                elif next_header == 51:
                    length = (datagram[offset + 1] + 2) * 4
                else:
                    length = (datagram[offset + 1] + 1) * 8
                next_header, offset, walked = following, offset + length, walked + 1
            upper = next_header
            if next_header is not None and first_fragment and offset <= len(datagram):
                transport = (next_header, datagram[offset:])
        else:
            classes.append("truncated" if len(network) < 40 else "invalid")
    else:
        classes.append({0x0806: "arp", 0x8100: "vlan", 0x88A8: "qinq"}.get(ethertype, "other-ethertype"))
    return version, upper, transport


def dissect_transport(version, transport, out, prefix, classes):
    """The tcp, udp and icmp fields of `prefix`; returns the TCP or UDP header's bytes onward."""
    from scapy.all import ICMP, TCP, UDP, ICMPv6Unknown

    if transport is None:
        return None
    number, data = transport
    if number == 6:
        classes.append("tcp")
        if len(data) >= 20:
            tcp = TCP(data[:20])
            out.update({
                prefix + "tcp.sport": tcp.sport, prefix + "tcp.dport": tcp.dport, prefix + "tcp.seq": tcp.seq,
                prefix + "tcp.ack": tcp.ack, prefix + "tcp.flags": flags_text(int(tcp.flags)),
                prefix + "tcp.window": tcp.window,
            })
            return data
        classes.append("truncated")
    elif number == 17:
        classes.append("udp")
        if len(data) >= 8:
            udp = UDP(data[:8])
            out.update({prefix + "udp.sport": udp.sport, prefix + "udp.dport": udp.dport, prefix + "udp.len": udp.len})
            return data
        classes.append("truncated")
    elif (number == 1 and version == 4) or (number == 58 and version == 6):
        classes.append("icmp" if version == 4 else "icmp6")
        if len(data) >= 8:
            message = ICMP(data[:8]) if version == 4 else ICMPv6Unknown(data[:8])
            out[prefix + "icmp.type"] = message.type
            out[prefix + "icmp.code"] = message.code
            if message.type in ECHO_TYPES[version]:
                out[prefix + "icmp.id"], out[prefix + "icmp.seq"] = struct.unpack("!HH", data[4:8])
            if version == 6 and message.type == 143:
                classes.append("mld")
        else:
            classes.append("truncated")
    return None


def expected_fields(frame, mss_by_flow):
    """What each field should be for one captured Ethernet frame, and the frame's class.

    Header positions follow the presence rules in this file's docstring; the values of each
    header come from scapy decoding the bytes at that position.
    """
    from scapy.all import TCP, Ether

    out = {name: None for name in FIELDS}
    ethertype = struct.unpack("!H", frame[12:14])[0]
    out["protocol"] = ethertype_text(ethertype)
    out["gso_type"] = "none"
    classes = []
    version, upper, transport = dissect_ip(ethertype, frame[14:], out, "", classes)
    if version is not None:
        out["saddr"] = out["ip.saddr" if version == 4 else "ip6.saddr"]
        out["daddr"] = out["ip.daddr" if version == 4 else "ip6.daddr"]
        out["proto"] = upper
    data = dissect_transport(version, transport, out, "", classes)
    if data is not None and transport[0] == 6:
        out["sport"], out["dport"] = out["tcp.sport"], out["tcp.dport"]
        payload = len(data) - (data[12] >> 4) * 4
        flow = (version, out["saddr"], out["daddr"], out["tcp.sport"], out["tcp.dport"])
        if int(TCP(data[:20]).flags) & 0x02:
            options = dict((o[0], o[1]) for o in TCP(data).options if isinstance(o, tuple))
            if "MSS" in options:
                mss_by_flow[flow] = options["MSS"]
        if len(frame) > 1514 and flow in mss_by_flow:
            classes.append("gso")
            size = mss_by_flow[flow] - ((data[12] >> 4) * 4 - 20)
            out["gso_type"] = "tcpv4" if version == 4 else "tcpv6"
            out["gso_size"] = size
            out["gso_segs"] = -(-payload // size)
    elif data is not None:
        out["sport"], out["dport"] = out["udp.sport"], out["udp.dport"]
        # A tunnel: VXLAN's 8-byte header, or Geneve's (and its options) carrying Ethernet.
        inner = None
        if out["udp.dport"] == VXLAN_PORT and len(data) >= 16:
            classes.append("vxlan")
            inner = data[16:]
        elif out["udp.dport"] == GENEVE_PORT and len(data) >= 16:
            classes.append("geneve")
            if struct.unpack("!H", data[10:12])[0] == 0x6558:
                inner = data[16 + (data[8] & 0x3F) * 4:]
        if inner is not None and len(inner) >= 14:
            ether = Ether(inner[:14])
            out.update({"inner.eth.src": ether.src, "inner.eth.dst": ether.dst,
                        "inner.eth.type": ethertype_text(ether.type)})
            inner_classes = []
            inner_version, _, inner_transport = dissect_ip(ether.type, inner[14:], out, "inner.", inner_classes)
            dissect_transport(inner_version, inner_transport, out, "inner.", inner_classes)
            classes.append("inner(" + "/".join(inner_classes) + ")")
    return out, "/".join(classes)


def read_pcap(path):
    """(original length, bytes) of each frame, in capture order."""
    from scapy.utils import RawPcapReader

    frames = []
    for data, meta in RawPcapReader(path):
        wirelen = getattr(meta, "wirelen", None) or len(data)
        if wirelen != len(data):
            raise SystemExit(f"{path}: a frame was cut by the snapshot length ({len(data)} of {wirelen})")
        frames.append(data)
    return frames


def window(items, is_begin, is_end, what):
    begins = [i for i, item in enumerate(items) if is_begin(item)]
    ends = [i for i, item in enumerate(items) if is_end(item)]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise SystemExit(f"{what}: expected one begin and one end marker, found {len(begins)} and {len(ends)}")
    return items[begins[0] + 1: ends[0]]


def compare(events_path, send_pcap, receive_pcap):
    """Pairs events with frames per side and compares every field. Returns the summary."""
    events = {SEND_PROBE: [], RECEIVE_PROBE: []}
    malformed = 0
    with open(events_path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                malformed += 1
                continue
            if event.get("probe") in events:
                events[event["probe"]].append(event["values"])
    summary = {"mismatches": 0, "unpaired_events": 0, "unpaired_frames": 0, "paired": 0, "malformed": malformed,
               "by_class": {}, "by_field": {}, "by_kind": {}, "wrong_values": {}, "examples": []}
    for probe, pcap, header in ((SEND_PROBE, send_pcap, 0), (RECEIVE_PROBE, receive_pcap, 14)):
        frames = read_pcap(pcap)
        marker = lambda frame, n: len(frame) == n and b"ORACLE:marker" in frame  # noqa: E731
        frames = window(frames, lambda f: marker(f, BEGIN_LENGTH), lambda f: marker(f, END_LENGTH), pcap)
        side = window(events[probe], lambda e: e.get("len") == BEGIN_LENGTH - header,
                      lambda e: e.get("len") == END_LENGTH - header, probe)
        # Pair by length, in order: the sender sends one packet at a time.
        by_length = {}
        for event in side:
            by_length.setdefault(event.get("len"), []).append(event)
        mss_by_flow = {}
        for frame in frames:
            expected, label = expected_fields(frame, mss_by_flow)
            expected["len"] = len(frame) - header
            if header:
                # gso fields of received packets: whatever the sender's stack left; not on the wire.
                for name in ("gso_type", "gso_size", "gso_segs"):
                    expected[name] = "skip"
            elif expected["gso_size"] is None:
                # Outside GSO packets, gso_size and gso_segs are the stack's business (TCP sets
                # gso_segs to 1, and its GSO type on every packet it builds): nothing on the
                # wire says what they are.
                expected["gso_size"] = expected["gso_segs"] = "skip"
                if "/tcp" in label:
                    expected["gso_type"] = "skip"
            queue = by_length.get(expected["len"])
            label = f"{probe}:{label}"
            stats = summary["by_class"].setdefault(label, {"packets": 0, "mismatches": 0, "unpaired": 0})
            stats["packets"] += 1
            if not queue:
                summary["unpaired_frames"] += 1
                stats["unpaired"] += 1
                continue
            event = queue.pop(0)
            summary["paired"] += 1
            for name in FIELDS:
                want = expected[name]
                if want == "skip":
                    continue
                got = event.get(name)
                if got != want and not (got is not None and want is not None and str(got) == str(want)):
                    # Told apart in the summary: a field printed as 0 although the packet does
                    # not have it, and a value that is wrong.
                    if want is None:
                        zero = got in (0, "0.0.0.0", "::", "none")
                        kind = "absent-printed-as-zero" if zero else "absent-printed-with-a-value"
                    else:
                        kind = "missing" if got is None else "wrong"
                    summary["by_kind"][kind] = summary["by_kind"].get(kind, 0) + 1
                    if kind != "absent-printed-as-zero":
                        key = f"{label} {name}"
                        summary["wrong_values"][key] = summary["wrong_values"].get(key, 0) + 1
                    summary["mismatches"] += 1
                    stats["mismatches"] += 1
                    summary["by_field"][name] = summary["by_field"].get(name, 0) + 1
                    if len(summary["examples"]) < 400 and kind != "absent-printed-as-zero" or len(summary["examples"]) < 100:
                        summary["examples"].append(f"{label} len {expected['len']}: {name} = {got!r}, expected {want!r}")
        summary["unpaired_events"] += sum(len(q) for q in by_length.values())
    return summary


# MARK: - The whole run


def run(args):
    here = os.path.abspath(__file__)
    scratch = args.scratch
    os.makedirs(scratch, exist_ok=True)
    captures = []
    for namespace, iface, direction, name in ((args.ns_a, args.if_a, "out", "send.pcap"),
                                              (args.ns_b, args.if_b, "in", "receive.pcap")):
        path = os.path.join(scratch, name)
        log = open(os.path.join(scratch, name + ".log"), "w+")
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "tcpdump", "-i", iface, "-Q", direction, "-n", "-s", "0", "-U",
             "--immediate-mode", "-w", path], stdout=log, stderr=log)
        captures.append((process, log, path))
    deadline = time.monotonic() + 20
    for process, log, _ in captures:
        while True:
            log.seek(0)
            if "listening on" in log.read():
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("tcpdump did not start: " + open(log.name).read())
            time.sleep(0.05)
    python = sys.executable
    server = (f"ip netns exec {args.ns_b} {python} {here} serve --v4 {args.dst4} --v6 {args.dst6} --seconds 60 "
              f"> {scratch}/serve.log 2>&1 & server=$!; "
              f"for i in $(seq 100); do grep -q ready {scratch}/serve.log && break; sleep 0.1; done; ")
    sender = (f"ip netns exec {args.ns_a} taskset -c 0 {python} {here} send --iface {args.if_a} "
              f"--dst-mac {args.dst_mac} --src4 {args.src4} --dst4 {args.dst4} --src6 {args.src6} --dst6 {args.dst6}")
    events_path = os.path.join(scratch, "events.json")
    with open(events_path, "w") as out, open(os.path.join(scratch, "swtrace.err"), "w") as err:
        status = subprocess.run(
            [args.swtrace, "-f", "json", "-c", server + sender + "; status=$?; kill $server; exit $status",
             "-e", spec(args.if_a, args.if_b)], stdout=out, stderr=err, timeout=240).returncode
    time.sleep(0.2)
    for process, log, _ in captures:
        process.send_signal(signal.SIGINT)
    for process, log, _ in captures:
        process.wait(timeout=20)
        log.seek(0)
        text = log.read()
        if not re.search(r"^0 packets dropped by kernel", text, re.M):
            raise SystemExit("tcpdump dropped packets or did not say: " + text)
    stderr = open(os.path.join(scratch, "swtrace.err")).read()
    lost = None
    for line in stderr.splitlines():
        if line.startswith("Samples:"):
            lost = int(line.split("Lost:")[1].split()[0])
    summary = compare(events_path, captures[0][2], captures[1][2])
    summary["swtrace_status"] = status
    summary["lost"] = lost
    summary["swtrace_stderr"] = stderr[-4000:]
    print(json.dumps(summary, indent=1, sort_keys=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("spec")
    p.add_argument("if_a")
    p.add_argument("if_b")
    p = sub.add_parser("serve")
    p.add_argument("--v4", required=True)
    p.add_argument("--v6", required=True)
    p.add_argument("--seconds", type=float, default=60)
    p = sub.add_parser("send")
    for name in ("--iface", "--dst-mac", "--src4", "--dst4", "--src6", "--dst6"):
        p.add_argument(name, required=True)
    p = sub.add_parser("compare")
    p.add_argument("events")
    p.add_argument("send_pcap")
    p.add_argument("receive_pcap")
    p = sub.add_parser("run")
    for name in ("--swtrace", "--ns-a", "--ns-b", "--if-a", "--if-b", "--dst-mac", "--src4", "--dst4", "--src6",
                 "--dst6", "--scratch"):
        p.add_argument(name, required=True)
    args = parser.parse_args()
    if args.command == "spec":
        print(spec(args.if_a, args.if_b), end="")
    elif args.command == "serve":
        serve(args)
    elif args.command == "send":
        send(args)
    elif args.command == "compare":
        print(json.dumps(compare(args.events, args.send_pcap, args.receive_pcap), indent=1, sort_keys=True))
    elif args.command == "run":
        run(args)


if __name__ == "__main__":
    main()
