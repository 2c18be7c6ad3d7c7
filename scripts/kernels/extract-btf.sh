#!/usr/bin/env bash
# extract-btf.sh VMLINUZ OUT.btf [OUT.vmlinux]
#
# Decompress the kernel payload of an x86 bzImage (gzip, xz, lzma, bzip2,
# zstd or lz4) to the vmlinux ELF, and write its raw `.BTF` section to OUT.btf.
# If OUT.vmlinux is given the decompressed ELF is kept there too.
# VMLINUZ may also be an uncompressed vmlinux ELF already.
#
# The payload is located from the boot protocol header (payload_offset /
# payload_length, boot protocol >= 2.08); if that fails, the file is scanned
# for the compression magics, like the kernel's scripts/extract-vmlinux.
#
# Needs python3 (standard library only); zstd and lz4 payloads additionally
# need the `zstd` / `lz4` command line tools (apt-get install zstd lz4).
# If bpftool is installed the result is checked with `bpftool btf dump`.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 VMLINUZ OUT.btf [OUT.vmlinux]" >&2
    exit 2
fi

python3 - "$@" <<'PY'
import bz2, lzma, os, shutil, struct, subprocess, sys, zlib

src, out_btf = sys.argv[1], sys.argv[2]
out_elf = sys.argv[3] if len(sys.argv) > 3 else None

def log(msg):
    print(f"extract-btf: {msg}", file=sys.stderr)

def die(msg):
    log(msg)
    sys.exit(1)

def run_tool(tool, args, data):
    if shutil.which(tool) is None:
        die(f"payload needs the `{tool}` tool (apt-get install {tool})")
    p = subprocess.run([tool] + args, input=data, capture_output=True)
    # A trailing 4-byte size field (or whatever follows the payload when
    # scanning) makes the tools complain after the frame was written out;
    # the caller checks the result for an ELF header instead.
    return p.stdout

def gunzip(d):
    return zlib.decompressobj(wbits=31).decompress(d)

def unxz(d):
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d)

def unlzma(d):
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(d)

def unbzip2(d):
    return bz2.BZ2Decompressor().decompress(d)

def unzstd(d):
    return run_tool("zstd", ["-d", "-c", "-q"], d)

def unlz4(d):
    return run_tool("lz4", ["-d", "-c", "-q"], d)

# (name, magic, decompressor) -- magics as in scripts/extract-vmlinux.
FORMATS = [
    ("gzip",  b"\x1f\x8b\x08",              gunzip),
    ("xz",    b"\xfd7zXZ\x00",              unxz),
    ("zstd",  b"\x28\xb5\x2f\xfd",          unzstd),
    ("lz4",   b"\x02\x21\x4c\x18",          unlz4),
    ("bzip2", b"BZh",                       unbzip2),
    ("lzma",  b"\x5d\x00\x00\x00",          unlzma),
]

def try_decompress(fmt, data):
    name, _, fn = fmt
    try:
        out = fn(data)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as e:
        return None
    if out[:4] != b"\x7fELF":
        return None
    return out

def from_header(img):
    """Payload via the bzImage setup header; None if not a usable bzImage."""
    if len(img) < 0x260 or img[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", img, 0x206)[0]
    if version < 0x208:
        return None
    setup_sects = img[0x1f1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", img, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = img[start:start + payload_length]
    for fmt in FORMATS:
        if payload.startswith(fmt[1]):
            # zstd/lz4 (and others) carry the uncompressed size as a
            # trailing 32-bit word that the CLI tools don't understand.
            body = payload[:-4] if fmt[0] in ("zstd", "lz4") else payload
            out = try_decompress(fmt, body)
            if out is not None:
                log(f"bzImage boot protocol {version >> 8}.{version & 0xff}, "
                    f"{fmt[0]} payload at {start:#x}, {payload_length} bytes")
                return out
    return None

def by_scanning(img):
    for fmt in FORMATS:
        pos = img.find(fmt[1])
        while pos >= 0:
            out = try_decompress(fmt, img[pos:])
            if out is not None:
                log(f"found {fmt[0]} payload at {pos:#x} by scanning")
                return out
            pos = img.find(fmt[1], pos + 1)
    return None

img = open(src, "rb").read()
if img[:4] == b"\x7fELF":
    elf = img
    log(f"{src} is already an ELF file")
else:
    elf = from_header(img) or by_scanning(img)
    if elf is None:
        die(f"no decompressible vmlinux found in {src}")

# --- ELF64 little endian: find .BTF -------------------------------------
if elf[4] != 2 or elf[5] != 1:
    die("only ELF64 little-endian kernels are supported")
(e_shoff,) = struct.unpack_from("<Q", elf, 0x28)
e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", elf, 0x3a)
def shdr(i):
    # name, type, flags, addr, offset, size
    f = struct.unpack_from("<IIQQQQ", elf, e_shoff + i * e_shentsize)
    return f
strtab = shdr(e_shstrndx)
def secname(off):
    base = strtab[4] + off
    return elf[base:elf.index(b"\0", base)].decode()

btf = None
for i in range(e_shnum):
    name, typ, flags, addr, offset, size = shdr(i)
    if secname(name) == ".BTF":
        btf = elf[offset:offset + size]
        break
if btf is None:
    die("vmlinux has no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF?)")
if struct.unpack_from("<H", btf, 0)[0] != 0xeB9F:
    die(".BTF section does not start with the BTF magic 0xeb9f")

with open(out_btf, "wb") as f:
    f.write(btf)
log(f"wrote {out_btf}: {len(btf)} bytes of raw BTF")
if out_elf:
    with open(out_elf, "wb") as f:
        f.write(elf)
    log(f"wrote {out_elf}: {len(elf)} bytes")
PY

if command -v bpftool >/dev/null 2>&1; then
    head=$(bpftool btf dump file "$2" format raw 2>&1 | head -n 3 || true)
    if ! grep -q '^\[1\] ' <<<"$head"; then
        echo "extract-btf: bpftool cannot parse $2:" >&2
        echo "$head" >&2
        exit 1
    fi
    echo "extract-btf: bpftool btf dump file $2: OK" >&2
    echo "$head" | sed 's/^/extract-btf:   /' >&2
fi
