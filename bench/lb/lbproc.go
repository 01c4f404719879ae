package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vigilhq/vigil/lb"
)

// runLB runs the lb package exactly as `vigil lb --config` would.
func runLB(args []string) error {
	fs := flag.NewFlagSet("lb", flag.ExitOnError)
	path := fs.String("config", "lb.yaml", "config file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here (for tuning)")
	memProfile := fs.String("memprofile", "", "write an allocation profile here at exit (for tuning)")
	tracePath := fs.String("trace", "", "write a runtime execution trace here (for tuning)")
	traceAfter := fs.Duration("trace-after", 3*time.Second, "start the -trace this long after the start")
	traceFor := fs.Duration("trace-for", 300*time.Millisecond, "how long the -trace records")
	metricsAddr := fs.String("metrics", "", "serve the lb's Prometheus metrics at http://ADDR/metrics, and net/http/pprof's profiles at /debug/pprof/ (for tuning)")
	fs.Parse(args)
	if *tracePath != "" {
		f, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(*traceAfter)
			if trace.Start(f) == nil {
				time.Sleep(*traceFor)
				trace.Stop()
			}
			f.Close()
		}()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	lb.TuneStandaloneGC() // as `vigil lb` does (cmd/vigil/lb.go)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := lb.LoadConfig(*path)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	srv, err := lb.New(cfg, log, reg)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		// Index serves the named profiles only; the CPU profile and the
		// execution trace have handlers of their own.
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
		go http.ListenAndServe(*metricsAddr, mux)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	go lb.WatchConfig(ctx, *path, srv)
	// SIGUSR1 collects and returns freed memory to the system now, as the
	// runtime's periodic collection (every 2 min when idle) and its
	// scavenger would (bench/lb/idlemem.sh).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
