/// Kernel helper functions swtrace calls, by their `BPF_FUNC_*` numbers (uapi `linux/bpf.h`).
public enum HelperFunction: Int32, Hashable, Sendable, CaseIterable {
  case mapLookupElement = 1
  case mapUpdateElement = 2
  case mapDeleteElement = 3
  case probeRead = 4
  case ktimeGetNanoseconds = 5
  case tracePrintk = 6
  case getPrandomU32 = 7
  case getSMPProcessorID = 8
  case getCurrentPIDTGID = 14
  case getCurrentUIDGID = 15
  case getCurrentComm = 16
  case perfEventOutput = 25
  case getStackID = 27
  case getCurrentTask = 35
  case getCurrentCgroupID = 80
  case probeReadString = 45
  case getNetnsCookie = 122
  case skbOutput = 111
  case probeReadUser = 112
  case probeReadKernel = 113
  case probeReadUserString = 114
  case probeReadKernelString = 115
  case ringbufOutput = 130
  case ringbufReserve = 131
  case ringbufSubmit = 132
  case ringbufDiscard = 133
  case ringbufQuery = 134
  case ktimeGetBootNanoseconds = 125
  case getFuncIP = 173
  case getAttachCookie = 174

  public var name: String {
    switch self {
    case .mapLookupElement: "map_lookup_elem"
    case .mapUpdateElement: "map_update_elem"
    case .mapDeleteElement: "map_delete_elem"
    case .probeRead: "probe_read"
    case .ktimeGetNanoseconds: "ktime_get_ns"
    case .tracePrintk: "trace_printk"
    case .getPrandomU32: "get_prandom_u32"
    case .getSMPProcessorID: "get_smp_processor_id"
    case .getCurrentPIDTGID: "get_current_pid_tgid"
    case .getCurrentUIDGID: "get_current_uid_gid"
    case .getCurrentComm: "get_current_comm"
    case .perfEventOutput: "perf_event_output"
    case .getStackID: "get_stackid"
    case .getCurrentTask: "get_current_task"
    case .getCurrentCgroupID: "get_current_cgroup_id"
    case .probeReadString: "probe_read_str"
    case .getNetnsCookie: "get_netns_cookie"
    case .skbOutput: "skb_output"
    case .probeReadUser: "probe_read_user"
    case .probeReadKernel: "probe_read_kernel"
    case .probeReadUserString: "probe_read_user_str"
    case .probeReadKernelString: "probe_read_kernel_str"
    case .ringbufOutput: "ringbuf_output"
    case .ringbufReserve: "ringbuf_reserve"
    case .ringbufSubmit: "ringbuf_submit"
    case .ringbufDiscard: "ringbuf_discard"
    case .ringbufQuery: "ringbuf_query"
    case .ktimeGetBootNanoseconds: "ktime_get_boot_ns"
    case .getFuncIP: "get_func_ip"
    case .getAttachCookie: "get_attach_cookie"
    }
  }
}
