#!/usr/bin/env python3
"""btf-stats.py -- summary numbers of a raw kernel BTF blob.

Usage:
    btf-stats.py [--json] FILE.btf[.xz]

Runs `bpftool btf dump file FILE format raw` and parses its text output
(an .xz file is decompressed to a temporary file first).  Prints

  * the number of types, and per BTF kind
  * the number of `btf_trace_*` typedefs (one per raw tracepoint)
  * the number of FUNC entries, and of those whose FUNC_PROTO has a
    `struct sk_buff *` parameter (in any position / as the first one).
    const/volatile/restrict/type_tag modifiers and typedefs are looked
    through on both sides of the pointer.
  * byte offsets of sk_buff.len, .mark, .head, .end, .data, .protocol, .dev,
    skb_shared_info.gso_type and a few sock / net_device members (members
    of anonymous structs/unions are found through them), plus the sizes of
    those structs
  * the C prototypes of some functions and raw tracepoints (btf_trace_*)
    a packet tracer attaches to, or their absence

The BTF class and helpers are also imported by tracepoints.py.
Standard library only.
"""

import json
import lzma
import os
import re
import subprocess
import sys
import tempfile

TYPE_RE = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
MEMBER_RE = re.compile(r"^\t'([^']*)'(.*)$")
DATASEC_VAR_RE = re.compile(r"^\ttype_id=(\d+) offset=(\d+) size=(\d+)")
KV_RE = re.compile(r"(\w+)=(\S+)")

MODIFIERS = {"CONST", "VOLATILE", "RESTRICT", "TYPE_TAG", "TYPEDEF"}


def _kv(text):
    return {k: v for k, v in KV_RE.findall(text)}


class BTFType:
    __slots__ = ("id", "kind", "name", "attrs", "members")

    def __init__(self, tid, kind, name, attrs):
        self.id = tid
        self.kind = kind
        self.name = "" if name == "(anon)" else name
        self.attrs = attrs
        self.members = []  # list of (name, attrs-dict)

    def int_attr(self, key):
        return int(self.attrs[key])


class BTF:
    """Types from `bpftool btf dump file X format raw`, indexed by id."""

    def __init__(self, raw_text):
        self.types = {0: BTFType(0, "VOID", "", {})}
        self.by_name = {}
        cur = None
        for line in raw_text.splitlines():
            if not line:
                continue
            m = TYPE_RE.match(line)
            if m:
                tid, kind, name, rest = m.groups()
                cur = BTFType(int(tid), kind, name, _kv(rest))
                self.types[cur.id] = cur
                if cur.name:
                    self.by_name.setdefault((kind, cur.name), []).append(cur)
                continue
            if cur is None or not line.startswith("\t"):
                raise ValueError(f"unexpected line in bpftool output: {line!r}")
            m = MEMBER_RE.match(line)
            if m:
                mname, rest = m.groups()
                cur.members.append(("" if mname == "(anon)" else mname, _kv(rest)))
                continue
            m = DATASEC_VAR_RE.match(line)
            if m:
                cur.members.append(("", {"type_id": m.group(1), "offset": m.group(2),
                                         "size": m.group(3)}))
                continue
            raise ValueError(f"unexpected member line in bpftool output: {line!r}")

    @classmethod
    def from_file(cls, path):
        tmp = None
        try:
            if path.endswith(".xz"):
                fd, tmp = tempfile.mkstemp(suffix=".btf")
                with os.fdopen(fd, "wb") as f, lzma.open(path) as src:
                    f.write(src.read())
                path = tmp
            out = subprocess.run(["bpftool", "btf", "dump", "file", path, "format", "raw"],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            if tmp:
                os.unlink(tmp)
        return cls(out)

    # -- lookups ---------------------------------------------------------
    def find(self, kind, name):
        """The (first, and normally only) type of that kind and name."""
        hits = self.by_name.get((kind, name))
        if not hits:
            raise KeyError(f"no {kind} '{name}' in BTF")
        # Prefer a complete definition over a forward declaration.
        return max(hits, key=lambda t: len(t.members))

    def strip(self, tid, also_typedefs=True):
        """Follow modifiers (and typedefs) down to the underlying type."""
        t = self.types[tid]
        while t.kind in MODIFIERS and (also_typedefs or t.kind != "TYPEDEF"):
            t = self.types[t.int_attr("type_id")]
        return t

    def is_ptr_to_struct(self, tid, struct_name):
        t = self.strip(tid)
        if t.kind != "PTR":
            return False
        target = self.strip(t.int_attr("type_id"))
        return target.kind in ("STRUCT", "FWD") and target.name == struct_name

    def member(self, struct_name, path):
        """Bit offset, bitfield size (or None) and type of a member.

        path is dotted ("a.b"); members of anonymous structs/unions are
        searched through, as C does.
        """
        t = self.find("STRUCT", struct_name)
        bits = 0
        bf = None
        for part in path.split("."):
            found = self._find_member(t, part)
            if found is None:
                raise KeyError(f"{struct_name} has no member {path}")
            off, bf, mtype = found
            bits += off
            t = mtype
        return bits, bf, t

    def _find_member(self, t, name):
        t = self.strip(t.id)
        if t.kind not in ("STRUCT", "UNION"):
            return None
        for mname, attrs in t.members:
            off = int(attrs.get("bits_offset", 0))
            bf = int(attrs["bitfield_size"]) if "bitfield_size" in attrs else None
            mtype = self.types[int(attrs["type_id"])]
            if mname == name:
                return off, bf, mtype
            if mname == "":
                sub = self._find_member(mtype, name)
                if sub is not None:
                    return off + sub[0], sub[1], sub[2]
        return None

    def member_offset(self, struct_name, path):
        """Byte offset of a (non-bitfield, byte aligned) member."""
        bits, bf, _ = self.member(struct_name, path)
        if bf is not None or bits % 8:
            raise ValueError(f"{struct_name}.{path} is a bitfield at bit {bits}")
        return bits // 8

    def enum_value(self, name):
        for t in self.types.values():
            if t.kind in ("ENUM", "ENUM64"):
                for mname, attrs in t.members:
                    if mname == name:
                        return int(attrs["val"].rstrip("ULL"))
        raise KeyError(f"no enumerator {name} in BTF")

    # -- C rendering (for signatures) -----------------------------------
    def type_str(self, tid):
        """A C spelling of a type, good enough for parameter lists."""
        t = self.types[tid]
        if t.kind == "VOID":
            return "void"
        if t.kind in ("INT", "TYPEDEF", "FLOAT"):
            return t.name
        if t.kind in ("STRUCT", "UNION", "ENUM", "ENUM64", "FWD"):
            tag = {"STRUCT": "struct", "UNION": "union", "ENUM": "enum",
                   "ENUM64": "enum"}.get(t.kind)
            if t.kind == "FWD":
                tag = "union" if t.attrs.get("fwd_kind") == "union" else "struct"
            return f"{tag} {t.name or '(anon)'}"
        if t.kind in ("CONST", "VOLATILE", "RESTRICT"):
            inner = self.type_str(t.int_attr("type_id"))
            return f"{t.kind.lower()} {inner}"
        if t.kind == "TYPE_TAG":
            return self.type_str(t.int_attr("type_id"))
        if t.kind == "PTR":
            target = self.types[t.int_attr("type_id")]
            if target.kind == "FUNC_PROTO":
                return "void (*)(...)"
            inner = self.type_str(target.id)
            return inner + ("*" if inner.endswith("*") else " *")
        if t.kind == "ARRAY":
            return self.type_str(t.int_attr("type_id")) + f"[{t.attrs.get('nr_elems', '')}]"
        return t.kind.lower()

    def proto_str(self, proto_id, name):
        proto = self.types[proto_id]
        params = []
        for pname, attrs in proto.members:
            ptid = int(attrs["type_id"])
            if ptid == 0:
                params.append("...")
                continue
            ts = self.type_str(ptid)
            params.append(f"{ts}{'' if ts.endswith('*') else ' '}{pname}".rstrip())
        ret = self.type_str(proto.int_attr("ret_type_id"))
        sep = "" if ret.endswith("*") else " "
        return f"{ret}{sep}{name}({', '.join(params) or 'void'})"

    def func_signature(self, name):
        """C prototype of a FUNC, or None if the kernel's BTF has no such FUNC."""
        hits = self.by_name.get(("FUNC", name))
        if not hits:
            return None
        return self.proto_str(hits[0].int_attr("type_id"), name)

    def tracepoint_signature(self, name):
        """Prototype of btf_trace_<name> (first arg is the void *ctx), or None."""
        hits = self.by_name.get(("TYPEDEF", "btf_trace_" + name))
        if not hits:
            return None
        ptr = self.types[hits[0].int_attr("type_id")]
        return self.proto_str(ptr.int_attr("type_id"), "btf_trace_" + name)

    # -- statistics ------------------------------------------------------
    def funcs_with_ptr_param(self, struct_name):
        any_pos, first_pos = [], []
        for t in self.types.values():
            if t.kind != "FUNC":
                continue
            proto = self.types[t.int_attr("type_id")]
            params = [int(a["type_id"]) for _, a in proto.members]
            hits = [i for i, p in enumerate(params)
                    if p != 0 and self.is_ptr_to_struct(p, struct_name)]
            if hits:
                any_pos.append(t.name)
                if hits[0] == 0:
                    first_pos.append(t.name)
        return any_pos, first_pos


OFFSETS = [
    ("sk_buff", "len"),
    ("sk_buff", "mark"),
    ("sk_buff", "head"),
    ("sk_buff", "end"),
    ("sk_buff", "data"),
    ("sk_buff", "protocol"),
    ("sk_buff", "dev"),
    ("skb_shared_info", "gso_type"),
    ("sock", "sk_mark"),
    ("sock", "sk_priority"),
    ("net_device", "ifindex"),
    ("net_device", "mtu"),
    ("net_device", "name"),
]

SIZES = ["sk_buff", "skb_shared_info", "sock", "net_device"]

# Kernel functions / raw tracepoints a packet tracer typically attaches to;
# their prototypes (or absence) differ between kernel versions.
PROBE_FUNCS = [
    "kfree_skb_reason", "sk_skb_reason_drop", "consume_skb", "__kfree_skb",
    "netif_receive_skb", "ip_rcv", "ipv6_rcv", "ip_local_deliver", "tcp_v4_rcv",
    "udp_rcv", "dev_queue_xmit", "__dev_queue_xmit", "dev_hard_start_xmit",
    "ip_finish_output2", "nf_hook_slow", "skb_clone", "tcp_sendmsg",
]
PROBE_TRACEPOINTS = [
    "kfree_skb", "consume_skb", "net_dev_queue", "net_dev_xmit",
    "netif_receive_skb", "napi_gro_receive_entry", "tcp_retransmit_skb",
]


def stats(btf):
    kinds = {}
    for t in btf.types.values():
        if t.id:
            kinds[t.kind] = kinds.get(t.kind, 0) + 1
    trace_typedefs = sorted(t.name for t in btf.types.values()
                            if t.kind == "TYPEDEF" and t.name.startswith("btf_trace_"))
    skb_any, skb_first = btf.funcs_with_ptr_param("sk_buff")
    offsets = {}
    for s, m in OFFSETS:
        try:
            offsets[f"{s}.{m}"] = btf.member_offset(s, m)
        except (KeyError, ValueError) as e:
            offsets[f"{s}.{m}"] = None
    sizes = {s: btf.find("STRUCT", s).int_attr("size") for s in SIZES}
    return {
        "types": len(btf.types) - 1,
        "kinds": dict(sorted(kinds.items())),
        "btf_trace_typedefs": len(trace_typedefs),
        "funcs": kinds.get("FUNC", 0),
        "funcs_with_skb_param": len(skb_any),
        "funcs_with_skb_first_param": len(skb_first),
        "offsets": offsets,
        "sizeof": sizes,
        "functions": {f: btf.func_signature(f) for f in PROBE_FUNCS},
        "tracepoints": {t: btf.tracepoint_signature(t) for t in PROBE_TRACEPOINTS},
    }


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    as_json = "--json" in argv[1:]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    s = stats(BTF.from_file(args[0]))
    if as_json:
        json.dump(s, sys.stdout, indent=2)
        print()
        return 0
    print(f"types:                        {s['types']}")
    for k, n in s["kinds"].items():
        print(f"  {k:<27} {n}")
    print(f"btf_trace_* typedefs:         {s['btf_trace_typedefs']}")
    print(f"FUNC entries:                 {s['funcs']}")
    print(f"  with struct sk_buff * param: {s['funcs_with_skb_param']}")
    print(f"  ... as first param:          {s['funcs_with_skb_first_param']}")
    for name, off in s["offsets"].items():
        print(f"offsetof({name}) = {off}")
    for name, size in s["sizeof"].items():
        print(f"sizeof(struct {name}) = {size}")
    for name, sig in list(s["functions"].items()) + list(s["tracepoints"].items()):
        print(sig if sig else f"(no {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
