// The C surface swtrace uses from libbpf. Option structs that libbpf builds with macros
// (LIBBPF_OPTS) are filled in by the small inline functions below, so Swift never has to
// know their layout or size field.
#ifndef SWTRACE_CLIBBPF_SHIM_H
#define SWTRACE_CLIBBPF_SHIM_H

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

// glibc declares memmem only with _GNU_SOURCE, which a Clang module cannot set; the BTF name
// index searches the string section with it.
void *memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len);

static inline int swt_errno(void) { return errno; }

// The ring buffer's positions and record headers, shared with the kernel: read with acquire
// and written with release ordering, as the kernel's producer and libbpf's consumer do.
static inline unsigned long swt_load_acquire_ulong(const void *address) {
  return __atomic_load_n((const unsigned long *)address, __ATOMIC_ACQUIRE);
}
static inline void swt_store_release_ulong(void *address, unsigned long value) {
  __atomic_store_n((unsigned long *)address, value, __ATOMIC_RELEASE);
}
static inline __u32 swt_load_acquire_u32(const void *address) {
  return __atomic_load_n((const __u32 *)address, __ATOMIC_ACQUIRE);
}
static inline void swt_set_errno(int value) { errno = value; }

static inline int swt_prog_load(enum bpf_prog_type type, const char *name, const char *license,
                                const struct bpf_insn *insns, size_t insn_count,
                                enum bpf_attach_type expected_attach_type, __u32 attach_btf_id,
                                char *log_buf, __u32 log_size, __u32 log_level) {
  LIBBPF_OPTS(bpf_prog_load_opts, opts,
              .expected_attach_type = expected_attach_type,
              .attach_btf_id = attach_btf_id,
              .log_buf = log_buf,
              .log_size = log_size,
              .log_level = log_level);
  return bpf_prog_load(type, name, license, insns, insn_count, &opts);
}

static inline int swt_map_create(enum bpf_map_type type, const char *name, __u32 key_size,
                                 __u32 value_size, __u32 max_entries, __u32 flags) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
  return bpf_map_create(type, name, key_size, value_size, max_entries, &opts);
}

static inline int swt_link_create(int prog_fd, int target_fd, enum bpf_attach_type attach_type) {
  return bpf_link_create(prog_fd, target_fd, attach_type, NULL);
}

static inline int swt_kprobe_multi_link_create(int prog_fd, const char **syms, const __u64 *cookies,
                                               __u32 count, int is_return) {
  LIBBPF_OPTS(bpf_link_create_opts, opts,
              .kprobe_multi.syms = syms,
              .kprobe_multi.cookies = cookies,
              .kprobe_multi.cnt = count,
              .kprobe_multi.flags = is_return ? BPF_F_KPROBE_MULTI_RETURN : 0);
  return bpf_link_create(prog_fd, 0, BPF_TRACE_KPROBE_MULTI, &opts);
}

static inline int swt_prog_info(int prog_fd, __u32 *xlated_len, __u32 *verified_insns,
                                __u64 *run_time_ns, __u64 *run_cnt, __u32 *id) {
  struct bpf_prog_info info;
  __u32 len = sizeof(info);
  memset(&info, 0, sizeof(info));
  int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
  if (err) return err;
  *xlated_len = info.xlated_prog_len;
  *verified_insns = info.verified_insns;
  *run_time_ns = info.run_time_ns;
  *run_cnt = info.run_cnt;
  *id = info.id;
  return 0;
}

// Silences libbpf's own printing: swtrace reports every failure itself, in terms of the spec.
static int swt_quiet_print(enum libbpf_print_level level, const char *format, va_list args) {
  (void)level; (void)format; (void)args;
  return 0;
}
static inline void swt_silence_libbpf(void) { libbpf_set_print(swt_quiet_print); }

// BTF record accessors: btf.h's own helpers are static inline and take const pointers
// that Swift imports awkwardly, so these give plain values.
static inline __u32 swt_btf_kind(const struct btf_type *t) { return btf_kind(t); }
static inline __u32 swt_btf_vlen(const struct btf_type *t) { return btf_vlen(t); }
static inline int swt_btf_kflag(const struct btf_type *t) { return btf_kflag(t); }
static inline __u32 swt_btf_size_or_type(const struct btf_type *t) { return t->size; }
static inline __u32 swt_btf_name_off(const struct btf_type *t) { return t->name_off; }
static inline const struct btf_member *swt_btf_member(const struct btf_type *t, __u32 i) {
  return btf_members(t) + i;
}
static inline __u32 swt_btf_member_bit_offset(const struct btf_type *t, __u32 i) {
  return btf_member_bit_offset(t, i);
}
static inline __u32 swt_btf_member_bitfield_size(const struct btf_type *t, __u32 i) {
  return btf_member_bitfield_size(t, i);
}
static inline const struct btf_param *swt_btf_param(const struct btf_type *t, __u32 i) {
  return btf_params(t) + i;
}
static inline const struct btf_enum *swt_btf_enum(const struct btf_type *t, __u32 i) {
  return btf_enum(t) + i;
}
static inline const struct btf_enum64 *swt_btf_enum64(const struct btf_type *t, __u32 i) {
  return btf_enum64(t) + i;
}
static inline __u64 swt_btf_enum64_value(const struct btf_enum64 *e) {
  return ((__u64)e->val_hi32 << 32) | e->val_lo32;
}
static inline __u32 swt_btf_int_encoding(const struct btf_type *t) { return btf_int_encoding(t); }
static inline __u32 swt_btf_int_bits(const struct btf_type *t) { return btf_int_bits(t); }
static inline __u32 swt_btf_int_offset(const struct btf_type *t) { return btf_int_offset(t); }
static inline const struct btf_array *swt_btf_array(const struct btf_type *t) { return btf_array(t); }
static inline int swt_btf_func_linkage(const struct btf_type *t) { return btf_vlen(t); }

#endif
