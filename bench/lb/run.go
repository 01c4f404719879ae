package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

type benchFlags struct {
	rounds              int
	dur                 time.Duration
	httpConns, grpcConc int
	proxyCPU, loadCPU   string
	md                  string
	headers             string
	only                string
	lbEnv               string
}

// target is one way to reach the upstreams: directly or through a proxy.
type target struct {
	name               string
	httpAddr, grpcAddr string
	originAddr         string    // where /origin/ is served: the proxy, or the origin itself
	httpsAddr          string    // the proxy's TLS listener (HTTP/2 by ALPN); "" for direct
	cmd                *exec.Cmd // nil for direct
}

type scenario struct {
	name string
	// proxiesOnly: there is no direct way to compare with (TLS: the
	// origin speaks plain HTTP only).
	proxiesOnly bool
	// run measures t; it calls mark when the warm-up is over, so that the
	// proxy's CPU time is sampled over the measured window only.
	run func(t target, mark func()) (loadResult, error)
}

// sample is one measured run with the proxy's CPU time.
type sample struct {
	loadResult
	cpuSeconds float64
}

func runBench(args []string) error {
	var f benchFlags
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.IntVar(&f.rounds, "rounds", 3, "interleaved rounds (the median is reported)")
	fs.DurationVar(&f.dur, "d", 5*time.Second, "measured duration of each run")
	fs.IntVar(&f.httpConns, "c", 64, "wrk connections for the throughput scenario")
	fs.IntVar(&f.grpcConc, "gc", 32, "concurrent gRPC calls")
	fs.StringVar(&f.proxyCPU, "proxy-cpu", "1", "CPU list the proxies are pinned to (taskset -c)")
	fs.StringVar(&f.loadCPU, "load-cpu", "0", "CPU list for upstreams and load generators")
	fs.StringVar(&f.md, "md", "", "also write the markdown table to this file")
	fs.StringVar(&f.headers, "headers", "same", `"same": HAProxy and nginx are configured to add what vigil lb adds on every request (X-Request-Id, also on the answer, and X-Forwarded-For/-Proto/-Host), so that all three do the same work and the upstream parses the same request; "defaults": their stock proxying, which adds none of it`)
	fs.StringVar(&f.only, "only", "", "run only the scenarios whose names match this regular expression")
	fs.StringVar(&f.lbEnv, "lb-env", "", "space-separated NAME=VALUE pairs for vigil lb's environment (A/B of run-time switches)")
	fs.Parse(args)
	only, err := regexp.Compile(f.only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lbbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	p := func() string { return freePort() }
	upHTTP, upGRPC, upOrigin := p(), p(), p()
	var procs []*exec.Cmd
	defer func() {
		for _, c := range procs {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range procs {
			_ = c.Wait()
		}
	}()
	start := func(name string, cpu string, argv ...string) (*exec.Cmd, error) {
		cmd := exec.Command("taskset", append([]string{"-c", cpu}, argv...)...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	if _, err := start("upstream", f.loadCPU, self, "upstream", "-http", upHTTP, "-grpc", upGRPC); err != nil {
		return err
	}

	// The origin: an nginx that answers every request itself, much cheaper
	// per request than the Go upstream, so that wrk and the origin leave
	// the proxy's core, not theirs, the bottleneck.
	odir := filepath.Join(dir, "origin")
	if err := os.MkdirAll(odir, 0o755); err != nil {
		return err
	}
	oconf := filepath.Join(odir, "origin.conf")
	if err := writeTemplate(oconf, originConf, map[string]string{"Dir": odir, "UpOrigin": upOrigin}); err != nil {
		return err
	}
	if _, err := start("origin", f.loadCPU, "nginx", "-p", odir, "-e", filepath.Join(odir, "error.log"), "-c", oconf); err != nil {
		return err
	}
	// The bulk scenarios' data: a file the origin serves (downloads) and
	// wrk's script for POSTs with a body (uploads).
	if err := writeBulkData(odir, dir); err != nil {
		return err
	}

	targets := []target{{name: "direct", httpAddr: upHTTP, grpcAddr: upGRPC, originAddr: upOrigin}}
	vals := map[string]string{"UpHTTP": upHTTP, "UpGRPC": upGRPC, "UpOrigin": upOrigin, "Dir": dir}
	if err := writeBenchCert(dir, vals); err != nil {
		return err
	}
	switch f.headers {
	case "same":
		vals["Same"] = "1"
	case "defaults":
	default:
		return fmt.Errorf(`-headers: %q is neither "same" nor "defaults"`, f.headers)
	}
	for _, proxy := range []struct {
		name, conf string
		argv       func(conf string) []string
	}{
		{"vigil-lb", vigilConf, func(c string) []string {
			return slices.Concat([]string{"env", "GOMAXPROCS=1"}, strings.Fields(f.lbEnv), []string{self, "lb", "-config", c})
		}},
		{"haproxy", haproxyConf, func(c string) []string { return []string{"haproxy", "-db", "-f", c} }},
		{"nginx", nginxConf, func(c string) []string {
			return []string{"nginx", "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", c}
		}},
	} {
		vals["HTTP"], vals["GRPC"], vals["HTTPS"] = p(), p(), p()
		conf := filepath.Join(dir, proxy.name+".conf")
		if err := writeTemplate(conf, proxy.conf, vals); err != nil {
			return err
		}
		cmd, err := start(proxy.name, f.proxyCPU, proxy.argv(conf)...)
		if err != nil {
			return err
		}
		targets = append(targets, target{name: proxy.name, httpAddr: vals["HTTP"], grpcAddr: vals["GRPC"], originAddr: vals["HTTP"], httpsAddr: vals["HTTPS"], cmd: cmd})
	}
	for _, t := range targets {
		for _, a := range []string{t.httpAddr, t.grpcAddr, t.originAddr, t.httpsAddr} {
			if a == "" {
				continue
			}
			if err := waitPort(a, 10*time.Second); err != nil {
				logs, _ := os.ReadFile(filepath.Join(dir, t.name+".log"))
				return fmt.Errorf("%s on %s: %w\n%s", t.name, a, err, logs)
			}
		}
	}

	scenarios := []scenario{
		{name: fmt.Sprintf("HTTP/1.1 keep-alive, wrk -c%d", f.httpConns), run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.httpAddr, "/", f.httpConns, mark)
		}},
		{name: fmt.Sprintf("HTTP/1.1 keep-alive, wrk -c%d, nginx origin (proxy-bound)", f.httpConns), run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.originAddr, "/origin/", f.httpConns, mark)
		}},
		{name: fmt.Sprintf("HTTP/1.1 keep-alive, wrk -c%d, nginx origin (proxy-bound), a browser's request fields", f.httpConns), run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.originAddr, "/origin/", f.httpConns, mark, wrkBrowserArgs()...)
		}},
		{name: fmt.Sprintf("HTTP/1.1 uploads, %d KiB POSTs, wrk -c%d", bulkUpload>>10, f.httpConns), run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.httpAddr, "/upload", f.httpConns, mark, "-s", filepath.Join(dir, "upload.lua"))
		}},
		{name: fmt.Sprintf("HTTP/1.1 downloads, %d KiB answers, wrk -c%d, nginx origin", bulkDownload>>10, f.httpConns), run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.originAddr, bulkPath, f.httpConns, mark)
		}},
		{name: "HTTP/1.1 keep-alive, wrk -c1 (latency)", run: func(t target, mark func()) (loadResult, error) {
			return runWrk(f, t.httpAddr, "/", 1, mark)
		}},
		{name: fmt.Sprintf("gRPC unary (h2c), %d concurrent calls on 4 conns", f.grpcConc), run: func(t target, mark func()) (loadResult, error) {
			return runGRPC(f, self, t.grpcAddr, mark)
		}},
		{name: fmt.Sprintf("gRPC unary over TLS (as agents), %d concurrent calls on 4 conns", f.grpcConc), proxiesOnly: true, run: func(t target, mark func()) (loadResult, error) {
			return runGRPC(f, self, t.httpsAddr, mark, "-tls")
		}},
		{name: "HTTP/2 over TLS (as browsers), h2load -c16 -m8, nginx origin (proxy-bound)", proxiesOnly: true, run: func(t target, mark func()) (loadResult, error) {
			return runH2load(f, dir, t.httpsAddr, mark)
		}},
	}
	scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !only.MatchString(sc.name) })
	results := map[string]map[string][]sample{}
	for round := 1; round <= f.rounds; round++ {
		for _, sc := range scenarios {
			for _, t := range targets {
				if sc.proxiesOnly && t.cmd == nil {
					continue
				}
				var cpu0 float64
				res, err := sc.run(t, func() { cpu0 = procTreeCPU(t.cmd) })
				if err != nil {
					return fmt.Errorf("%s via %s: %w", sc.name, t.name, err)
				}
				s := sample{loadResult: res, cpuSeconds: procTreeCPU(t.cmd) - cpu0}
				fmt.Fprintf(os.Stderr, "round %d  %-45s %-9s %10.0f req/s  p50 %6.3f ms  p99 %6.3f ms  errors %d  proxy cpu %.2fs\n",
					round, sc.name, t.name, res.Requests, res.P50, res.P99, res.Errors, s.cpuSeconds)
				if results[sc.name] == nil {
					results[sc.name] = map[string][]sample{}
				}
				results[sc.name][t.name] = append(results[sc.name][t.name], s)
			}
		}
	}
	md := report(f, scenarios, targets, results)
	fmt.Print(md)
	if f.md != "" {
		return os.WriteFile(f.md, []byte(md), 0o644)
	}
	return nil
}

func report(f benchFlags, scenarios []scenario, targets []target, results map[string]map[string][]sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run at %s UTC; %d interleaved rounds of %s each, median shown. Proxies pinned to CPU %s, upstreams and load generators to CPU %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), f.rounds, f.dur, f.proxyCPU, f.loadCPU)
	if f.headers == "same" {
		fmt.Fprintf(&b, "Headers: same work (`-headers same`): HAProxy and nginx add X-Request-Id (request and answer) and X-Forwarded-For/-Proto/-Host, as vigil lb does.\n\n")
	} else {
		fmt.Fprintf(&b, "Headers: stock (`-headers defaults`): HAProxy and nginx add no X-Request-Id or X-Forwarded-*; vigil lb adds all four.\n\n")
	}
	fmt.Fprintf(&b, "Versions: %s; %s; %s; %s; %s.\n", runtime.Version()+" (vigil lb, GOMAXPROCS=1)", firstLine("haproxy", "-v"), firstLine("nginx", "-v"), firstLine("wrk", "-v"), firstLine("h2load", "--version"))
	for _, sc := range scenarios {
		fmt.Fprintf(&b, "\n### %s\n\n", sc.name)
		fmt.Fprintf(&b, "| target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | proxy CPU µs/req | req/s vs HAProxy | p99 vs HAProxy | errors |\n")
		fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		med := map[string]sample{}
		for _, t := range targets {
			med[t.name] = median(results[sc.name][t.name])
		}
		direct, ha := med["direct"], med["haproxy"]
		for _, t := range targets {
			m := med[t.name]
			cpu := "-"
			if t.cmd != nil && m.Requests > 0 {
				cpu = fmt.Sprintf("%.1f", m.cpuSeconds/(m.Requests*f.dur.Seconds())*1e6)
			}
			if t.cmd == nil && sc.proxiesOnly {
				continue
			}
			addP50, addP99, vsRPS, vsP99 := "-", "-", "-", "-"
			if t.cmd != nil && sc.proxiesOnly {
				vsRPS = fmt.Sprintf("%.2fx", m.Requests/ha.Requests)
				vsP99 = fmt.Sprintf("%.2fx", m.P99/ha.P99)
			} else if t.cmd != nil {
				addP50 = fmt.Sprintf("%.3f", m.P50-direct.P50)
				addP99 = fmt.Sprintf("%.3f", m.P99-direct.P99)
				vsRPS = fmt.Sprintf("%.2fx", m.Requests/ha.Requests)
				vsP99 = fmt.Sprintf("%.2fx", m.P99/ha.P99)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.3f | %.3f | %s | %s | %s | %s | %s | %d |\n",
				t.name, m.Requests, m.P50, m.P99, addP50, addP99, cpu, vsRPS, vsP99, m.Errors)
		}
	}
	return b.String()
}

// median takes each field's median separately across rounds.
func median(s []sample) sample {
	if len(s) == 0 {
		return sample{} // a target the scenario skips
	}
	pick := func(get func(sample) float64) float64 {
		v := make([]float64, len(s))
		for i := range s {
			v[i] = get(s[i])
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	var errs int64
	for _, x := range s {
		errs += x.Errors
	}
	return sample{
		loadResult: loadResult{
			Requests: pick(func(x sample) float64 { return x.Requests }),
			P50:      pick(func(x sample) float64 { return x.P50 }),
			P99:      pick(func(x sample) float64 { return x.P99 }),
			Errors:   errs,
		},
		cpuSeconds: pick(func(x sample) float64 { return x.cpuSeconds }),
	}
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// browserFields are the fields Chrome sends with a page request: what a
// proxy in front of a web app parses and forwards, where wrk alone sends
// only Host.
var browserFields = []string{
	"Connection: keep-alive",
	"Cache-Control: max-age=0",
	"Upgrade-Insecure-Requests: 1",
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
	"Accept-Encoding: gzip, deflate, br",
	"Accept-Language: en-US,en;q=0.9",
	"Cookie: session=2f7a9c1e4b8d6a3f; theme=dark",
}

// wrkBrowserArgs are wrk's arguments for sending browserFields.
func wrkBrowserArgs() []string {
	var args []string
	for _, h := range browserFields {
		args = append(args, "-H", h)
	}
	return args
}

// runWrkHeaders prints wrkBrowserArgs one per line, for the shell
// scripts (bound.sh WRKHEADERS=browser).
func runWrkHeaders([]string) error {
	for _, a := range wrkBrowserArgs() {
		fmt.Println(a)
	}
	return nil
}

func runWrk(f benchFlags, addr, path string, conns int, mark func(), extra ...string) (loadResult, error) {
	url := "http://" + addr + path
	wrk := func(args ...string) *exec.Cmd {
		argv := append([]string{"-c", f.loadCPU, "wrk", "-t1", "-c" + strconv.Itoa(conns)}, extra...)
		return exec.Command("taskset", append(append(argv, args...), url)...)
	}
	if out, err := wrk("-d1s").CombinedOutput(); err != nil {
		return loadResult{}, fmt.Errorf("wrk warm-up: %w: %s", err, out)
	}
	mark()
	cmd := wrk("-d"+strconv.Itoa(int(f.dur.Seconds()))+"s", "--latency")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	var r loadResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec: %s", out)
	}
	r.Requests, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, pm := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(pm[2]), 64)
		switch string(pm[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(pm[1]) == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if m := wrkErrors.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		r.Errors += n
	}
	if m := wrkSockErr.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseInt(string(g), 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}

// runH2load loads addr with HTTP/2 over TLS as browsers do (h2load, 16
// connections with 8 streams each) and reads the latencies from its
// per-request log: h2load itself prints no percentiles.
func runH2load(f benchFlags, dir, addr string, mark func()) (loadResult, error) {
	url := "https://" + addr + "/origin/"
	h2load := func(args ...string) *exec.Cmd {
		return exec.Command("taskset", append([]string{"-c", f.loadCPU, "h2load", "-c16", "-m8"}, append(args, url)...)...)
	}
	if out, err := h2load("-D1").CombinedOutput(); err != nil {
		return loadResult{}, fmt.Errorf("h2load warm-up: %w: %s", err, out)
	}
	mark()
	logPath := filepath.Join(dir, "h2load.log")
	out, err := h2load("-D"+strconv.Itoa(int(f.dur.Seconds())), "--log-file="+logPath).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("h2load: %w: %s", err, out)
	}
	if !bytes.Contains(out, []byte("Application protocol: h2")) {
		return loadResult{}, fmt.Errorf("h2load did not negotiate h2: %s", out)
	}
	var r loadResult
	m := h2loadRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load output without req/s: %s", out)
	}
	r.Requests, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := h2loadStatus.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseInt(string(g), 10, 64)
			r.Errors += n
		}
	}
	logData, err := os.ReadFile(logPath)
	if err != nil {
		return r, err
	}
	var lat []float64 // ms
	for line := range strings.SplitSeq(string(logData), "\n") {
		// start (µs since the epoch), status, µs until the answer ended
		cols := strings.Split(line, "\t")
		if len(cols) < 3 {
			continue
		}
		us, err := strconv.ParseFloat(cols[2], 64)
		if err == nil {
			lat = append(lat, us/1000)
		}
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("h2load wrote no latencies")
	}
	slices.Sort(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r, nil
}

var (
	h2loadRPS    = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
	h2loadStatus = regexp.MustCompile(`status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// writeBenchCert writes a self-signed P-256 certificate for 127.0.0.1
// into dir for the proxies' TLS listeners: Cert and Key, and CertKey
// (both in one file, for HAProxy).
func writeBenchCert(dir string, vals map[string]string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	vals["Cert"], vals["Key"], vals["CertKey"] = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "certkey.pem")
	for path, data := range map[string][]byte{vals["Cert"]: certPEM, vals["Key"]: keyPEM, vals["CertKey"]: append(slices.Clone(certPEM), keyPEM...)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func runGRPC(f benchFlags, self, addr string, mark func(), extra ...string) (loadResult, error) {
	args := append([]string{"-c", f.loadCPU, self, "grpcload", "-addr", addr,
		"-c", strconv.Itoa(f.grpcConc), "-d", f.dur.String()}, extra...)
	cmd := exec.Command("taskset", args...)
	// grpcload prints "measuring" on stderr when its warm-up ends.
	stderr := &markWriter{mark: mark}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if !stderr.marked {
		mark()
	}
	if err != nil {
		return loadResult{}, fmt.Errorf("grpcload: %w: %s", err, stderr.buf.String())
	}
	var r loadResult
	return r, json.Unmarshal(out, &r)
}

// procTreeCPU is the user+system CPU seconds of a process and its direct
// children (nginx's worker), 0 for nil.
func procTreeCPU(cmd *exec.Cmd) float64 {
	if cmd == nil {
		return 0
	}
	// cmd is taskset, which execs the proxy in place: same pid.
	root := cmd.Process.Pid
	total := 0.0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name.
		rest := string(data[bytes.LastIndexByte(data, ')')+2:])
		fields := strings.Fields(rest)
		ppid, _ := strconv.Atoi(fields[1])
		if pid != root && ppid != root {
			continue
		}
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		total += (ut + st) / 100 // USER_HZ
	}
	return total
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control
	}
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := bufio.NewReader(bytes.NewReader(out)).ReadLine()
	return strings.TrimSpace(string(line))
}

func writeTemplate(path, tmpl string, vals map[string]string) error {
	t := template.Must(template.New(filepath.Base(path)).Parse(tmpl))
	var buf bytes.Buffer
	if err := t.Execute(&buf, vals); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// The three proxies get equivalent setups: one worker/thread, access logs
// off, keep-alive connection pools to the upstream, round robin over the
// one upstream, no health checks, and a 60 s time-out on the upstream's
// answer (HAProxy's timeout server, nginx's default proxy_read_timeout;
// for vigil lb's HTTP routes try_timeout, which `vigil all` sets too; its
// native gRPC calls have no per-try time-out, see RouteConfig).
const vigilConf = `
access_log: false
listeners:
  - {name: http, address: "{{.HTTP}}"}
  - {name: grpc, address: "{{.GRPC}}", h2c: true, native_grpc: true}
{{- if .HTTPS}}
  - {name: https, address: "{{.HTTPS}}", tls: {cert_file: "{{.Cert}}", key_file: "{{.Key}}"}}
{{- end}}
routes:
  - {name: grpc, match: {grpc: true}, pool: grpc}
  - {name: origin, match: {path_prefix: /origin/}, pool: origin, try_timeout: 60s}
  - {name: http, pool: http, try_timeout: 60s}
pools:
  - {name: http, protocol: http1, upstreams: ["{{.UpHTTP}}"]}
  - {name: origin, protocol: http1, upstreams: ["{{.UpOrigin}}"]}
  - {name: grpc, protocol: h2c, upstreams: ["{{.UpGRPC}}"]}
`

// The bulk scenarios: uploads of bulkUpload bytes (a photo for the Image
// API, say) to the Go upstream, which reads them whole before it answers,
// and downloads of bulkDownload bytes from bulkPath, a file under the
// nginx origin's directory.
const (
	bulkUpload   = 256 << 10
	bulkDownload = 1 << 20
	bulkPath     = "/origin/static/blob"
)

// writeBulkData writes the download's file under odir (the origin's
// root) and wrk's upload script into dir.
func writeBulkData(odir, dir string) error {
	blob := filepath.Join(odir, filepath.FromSlash(bulkPath))
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	data := make([]byte, bulkDownload)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		return err
	}
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", %d)\nwrk.headers[\"Content-Type\"] = \"image/jpeg\"\n", bulkUpload)
	return os.WriteFile(filepath.Join(dir, "upload.lua"), []byte(lua), 0o644)
}

// originConf: the proxy-bound scenario's origin, answering by itself.
const originConf = `
worker_processes 1;
daemon off;
master_process off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path {{.Dir}};
  proxy_temp_path {{.Dir}};
  fastcgi_temp_path {{.Dir}};
  uwsgi_temp_path {{.Dir}};
  scgi_temp_path {{.Dir}};
  keepalive_requests 1000000000;
  # Uploads of any size are answered (bound.sh WRKBODY=N).
  client_max_body_size 0;
  server {
    listen {{.UpOrigin}};
    location / { default_type text/plain; return 200 "hello from the origin\n"; }
    # Downloads: files under the origin's directory (writeBulkData,
    # bound.sh DOWNLOAD=N).
    location /origin/static/ { root {{.Dir}}; }
  }
}
`

const haproxyConf = `
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
{{- if .Same}}
  option forwardfor
  unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt%pid
  unique-id-header X-Request-Id
{{- end}}
frontend http
  bind {{.HTTP}}
{{- if .Same}}
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-Id %[unique-id]
{{- end}}
  use_backend origin if { path_beg /origin/ }
  default_backend http
{{- if .HTTPS}}
# TLS 1.3 with AES-128-GCM, as Go's server picks (HAProxy would pick
# AES-256, nginx 1.22 TLS 1.2); HTTP/2 by ALPN.
frontend https
  bind {{.HTTPS}} ssl crt {{.CertKey}} alpn h2,http/1.1 ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256
{{- if .Same}}
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-Id %[unique-id]
{{- end}}
  use_backend grpc if { req.hdr(content-type) -m beg application/grpc }
  default_backend origin
{{- end}}
frontend grpc
  bind {{.GRPC}} proto h2
  default_backend grpc
{{- if .Same}}
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-Id %[unique-id]
{{- end}}
backend http
  http-reuse always
  server s1 {{.UpHTTP}}
backend origin
  http-reuse always
  server s1 {{.UpOrigin}}
backend grpc
  http-reuse always
  server s1 {{.UpGRPC}} proto h2
`

const nginxConf = `
worker_processes 1;
daemon off;
master_process on;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  # As HAProxy and vigil lb: no cap on a client connection's requests
  # (nginx closes one after 1000 by default, HTTP/2 ones too), nor on a
  # request body's size (1 MiB by default).
  keepalive_requests 1000000000;
  client_max_body_size 0;
  upstream http_up { server {{.UpHTTP}}; keepalive 256; }
  upstream grpc_up { server {{.UpGRPC}}; keepalive 256; }
  upstream origin_up { server {{.UpOrigin}}; keepalive 256; }
  server {
    listen {{.HTTP}};
{{- define "proxying"}}
    # Inherited by the locations, which set none of their own.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
{{- if .Same}}
    proxy_set_header Host $http_host;
    proxy_set_header X-Request-Id $request_id;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $http_host;
    add_header X-Request-Id $request_id;
    # Request bodies stream to the upstream as they come, as HAProxy and
    # vigil lb relay them (nginx buffers them whole by default, to a
    # temporary file past 16 KiB).
    proxy_request_buffering off;
{{- end}}
{{- end}}
{{- template "proxying" .}}
    location /origin/ { proxy_pass http://origin_up; }
    location / { proxy_pass http://http_up; }
  }
{{- if .HTTPS}}
  server {
    listen {{.HTTPS}} ssl http2;
    ssl_certificate {{.Cert}};
    ssl_certificate_key {{.Key}};
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
{{- template "proxying" .}}
    location / {
      if ($http_content_type ~ "^application/grpc") {
        grpc_pass grpc://grpc_up;
      }
      proxy_pass http://origin_up;
    }
  }
{{- end}}
  server {
    listen {{.GRPC}} http2;
    location / {
      grpc_pass grpc://grpc_up;
{{- if .Same}}
      grpc_set_header X-Request-Id $request_id;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      grpc_set_header X-Forwarded-Proto $scheme;
      grpc_set_header X-Forwarded-Host $http_host;
      add_header X-Request-Id $request_id;
{{- end}}
    }
  }
}
`

// markWriter calls mark when the child writes its "measuring" line.
type markWriter struct {
	buf    bytes.Buffer
	mark   func()
	marked bool
}

func (w *markWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.marked && bytes.Contains(w.buf.Bytes(), []byte("measuring")) {
		w.marked = true
		w.mark()
	}
	return len(p), nil
}
