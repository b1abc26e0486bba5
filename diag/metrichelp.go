package diag

import (
	"bytes"
	"strings"
)

// exposition finishes the text the metrics library writes for /metrics:
// the library writes "# HELP name" with no text, so each family's help
// comes from metricHelp; and the few process metrics it names or types
// against Prometheus's conventions are fixed (a counter ends in _total,
// a _total is a counter).
func exposition(in []byte) []byte {
	out := make([]byte, 0, len(in)+len(in)/4)
	for len(in) > 0 {
		line := in
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line, in = in[:i], in[i+1:]
		} else {
			in = nil
		}
		for old, nu := range renamedFamilies {
			if bytes.HasPrefix(line, []byte(old)) || bytes.HasPrefix(line, []byte("# HELP "+old)) || bytes.HasPrefix(line, []byte("# TYPE "+old)) {
				line = bytes.Replace(line, []byte(old), []byte(nu), 1)
				break
			}
		}
		switch {
		case bytes.HasPrefix(line, []byte("# HELP ")):
			fam := string(bytes.TrimSpace(line[len("# HELP "):]))
			out = append(out, "# HELP "...)
			out = append(out, fam...)
			if h := metricHelp[fam]; h != "" {
				out = append(out, ' ')
				out = append(out, h...)
			}
		case bytes.HasPrefix(line, []byte("# TYPE ")) && bytes.HasSuffix(line, []byte(" gauge")):
			fam := string(line[len("# TYPE ") : len(line)-len(" gauge")])
			if strings.HasSuffix(fam, "_total") {
				line = append(line[:len(line)-len("gauge"):len(line)-len("gauge")], "counter"...)
			}
			out = append(out, line...)
		default:
			out = append(out, line...)
		}
		out = append(out, '\n')
	}
	return out
}

// renamedFamilies: process counters the library names without _total.
var renamedFamilies = map[string]string{
	"go_cgo_calls_count": "go_cgo_calls_total",
	"go_gc_forced_count": "go_gc_forced_total",
}

// metricHelp is the # HELP text of every family /metrics exposes. A new
// metric gets its line here (TestMetricsExposition fails without one).
var metricHelp = map[string]string{
	// engine: connections
	"sluice_connections_accepted_total":                      "Client connections accepted.",
	"sluice_connections_rejected_total":                      "Client connections reset at accept, by reason (max_conns: over -max-conns with no waiting connection to evict).",
	"sluice_tls_handshakes_parked_total":                     "Client TLS handshakes with an incomplete ClientHello that lost their -max-handshakes slot without being closed; they get one again when more bytes come.",
	"sluice_tls_handshakes_spared_total":                     "Client TLS handshakes not evicted at -max-handshakes because the client's answer to the server flight had come and sluice was behind on it (unread in the kernel, or read and not yet taken by the handshake): the loop was behind, not the client.",
	"sluice_connections_evicted_total":                       "Client connections reset to make room, by reason (max_conns: had sent nothing; max_handshakes: the TLS handshake longest without progress).",
	"sluice_connections_active":                              "Client connections open now, by lifecycle state.",
	"sluice_upstream_connections_active":                     "Upstream connections open now, by lifecycle state.",
	"sluice_connection_closes_total":                         "Client connection closes, by outcome.",
	"sluice_upstream_connection_closes_total":                "Upstream connection closes, by outcome.",
	"sluice_connection_aborts_total":                         "Client connections aborted with a reset (SO_LINGER 0).",
	"sluice_upstream_connection_aborts_total":                "Upstream connections aborted with a reset (SO_LINGER 0).",
	"sluice_connection_abort_discarded_bytes_total":          "Bytes thrown away by client connection aborts (engine buffer and kernel send queue).",
	"sluice_upstream_connection_abort_discarded_bytes_total": "Bytes thrown away by upstream connection aborts (engine buffer and kernel send queue).",
	"sluice_connection_duration_seconds":                     "Client connection lifetimes, accept to socket closed.",
	"sluice_upstream_connection_duration_seconds":            "Upstream connection lifetimes, dial to socket closed.",
	"sluice_connection_state_duration_seconds":               "Time client connections spent in a lifecycle state, by the state left; the close's states are its phases (ShutdownInitiated: the flush, BufferFlushed: close_notify, Lingering: the linger).",
	"sluice_close_sequence_duration_seconds":                 "Client connection close sequences, ShutdownInitiated to SocketClosed.",
	"sluice_shutdown_pending_bytes":                          "Bytes in a client connection's engine buffer when its close began.",
	"sluice_downstream_bytes_read_total":                     "Bytes read from client sockets.",
	"sluice_downstream_bytes_written_total":                  "Bytes written to client sockets.",
	"sluice_upstream_bytes_read_total":                       "Bytes read from upstream sockets.",
	"sluice_upstream_bytes_written_total":                    "Bytes written to upstream sockets.",
	"sluice_output_buffered_bytes":                           "Bytes waiting in engine output buffers now.",
	"sluice_read_pauses_total":                               "Times a connection stopped being read for backpressure.",
	"sluice_half_closed_by_peer_total":                       "Peer FINs received while a connection still had work to finish.",
	"sluice_upstream_dials_total":                            "Upstream connects, by result (ok, error, timeout).",
	"sluice_upstream_dials_in_flight":                        "Upstream connects under way now.",
	"sluice_proxy_protocol_headers_total":                    "PROXY protocol headers read (v1, v2) and connections closed for want of a valid one.",
	"sluice_drains_total":                                    "Process drains, by result (clean, forced).",
	"sluice_drain_phase":                                     "The process drain's phase now: 0 Serving, 1 NotReady, 2 StopAccepting, 3 Draining, 4 Forcing, 5 Done.",
	"sluice_drain_phase_duration_seconds":                    "Time the last drain spent in each phase.",
	"sluice_drain_connections":                               "Connections the drain is waiting for (client and upstream), by engine state.",
	"sluice_drain_forced_total":                              "Connections aborted by a drain at its deadline or on a second signal.",

	// engine: TLS
	"sluice_tls_handshakes_total":                    "Client TLS handshakes, by result (ok, error, timeout, first_byte_timeout, evicted, rejected).",
	"sluice_tls_handshake_duration_seconds":          "Client TLS handshakes, first byte to handshake done.",
	"sluice_tls_handshakes_in_flight":                "Client TLS handshakes holding a -max-handshakes slot now.",
	"sluice_tls_errors_total":                        "Bad TLS input from clients, by reason.",
	"sluice_tls_engine_handshakes_total":             "Client TLS handshakes by the engine that ran them (path: native or stdlib, the crypto/tls fallback included) and result (ok, error, timeout).",
	"sluice_tls_engine_errors_total":                 "Client TLS connections that failed, by engine (path) and reason.",
	"sluice_tls_peer_close_notify_total":             "Clients that sent close_notify (a half-close).",
	"sluice_upstream_tls_handshakes_total":           "TLS handshakes with https:// and h2:// upstreams, by result.",
	"sluice_upstream_tls_handshake_duration_seconds": "TLS handshakes with https:// and h2:// upstreams, connect to handshake done.",

	// proxy: HTTP
	"sluice_http_requests_total":                   "Responses sent to clients, by route, upstream (empty: none reached), protocol and status code (000: no response).",
	"sluice_http_request_duration_seconds":         "Requests, request head read to response end, by route and upstream.",
	"sluice_http_upstream_header_duration_seconds": "Request sent upstream to the response head received.",
	"sluice_http_retries_total":                    "Upstream attempts repeated on another connection.",
	"sluice_http_request_errors_total":             "Malformed client requests, by parser reason.",
	"sluice_http_response_errors_total":            "Malformed upstream responses, by parser reason.",
	"sluice_http_tunnels_active":                   "Upgraded HTTP/1.1 connections (http/1.1) and WebSocket streams over HTTP/2 (h2) relaying now.",
	"sluice_http_tunnels_total":                    "Tunnels opened, by client protocol.",
	"sluice_http2_streams_active":                  "HTTP/2 client streams open now.",
	"sluice_http2_goaways_total":                   "HTTP/2 GOAWAY frames sent and received, by error code.",
	"sluice_http2_rst_streams_total":               "HTTP/2 RST_STREAM frames sent and received, by error code.",
	"sluice_http2_flow_control_stalls_total":       "HTTP/2 writes cut short by a peer's flow-control window.",
	"sluice_http2_errors_total":                    "HTTP/2 protocol errors and tripped defenses, by reason.",
	"sluice_http2_upstream_slots_held":             "Upstream slots (HTTP/1.1 connections, h2c/h2 streams) held by HTTP/2 client streams, within each connection's budget.",
	"sluice_http2_upstream_slot_waits_total":       "HTTP/2 streams that waited for an upstream slot of their connection's budget.",
	"sluice_http2_upstream_slot_refusals_total":    "HTTP/2 streams refused (REFUSED_STREAM) after waiting -client-upstream-wait for a slot.",
	"sluice_http2_stall_resets_total":              "HTTP/2 streams reset after the client's window stalled them for -h2-stall-timeout.",
	"sluice_upstream_discards_total":               "Upstream connections of stall-reset streams: pooled after the rest of the response was dropped, or closed.",
	"sluice_http_body_timeouts_total":              "Request bodies ended with 408 or RST_STREAM, by reason: idle, deadline, min_rate.",
	"sluice_upstream_requests_total":               "Upstream attempts, by upstream and result.",
	"sluice_upstream_connections_in_use":           "With -upstream-max-conns: upstream connections in use (dialing or serving), all loops, by upstream.",
	"sluice_upstream_queued_requests":              "With -upstream-max-conns: requests waiting for an upstream connection, all loops, by upstream.",
	"sluice_upstream_pool_connections":             "Upstream connections, pooled (idle) and serving a request (busy), by upstream.",
	"sluice_upstream_ejections_total":              "Passive health ejections, by upstream.",
	"sluice_upstream_available":                    "1 while the upstream can be picked, 0 while ejected or marked down.",
	"sluice_upstream_health_checks_total":          "Active health checks, by upstream and result.",
	"sluice_config_reloads_total":                  "Configuration reloads (SIGHUP), by result.",
	"sluice_restarts_total":                        "Restarts (SIGUSR2): ok, the new process serves and this one drains; failed, this one keeps serving.",
	"sluice_build_info":                            "Always 1; the labels name the running build.",

	// the Go runtime and the process (VictoriaMetrics/metrics)
	"go_sched_latencies_seconds":                    "Time goroutines spent runnable before running.",
	"go_mutex_wait_seconds_total":                   "Time goroutines spent blocked on a sync.Mutex or sync.RWMutex.",
	"go_gc_mark_assist_cpu_seconds_total":           "CPU time goroutines spent helping the GC mark.",
	"go_gc_cpu_seconds_total":                       "CPU time spent in the GC.",
	"go_gc_pauses_seconds":                          "GC stop-the-world pauses.",
	"go_scavenge_cpu_seconds_total":                 "CPU time spent returning memory to the OS.",
	"go_memlimit_bytes":                             "The Go runtime's soft memory limit (GOMEMLIMIT).",
	"go_memstats_alloc_bytes":                       "Heap bytes allocated and in use.",
	"go_memstats_alloc_bytes_total":                 "Heap bytes allocated, ever.",
	"go_memstats_buck_hash_sys_bytes":               "Bytes used by the profiling bucket hash table.",
	"go_memstats_frees_total":                       "Heap objects freed.",
	"go_memstats_gc_cpu_fraction":                   "Fraction of CPU time used by the GC since start.",
	"go_memstats_gc_sys_bytes":                      "Bytes used for GC metadata.",
	"go_memstats_heap_alloc_bytes":                  "Heap bytes allocated and in use.",
	"go_memstats_heap_idle_bytes":                   "Heap bytes in idle spans.",
	"go_memstats_heap_inuse_bytes":                  "Heap bytes in in-use spans.",
	"go_memstats_heap_objects":                      "Heap objects allocated.",
	"go_memstats_heap_released_bytes":               "Heap bytes returned to the OS.",
	"go_memstats_heap_sys_bytes":                    "Heap bytes obtained from the OS.",
	"go_memstats_last_gc_time_seconds":              "Time of the last GC, seconds since the epoch.",
	"go_memstats_lookups_total":                     "Pointer lookups by the runtime.",
	"go_memstats_mallocs_total":                     "Heap objects allocated, ever.",
	"go_memstats_mcache_inuse_bytes":                "Bytes in use by mcache structures.",
	"go_memstats_mcache_sys_bytes":                  "Bytes obtained from the OS for mcache structures.",
	"go_memstats_mspan_inuse_bytes":                 "Bytes in use by mspan structures.",
	"go_memstats_mspan_sys_bytes":                   "Bytes obtained from the OS for mspan structures.",
	"go_memstats_next_gc_bytes":                     "Heap size at which the next GC runs.",
	"go_memstats_other_sys_bytes":                   "Bytes used for other runtime allocations.",
	"go_memstats_stack_inuse_bytes":                 "Bytes in use by goroutine stacks.",
	"go_memstats_stack_sys_bytes":                   "Bytes obtained from the OS for goroutine stacks.",
	"go_memstats_sys_bytes":                         "Bytes obtained from the OS, all uses.",
	"go_cgo_calls_total":                            "Calls from Go to C.",
	"go_cpu_count":                                  "CPUs the Go runtime sees.",
	"go_gc_duration_seconds":                        "GC pause durations.",
	"go_gc_forced_total":                            "GCs forced by the application.",
	"go_gomaxprocs":                                 "GOMAXPROCS.",
	"go_goroutines":                                 "Goroutines now.",
	"go_threads":                                    "OS threads created by the Go runtime.",
	"go_info":                                       "Always 1; the label names the Go version.",
	"go_info_ext":                                   "Always 1; the labels name the compiler and GOOS/GOARCH.",
	"process_cpu_seconds_system_total":              "CPU time in the kernel.",
	"process_cpu_seconds_total":                     "CPU time, user and kernel.",
	"process_cpu_seconds_user_total":                "CPU time in user space.",
	"process_major_pagefaults_total":                "Page faults that needed a disk read.",
	"process_minor_pagefaults_total":                "Page faults served without a disk read.",
	"process_num_threads":                           "OS threads of the process.",
	"process_resident_memory_bytes":                 "Resident memory (RSS).",
	"process_start_time_seconds":                    "Process start time, seconds since the epoch.",
	"process_virtual_memory_bytes":                  "Virtual memory size.",
	"process_virtual_memory_peak_bytes":             "Peak virtual memory size.",
	"process_resident_memory_peak_bytes":            "Peak resident memory.",
	"process_resident_memory_anon_bytes":            "Resident anonymous memory.",
	"process_resident_memory_file_bytes":            "Resident file-backed memory.",
	"process_resident_memory_shared_bytes":          "Resident shared memory.",
	"process_io_read_bytes_total":                   "Bytes read by the process, all I/O.",
	"process_io_written_bytes_total":                "Bytes written by the process, all I/O.",
	"process_io_read_syscalls_total":                "Read system calls.",
	"process_io_write_syscalls_total":               "Write system calls.",
	"process_io_storage_read_bytes_total":           "Bytes read from storage.",
	"process_io_storage_written_bytes_total":        "Bytes written to storage.",
	"process_pressure_cpu_waiting_seconds_total":    "Time some tasks of the process's cgroup waited for a CPU (PSI).",
	"process_pressure_cpu_stalled_seconds_total":    "Time all tasks of the process's cgroup waited for a CPU (PSI).",
	"process_pressure_io_waiting_seconds_total":     "Time some tasks waited for I/O (PSI).",
	"process_pressure_io_stalled_seconds_total":     "Time all tasks waited for I/O (PSI).",
	"process_pressure_memory_waiting_seconds_total": "Time some tasks waited for memory (PSI).",
	"process_pressure_memory_stalled_seconds_total": "Time all tasks waited for memory (PSI).",
	"process_cgroup_cpu_throttled_seconds_total":    "Time the process's cgroup was throttled by its CPU limit.",
	"process_open_fds":                              "Open file descriptors.",
	"process_max_fds":                               "Limit of open file descriptors.",
}

// Help is the # HELP text of family, "" if it has none.
func Help(family string) string { return metricHelp[family] }
