#compdef swtrace

__swtrace_complete() {
    local -ar non_empty_completions=("${@:#(|:*)}")
    local -ar empty_completions=("${(M)@:#(|:*)}")
    _describe -V '' non_empty_completions -- empty_completions -P $'\'\''
}

__swtrace_custom_complete() {
    local -a completions
    completions=("${(@f)"$("${command_name}" "${@}" "${command_line[@]}")"}")
    if [[ "${#completions[@]}" -gt 1 ]]; then
        __swtrace_complete "${completions[@]:0:-1}"
    fi
}

__swtrace_cursor_index_in_current_word() {
    if [[ -z "${QIPREFIX}${IPREFIX}${PREFIX}" ]]; then
        printf 0
    else
        printf %s "${#${(z)LBUFFER}[-1]}"
    fi
}

_swtrace() {
    emulate -RL zsh -G
    setopt extendedglob nullglob numericglobsort
    unsetopt aliases banghist

    local -xr SAP_SHELL=zsh
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(builtin emulate zsh -c 'printf %s "${ZSH_VERSION}"')"
    local -r SAP_SHELL_VERSION

    local context state state_descr line
    local -A opt_args

    local -r command_name="${words[1]}"
    local -ar command_line=("${words[@]}")
    local -ir current_word_index="$((CURRENT - 1))"

    local -i ret=1
    local -ar arg_specs=(
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'trace:Trace packets through the Linux kernel: compile a spec to eBPF, attach it, print what it sees.'
            'check:Compile and pre-check specs without loading them; exit 0 when all are fine, 1 otherwise.'
            'fmt:Print a spec in swtrace'\''s canonical layout.'
            'help:Show subcommand help information.'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        trace|check|fmt|help)
            "_swtrace_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_swtrace_trace() {
    local -i ret=1
    local -ar ___format=('text' 'json' 'paths' 'paths-json')
    local -ar ___backend=('fentry' 'kprobe')
    local -ar arg_specs=(
        '-e[The spec to run, as text.]:SPEC:'
        ':FILE:'
        '*:PARAMETER:'
        '(-c --command)'{-c,--command}'[Run CMD with /bin/sh -c once the probes are attached; stop when it exits. With -f json or paths-json on standard output, or with -w -, its output goes to stderr.]:CMD:'
        '(-d --duration)'{-d,--duration}'[Stop after this many seconds.]:SECONDS:'
        '(-f --format)'{-f,--format}'[Output format\: text, json, paths (events grouped per packet) or paths-json.]:FORMAT:{__swtrace_complete "${___format[@]}"}'
        '(-o --output)'{-o,--output}'[Write the events and maps to FILE instead of standard output (messages stay on stderr).]:FILE:'
        '--paths-max[With -f paths\: open paths kept at most; beyond, the oldest is printed as it is (not freed while tracing).]:N:'
        '--paths-max-age[With -f paths\: seconds a path stays open at most before it is printed as it is; 0 for no limit.]:SECONDS:'
        '(-p --pid)'{-p,--pid}'[Keep only events of process PID (as if every filter began with pid == PID); stop when it exits.]:PID:'
        '(-l --list)'{-l,--list}'[List the probes that match FILE as a pattern (default '\''skb\:*'\'' and '\''tracepoint\:*\:*'\''), or those of the spec given with -e or as a .spec FILE, and exit.]'
        '(--quiet -q)'{--quiet,-q}'[Leave out progress messages, and the Samples line unless events were lost.]'
        '(--verbose -v)'{--verbose,-v}'[Say more\: which probes could not be attached, and why; with -l, what each probe attaches to and the fields of each tracepoint'\''s record.]'
        '--dump-bpf[Print the generated instructions and exit without loading.]'
        '--btf[Check against this BTF file instead of the running kernel'\''s (with --dump-bpf).]:FILE:'
        '--backend[Attach skb\: function probes with this backend\: fentry or kprobe (default\: the cheapest the kernel has).]:NAME:{__swtrace_complete "${___backend[@]}"}'
        '--track[Keep following a packet once a filter matched it, even after its mark is cleared.]'
        '--map-entries[Entries each map of the spec can hold; updates beyond are counted and reported.]:N:'
        '--metrics[Keep running and serve the spec'\''s maps as Prometheus metrics at http\://ADDR\:PORT/metrics (such as 127.0.0.1\:9464 or 0.0.0.0\:9464), read from the kernel at scrape time (one reading serves the scrapes of the next second). Events are not printed unless --print-events is given.]:ADDR\:PORT:'
        '--print-events[With --metrics, print events too.]'
        '-w[Write the packet of every event of an skb clause to FILE as pcapng, for Wireshark and tshark ('\''-'\''\: standard output, such as | tshark -r -; the text output then goes to standard error).]:FILE:'
        '--snaplen[With -w, keep at most N bytes of each packet (default 2048, at most 65000).]:N:'
        '--stack[Add the kernel stack (kstack) to every event\: in text, JSON and -w'\''s packet comments.]'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_swtrace_check() {
    local -i ret=1
    local -ar arg_specs=(
        '--btf[Check against this BTF file instead of the running kernel'\''s.]:FILE:'
        '-e[A spec to check, as text.]:SPEC:'
        '*:FILE:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_swtrace_fmt() {
    local -i ret=1
    local -ar arg_specs=(
        '-e[The spec to format, as text.]:SPEC:'
        ':FILE:'
        '(--in-place -i)'{--in-place,-i}'[Rewrite the file in place instead of printing it.]'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_swtrace_help() {
    local -i ret=1
    local -ar arg_specs=(
        '*:subcommands:'
        '--version[Show the version.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

if [[ "${funcstack[1]}" = _swtrace ]]; then
    _swtrace "${@}"
else
    compdef _swtrace swtrace
fi
