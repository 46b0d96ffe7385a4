package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// ranBy is what the benchmark actions return: which container ran them.
type ranBy struct {
	Pid  int    `json:"pid"`
	Host string `json:"host"`
}

func (r ranBy) String() string { return r.Host + "/" + strconv.Itoa(r.Pid) }

// createAction PUTs an action of the benchmark's kind.
func (e *env) createAction(ctx context.Context, name, code string) error {
	return e.createActionMem(ctx, name, code, e.cfg.memoryMB)
}

// createActionMem is createAction with another memory limit.
func (e *env) createActionMem(ctx context.Context, name, code string, mem int64) error {
	timeout := int64(60000)
	_, err := e.api.PutAction(ctx, name, &client.ActionPut{
		Exec:   &client.ExecPut{Kind: e.cfg.kind, Code: &code},
		Limits: &client.LimitsPut{Memory: &mem, Timeout: &timeout},
	}, true)
	if err != nil {
		return fmt.Errorf("creating action %s: %w", name, err)
	}
	return nil
}

// invoke does one blocking invocation with result=true and returns which
// container ran it.
func (e *env) invoke(ctx context.Context, name string) (string, error) {
	inv, err := e.api.Invoke(ctx, name, nil, client.InvokeOptions{Blocking: true, Result: true})
	if err != nil {
		return "", err
	}
	if inv.Status != http.StatusOK {
		return "", fmt.Errorf("invoke %s: status %d", name, inv.Status)
	}
	var r ranBy
	if err := json.Unmarshal(inv.Body, &r); err != nil || r.Pid == 0 {
		return "", fmt.Errorf("invoke %s: unexpected result %.200s", name, inv.Body)
	}
	return r.String(), nil
}

// invokeRequest is invoke's request as the load generator sends it: the
// API's address, its TLS config (nil for http) and the bytes of the
// request the API client builds for a blocking invocation of name with
// result=true and no parameters (its authentication included).
func (e *env) invokeRequest(name string) (addr string, tlsCfg *tls.Config, req []byte, err error) {
	hr, err := e.api.HTTPRequest(context.Background(), e.api.InvokeRequest(name, nil, client.InvokeOptions{Blocking: true, Result: true}))
	if err != nil {
		return "", nil, nil, err
	}
	u := hr.URL
	addr = u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		tlsCfg = &tls.Config{ServerName: u.Hostname()}
	}
	var buf bytes.Buffer
	if err := hr.Write(&buf); err != nil {
		return "", nil, nil, err
	}
	return addr, tlsCfg, buf.Bytes(), nil
}

// ---------------------------------------------------------------------------
// warm

// WarmResult is the warm-latency scenario.
type WarmResult struct {
	Action string `json:"action"`
	// Eddy: sequential blocking invocations through the API (result=true).
	Eddy Dist `json:"eddy"`
	// Floor: the same /run POSTed straight to a warm runtime (D_warm).
	Floor Dist `json:"floor"`
	// HTTP: a serial keep-alive POST to a Go net/http server on loopback (L_http).
	HTTP          Dist    `json:"http"`
	OverheadP50   float64 `json:"overheadP50Ms"` // Eddy p50 − floor p50
	OverheadP99   float64 `json:"overheadP99Ms"` // Eddy p99 − floor p99
	OverheadLHTTP float64 `json:"overheadP50InLHTTP"`
	RatioP50      float64 `json:"ratioP50"` // Eddy p50 ÷ floor p50
	Containers    int     `json:"containers"`
	Errors        int     `json:"errors"`
	// DockerdUsPerCall is the Docker daemon's CPU per call (µs), for Eddy's
	// calls and the floor's (Docker backend only; 0 when not measured).
	DockerdUsPerCall      float64 `json:"dockerdUsPerCall,omitempty"`
	DockerdUsPerCallFloor float64 `json:"dockerdUsPerCallFloor,omitempty"`
}

func (e *env) warm(ctx context.Context) (*WarmResult, error) {
	name := "bench-warm"
	code := e.code.noop
	if err := e.createAction(ctx, name, code); err != nil {
		return nil, err
	}
	res := &WarmResult{Action: name}
	// The load generator's client, the same for Eddy and the floor (see
	// h1Conn): one keep-alive connection, the request built once.
	addr, tlsCfg, req, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	conn := newH1Conn(ctx, addr, tlsCfg)
	defer conn.close()
	invoke := func() ([]byte, error) {
		status, body, err := conn.do(req)
		if err := checkRanBy("invoke "+name, status, body, err); err != nil {
			return nil, err
		}
		return body, nil
	}
	ids := map[string]bool{}
	for i := 0; i < e.cfg.warmup; i++ {
		if _, err := invoke(); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	lat := make([]time.Duration, 0, e.cfg.warmN)
	dpid := 0
	if e.cfg.backend == "docker" {
		dpid = dockerdPid()
	}
	dm := startDockerd(dpid)
	for i := 0; i < e.cfg.warmN; i++ {
		t := time.Now()
		id, err := invoke()
		d := time.Since(t)
		if err != nil {
			res.Errors++
			if res.Errors > e.cfg.warmN/100+5 {
				return nil, fmt.Errorf("too many errors, the last: %w", err)
			}
			continue
		}
		if !ids[string(id)] {
			ids[string(id)] = true
		}
		lat = append(lat, d)
	}
	res.Eddy = dist(lat)
	res.DockerdUsPerCall = dm.perCall(e.cfg.warmN)
	res.Containers = len(ids)

	// The floor: one warm runtime, the same code, /run straight to it.
	d, _, err := e.floor.start(ctx, name, code)
	if err != nil {
		return nil, err
	}
	defer d.remove()
	f := newFloorConn(ctx, d)
	defer f.conn.close()
	f.prepare(time.Now().Add(time.Hour)) // __OW_DEADLINE: past the run's end
	for i := 0; i < e.cfg.warmup; i++ {
		if _, err := f.run(); err != nil {
			return nil, err
		}
	}
	lat = lat[:0]
	dm = startDockerd(dpid)
	for i := 0; i < e.cfg.warmN; i++ {
		t := time.Now()
		if _, err := f.run(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t))
	}
	res.Floor = dist(lat)
	res.DockerdUsPerCallFloor = dm.perCall(e.cfg.warmN)

	h, err := loopbackHTTP(ctx, e.cfg.warmup, e.cfg.warmN)
	if err != nil {
		return nil, err
	}
	res.HTTP = h
	res.OverheadP50 = res.Eddy.P50 - res.Floor.P50
	res.OverheadP99 = res.Eddy.P99 - res.Floor.P99
	e.warmOverP50 = res.OverheadP50
	res.OverheadLHTTP = ratio(res.OverheadP50, res.HTTP.P50)
	res.RatioP50 = ratio(res.Eddy.P50, res.Floor.P50)
	printWarm(e.out, res)
	return res, nil
}

// loopbackHTTP measures L_http: serial keep-alive POSTs of a small JSON
// body to a Go net/http server in this process, on loopback.
func loopbackHTTP(ctx context.Context, warmup, n int) (Dist, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Dist{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := []byte(`{"value":{},"namespace":"guest","action_name":"/guest/bench-warm","activation_id":"0000000000000000000000000000000","deadline":"1700000000000"}`)
	url := "http://" + ln.Addr().String() + "/run"
	one := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	for i := 0; i < warmup; i++ {
		if err := one(); err != nil {
			return Dist{}, err
		}
	}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := one(); err != nil {
			return Dist{}, err
		}
		lat = append(lat, time.Since(t))
	}
	return dist(lat), nil
}

// ---------------------------------------------------------------------------
// throughput

// Load is one fixed-time run at a fixed client concurrency.
type Load struct {
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"perSecond"`
	Latency    Dist    `json:"latency"`
	Containers int     `json:"containers"` // distinct containers (Eddy) or runtimes (floor) that served the calls
	LastError  string  `json:"lastError,omitempty"`
}

// Level is one concurrency of the throughput scenario.
type Level struct {
	Concurrency int     `json:"concurrency"`
	Eddy        Load    `json:"eddy"`
	Floor       Load    `json:"floor"`
	RatioTput   float64 `json:"ratioThroughput"` // Eddy calls/s ÷ floor calls/s
	RatioP99    float64 `json:"ratioP99"`        // Eddy p99 ÷ floor p99
	WarmupSec   float64 `json:"warmupSeconds"`   // time Eddy took to stop adding containers before measuring
	// CPU per call, in µs, while Eddy and while the floor were measured:
	// the Eddy process (controller, scheduler and invoker, not the
	// runtimes; 0 when bench does not know Eddy's pid), the load generator
	// (bench itself) and the whole machine (every busy core: those two, the
	// runtimes, anything else). Eddy's own figure is the platform's cost
	// that carries over to a machine where the runtimes and the load
	// generator do not share its cores; on N cores no level can pass
	// N s ÷ the machine's figure.
	EddyCPUPerCall         float64 `json:"eddyCpuPerCallUs,omitempty"`
	LoadGenCPUPerCallEddy  float64 `json:"loadGenCpuPerCallEddyUs"`
	LoadGenCPUPerCallFloor float64 `json:"loadGenCpuPerCallFloorUs"`
	MachineCPUPerCallEddy  float64 `json:"machineCpuPerCallEddyUs"`
	MachineCPUPerCallFloor float64 `json:"machineCpuPerCallFloorUs"`
	// MachineBusy is the share of all the machine's cores that was busy
	// while Eddy and while the floor were measured, in %: near 100 means
	// the level is bound by CPU, not by waiting.
	MachineBusyEddy  float64 `json:"machineBusyEddyPct"`
	MachineBusyFloor float64 `json:"machineBusyFloorPct"`
}

// ThroughputResult is the throughput scenario.
type ThroughputResult struct {
	Action string  `json:"action"`
	Levels []Level `json:"levels"`
}

// load runs c workers for d, each calling call(ctx, w) back to back (w is
// the worker's number, 0 to c-1), and summarises it. A call returns who
// served it, for the count of containers; the bytes may be reused after
// the worker's next call.
func load(ctx context.Context, c int, d time.Duration, call func(ctx context.Context, w int) ([]byte, error)) Load {
	type part struct {
		lat    []time.Duration
		ids    map[string]bool
		errs   int
		lastEr error
	}
	parts := make([]part, c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int, p *part) {
			defer wg.Done()
			p.ids = map[string]bool{}
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(deadline) {
					return
				}
				id, err := call(ctx, w)
				if err != nil {
					if ctx.Err() == nil {
						p.errs++
						p.lastEr = err
						if p.errs > 100 {
							return
						}
					}
					continue
				}
				p.lat = append(p.lat, time.Since(t))
				if len(id) > 0 && !p.ids[string(id)] {
					p.ids[string(id)] = true
				}
			}
		}(w, &parts[w])
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	ids := map[string]bool{}
	out := Load{Seconds: elapsed.Seconds()}
	for _, p := range parts {
		all = append(all, p.lat...)
		for id := range p.ids {
			ids[id] = true
		}
		out.Errors += p.errs
		if p.lastEr != nil {
			out.LastError = p.lastEr.Error()
		}
	}
	out.Calls = len(all)
	out.PerSecond = float64(out.Calls) / elapsed.Seconds()
	out.Latency = dist(all)
	out.Containers = len(ids)
	return out
}

func (e *env) throughput(ctx context.Context) (*ThroughputResult, error) {
	name := "bench-tput"
	code := e.code.noop
	if err := e.createAction(ctx, name, code); err != nil {
		return nil, err
	}
	res := &ThroughputResult{Action: name}
	// One keep-alive connection per worker, the same request bytes for
	// every call (see h1Conn).
	addr, tlsCfg, req, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	conns := make([]*h1Conn, slices.Max(e.cfg.levels))
	for i := range conns {
		conns[i] = newH1Conn(ctx, addr, tlsCfg)
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	call := func(_ context.Context, w int) ([]byte, error) {
		status, body, err := conns[w].do(req)
		if err := checkRanBy("invoke "+name, status, body, err); err != nil {
			return nil, err
		}
		return body, nil
	}
	maxWarm := 30 * time.Second
	if e.cfg.quick {
		maxWarm = 10 * time.Second
	}
	// Eddy at every level first, ascending, so containers stay warm from
	// one level to the next; then the floors.
	for _, c := range e.cfg.levels {
		// Warm up until Eddy stops adding containers: a chunk that uses
		// no more containers than the busiest before it ends the warm-up.
		most := 0
		began := time.Now()
		for {
			w := load(ctx, c, e.cfg.tputWarm, call)
			if w.Calls == 0 {
				return nil, fmt.Errorf("concurrency %d: no call succeeded while warming up: %s", c, w.LastError)
			}
			grew := w.Containers > most
			most = max(most, w.Containers)
			if (!grew && time.Since(began) > e.cfg.tputWarm) || time.Since(began) > maxWarm {
				break
			}
		}
		var l Load
		cpu := e.cpuOver(func() { l = load(ctx, c, e.cfg.tputDur, call) })
		if l.Calls == 0 {
			return nil, fmt.Errorf("concurrency %d: no call succeeded: %s", c, l.LastError)
		}
		res.Levels = append(res.Levels, Level{
			Concurrency: c, Eddy: l, WarmupSec: time.Since(began).Seconds() - l.Seconds,
			EddyCPUPerCall: perCall(cpu.eddy, l.Calls), LoadGenCPUPerCallEddy: perCall(cpu.loadGen, l.Calls),
			MachineCPUPerCallEddy: perCall(cpu.machine, l.Calls), MachineBusyEddy: cpu.busyPct,
		})
	}

	// The floor: as many warm runtimes as Eddy used at that level, handed
	// out by an ideal pool (a free runtime at once, if there is one), each
	// with a keep-alive connection of the load generator's (as the
	// invoker keeps one per container).
	var runtimes []*floorConn
	defer func() {
		for _, f := range runtimes {
			f.conn.close()
			f.d.remove()
		}
	}()
	for i := range res.Levels {
		lv := &res.Levels[i]
		n := min(max(lv.Eddy.Containers, 1), lv.Concurrency)
		for len(runtimes) < n {
			d, _, err := e.floor.start(ctx, name, code)
			if err != nil {
				return nil, err
			}
			runtimes = append(runtimes, newFloorConn(ctx, d))
		}
		deadline := time.Now().Add(e.cfg.tputWarm + e.cfg.tputDur + time.Minute)
		pool := make(chan *floorConn, n)
		for _, f := range runtimes[:n] {
			f.prepare(deadline)
			pool <- f
		}
		call := func(ctx context.Context, _ int) ([]byte, error) {
			var f *floorConn
			select {
			case f = <-pool:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { pool <- f }()
			return f.run()
		}
		_ = load(ctx, lv.Concurrency, e.cfg.tputWarm, call)
		cpu := e.cpuOver(func() { lv.Floor = load(ctx, lv.Concurrency, e.cfg.tputDur, call) })
		lv.LoadGenCPUPerCallFloor = perCall(cpu.loadGen, lv.Floor.Calls)
		lv.MachineCPUPerCallFloor = perCall(cpu.machine, lv.Floor.Calls)
		lv.MachineBusyFloor = cpu.busyPct
		lv.RatioTput = ratio(lv.Eddy.PerSecond, lv.Floor.PerSecond)
		lv.RatioP99 = ratio(lv.Eddy.Latency.P99, lv.Floor.Latency.P99)
	}
	printThroughput(e.out, res)
	return res, nil
}

// ---------------------------------------------------------------------------
// cold

// ColdResult is the cold-start scenario.
type ColdResult struct {
	N int `json:"n"`
	// Eddy: the client's time for the first (blocking) invocation of a fresh
	// action, and its parts from the record's timings annotation.
	Eddy struct {
		Total  Dist `json:"total"`
		Queued Dist `json:"queued"` // publication until a container took it (includes create)
		Create Dist `json:"create"`
		Init   Dist `json:"init"`
		Run    Dist `json:"run"`
		// Other: total − queued − init − run: API, bus, completion, answer.
		Other Dist `json:"other"`
	} `json:"eddy"`
	// Floor: backend create, /init and the first /run, timed without Eddy.
	Floor struct {
		Total  Dist `json:"total"`
		Create Dist `json:"create"`
		Init   Dist `json:"init"`
		Run    Dist `json:"run"`
	} `json:"floor"`
	OverheadP50 float64        `json:"overheadP50Ms"` // Eddy total p50 − floor total p50
	RatioP50    float64        `json:"ratioP50"`
	RatioP99    float64        `json:"ratioP99"`
	Starts      map[string]int `json:"starts"` // the records' timings.start
	MemoryMB    int64          `json:"memoryMB"`
	// Prewarm says whether and how the prewarm series below was measured.
	Prewarm string `json:"prewarm"`
	// Prewarmed: the same with a stem cell waiting (fresh actions of the
	// same kind at the memory of the invoker's stem cells); nil when no
	// invoker keeps stem cells of the kind.
	Prewarmed *StartSeries `json:"prewarmed,omitempty"`
}

// StartSeries is a series of first invocations of fresh actions.
type StartSeries struct {
	N        int   `json:"n"`
	MemoryMB int64 `json:"memoryMB"`
	Total    Dist  `json:"total"`
	Queued   Dist  `json:"queued"`
	Create   Dist  `json:"create"`
	Init     Dist  `json:"init"`
	Run      Dist  `json:"run"`
	Other    Dist  `json:"other"`
	// Starts counts the records' start annotation; StemCellWaits counts the
	// invocations sent before the pool had refilled (waited up to 10 s).
	Starts        map[string]int `json:"starts"`
	StemCellWaits int            `json:"stemCellWaits"`
	OverheadP50   float64        `json:"overheadP50Ms"`  // total p50 − cold floor total p50
	RatioP50      float64        `json:"ratioP50"`       // total p50 ÷ cold floor total p50
	ColdSavedP50  float64        `json:"coldSavedP50Ms"` // cold total p50 − this total p50
}

func (e *env) cold(ctx context.Context) (*ColdResult, error) {
	code := e.code.noop
	res := &ColdResult{N: e.cfg.coldN, MemoryMB: e.cfg.memoryMB}
	cold := &series{starts: map[string]int{}}
	var ft, fc, fi, fr []time.Duration
	pwMem, pwOK := e.stemCellMemory(ctx)
	var pw *series
	if pwOK {
		pw = &series{starts: map[string]int{}}
	}
	// Eddy cold, the floor and Eddy prewarm alternate, so all meet the same
	// background (the removal of earlier containers, other load on the
	// machine); the stem cell taken refills meanwhile.
	for i := 0; i < e.cfg.coldN; i++ {
		name := fmt.Sprintf("bench-cold-%s-%d", e.runID, i)
		if err := e.createAction(ctx, name, code); err != nil {
			return nil, err
		}
		if err := cold.invoke(ctx, e, name); err != nil {
			return nil, fmt.Errorf("cold invocation %d: %w", i, err)
		}

		fd, p, err := e.floor.start(ctx, fmt.Sprintf("bench-coldfloor-%d", i), code)
		if err != nil {
			return nil, err
		}
		fd.remove() // not timed
		ft, fc, fi, fr = append(ft, p.Total), append(fc, p.Create), append(fi, p.Init), append(fr, p.Run)

		if pw != nil {
			if !e.waitStemCell(ctx, pwMem, 10*time.Second) {
				pw.waits++
			}
			name := fmt.Sprintf("bench-prewarm-%s-%d", e.runID, i)
			if err := e.createActionMem(ctx, name, code, pwMem); err != nil {
				return nil, err
			}
			if err := pw.invoke(ctx, e, name); err != nil {
				return nil, fmt.Errorf("prewarm invocation %d: %w", i, err)
			}
		}
	}
	c := cold.result(e.cfg.memoryMB)
	res.Starts = c.Starts
	res.Eddy.Total, res.Eddy.Queued, res.Eddy.Create, res.Eddy.Init, res.Eddy.Run, res.Eddy.Other = c.Total, c.Queued, c.Create, c.Init, c.Run, c.Other
	res.Floor.Total, res.Floor.Create, res.Floor.Init, res.Floor.Run = dist(ft), dist(fc), dist(fi), dist(fr)
	res.OverheadP50 = res.Eddy.Total.P50 - res.Floor.Total.P50
	res.RatioP50 = ratio(res.Eddy.Total.P50, res.Floor.Total.P50)
	res.RatioP99 = ratio(res.Eddy.Total.P99, res.Floor.Total.P99)
	res.Prewarm = "not measured: no invoker keeps stem cells of " + e.cfg.kind + " at a memory other than the cold series'"
	if pw != nil {
		s := pw.result(pwMem)
		s.OverheadP50 = s.Total.P50 - res.Floor.Total.P50
		s.RatioP50 = ratio(s.Total.P50, res.Floor.Total.P50)
		s.ColdSavedP50 = res.Eddy.Total.P50 - s.Total.P50
		res.Prewarmed = s
		res.Prewarm = fmt.Sprintf("fresh %s actions of %d MB, an invoker keeping stem cells of that kind and memory (the cold series' %d MB has none)",
			e.cfg.kind, pwMem, e.cfg.memoryMB)
	}
	e.coldFloorP50 = time.Duration(res.Floor.Total.P50 * float64(time.Millisecond))
	printCold(e.out, res)
	return res, nil
}

// ---------------------------------------------------------------------------
// burst

// BurstResult is the burst scenario.
type BurstResult struct {
	Action    string  `json:"action"`
	N         int     `json:"n"`
	SleepMs   int64   `json:"sleepMs"`
	Accepted  int     `json:"accepted"`
	Rejected  int     `json:"rejected"`
	LastError string  `json:"lastError,omitempty"`
	PublishMs float64 `json:"publishMs"` // until every invocation was accepted
	// AllDoneMs: from the first invocation sent to the end of the last
	// activation (the records' end times).
	AllDoneMs float64 `json:"allDoneMs"`
	// ObservedMs: until the poll of the activation count saw them all.
	ObservedMs         float64 `json:"observedMs"`
	Completed          int     `json:"completed"`
	Failed             int     `json:"failed"` // records that are not a success
	DistinctContainers int     `json:"distinctContainers"`
	PeakContainers     int     `json:"peakContainers"` // from etcd, polled every 50 ms; -1 when etcd is unknown
	PeakCreating       int     `json:"peakCreating"`
	ContainerLimit     int     `json:"containerLimit"`
	// IdealMs = ceil(N / limit) × sleep: every container busy all the time,
	// created in no time. IdealColdMs adds one cold-start floor (p50).
	IdealMs     float64 `json:"idealMs"`
	IdealColdMs float64 `json:"idealColdMs"`
	Ratio       float64 `json:"ratio"` // AllDoneMs ÷ IdealColdMs
	// FloorMs is the backend's own bound for the same work: the time to
	// create, /init and first-/run as many runtimes as Eddy used, all at
	// once and without Eddy (FloorReadyMs), plus the remaining
	// ceil(N / containers) − 1 rounds of sleep.
	FloorReadyMs float64 `json:"floorReadyMs"`
	FloorMs      float64 `json:"floorMs"`
	RatioFloor   float64 `json:"ratioFloor"` // AllDoneMs ÷ FloorMs
}

func (e *env) burst(ctx context.Context) (*BurstResult, error) {
	name := "bench-burst-" + e.runID
	if err := e.createAction(ctx, name, e.code.sleep); err != nil {
		return nil, err
	}
	n := e.cfg.burstN
	res := &BurstResult{Action: name, N: n, SleepMs: e.cfg.burstSleep.Milliseconds(), PeakContainers: -1, PeakCreating: -1}
	res.ContainerLimit = e.limits.Containers
	if e.eddy != nil { // the invoker's memory is sized for 100 containers of this memory
		res.ContainerLimit = min(res.ContainerLimit, 100)
	}
	if res.ContainerLimit < 1 {
		res.ContainerLimit = 1
	}

	// Peak containers, from etcd.
	var peaks *containerPeaks
	if e.etcd != nil {
		peaks = e.watchContainers(ctx, whisk.FQN{Namespace: whisk.GuestNamespace, Name: name})
		defer peaks.stop()
	}

	// Publish all at once: 64 senders, released together.
	start := time.Now()
	sinceMs := start.UnixMilli() - 1
	jobs := make(chan int, n)
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	var accepted, rejected atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < min(64, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				inv, err := e.api.Invoke(ctx, name, nil, client.InvokeOptions{})
				if err != nil || inv.Status != http.StatusAccepted {
					rejected.Add(1)
					if err != nil {
						lastErr.Store(err.Error())
					}
					continue
				}
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	res.PublishMs = ms(time.Since(start))
	res.Accepted, res.Rejected = int(accepted.Load()), int(rejected.Load())
	if s, ok := lastErr.Load().(string); ok {
		res.LastError = s
	}
	if res.Accepted == 0 {
		return nil, fmt.Errorf("no invocation was accepted: %s", res.LastError)
	}

	// Wait until every accepted activation has a record, as long as
	// records keep coming: the run fails when none came for limit (a
	// stall), however long a busy machine takes for all of them.
	limit := 5 * time.Minute
	if e.cfg.quick {
		limit = 40 * time.Second
	}
	cnt, err := e.awaitRecords(ctx, name, sinceMs, res.Accepted, limit)
	if err != nil {
		return nil, err
	}
	if cnt < res.Accepted {
		return nil, fmt.Errorf("only %d of %d activations completed, none in the last %s", cnt, res.Accepted, limit)
	}
	res.ObservedMs = ms(time.Since(start))
	if peaks != nil {
		peaks.stop()
		res.PeakContainers, res.PeakCreating = int(peaks.peak.Load()), int(peaks.peakCreating.Load())
	}

	// Read the records: end times, who ran them, success.
	ids := map[string]bool{}
	var lastEnd int64
	err = e.eachRecord(ctx, name, sinceMs, func(r client.Activation) {
		res.Completed++
		lastEnd = max(lastEnd, r.End)
		if !r.Response.Success {
			res.Failed++
			return
		}
		var rb ranBy
		if json.Unmarshal(r.Response.Result, &rb) == nil && rb.Pid != 0 {
			ids[rb.String()] = true
		}
	})
	if err != nil {
		return nil, err
	}
	res.DistinctContainers = len(ids)
	res.AllDoneMs = float64(lastEnd - start.UnixMilli())
	rounds := math.Ceil(float64(res.Accepted) / float64(res.ContainerLimit))
	res.IdealMs = rounds * float64(res.SleepMs)
	res.IdealColdMs = res.IdealMs + ms(e.coldFloorP50)
	res.Ratio = ratio(res.AllDoneMs, res.IdealColdMs)

	// The floor: as many runtimes as Eddy used, created all at once, once
	// Eddy's containers are gone (their removal would slow the floor down).
	if k := res.DistinctContainers; k > 0 {
		e.waitNoContainers(ctx)
		ready, err := e.floorBurst(ctx, k)
		if err != nil {
			return nil, err
		}
		res.FloorReadyMs = ms(ready)
		res.FloorMs = res.FloorReadyMs + (math.Ceil(float64(res.Accepted)/float64(k))-1)*float64(res.SleepMs)
		res.RatioFloor = ratio(res.AllDoneMs, res.FloorMs)
	}
	printBurst(e.out, res, e.coldFloorP50 > 0)
	return res, nil
}

// floorBurst creates k runtimes of the burst action at once, without Eddy,
// and returns the time until every one has answered its first /run.
func (e *env) floorBurst(ctx context.Context, k int) (time.Duration, error) {
	code := e.code.sleep
	ds := make([]*direct, k)
	errs := make([]error, k)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[i], _, errs[i] = e.floor.start(ctx, fmt.Sprintf("bench-burstfloor-%d", i), code)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	var first error
	for i, d := range ds {
		if d != nil {
			go d.remove()
		}
		if errs[i] != nil && first == nil {
			first = errs[i]
		}
	}
	return took, first
}

func (e *env) countActivations(ctx context.Context, name string, sinceMs int64) (int, error) {
	resp, err := e.api.Do(ctx, client.Request{
		Method: http.MethodGet, Path: "/api/v1/namespaces/_/activations",
		Query: "name=" + name + "&count=true&since=" + strconv.FormatInt(sinceMs, 10),
	})
	if err != nil {
		return 0, fmt.Errorf("counting activations: %w", err)
	}
	var c struct {
		Activations int `json:"activations"`
	}
	return c.Activations, jsonUnmarshal(resp.Body, &c)
}

// ---------------------------------------------------------------------------
// many actions

// ManyResult is the many-actions scenario.
type ManyResult struct {
	Actions        int     `json:"actions"`
	CallsPerAction int     `json:"callsPerAction"`
	Invocations    int     `json:"invocations"`
	Errors         int     `json:"errors"`
	LastError      string  `json:"lastError,omitempty"`
	CreateSeconds  float64 `json:"createSeconds"`
	InvokeSeconds  float64 `json:"invokeSeconds"`
	// Queues is the number of the scenario's actions with a leader key in
	// etcd when measured (-1 when etcd is unknown).
	Queues int `json:"queues"`
	// Memory and CPU of the Eddy process (controller, scheduler, invoker and
	// embedded etcd in one), from /proc; 0 when its pid is unknown.
	RSSBeforeBytes   int64   `json:"rssBeforeBytes"`
	RSSAfterBytes    int64   `json:"rssAfterBytes"`
	RSSPerQueueBytes float64 `json:"rssPerQueueBytes"`
	// Go heap of the Eddy process (HeapAlloc after a forced GC, read from
	// its --debug-addr), next to RSS; GoHeap says how it was measured or
	// why it was not.
	GoHeap              string  `json:"goHeap"`
	GoHeapBeforeBytes   int64   `json:"goHeapBeforeBytes"`
	GoHeapAfterBytes    int64   `json:"goHeapAfterBytes"`
	GoHeapPerQueueBytes float64 `json:"goHeapPerQueueBytes"`
	// Idle CPU in % of one core over the idle window, before the actions
	// were created and after they were invoked (their queues idle).
	IdleCPUBefore     float64 `json:"idleCpuBeforePct"`
	IdleCPUAfter      float64 `json:"idleCpuAfterPct"`
	CPUPer1000Queues  float64 `json:"cpuPer1000QueuesPct"`
	ContainersBefore  int     `json:"containersBefore"` // alive during the idle windows (-1 unknown)
	ContainersAfter   int     `json:"containersAfter"`
	IdleWindowSeconds float64 `json:"idleWindowSeconds"`
	// The other half of G9: idle warm containers parked on their long
	// polls. After the idle windows, up to 100 of the actions (no more than
	// the namespace's container limit) are invoked in rounds (a cold one,
	// then warm ones that restart every container's idle timer), and a
	// second later the Eddy process's CPU is measured for half the container
	// idle timeout while their containers wait for work. ParkedContainers is the fewest seen
	// in etcd at the window's start and end (-1 when etcd is unknown);
	// CPUPer100Parked is (IdleCPUParked − IdleCPUAfter) per 100 of them.
	// ParkRounds is how many rounds were run before the window, and
	// ParkWarm whether the last was all warm: when creating the containers
	// takes longer than the idle timeout it is not, and fewer than asked
	// are parked (raise --container-idle-timeout).
	ParkedContainers    int     `json:"parkedContainers"`
	ParkedWindowSeconds float64 `json:"parkedWindowSeconds"`
	ParkRounds          int     `json:"parkRounds"`
	ParkWarm            bool    `json:"parkWarm"`
	IdleCPUParked       float64 `json:"idleCpuParkedPct"`
	CPUPer100Parked     float64 `json:"cpuPer100ParkedPct"`
}

func (e *env) many(ctx context.Context) (*ManyResult, error) {
	n, calls := e.cfg.manyN, e.cfg.manyCalls
	code := e.code.noop
	res := &ManyResult{Actions: n, CallsPerAction: calls, Queues: -1, IdleWindowSeconds: e.cfg.idleWindow.Seconds(),
		GoHeap: "HeapAlloc after a forced GC, from " + e.cfg.debug}
	if e.pid == 0 {
		res.GoHeap = "not measured: the pid of the targeted Eddy is unknown (--pid)"
	}
	heap := func() int64 {
		if e.cfg.debug == "" {
			res.GoHeap = "not measured: the targeted Eddy's --debug-addr is unknown (--debug-addr)"
			return 0
		}
		h, err := goHeap(ctx, e.cfg.debug)
		if err != nil {
			res.GoHeap = "not measured: " + err.Error()
		}
		return h
	}
	res.ContainersBefore = e.waitNoContainers(ctx)
	before, cpuBefore, err := e.idleCPU(ctx, e.cfg.idleWindow)
	if err != nil {
		return nil, err
	}
	res.RSSBeforeBytes, res.IdleCPUBefore = before.RSS, cpuBefore
	res.GoHeapBeforeBytes = heap()

	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-many-%s-%d", e.runID, i)
	}
	t := time.Now()
	if err := parallel(ctx, 8, n, func(i int) error { return e.createAction(ctx, names[i], code) }); err != nil {
		return nil, err
	}
	res.CreateSeconds = time.Since(t).Seconds()
	t = time.Now()
	var errs atomic.Int64
	var lastErr atomic.Value
	_ = parallel(ctx, 4, n, func(i int) error {
		for k := 0; k < calls; k++ {
			if _, err := e.invoke(ctx, names[i]); err != nil {
				errs.Add(1)
				lastErr.Store(err.Error())
			}
		}
		return nil
	})
	res.InvokeSeconds = time.Since(t).Seconds()
	res.Invocations, res.Errors = n*calls, int(errs.Load())
	if s, ok := lastErr.Load().(string); ok {
		res.LastError = s
	}
	if res.Errors > res.Invocations/10 {
		return nil, fmt.Errorf("%d of %d invocations failed, the last: %s", res.Errors, res.Invocations, res.LastError)
	}
	if e.etcd != nil {
		q := 0
		for _, name := range names {
			if _, ok, err := e.etcd.Leader(ctx, whisk.FQN{Namespace: whisk.GuestNamespace, Name: name}); err == nil && ok {
				q++
			}
		}
		res.Queues = q
	}
	res.ContainersAfter = e.waitNoContainers(ctx)
	after, cpuAfter, err := e.idleCPU(ctx, e.cfg.idleWindow)
	if err != nil {
		return nil, err
	}
	res.RSSAfterBytes, res.IdleCPUAfter = after.RSS, cpuAfter
	res.GoHeapAfterBytes = heap()
	if err := e.parked(ctx, res, names); err != nil {
		return nil, err
	}
	queues := float64(n)
	if res.Queues >= 0 {
		queues = float64(res.Queues)
	}
	if queues > 0 && e.pid != 0 {
		res.RSSPerQueueBytes = float64(res.RSSAfterBytes-res.RSSBeforeBytes) / queues
		res.CPUPer1000Queues = (res.IdleCPUAfter - res.IdleCPUBefore) / queues * 1000
	}
	if queues > 0 && res.GoHeapBeforeBytes > 0 && res.GoHeapAfterBytes > 0 {
		res.GoHeapPerQueueBytes = float64(res.GoHeapAfterBytes-res.GoHeapBeforeBytes) / queues
	}
	printMany(e.out, res)
	return res, nil
}

// parked measures the Eddy process's CPU while warm containers wait for
// work (see ManyResult.ParkedContainers).
func (e *env) parked(ctx context.Context, res *ManyResult, names []string) error {
	k := min(100, len(names))
	if e.limits.Containers > 0 {
		k = min(k, e.limits.Containers)
	}
	// The first round creates the containers; later rounds, warm, restart
	// every idle timer. Cold starts take a while: when a round of them
	// lasts longer than the idle timeout (100 python cold starts on 2 busy
	// cores take ~13 s), the containers it made first are removed before
	// the next round reaches them, and that round starts them cold again.
	// So rounds go on (3 at most) until one takes less than a fifth of the
	// idle timeout: then every container was warm and has most of its idle
	// timeout ahead. A moment later (a second, or a fifth of the idle
	// timeout if that is shorter), when the records and completions are
	// written, no removal falls in the window.
	for round := 1; round <= 3; round++ {
		began := time.Now()
		if err := parallel(ctx, 8, k, func(i int) error {
			_, err := e.invoke(ctx, names[i])
			return err
		}); err != nil {
			return fmt.Errorf("warming %d containers to park (round %d): %w", k, round, err)
		}
		res.ParkRounds = round
		if round >= 2 && time.Since(began) < e.cfg.idle/5 {
			res.ParkWarm = true
			break
		}
	}
	if !retry.Sleep(ctx, min(time.Second, e.cfg.idle/5)) {
		return ctx.Err()
	}
	count := func() int {
		if e.etcd == nil {
			return -1
		}
		c, _, err := e.etcd.CountNamespace(ctx, whisk.GuestNamespace)
		if err != nil {
			return -1
		}
		return c
	}
	window := e.cfg.idle / 2
	first := count()
	_, cpu, err := e.idleCPU(ctx, window)
	if err != nil {
		return err
	}
	res.ParkedContainers = min(first, count())
	res.ParkedWindowSeconds, res.IdleCPUParked = window.Seconds(), cpu
	if res.ParkedContainers > 0 && e.pid != 0 {
		res.CPUPer100Parked = (res.IdleCPUParked - res.IdleCPUAfter) / float64(res.ParkedContainers) * 100
	}
	return nil
}

// waitNoContainers waits (up to the idle timeout and 15 s) until etcd
// holds no container of the guest namespace, and returns how many are left
// (-1 when etcd is unknown: it then waits the idle timeout and a second).
func (e *env) waitNoContainers(ctx context.Context) int {
	if e.etcd == nil {
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.idle + time.Second):
		}
		return -1
	}
	deadline := time.Now().Add(e.cfg.idle + 15*time.Second)
	for {
		c, _, err := e.etcd.CountNamespace(ctx, whisk.GuestNamespace)
		if err == nil && c == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return c
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cpuSplit is where the CPU time went while fn ran (see cpuOver).
type cpuSplit struct {
	eddy    time.Duration // the Eddy process; 0 when its pid is unknown or unreadable
	loadGen time.Duration // this process: the load generator
	machine time.Duration // every core of the machine, busy
	busyPct float64       // machine busy in % of all its cores
}

// perCall returns d per call in µs (0 for no calls).
func perCall(d time.Duration, calls int) float64 {
	if calls == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(calls)
}

// cpuOver runs fn and returns the CPU time the Eddy process, this process
// and the whole machine spent meanwhile.
func (e *env) cpuOver(fn func()) cpuSplit {
	var out cpuSplit
	var a, b procStat
	var errA, errB error
	if e.pid != 0 {
		a, errA = readProc(e.pid)
	}
	sa, errSA := readProc(os.Getpid())
	ma, errMA := readMachineCPU()
	fn()
	mb, errMB := readMachineCPU()
	sb, errSB := readProc(os.Getpid())
	if e.pid != 0 {
		b, errB = readProc(e.pid)
	}
	if e.pid != 0 && errA == nil && errB == nil {
		out.eddy = b.CPU - a.CPU
	}
	if errSA == nil && errSB == nil {
		out.loadGen = sb.CPU - sa.CPU
	}
	if errMA == nil && errMB == nil && mb.total > ma.total {
		out.busyPct = 100 * float64(mb.busy-ma.busy) / float64(mb.total-ma.total)
		out.machine = time.Duration(mb.busy-ma.busy) * time.Second / clockTick
	}
	return out
}

// idleCPU reads the Eddy process's RSS and its CPU use over a window of
// d, in % of one core.
func (e *env) idleCPU(ctx context.Context, d time.Duration) (procStat, float64, error) {
	if e.pid == 0 {
		return procStat{}, 0, nil
	}
	a, err := readProc(e.pid)
	if err != nil {
		return a, 0, fmt.Errorf("reading the eddy process: %w", err)
	}
	t := time.Now()
	select {
	case <-ctx.Done():
		return a, 0, ctx.Err()
	case <-time.After(d):
	}
	b, err := readProc(e.pid)
	if err != nil {
		return a, 0, fmt.Errorf("reading the eddy process: %w", err)
	}
	return b, 100 * float64(b.CPU-a.CPU) / float64(time.Since(t)), nil
}

// parallel runs fn(0..n-1) on w workers and returns the first error.
func parallel(ctx context.Context, w, n int, fn func(i int) error) error {
	jobs := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// ---------------------------------------------------------------------------
// prewarm (part of cold)

// prewarmMemory is the memory of the stem cells the bench's own Eddy keeps
// and of the prewarm series' actions: one MB off the benchmark's memory, so
// that the cold series (at the benchmark's memory) finds no stem cell.
func prewarmMemory(cfg config) int64 {
	if cfg.memoryMB+1 <= whisk.DefaultSystemLimits().MaxMemory {
		return cfg.memoryMB + 1
	}
	return cfg.memoryMB - 1
}

// stemCellMemory finds the memory of stem cells of the benchmark's kind
// that some invoker keeps, other than the cold series' memory.
func (e *env) stemCellMemory(ctx context.Context) (int64, bool) {
	want := int64(0)
	if e.eddy != nil {
		want = prewarmMemory(e.cfg)
	}
	deadline := time.Now().Add(30 * time.Second) // the first stem cell may still be starting (a Docker image)
	for {
		st, err := e.api.Status(ctx)
		if err != nil {
			e.log.Warn("reading the status for stem cells", "err", err)
			return 0, false
		}
		for _, inv := range st.Invokers {
			for _, c := range inv.StemCells {
				if c.Kind == e.cfg.kind && c.MemoryMB != e.cfg.memoryMB && (want == 0 || c.MemoryMB == want) {
					return c.MemoryMB, true
				}
			}
		}
		if want == 0 || time.Now().After(deadline) || !retry.Sleep(ctx, 100*time.Millisecond) {
			return 0, false
		}
	}
}

// waitStemCell waits up to d for an idle stem cell of the benchmark's kind
// and mem; it reports whether one was there.
func (e *env) waitStemCell(ctx context.Context, mem int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if st, err := e.api.Status(ctx); err == nil {
			for _, inv := range st.Invokers {
				for _, c := range inv.StemCells {
					if c.Kind == e.cfg.kind && c.MemoryMB == mem && c.Count > 0 {
						return true
					}
				}
			}
		}
		if time.Now().After(deadline) || !retry.Sleep(ctx, 20*time.Millisecond) {
			return false
		}
	}
}

// series collects first invocations of fresh actions.
type series struct {
	total, other               []time.Duration
	queued, create, initT, run []int64
	starts                     map[string]int
	waits                      int
}

func (s *series) invoke(ctx context.Context, e *env, name string) error {
	t := time.Now()
	inv, err := e.api.Invoke(ctx, name, nil, client.InvokeOptions{Blocking: true})
	d := time.Since(t)
	if err != nil {
		return err
	}
	if inv.Status != http.StatusOK {
		return fmt.Errorf("status %d (%.200s)", inv.Status, inv.Body)
	}
	var rec whisk.Activation
	if err := jsonUnmarshal(inv.Body, &rec); err != nil {
		return err
	}
	var tm whisk.Timings
	if raw, ok := rec.Annotations.Get(whisk.AnnTimings); !ok {
		return fmt.Errorf("the record has no timings annotation")
	} else if err := jsonUnmarshal(raw, &tm); err != nil {
		return err
	}
	s.starts[tm.Start]++
	s.total = append(s.total, d)
	s.queued, s.create, s.initT, s.run = append(s.queued, tm.Queued), append(s.create, tm.Create), append(s.initT, tm.Init), append(s.run, tm.Run)
	s.other = append(s.other, d-time.Duration(tm.Queued+tm.Init+tm.Run)*time.Millisecond)
	return nil
}

func (s *series) result(mem int64) *StartSeries {
	return &StartSeries{
		N: len(s.total), MemoryMB: mem, Total: dist(s.total), Other: dist(s.other),
		Queued: distMs(s.queued), Create: distMs(s.create), Init: distMs(s.initT), Run: distMs(s.run),
		Starts: s.starts, StemCellWaits: s.waits,
	}
}
