package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// spread is a median with its range over the rounds.
type spread struct {
	med, lo, hi float64
	n           int
}

func spreadOf(xs []float64) spread {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return spread{med: math.NaN()}
	}
	sort.Float64s(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{med: m, lo: v[0], hi: v[len(v)-1], n: len(v)}
}

func (s spread) fmt(prec int) string {
	if math.IsNaN(s.med) {
		return "—"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.*f", prec, s.med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.med, prec, s.lo, prec, s.hi)
}

// metric picks one figure out of a sample (NaN when skipped or zero).
func metric(f func(sample) float64) func(sample) float64 {
	return func(s sample) float64 {
		if s.skipped {
			return math.NaN()
		}
		v := f(s)
		if v == 0 {
			return math.NaN()
		}
		return v
	}
}

var (
	mRPS  = metric(func(s sample) float64 { return s.rps })
	mCPU  = metric(func(s sample) float64 { return s.cpuPerReq })
	mRSS  = metric(func(s sample) float64 { return s.rssPerConn })
	mExit = func(s sample) float64 {
		if s.skipped || !s.exited {
			return math.NaN()
		}
		return s.lastToExitMS
	}
)

// values and per-round ratios sluice ÷ target of one metric.
func (h *harness) stat(id, target string, m func(sample) float64) (val, ratio spread) {
	base, ts := h.res[id]["sluice"], h.res[id][target]
	var vs, rs []float64
	for i, s := range ts {
		vs = append(vs, m(s))
		if i < len(base) {
			rs = append(rs, m(base[i])/m(s))
		}
	}
	return spreadOf(vs), spreadOf(rs)
}

func (h *harness) report(stdout io.Writer) error {
	if err := os.MkdirAll(h.s.out, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	mode := fmt.Sprintf("full (%d rounds)", h.s.rounds)
	if h.s.quick {
		mode = fmt.Sprintf("-quick (%d round: a smoke run, not figures to quote)", h.s.rounds)
	}
	fmt.Fprintf(&b, "Measured %s on %s; mode %s; took %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), mode, time.Since(h.started).Round(time.Second))
	fmt.Fprintf(&b, "Targets, each one worker/thread/loop, TLS on the client side, HTTP/1.1 keep-alive to one nginx backend (one worker): "+
		"**sluice** on its defaults (`-loops 1 -cert -key -upstream`, its access log on, to a pipe the harness reads); **sluice-tuned** adds `%s`; "+
		"**haproxy** 2.6 (`nbthread 1`, `http-reuse always`); **nginx** 1.22 (`worker_processes 1`, upstream `keepalive 1024`); "+
		"**h2o** 2.2 (`num-threads: 1`); **goproxy**: net/http + httputil.ReverseProxy (`bench/goproxy`, default GOMAXPROCS). "+
		"Configs: `bench/compare/configs/`. Ratios are sluice (defaults) ÷ target, per round; the load generator shares the machine's cores.\n\n", h.tuned)
	for _, sc := range h.scenarioList() {
		fmt.Fprintf(&b, "**%s**\n\n", sc.title)
		switch {
		case sc.id == "hold":
			b.WriteString("| target | held | RSS per connection (B) | sluice ÷ target |\n|---|---|---|---|\n")
			for _, t := range h.s.targets {
				v, r := h.stat(sc.id, t, mRSS)
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t, h.heldCol(sc.id, t), v.fmt(0), r.fmt(2))
			}
		case sc.id == "handshake":
			b.WriteString("| target | handshakes/s | CPU µs per handshake | sluice ÷ target handshakes/s | sluice ÷ target CPU | errors |\n|---|---|---|---|---|---|\n")
			for _, t := range h.s.targets {
				v, r := h.stat(sc.id, t, mRPS)
				c, cr := h.stat(sc.id, t, mCPU)
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", t, v.fmt(0), c.fmt(0), r.fmt(2), cr.fmt(2), h.errCol(sc.id, t))
			}
		case sc.id == "drain":
			b.WriteString("| target | lost responses | last response → exit (ms) | notes |\n|---|---|---|---|\n")
			for _, t := range h.s.targets {
				var lost []string
				for _, s := range h.res[sc.id][t] {
					if s.skipped {
						lost = append(lost, "skipped")
					} else {
						lost = append(lost, fmt.Sprint(s.lost))
					}
				}
				v, _ := h.stat(sc.id, t, mExit)
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t, strings.Join(lost, ", "), v.fmt(0), h.noteCol(sc.id, t))
			}
		default:
			b.WriteString("| target | req/s | CPU µs/request | sluice ÷ target req/s | sluice ÷ target CPU/request | errors |\n|---|---|---|---|---|---|\n")
			for _, t := range h.s.targets {
				v, r := h.stat(sc.id, t, mRPS)
				c, cr := h.stat(sc.id, t, mCPU)
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", t, v.fmt(0), c.fmt(1), r.fmt(3), cr.fmt(3), h.errCol(sc.id, t))
			}
		}
		b.WriteString("\n")
		if err := h.chart(sc); err != nil {
			return err
		}
		if sc.id != "drain" {
			fmt.Fprintf(&b, "![%s](%s.png)\n\n", sc.title, sc.id)
		}
	}
	b.WriteString(h.goals())
	for _, n := range h.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	path := filepath.Join(h.s.out, "report.md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, b.String())
	h.logf("wrote %s and its charts", path)
	return nil
}

func (h *harness) errCol(id, t string) string {
	var n int64
	for _, s := range h.res[id][t] {
		if s.skipped {
			return "skipped: " + s.note
		}
		n += s.errors
	}
	return fmt.Sprint(n)
}

func (h *harness) noteCol(id, t string) string {
	var notes []string
	for _, s := range h.res[id][t] {
		if s.note != "" {
			notes = append(notes, strings.TrimSpace(s.note))
		}
	}
	return strings.Join(notes, "; ")
}

func (h *harness) heldCol(id, t string) string {
	var hs []string
	for _, s := range h.res[id][t] {
		if s.skipped {
			hs = append(hs, "skipped: "+s.note)
		} else {
			hs = append(hs, fmt.Sprint(s.held))
		}
	}
	return strings.Join(hs, ", ")
}

// goals states the targets against the medians, with the gap.
func (h *harness) goals() string {
	var b strings.Builder
	b.WriteString("**The issue's targets (sluice on its defaults, medians)**\n\n| target | measured | verdict |\n|---|---|---|\n")
	check := func(what string, got, want float64, atLeast bool) {
		if math.IsNaN(got) {
			fmt.Fprintf(&b, "| %s | not measured | — |\n", what)
			return
		}
		ok := got >= want
		if !atLeast {
			ok = got <= want
		}
		verdict := "met"
		if !ok {
			verdict = fmt.Sprintf("**missed** by %.0f%%", math.Abs(got-want)/want*100)
		}
		fmt.Fprintf(&b, "| %s | %.3f | %s |\n", what, got, verdict)
	}
	for _, k := range []string{"return", "static"} {
		if _, ok := h.res["h2-"+k]; ok {
			_, r := h.stat("h2-"+k, "haproxy", mRPS)
			_, c := h.stat("h2-"+k, "haproxy", mCPU)
			check("HTTP/2 req/s ≥ 1.2× HAProxy, "+backendName[k], r.med, 1.2, true)
			check("HTTP/2 CPU/request ≤ 0.8× HAProxy, "+backendName[k], c.med, 0.8, false)
		}
		if _, ok := h.res["h1-"+k]; ok {
			_, r := h.stat("h1-"+k, "nginx", mRPS)
			_, c := h.stat("h1-"+k, "nginx", mCPU)
			check("HTTP/1.1 req/s ≥ 1.1× nginx, "+backendName[k], r.med, 1.1, true)
			check("HTTP/1.1 CPU/request ≤ 0.8× nginx, "+backendName[k], c.med, 0.8, false)
		}
	}
	if _, ok := h.res["hold"]; ok {
		v, _ := h.stat("hold", "sluice", mRSS)
		n, _ := h.stat("hold", "nginx", mRSS)
		held := math.Inf(1)
		for _, s := range h.res["hold"]["sluice"] {
			held = math.Min(held, float64(s.held))
		}
		verdict := "met"
		if held < float64(h.s.holdConns) {
			verdict = fmt.Sprintf("**missed**: %.0f of %d held", held, h.s.holdConns)
		}
		fmt.Fprintf(&b, "| %d idle TLS 1.3 connections held; RSS per connection beside nginx's | %.0f held, %s B vs nginx %s B | %s |\n",
			h.s.holdConns, held, v.fmt(0), n.fmt(0), verdict)
	}
	if _, ok := h.res["handshake"]; ok {
		v, _ := h.stat("handshake", "sluice", mCPU)
		n, _ := h.stat("handshake", "nginx", mCPU)
		fmt.Fprintf(&b, "| full TLS 1.3 handshake CPU beside nginx's | %s µs vs nginx %s µs | reported |\n", v.fmt(0), n.fmt(0))
	}
	if _, ok := h.res["drain"]; ok {
		var lost int64
		okAll := true
		for _, s := range h.res["drain"]["sluice"] {
			lost += s.lost
			okAll = okAll && !s.skipped && s.exited
		}
		verdict := "met"
		if lost > 0 || !okAll {
			verdict = fmt.Sprintf("**missed**: %d lost, all exited %v", lost, okAll)
		}
		fmt.Fprintf(&b, "| drain of %d busy connections: 0 lost | %d lost | %s |\n", h.s.drainConns, lost, verdict)
	}
	b.WriteString("\n")
	return b.String()
}

// chart draws one scenario's medians with min–max bars (gonum/plot).
func (h *harness) chart(sc scenario) error {
	var m func(sample) float64
	ylabel := "requests/s"
	switch {
	case sc.id == "drain":
		return nil
	case sc.id == "hold":
		m, ylabel = mRSS, "RSS bytes per idle connection"
	case sc.id == "handshake":
		m, ylabel = mCPU, "CPU µs per full handshake"
	default:
		m = mRPS
	}
	p := plot.New()
	p.Title.Text = sc.title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = ylabel
	var vals plotter.Values
	var xys plotter.XYs
	var errs plotter.YErrors
	var names []string
	for i, t := range h.s.targets {
		v, _ := h.stat(sc.id, t, m)
		names = append(names, t)
		if math.IsNaN(v.med) {
			vals = append(vals, 0)
			continue
		}
		vals = append(vals, v.med)
		xys = append(xys, plotter.XY{X: float64(i), Y: v.med})
		errs = append(errs, struct{ Low, High float64 }{v.med - v.lo, v.hi - v.med})
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return err
	}
	bars.LineStyle.Width = vg.Length(0)
	bars.Color = color.RGBA{R: 0x3b, G: 0x6e, B: 0xa8, A: 0xff}
	p.Add(bars)
	if len(xys) > 0 && h.s.rounds > 1 {
		eb, err := plotter.NewYErrorBars(errBars{xys, errs})
		if err != nil {
			return err
		}
		p.Add(eb)
	}
	p.NominalX(names...)
	p.Y.Min = 0
	top := 0.0
	for i, v := range vals {
		top = math.Max(top, v)
		if i < len(errs) {
			top = math.Max(top, xys[i].Y+errs[i].High)
		}
	}
	p.Y.Max = top * 1.1
	return p.Save(6*vg.Inch, 3*vg.Inch, filepath.Join(h.s.out, sc.id+".png"))
}

type errBars struct {
	plotter.XYs
	plotter.YErrors
}
