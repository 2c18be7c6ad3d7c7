function __swtrace_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __swtrace_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __swtrace_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __swtrace_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __swtrace_parse_tokens -S
    set -l unparsed_tokens (__swtrace_tokens -pc)
    switch $unparsed_tokens[1]
    case 'swtrace'
        __swtrace_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'trace'
            __swtrace_parse_subcommand -r 2 'e=' 'c/command=' 'd/duration=' 'f/format=' 'o/output=' 'paths-max=' 'paths-max-age=' 'p/pid=' 'l/list' 'q/quiet' 'v/verbose' 'dump-bpf' 'btf=' 'backend=' 'track' 'map-entries=' 'metrics=' 'print-events' 'w=' 'snaplen=' 'stack' 'version' 'h/help'
        case 'check'
            __swtrace_parse_subcommand -r 1 'btf=' 'e=' 'version' 'h/help'
        case 'fmt'
            __swtrace_parse_subcommand 1 'e=' 'i/in-place' 'version' 'h/help'
        case 'help'
            __swtrace_parse_subcommand -r 1 'version'
        end
    end
end

function __swtrace_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __swtrace_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __swtrace_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __swtrace_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__swtrace_tokens -p)
    if test -z "$(__swtrace_tokens -t)"
        set -l index (count (__swtrace_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'swtrace' -f
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace" version' -l 'version' -d 'Show the version.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_positional "swtrace" -eq 1' -fa 'trace' -d 'Trace packets through the Linux kernel: compile a spec to eBPF, attach it, print what it sees.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_positional "swtrace" -eq 1' -fa 'check' -d 'Compile and pre-check specs without loading them; exit 0 when all are fine, 1 otherwise.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_positional "swtrace" -eq 1' -fa 'fmt' -d 'Print a spec in swtrace\'s canonical layout.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_positional "swtrace" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" e' -s 'e' -d 'The spec to run, as text.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" c command' -s 'c' -l 'command' -d 'Run CMD with /bin/sh -c once the probes are attached; stop when it exits. With -f json or paths-json on standard output, or with -w -, its output goes to stderr.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" d duration' -s 'd' -l 'duration' -d 'Stop after this many seconds.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" f format' -s 'f' -l 'format' -d 'Output format: text, json, paths (events grouped per packet) or paths-json.' -rfka 'text json paths paths-json'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" o output' -s 'o' -l 'output' -d 'Write the events and maps to FILE instead of standard output (messages stay on stderr).' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" paths-max' -l 'paths-max' -d 'With -f paths: open paths kept at most; beyond, the oldest is printed as it is (not freed while tracing).' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" paths-max-age' -l 'paths-max-age' -d 'With -f paths: seconds a path stays open at most before it is printed as it is; 0 for no limit.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" p pid' -s 'p' -l 'pid' -d 'Keep only events of process PID (as if every filter began with pid == PID); stop when it exits.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" l list' -s 'l' -l 'list' -d 'List the probes that match FILE as a pattern (default \'skb:*\' and \'tracepoint:*:*\'), or those of the spec given with -e or as a .spec FILE, and exit.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" q quiet' -l 'quiet' -s 'q' -d 'Leave out progress messages, and the Samples line unless events were lost.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" v verbose' -l 'verbose' -s 'v' -d 'Say more: which probes could not be attached, and why; with -l, what each probe attaches to and the fields of each tracepoint\'s record.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" dump-bpf' -l 'dump-bpf' -d 'Print the generated instructions and exit without loading.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" btf' -l 'btf' -d 'Check against this BTF file instead of the running kernel\'s (with --dump-bpf).' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" backend' -l 'backend' -d 'Attach skb: function probes with this backend: fentry or kprobe (default: the cheapest the kernel has).' -rfka 'fentry kprobe'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" track' -l 'track' -d 'Keep following a packet once a filter matched it, even after its mark is cleared.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" map-entries' -l 'map-entries' -d 'Entries each map of the spec can hold; updates beyond are counted and reported.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" metrics' -l 'metrics' -d 'Keep running and serve the spec\'s maps as Prometheus metrics at http://ADDR:PORT/metrics (such as 127.0.0.1:9464 or 0.0.0.0:9464), read from the kernel at scrape time (one reading serves the scrapes of the next second). Events are not printed unless --print-events is given.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" print-events' -l 'print-events' -d 'With --metrics, print events too.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" w' -s 'w' -d 'Write the packet of every event of an skb clause to FILE as pcapng, for Wireshark and tshark (\'-\': standard output, such as | tshark -r -; the text output then goes to standard error).' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" snaplen' -l 'snaplen' -d 'With -w, keep at most N bytes of each packet (default 2048, at most 65000).' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" stack' -l 'stack' -d 'Add the kernel stack (kstack) to every event: in text, JSON and -w\'s packet comments.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" version' -l 'version' -d 'Show the version.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace trace" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace check" btf' -l 'btf' -d 'Check against this BTF file instead of the running kernel\'s.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace check" e' -s 'e' -d 'A spec to check, as text.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace check" version' -l 'version' -d 'Show the version.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace check" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace fmt" e' -s 'e' -d 'The spec to format, as text.' -rfka ''
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace fmt" i in-place' -l 'in-place' -s 'i' -d 'Rewrite the file in place instead of printing it.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace fmt" version' -l 'version' -d 'Show the version.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace fmt" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'swtrace' -n '__swtrace_should_offer_completions_for_flags_or_options "swtrace help" version' -l 'version' -d 'Show the version.'
