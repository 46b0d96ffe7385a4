package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the whole run: bench.json, report.md and chart.svg.
type report struct {
	Machine    Machine            `json:"machine"`
	Config     map[string]any     `json:"config"`
	Started    time.Time          `json:"started"`
	Seconds    map[string]float64 `json:"seconds"` // per scenario
	Warm       *WarmResult        `json:"warm,omitempty"`
	Sequence   *SequenceResult    `json:"sequence,omitempty"`
	Web        *WebResult         `json:"web,omitempty"`
	Throughput *ThroughputResult  `json:"throughput,omitempty"`
	Cold       *ColdResult        `json:"cold,omitempty"`
	Burst      *BurstResult       `json:"burst,omitempty"`
	StepLoad   *StepLoadResult    `json:"stepload,omitempty"`
	Many       *ManyResult        `json:"many,omitempty"`
	Blackbox   *BlackboxResult    `json:"blackbox,omitempty"`
}

// scenarioFile is <out>/<scenario>.json.
type scenarioFile struct {
	Scenario string         `json:"scenario"`
	Machine  Machine        `json:"machine"`
	Config   map[string]any `json:"config"`
	Seconds  float64        `json:"seconds"`
	Result   any            `json:"result"`
}

func (r *report) add(name string, res any, took time.Duration) {
	if r.Seconds == nil {
		r.Seconds = map[string]float64{}
	}
	r.Seconds[name] = took.Seconds()
	switch v := res.(type) {
	case *WarmResult:
		r.Warm = v
	case *SequenceResult:
		r.Sequence = v
	case *WebResult:
		r.Web = v
	case *ThroughputResult:
		r.Throughput = v
	case *ColdResult:
		r.Cold = v
	case *BurstResult:
		r.Burst = v
	case *StepLoadResult:
		r.StepLoad = v
	case *ManyResult:
		r.Many = v
	case *BlackboxResult:
		r.Blackbox = v
	}
}

func (r *report) write(dir string) error {
	if err := writeJSON(filepath.Join(dir, "bench.json"), r); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(r.svg()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}

// ---------------------------------------------------------------------------
// Tables

func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string { return fmt.Sprintf("%.3f", v) }

// table renders rows as an aligned text table (md=false) or a Markdown table.
func table(w io.Writer, md bool, rows [][]string) {
	if md {
		for i, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(r)))
			}
		}
		fmt.Fprintln(w)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t\n", strings.Join(r, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func distRow(name string, d Dist) []string {
	return []string{name, fmt.Sprint(d.N), f3(d.P50), f3(d.P90), f3(d.P99), f3(d.Max), f3(d.Mean)}
}

var distHead = []string{"", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"}

func warmTable(w io.Writer, md bool, r *WarmResult) {
	table(w, md, [][]string{distHead,
		distRow("Eddy (API, blocking, result=true)", r.Eddy),
		distRow("floor: /run straight to a warm runtime", r.Floor),
		distRow("L_http: Go net/http loopback POST", r.HTTP),
	})
	fmt.Fprintf(w, "overhead p50 %s ms (%.1f L_http), p99 %s ms; Eddy ÷ floor p50 = %.1f; containers used %d; errors %d\n\n",
		f3(r.OverheadP50), r.OverheadLHTTP, f3(r.OverheadP99), r.RatioP50, r.Containers, r.Errors)
	if r.DockerdUsPerCall > 0 || r.DockerdUsPerCallFloor > 0 {
		fmt.Fprintf(w, "dockerd CPU per call: Eddy %.1f µs, floor %.1f µs\n\n", r.DockerdUsPerCall, r.DockerdUsPerCallFloor)
	}
}

func printWarm(w io.Writer, r *WarmResult) {
	fmt.Fprintln(w, "== warm latency: sequential blocking no-op invocations")
	warmTable(w, false, r)
}

func throughputTable(w io.Writer, md bool, r *ThroughputResult) {
	rows := [][]string{{"concurrency", "Eddy calls/s", "floor calls/s", "Eddy ÷ floor", "Eddy p50 ms", "Eddy p99 ms", "floor p50 ms", "floor p99 ms", "p99 ratio", "containers", "errors", "CPU µs/call: Eddy", "load gen (Eddy/floor)", "machine (Eddy/floor)", "machine busy % (Eddy/floor)"}}
	for _, l := range r.Levels {
		rows = append(rows, []string{
			fmt.Sprint(l.Concurrency), fmt.Sprintf("%.0f", l.Eddy.PerSecond), fmt.Sprintf("%.0f", l.Floor.PerSecond), f3(l.RatioTput),
			f3(l.Eddy.Latency.P50), f3(l.Eddy.Latency.P99), f3(l.Floor.Latency.P50), f3(l.Floor.Latency.P99), f2(l.RatioP99),
			fmt.Sprint(l.Eddy.Containers), fmt.Sprint(l.Eddy.Errors + l.Floor.Errors),
			cpuPerCall(l.EddyCPUPerCall), fmt.Sprintf("%.0f/%.0f", l.LoadGenCPUPerCallEddy, l.LoadGenCPUPerCallFloor),
			fmt.Sprintf("%.0f/%.0f", l.MachineCPUPerCallEddy, l.MachineCPUPerCallFloor), fmt.Sprintf("%.0f/%.0f", l.MachineBusyEddy, l.MachineBusyFloor),
		})
	}
	table(w, md, rows)
}

// cpuPerCall prints Eddy's CPU per call, or "-" when it was not measured
// (bench targeting an Eddy whose pid it was not told).
func cpuPerCall(us float64) string {
	if us == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", us)
}

func printThroughput(w io.Writer, r *ThroughputResult) {
	fmt.Fprintln(w, "== throughput: blocking no-op invocations at fixed client concurrency (floor: direct /run on as many warm runtimes)")
	throughputTable(w, false, r)
}

func coldTable(w io.Writer, md bool, r *ColdResult) {
	table(w, md, [][]string{distHead,
		distRow("Eddy total (client)", r.Eddy.Total),
		distRow("  queued (incl. create)", r.Eddy.Queued),
		distRow("  create", r.Eddy.Create),
		distRow("  init", r.Eddy.Init),
		distRow("  run", r.Eddy.Run),
		distRow("  other (API, bus, answer)", r.Eddy.Other),
		distRow("floor total", r.Floor.Total),
		distRow("  create", r.Floor.Create),
		distRow("  init", r.Floor.Init),
		distRow("  run", r.Floor.Run),
	})
	fmt.Fprintf(w, "cold (%d MB, no stem cell): overhead p50 %s ms; Eddy ÷ floor p50 %.2f, p99 %.2f; starts %v\n",
		r.MemoryMB, f3(r.OverheadP50), r.RatioP50, r.RatioP99, r.Starts)
	if p := r.Prewarmed; p != nil {
		table(w, md, [][]string{distHead,
			distRow(fmt.Sprintf("Eddy prewarm total (%d MB)", p.MemoryMB), p.Total),
			distRow("  queued", p.Queued),
			distRow("  create", p.Create),
			distRow("  init", p.Init),
			distRow("  run", p.Run),
			distRow("  other (API, bus, answer)", p.Other),
		})
		fmt.Fprintf(w, "prewarm: overhead over the cold floor p50 %s ms (÷ %.2f); saves %s ms p50 over cold; starts %v; sent before the refill %d\n",
			f3(p.OverheadP50), p.RatioP50, f3(p.ColdSavedP50), p.Starts, p.StemCellWaits)
	}
	fmt.Fprintf(w, "prewarm: %s\n\n", r.Prewarm)
}

func printCold(w io.Writer, r *ColdResult) {
	fmt.Fprintln(w, "== cold start: first invocation of a fresh action (parts from the record's timings; ms resolution)")
	coldTable(w, false, r)
}

func burstTable(w io.Writer, md bool, r *BurstResult, withCold bool) {
	peak := fmt.Sprint(r.PeakContainers)
	if r.PeakContainers < 0 {
		peak = "unknown (no etcd)"
	}
	ideal := "ideal + cold floor p50"
	if !withCold {
		ideal = "ideal (cold scenario not run)"
	}
	table(w, md, [][]string{
		{"invocations", "accepted", "publish ms", "all done ms", "seen done ms", "ideal ms", ideal + " ms", "done ÷ that", "backend floor ms", "done ÷ floor", "peak containers", "distinct containers", "limit", "failed"},
		{fmt.Sprint(r.N), fmt.Sprint(r.Accepted), fmt.Sprintf("%.0f", r.PublishMs), fmt.Sprintf("%.0f", r.AllDoneMs), fmt.Sprintf("%.0f", r.ObservedMs),
			fmt.Sprintf("%.0f", r.IdealMs), fmt.Sprintf("%.0f", r.IdealColdMs), f2(r.Ratio), fmt.Sprintf("%.0f", r.FloorMs), f2(r.RatioFloor), peak, fmt.Sprint(r.DistinctContainers),
			fmt.Sprint(r.ContainerLimit), fmt.Sprint(r.Failed)},
	})
	fmt.Fprintf(w, "backend floor = %.0f ms to create, /init and first-/run %d runtimes at once without Eddy, + the remaining rounds of %d ms\n\n",
		r.FloorReadyMs, r.DistinctContainers, r.SleepMs)
}

func printBurst(w io.Writer, r *BurstResult, withCold bool) {
	fmt.Fprintf(w, "== burst: %d non-blocking invocations of a fresh %d ms action, published at once\n", r.N, r.SleepMs)
	burstTable(w, false, r, withCold)
}

func manyTable(w io.Writer, md bool, r *ManyResult) {
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	table(w, md, [][]string{
		{"actions", "invocations", "errors", "queues", "create s", "invoke s", "RSS before MiB", "RSS after MiB", "RSS per queue KiB", "Go heap per queue KiB", "idle CPU before %", "idle CPU after %", "CPU per 1000 queues %"},
		{fmt.Sprint(r.Actions), fmt.Sprint(r.Invocations), fmt.Sprint(r.Errors), fmt.Sprint(r.Queues), f2(r.CreateSeconds), f2(r.InvokeSeconds),
			mib(r.RSSBeforeBytes), mib(r.RSSAfterBytes), fmt.Sprintf("%.1f", r.RSSPerQueueBytes/1024), fmt.Sprintf("%.1f", r.GoHeapPerQueueBytes/1024),
			f2(r.IdleCPUBefore), f2(r.IdleCPUAfter), f2(r.CPUPer1000Queues)},
	})
	fmt.Fprintf(w, "containers alive while idle CPU was measured: before %d, after %d (window %.0f s); Go heap: %s\n",
		r.ContainersBefore, r.ContainersAfter, r.IdleWindowSeconds, r.GoHeap)
	fmt.Fprintf(w, "%d warm containers parked on their long polls: idle CPU %s%% over %.0f s, %s%% of a core per 100 parked containers\n",
		r.ParkedContainers, f2(r.IdleCPUParked), r.ParkedWindowSeconds, f2(r.CPUPer100Parked))
	if r.ParkRounds > 0 && !r.ParkWarm {
		fmt.Fprintf(w, "(after %d rounds the last was still not all warm: creating the containers takes longer than the container idle timeout, so fewer were parked than asked; raise --container-idle-timeout)\n", r.ParkRounds)
	}
	fmt.Fprintln(w)
}

func printMany(w io.Writer, r *ManyResult) {
	fmt.Fprintf(w, "== many actions: %d actions × %d invocations; the Eddy process (one process: controller, scheduler, invoker, etcd)\n", r.Actions, r.CallsPerAction)
	manyTable(w, false, r)
}

// markdown is report.md: the machine, the configuration and every table.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# eddy bench — %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d cores, %.1f GiB, Linux %s, %s. Backend **%s**", m.CPUModel, m.Cores, float64(m.MemoryBytes)/(1<<30), m.Kernel, m.GoVersion, m.Backend)
	if m.Docker != "" {
		fmt.Fprintf(&b, " (Docker %s)", m.Docker)
	}
	fmt.Fprintf(&b, ", kind %s. Commit %s (%s).\n\n", m.Kind, m.Commit, m.Eddy)
	if cmd, ok := r.Config["command"].(string); ok {
		fmt.Fprintf(&b, "Command: `%s`\n\n", cmd)
	}
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		if k != "command" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, fmt.Sprintf("%s=%v", k, r.Config[k]))
	}
	fmt.Fprintf(&b, "Configuration: %s\n\n", strings.Join(kv, ", "))
	if r.Warm != nil {
		b.WriteString("## Warm latency\n\n")
		warmTable(&b, true, r.Warm)
	}
	if r.Sequence != nil {
		b.WriteString("## Sequence step\n\n")
		sequenceTable(&b, true, r.Sequence)
	}
	if r.Web != nil {
		b.WriteString("## Web actions and API routes\n\n")
		webTable(&b, true, r.Web)
	}
	if r.Throughput != nil {
		b.WriteString("## Throughput\n\n")
		throughputTable(&b, true, r.Throughput)
	}
	if r.Cold != nil {
		b.WriteString("## Cold start\n\n")
		coldTable(&b, true, r.Cold)
	}
	if r.Burst != nil {
		b.WriteString("## Burst\n\n")
		burstTable(&b, true, r.Burst, r.Cold != nil)
	}
	if r.StepLoad != nil {
		b.WriteString("## Step load\n\n")
		stepLoadTable(&b, true, r.StepLoad)
	}
	if r.Many != nil {
		b.WriteString("## Many actions\n\n")
		manyTable(&b, true, r.Many)
	}
	if r.Blackbox != nil {
		b.WriteString("## Blackbox (OpenWhisk-style actionloop image)\n\n```\n")
		kind, _ := r.Config["kind"].(string)
		printBlackbox(&b, r.Blackbox, kind)
		b.WriteString("```\n\n")
	}
	b.WriteString("![latency and throughput against the floor](chart.svg)\n")
	return b.String()
}

// ---------------------------------------------------------------------------
// Chart

// svg draws warm latency percentiles, throughput per concurrency and cold
// start, each Eddy against its floor, as grouped bars.
func (r *report) svg() string {
	const W, H = 1200.0, 460.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	m := r.Machine
	fmt.Fprintf(&b, `<text x="20" y="24" font-size="15" font-weight="bold">eddy bench: Eddy against its floor, same run — %s, %d cores, backend %s, %s</text>`+"\n",
		esc(m.CPUModel), m.Cores, esc(m.Backend), esc(m.Kind))
	series := []string{"Eddy", "floor"}
	colors := []string{"#d95f02", "#1b9e77"}
	legend := func(x, y float64) {
		for i, s := range series {
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", x+float64(i)*70, y, colors[i], x+float64(i)*70+16, y+10, s)
		}
	}
	legend(W-170, 12)
	pw := (W - 80) / 3
	if r.Warm != nil {
		w := r.Warm
		barPanel(&b, 30, 60, pw, H-110, "warm latency (ms, sequential)", colors, []group{
			{"p50", []float64{w.Eddy.P50, w.Floor.P50}, ""},
			{"p90", []float64{w.Eddy.P90, w.Floor.P90}, ""},
			{"p99", []float64{w.Eddy.P99, w.Floor.P99}, ""},
		}, "%.2f")
	} else {
		emptyPanel(&b, 30, 60, "warm latency: not run")
	}
	if r.Throughput != nil {
		var gs []group
		for _, l := range r.Throughput.Levels {
			gs = append(gs, group{fmt.Sprintf("c=%d", l.Concurrency), []float64{l.Eddy.PerSecond, l.Floor.PerSecond}, fmt.Sprintf("%.0f%%", 100*l.RatioTput)})
		}
		barPanel(&b, 50+pw, 60, pw, H-110, "throughput (calls/s; Eddy as % of floor)", colors, gs, "%.0f")
	} else {
		emptyPanel(&b, 50+pw, 60, "throughput: not run")
	}
	if r.Cold != nil {
		c := r.Cold
		gs := []group{
			{"cold p50", []float64{c.Eddy.Total.P50, c.Floor.Total.P50}, ""},
			{"cold p99", []float64{c.Eddy.Total.P99, c.Floor.Total.P99}, ""},
		}
		if p := c.Prewarmed; p != nil {
			gs = append(gs,
				group{"prewarm p50", []float64{p.Total.P50, c.Floor.Total.P50}, ""},
				group{"prewarm p99", []float64{p.Total.P99, c.Floor.Total.P99}, ""})
		}
		barPanel(&b, 70+2*pw, 60, pw, H-110, "cold start (ms; floor: create + init + run)", colors, gs, "%.0f")
	} else {
		emptyPanel(&b, 70+2*pw, 60, "cold start: not run")
	}
	b.WriteString("</svg>\n")
	return b.String()
}

type group struct {
	label  string
	values []float64
	note   string
}

func emptyPanel(b *strings.Builder, x, y float64, title string) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", x, y, esc(title))
}

// barPanel draws one panel of grouped bars with a linear axis from 0.
func barPanel(b *strings.Builder, x, y, w, h float64, title string, colors []string, gs []group, valFmt string) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", x, y, esc(title))
	top, bottom := y+30, y+h
	left := x + 50
	width := w - 60
	maxV := 0.0
	for _, g := range gs {
		for _, v := range g.values {
			maxV = max(maxV, v)
		}
	}
	if maxV <= 0 {
		maxV = 1
	}
	maxV = niceCeil(maxV)
	// axis and grid
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		yy := bottom - (bottom-top)*float64(i)/4
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, left, yy, left+width, yy)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", left-4, yy+4, trimNum(v))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, bottom, left+width, bottom)
	if len(gs) == 0 {
		return
	}
	gw := width / float64(len(gs))
	n := float64(len(gs[0].values))
	bw := gw * 0.8 / n
	for gi, g := range gs {
		gx := left + gw*float64(gi) + gw*0.1
		for si, v := range g.values {
			bh := (bottom - top) * v / maxV
			bx := gx + bw*float64(si)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, bx, bottom-bh, bw-2, bh, colors[si%len(colors)])
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", bx+bw/2-1, bottom-bh-3, fmt.Sprintf(valFmt, v))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx+gw*0.4, bottom+16, esc(g.label))
		if g.note != "" {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#d95f02">%s</text>`+"\n", gx+gw*0.4, bottom+32, esc(g.note))
		}
	}
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimNum(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" {
		return "0"
	}
	return s
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
