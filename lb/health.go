package lb

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// activeChecker probes every upstream of a pool on an interval, over HTTP
// (a 2xx on a path) or the gRPC health protocol, and flips Upstream.healthy
// after the configured number of consecutive results.
type activeChecker struct {
	pool *Pool
	cfg  HealthCheckConfig

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // grpc checks: one conn per upstream
	counts map[*Upstream]*checkCounts
}

type checkCounts struct{ ok, fail int }

func newActiveChecker(p *Pool, cfg HealthCheckConfig) *activeChecker {
	return &activeChecker{pool: p, cfg: cfg, conns: map[string]*grpc.ClientConn{}, counts: map[*Upstream]*checkCounts{}}
}

func (c *activeChecker) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go c.loop(ctx)
}

func (c *activeChecker) stop() {
	c.stopOnce.Do(func() {
		if c.cancel == nil {
			return
		}
		c.cancel()
		<-c.done
		c.mu.Lock()
		for _, cc := range c.conns {
			cc.Close()
		}
		c.mu.Unlock()
	})
}

func (c *activeChecker) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(time.Duration(c.cfg.Interval))
	defer t.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round checks all upstreams concurrently, so one hanging upstream does not
// delay the verdict on the others.
func (c *activeChecker) round(ctx context.Context) {
	var wg sync.WaitGroup
	for _, u := range c.pool.upstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A bug in a check must not take the process down with it.
			defer func() {
				if r := recover(); r != nil {
					c.pool.log.Error("health check panicked", "upstream", u.Addr, "panic", r, "stack", string(debug.Stack()))
				}
			}()
			cctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.Timeout))
			defer cancel()
			err := c.check(cctx, u)
			if ctx.Err() != nil {
				return // stopping: a cancelled probe says nothing about the upstream
			}
			c.record(u, err)
		}()
	}
	wg.Wait()
}

func (c *activeChecker) record(u *Upstream, err error) {
	c.mu.Lock()
	n := c.counts[u]
	if n == nil {
		n = &checkCounts{}
		c.counts[u] = n
	}
	if err == nil {
		n.ok, n.fail = n.ok+1, 0
	} else {
		n.ok, n.fail = 0, n.fail+1
	}
	ok, fail := n.ok, n.fail
	c.mu.Unlock()

	was := u.healthy.Load()
	if !u.checked.Swap(true) {
		// Its first verdict: the thresholds are for changing one.
		if err == nil {
			ok = max(ok, c.cfg.HealthyThreshold)
		} else {
			fail = max(fail, c.cfg.UnhealthyThreshold)
		}
	}
	switch {
	case was && fail >= c.cfg.UnhealthyThreshold:
		u.healthy.Store(false)
		c.pool.log.Warn("upstream unhealthy", "upstream", u.Addr, "err", err)
	case !was && ok >= c.cfg.HealthyThreshold:
		u.healthy.Store(true)
		c.pool.log.Info("upstream healthy again", "upstream", u.Addr)
	}
}

// carryCounts takes prev's running counts for the upstreams both check,
// when the checks are the same: a reload (certificates, another pool)
// must not start them over, or reloads more frequent than a threshold's
// length would keep a failing upstream in service for good.
func (c *activeChecker) carryCounts(prev *activeChecker) {
	if prev == nil || prev.cfg != c.cfg {
		return
	}
	prev.mu.Lock()
	defer prev.mu.Unlock()
	for _, u := range c.pool.upstreams {
		if n := prev.counts[u]; n != nil {
			c.counts[u] = &checkCounts{ok: n.ok, fail: n.fail}
		}
	}
}

func (c *activeChecker) check(ctx context.Context, u *Upstream) error {
	if c.cfg.Type == "grpc" {
		return c.checkGRPC(ctx, u)
	}
	return c.checkHTTP(ctx, u)
}

func (c *activeChecker) checkHTTP(ctx context.Context, u *Upstream) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.pool.scheme+"://"+u.Addr+c.cfg.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "vigil-lb-health")
	res, err := c.pool.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("health check %s: status %d", c.cfg.Path, res.StatusCode)
	}
	return nil
}

func (c *activeChecker) checkGRPC(ctx context.Context, u *Upstream) error {
	cc, err := c.grpcConn(u.Addr)
	if err != nil {
		return err
	}
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: c.cfg.Service})
	if err != nil {
		return err
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health %q: %s", c.cfg.Service, res.GetStatus())
	}
	return nil
}

func (c *activeChecker) grpcConn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if c.pool.cfg.Protocol == "h2" {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: c.pool.cfg.TLSInsecureSkipVerify}) //nolint:gosec // opt-in per pool
	}
	// gRPC's reconnect backoff grows to 120 s, and a check on a
	// connection waiting it out fails at once: an upstream down for a few
	// minutes would stay marked down that long after it came back. The
	// checks' own interval is the longest wait.
	bo := backoff.DefaultConfig
	bo.BaseDelay = min(bo.BaseDelay, time.Duration(c.cfg.Interval))
	bo.MaxDelay = time.Duration(c.cfg.Interval)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Duration(c.cfg.Timeout)}))
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

// failurePenalty is the latency a failed attempt counts as (recordOutcome).
const failurePenalty = time.Second

// recordOutcome is the passive half of health checking: consecutive
// gateway failures eject an upstream for a growing time, and a success
// clears the count.
func (p *Pool) recordOutcome(u *Upstream, o outcome) {
	if o == outcomeSuccess {
		if u.consecutiveFailures.Load() != 0 {
			u.consecutiveFailures.Store(0)
		}
		if e := u.ejections.Load(); e > 0 && time.Now().UnixNano()-u.ejectedUntil.Load() > int64(p.cfg.Outlier.MaxEjection) {
			// It has served well for a while since it came back: forget
			// its record so a future ejection starts short again.
			u.ejections.Store(0)
		}
		u.metrics.success.Inc()
		return
	}
	u.metrics.failure.Inc()
	// A failure counts as a slow answer for p2c_ewma: an upstream that
	// fails fast (503 at once, a refused connect) would otherwise look
	// the cheapest and draw the traffic; the penalty fades with the
	// EWMA's decay or the successes that follow.
	u.observeLatency(failurePenalty)
	o2 := p.cfg.Outlier
	if int(u.consecutiveFailures.Add(1)) < o2.ConsecutiveFailures {
		return
	}
	// One decision at a time: counting the ejected ones and storing this
	// one must not interleave with another's, or failures at the same
	// instant all pass the count. Rare (a threshold reached), so cheap.
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	now := time.Now().UnixNano()
	if u.ejectedUntil.Load() > now {
		return // already out; failures of requests sent before the ejection
	}
	ejected := 0
	for _, v := range p.upstreams {
		if v.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if (ejected+1)*100 > o2.maxEjectedPercent()*len(p.upstreams) {
		return // keep enough of the pool in rotation
	}
	k := u.ejections.Add(1)
	d := time.Duration(o2.BaseEjection) * time.Duration(k)
	if d > time.Duration(o2.MaxEjection) {
		d = time.Duration(o2.MaxEjection)
	}
	u.ejectedUntil.Store(now + int64(d))
	u.consecutiveFailures.Store(0)
	u.metrics.ejections.Inc()
	p.log.Warn("upstream ejected", "upstream", u.Addr, "for", d, "ejections", k)
}
