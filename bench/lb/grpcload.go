package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// loadResult is what one load run measured.
type loadResult struct {
	Requests float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
}

// runGRPCLoad is a closed-loop unary gRPC load generator: -c workers spread
// over -conns connections call UnaryCall with a small payload for -d and
// print requests/s and latency percentiles as JSON.
func runGRPCLoad(args []string) error {
	fs := flag.NewFlagSet("grpcload", flag.ExitOnError)
	addr := fs.String("addr", "", "target host:port (h2c)")
	conc := fs.Int("c", 32, "concurrent calls")
	conns := fs.Int("conns", 4, "HTTP/2 connections")
	dur := fs.Duration("d", 5*time.Second, "duration")
	warm := fs.Duration("warmup", time.Second, "warm-up, not measured")
	useTLS := fs.Bool("tls", false, "TLS (the server's certificate is not verified) instead of h2c")
	fs.Parse(args)

	creds := insecure.NewCredentials()
	if *useTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	var clients []testpb.TestServiceClient
	for i := 0; i < *conns; i++ {
		cc, err := grpc.NewClient("passthrough:///"+*addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		clients = append(clients, testpb.NewTestServiceClient(cc))
	}
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}}
	run := func(d time.Duration, record bool) ([]time.Duration, int64) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var mu sync.Mutex
		var all []time.Duration
		var errs int64
		var wg sync.WaitGroup
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := clients[w%len(clients)]
				lat := make([]time.Duration, 0, 1<<16)
				var e int64
				for ctx.Err() == nil {
					start := time.Now()
					_, err := c.UnaryCall(context.Background(), req)
					if err != nil {
						e++
						continue
					}
					lat = append(lat, time.Since(start))
				}
				mu.Lock()
				if record {
					all = append(all, lat...)
				}
				errs += e
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, errs
	}
	run(*warm, false)
	fmt.Fprintln(os.Stderr, "measuring")
	start := time.Now()
	lat, errs := run(*dur, true)
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return fmt.Errorf("no successful calls (%d errors)", errs)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)]) / 1e6 }
	return json.NewEncoder(os.Stdout).Encode(loadResult{
		Requests: float64(len(lat)) / elapsed.Seconds(), P50: pct(0.50), P99: pct(0.99), Errors: errs,
	})
}
