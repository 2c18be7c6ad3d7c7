/// Realistic specs used by the formatter round-trip and the mutation test.
enum Examples {
  static let all: [String] = [
    // The mission one-liner.
    "skb:* /mark==0xdead/ < print(len, gso_type) >",

    """
    #!/usr/bin/env swtrace
    // Count packets per device and protocol.
    // Prints the table every second.

    skb:net_dev_* {
      @packets[dev, proto] = count()
      @bytes[dev] = sum(len)
    }

    interval:1s < print(@packets) >

    END {
      clear(@packets)
    }
    """,

    """
    /* GSO segmentation on the transmit path */
    tracepoint:net:net_dev_start_xmit /gso_segs > 1 && proto == 6/ {
      $ratio = (gso_size * 100) / len
      printf("%s seg=%d size=%d ratio=%d%%\\n", ifname, gso_segs, gso_size, $ratio)
      @ratio = hist($ratio)
    }
    """,

    """
    kprobe:tcp_sendmsg, kprobe:tcp_recvmsg /pid != 0/ < @calls[probe, comm] = count() >
    kretprobe:tcp_sendmsg < @ret = stats(retval) >
    """,

    """
    skb:* /ip.saddr in 10.0.0.0/8 || ip6.saddr in fd00::/8/ {
      if (tcp.flags & 0x02) {
        printf("SYN %s:%d -> %s:%d\\n", saddr, sport, daddr, dport)
      } else if (tcp.flags & 0x01) {
        printf("FIN\\n")
      } else {
        @other[tcp.flags] = count()
      }
    }
    """,

    """
    fentry:ip_rcv /skb->len >= 1500/ {
      $hdr = (struct sk_buff *)skb
      print($hdr->len, (u32)skb->mark, ~mark, -ts)
      @sizes = lhist(len, 0, 9000, 500)
    }
    fexit:ip_rcv < track() >
    """,

    """
    skb:*_xmit* < if ((len > 1000)) < print(len) > else < print(mark) > >
    skb:dev_[qh]* <
      $big = (len > 9000)
      @[ifindex] = max(len)
      @ = count()
    >
    """,

    """
    BEGIN { printf("tracing... hit Ctrl-C\\n") }
    skb:* /ip.daddr == 10.0.0.10 && udp.dport == 53/ {
      printf("dns query from %s (ttl %d, tos %d)\\n", ip.saddr, ip.ttl, ip.tos); track()
      delete(@pending[tid]); exit()
    }
    interval:500ms { print(@a, @b); clear(@a) }
    """,

    """
    skb:* /(len / 2) > 100 && !(mark == 0) && netns != 0/ {
      @[cpu, 0b1010_1010, 1_000_000] = avg(len % 64 << 2 >> 1)
      @x = min(icmp.type | icmp.code ^ icmp.id)
      $s = "tab\\there \\"quoted\\" \\x41"
      $v6 = 2001:db8:0:0:0:0:0:1
      $any = ::
      $mapped = ::ffff:10.0.0.1
    }
    """,
  ]
}
