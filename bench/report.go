package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is one run's report; -json prints it as is.
type Result struct {
	Mode      Mode             `json:"mode"`
	URL       string           `json:"url"`
	Proto     string           `json:"proto"`
	Conns     int              `json:"connections"`
	Streams   int              `json:"streams_per_connection,omitempty"`
	Rate      float64          `json:"target_rate,omitempty"`
	Elapsed   float64          `json:"elapsed_s"`
	Requests  int64            `json:"responses"`
	ReqPerSec float64          `json:"responses_per_s"`
	BodyBytes int64            `json:"body_bytes"`
	Latency   Latency          `json:"latency"`
	Status    map[string]int64 `json:"status"`
	Errors    map[string]int64 `json:"errors"`
	Target    *Target          `json:"target,omitempty"`
	Hold      *HoldResult      `json:"hold,omitempty"`
	Handshake *HandshakeResult `json:"handshake,omitempty"`
	Drain     *DrainResult     `json:"drain,omitempty"`
	SlowRead  *SlowReadResult  `json:"slowread,omitempty"`
	Warning   string           `json:"warning,omitempty"`
}

// Target is what /proc said about the target process (and children).
type Target struct {
	PID             int     `json:"pid"`
	Processes       int     `json:"processes"`
	CPUSeconds      float64 `json:"cpu_s"`
	CPUPerRequestUS float64 `json:"cpu_per_response_us"`
	RSSBytes        int64   `json:"rss_bytes"`
	RSSPeakBytes    int64   `json:"rss_peak_bytes"`
	RSSBeforeBytes  int64   `json:"rss_before_bytes"`
}

// HoldResult: idle keep-alive connections held.
type HoldResult struct {
	Opened          int     `json:"opened"`
	StillOpen       int     `json:"still_open"`
	ClosedByTarget  int     `json:"closed_by_target"`
	OpenSeconds     float64 `json:"open_s"`
	RSSBeforeBytes  int64   `json:"rss_before_bytes"`
	RSSHeldBytes    int64   `json:"rss_held_bytes"`
	RSSEndBytes     int64   `json:"rss_end_bytes"`
	RSSPerConnBytes float64 `json:"rss_per_connection_bytes"`
}

// HandshakeResult: full handshakes, checked not resumed.
type HandshakeResult struct {
	Full    int64   `json:"full"`
	Resumed int64   `json:"resumed"`
	TLS13   int64   `json:"tls13"`
	TLS12   int64   `json:"tls12"`
	PerSec  float64 `json:"full_per_s"`
}

// DrainResult: what a SIGTERM under load cost the clients.
type DrainResult struct {
	Signalled   bool   `json:"signalled"`
	SignalError string `json:"signal_error,omitempty"`
	// Lost counts requests that may have been processed and got no
	// response; Truncated responses that began and did not end whole;
	// TimedOut requests unanswered within -timeout. All three are losses.
	Lost      int64 `json:"lost"`
	Truncated int64 `json:"truncated"`
	TimedOut  int64 `json:"timed_out"`
	// Unprocessed requests were refused in a way the protocol marks safe
	// to retry (HTTP/1.1 keep-alive close before any byte, HTTP/2
	// REFUSED_STREAM or above GOAWAY's last stream id): not losses.
	Unprocessed          int64   `json:"unprocessed"`
	AfterSignal          int64   `json:"responses_after_signal"`
	Exited               bool    `json:"exited"`
	SignalToExitMS       float64 `json:"signal_to_exit_ms"`
	LastResponseToExitMS float64 `json:"last_response_to_exit_ms"`
}

// Losses is the drain's total of lost, truncated and timed-out responses.
func (d *DrainResult) Losses() int64 { return d.Lost + d.Truncated + d.TimedOut }

// SlowReadResult: clients reading at a set rate.
type SlowReadResult struct {
	Clients      int     `json:"clients"`
	Completed    int64   `json:"completed"`
	Unfinished   int64   `json:"unfinished_at_deadline"`
	BytesRead    int64   `json:"bytes_read"`
	ReadRate     int     `json:"read_rate"`
	AchievedRate float64 `json:"achieved_rate_per_client"`
	TTFB         Latency `json:"time_to_first_byte"`
}

// fill copies a merged tally into the result.
func (r *Result) fill(t *tally, el time.Duration) {
	r.Elapsed = el.Seconds()
	r.Requests = t.ok
	if el > 0 {
		r.ReqPerSec = float64(t.ok) / el.Seconds()
	}
	r.BodyBytes = t.bytes
	r.Latency = t.hist.Summary()
	r.Status = map[string]int64{}
	for c, n := range t.codes {
		r.Status[strconv.Itoa(c)] = n
	}
	r.Errors = map[string]int64{}
	for k, n := range t.errs {
		r.Errors[k] = n
	}
}

// Failed says whether the run should exit 1.
func (r *Result) Failed() bool {
	if r.Drain != nil {
		return r.Drain.Losses() > 0 || !r.Drain.Signalled || !r.Drain.Exited || r.Requests == 0
	}
	if r.Hold != nil {
		return r.Hold.Opened == 0
	}
	if r.SlowRead != nil {
		return r.SlowRead.BytesRead == 0
	}
	return r.Requests == 0
}

// WriteJSON prints the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteTable prints the human report.
func (r *Result) WriteTable(w io.Writer) {
	row := func(k, f string, a ...any) { fmt.Fprintf(w, "%-22s %s\n", k, fmt.Sprintf(f, a...)) }
	desc := fmt.Sprintf("%s %s, %d connections", r.URL, r.Proto, r.Conns)
	if r.Streams > 0 {
		desc += fmt.Sprintf(" x %d streams", r.Streams)
	}
	if r.Rate > 0 {
		desc += fmt.Sprintf(", open loop at %.0f req/s", r.Rate)
	}
	row("mode", "%s", r.Mode)
	row("target", "%s", desc)
	row("elapsed", "%.3f s", r.Elapsed)
	row("responses", "%d (%.1f/s), %s of body", r.Requests, r.ReqPerSec, mib(r.BodyBytes))
	if r.Requests > 0 {
		l := r.Latency
		row("latency", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms", l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	var st []string
	for _, k := range sortedKeys(r.Status) {
		st = append(st, fmt.Sprintf("%s: %d", k, r.Status[k]))
	}
	if len(st) > 0 {
		row("status", "%s", strings.Join(st, "  "))
	}
	if len(r.Errors) == 0 {
		row("errors", "none")
	} else {
		var es []string
		for _, k := range sortedKeys(r.Errors) {
			es = append(es, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		row("errors", "%s", strings.Join(es, "  "))
	}
	if h := r.Handshake; h != nil {
		row("full handshakes", "%d (%.1f/s), TLS 1.3 %d, TLS 1.2 %d, resumed %d", h.Full, h.PerSec, h.TLS13, h.TLS12, h.Resumed)
	}
	if h := r.Hold; h != nil {
		row("held", "%d opened in %.2f s, %d still open, %d closed by the target", h.Opened, h.OpenSeconds, h.StillOpen, h.ClosedByTarget)
		row("target RSS", "%s before, %s held, %s at the end", mib(h.RSSBeforeBytes), mib(h.RSSHeldBytes), mib(h.RSSEndBytes))
		row("RSS per connection", "%.0f bytes", h.RSSPerConnBytes)
	}
	if d := r.Drain; d != nil {
		row("drain", "signalled %v, %d responses after SIGTERM", d.Signalled, d.AfterSignal)
		row("lost responses", "%d (lost %d, truncated %d, timed out %d); unprocessed (safe to retry) %d", d.Losses(), d.Lost, d.Truncated, d.TimedOut, d.Unprocessed)
		if d.Exited {
			row("exit", "%.1f ms after SIGTERM, %.1f ms after the last response", d.SignalToExitMS, d.LastResponseToExitMS)
		} else {
			row("exit", "the target did not exit")
		}
	}
	if s := r.SlowRead; s != nil {
		row("slow readers", "%d at %d B/s: %d completed, %d unfinished at -d, %s read (%.0f B/s each)", s.Clients, s.ReadRate, s.Completed, s.Unfinished, mib(s.BytesRead), s.AchievedRate)
		row("time to first byte", "p50 %.3f  p99 %.3f  max %.3f ms", s.TTFB.P50, s.TTFB.P99, s.TTFB.Max)
	}
	if t := r.Target; t != nil {
		row("target CPU", "%.2f s (pid %d, %d processes), %.1f µs per response", t.CPUSeconds, t.PID, t.Processes, t.CPUPerRequestUS)
		row("target RSS", "%s now, %s peak, %s at the start", mib(t.RSSBytes), mib(t.RSSPeakBytes), mib(t.RSSBeforeBytes))
	}
	if r.Warning != "" {
		row("warning", "%s", r.Warning)
	}
}

// startProgress prints a live line every o.Progress until the returned
// func is called: carriage-return updates on a terminal, lines otherwise.
func startProgress(o *Options, w io.Writer, tgt *targetWatch) func() {
	if w == nil || o.Progress <= 0 {
		return func() {}
	}
	term := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			term = true
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		start := time.Now()
		tk := time.NewTicker(o.Progress)
		defer tk.Stop()
		var last int64
		lastT := start
		for {
			select {
			case <-done:
				if term {
					fmt.Fprintln(w)
				}
				return
			case now := <-tk.C:
				d := live.done.Load()
				rate := float64(d-last) / now.Sub(lastT).Seconds()
				last, lastT = d, now
				line := fmt.Sprintf("[%5.1fs] %d responses  %.0f/s  errors %d  conns %d  in flight %d",
					now.Sub(start).Seconds(), d, rate, live.errs.Load(), live.conns.Load(), live.inflight.Load())
				if tgt != nil {
					if s, ok := tgt.sample(); ok {
						line += fmt.Sprintf("  target cpu %.1fs rss %s", (s.CPU - tgt.before.CPU).Seconds(), mib(s.RSS))
					} else {
						line += "  target exited"
					}
				}
				if term {
					fmt.Fprintf(w, "\r%-100s", line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}
