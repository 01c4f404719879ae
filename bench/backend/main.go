// Command backend measures the backend's person create and search throughput over REST,
// through the gateway, on a real process (platform, gateway, auth, backend, licensing,
// matcher) and a fresh PostgreSQL database. See README.md.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/licensing"
	"github.com/vigilhq/vigil/services/matcher"
)

func main() {
	adminURL := flag.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL (a database is created and dropped)")
	persons := flag.Int("persons", 1000, "persons to create (the free tier allows 1,000)")
	searches := flag.Int("searches", 3000, "search requests")
	workers := flag.Int("c", 8, "concurrent clients")
	flag.Parse()
	if err := run(*adminURL, *persons, *searches, *workers); err != nil {
		log.Fatal(err)
	}
}

func run(adminURL string, persons, searches, workers int) error {
	ctx := context.Background()
	dbURL, drop, err := freshDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	defer drop()
	dataDir, err := os.MkdirTemp("", "vigil-bench-backend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)

	yaml := fmt.Sprintf("grpc_listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\npublic_listen: 127.0.0.1:0\ndatabase_url: %q\n"+
		"auto_migrate: true\ndata_dir: %q\nlog_level: error\n", dbURL, dataDir)
	token := hex.EncodeToString(randomBytes(16))
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) {
		if k == "VIGIL_INTERNAL_TOKEN" {
			return token, true
		}
		return "", false
	}, func() []string { return nil })
	if err != nil {
		return err
	}
	var out bytes.Buffer
	backend.BootstrapOutput = &out
	var gw *gateway.Gateway
	app := fx.New(fx.NopLogger, fx.Supply(cfg), platform.Module, auth.Module, backend.Module, licensing.Module, matcher.Module,
		gateway.Module, grpcserver.Serve, gateway.Serve, fx.Populate(&gw))
	if err := app.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = app.Stop(context.Background()) }()
	base := "http://" + gw.Addr()

	m := regexp.MustCompile(`admin password: (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		return fmt.Errorf("no bootstrap password printed")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}}
	var login struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := call(client, http.MethodPost, base+"/v1/auth:login", "", fmt.Sprintf(`{"email":"admin@vigil.local","password":%q}`, m[1]), &login); err != nil {
		return err
	}

	fmt.Printf("go %s, %s/%s, %d CPUs, %d clients\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), workers)
	fmt.Println("| operation | requests | errors | req/s | p50 ms | p95 ms | p99 ms |")
	fmt.Println("|---|---|---|---|---|---|---|")
	report("create person (POST /v1/persons)", measure(persons, workers, func(i int) error {
		body := fmt.Sprintf(`{"name":"Person %d","externalId":"ext-%d","customFields":{"dept":"d%d"}}`, i, i, i%10)
		return call(client, http.MethodPost, base+"/v1/persons", login.SessionToken, body, nil)
	}))
	report("search by name (GET /v1/persons?nameContains=)", measure(searches, workers, func(i int) error {
		q := url.QueryEscape(fmt.Sprintf("person %d", i%persons))
		return call(client, http.MethodGet, base+"/v1/persons?pageSize=20&nameContains="+q, login.SessionToken, "", nil)
	}))
	report("search by external id (GET /v1/persons?externalId=)", measure(searches, workers, func(i int) error {
		return call(client, http.MethodGet, fmt.Sprintf("%s/v1/persons?externalId=ext-%d", base, i%persons), login.SessionToken, "", nil)
	}))
	report("search by custom field (GET /v1/persons?customFieldEquals[dept]=)", measure(searches, workers, func(i int) error {
		return call(client, http.MethodGet, fmt.Sprintf("%s/v1/persons?pageSize=20&customFieldEquals[dept]=d%d", base, i%10), login.SessionToken, "", nil)
	}))
	return nil
}

type result struct {
	n, errs   int
	elapsed   time.Duration
	latencies []time.Duration
	firstErr  error
}

func measure(n, workers int, op func(i int) error) result {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = err })
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	return result{n: n, errs: int(errs.Load()), elapsed: time.Since(start), latencies: lat, firstErr: firstErr}
}

func report(name string, r result) {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	pct := func(p float64) float64 {
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))].Microseconds()) / 1000
	}
	fmt.Printf("| %s | %d | %d | %.0f | %.1f | %.1f | %.1f |\n", name, r.n, r.errs, float64(r.n)/r.elapsed.Seconds(), pct(0.5), pct(0.95), pct(0.99))
	if r.firstErr != nil {
		fmt.Fprintf(os.Stderr, "%s: first error: %v\n", name, r.firstErr)
	}
}

func call(c *http.Client, method, u, token, body string, out any) error {
	req, err := http.NewRequest(method, u, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// freshDatabase creates a randomly named database and returns its URL and a dropper.
func freshDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: %w", adminURL, err)
	}
	name := "vigil_bench_" + hex.EncodeToString(randomBytes(6))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	conn.Close(ctx)
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}, nil
}
