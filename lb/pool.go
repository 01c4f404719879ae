package lb

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a set of equivalent upstreams with its balancing policy, its
// connection pool, its health checks and its circuit breaker. A Pool
// belongs to one config generation; Provision may take over state from the
// pool of the same name in the previous generation.
type Pool struct {
	Name string

	cfg       PoolConfig
	upstreams []*Upstream
	picker    Picker
	transport upstreamTransport
	grpc      *grpcConns // client connections of the native gRPC engine
	scheme    string
	active    *activeChecker // nil without health_check
	log       *slog.Logger
	metrics   *metrics

	// breaker counts the requests in flight through the pool of this name
	// in every generation, for max_pending: a reload hands it on
	// (Provision), or each reload would admit another max_pending while
	// the old generation's requests (long gRPC streams) still run.
	// pending counts this generation's alone (Close waits for them).
	breaker *atomic.Int64
	pending atomic.Int64
	// budget is the pool's retry budget, handed on by reloads too: one
	// per pool, so that a busy healthy pool's traffic does not pay for a
	// sick one's retry storm (install sets its config).
	budget *retryBudget
	// ownsTransport is false once a successor took the transport over;
	// takenFrom is the predecessor this pool took it from (Provision),
	// until start makes the takeover final.
	ownsTransport atomic.Bool
	takenFrom     *Pool
	// ejectMu serialises outlier ejections (recordOutcome).
	ejectMu sync.Mutex
}

func newPool(cfg PoolConfig, log *slog.Logger, m *metrics) *Pool {
	return &Pool{Name: cfg.Name, cfg: cfg, log: log.With("pool", cfg.Name), metrics: m, breaker: new(atomic.Int64), budget: &retryBudget{}}
}

// admit counts a request in, unless the pool has max_pending requests in
// flight already (the breaker is open).
func (p *Pool) admit() bool {
	if n := p.breaker.Add(1); n > int64(p.cfg.MaxPending) {
		p.breaker.Add(-1)
		return false
	}
	p.pending.Add(1)
	return true
}

// done counts an admitted request out.
func (p *Pool) done() {
	p.pending.Add(-1)
	p.breaker.Add(-1)
}

// Validate checks the pool's config on its own.
func (p *Pool) Validate() error {
	return p.cfg.validate("pool " + p.Name)
}

// Provision builds upstreams, picker and transport, reusing those of prev
// (the same-named pool of the running config, or nil) where they still fit,
// so a reload keeps warm connections, health verdicts and ejections.
func (p *Pool) Provision(prev *Pool) error {
	byAddr := map[string]*Upstream{}
	if prev != nil {
		p.breaker, p.budget = prev.breaker, prev.budget
		for _, u := range prev.upstreams {
			byAddr[u.Addr] = u
		}
	}
	for _, addr := range p.cfg.Upstreams {
		u := byAddr[addr]
		if u == nil {
			u = newUpstream(addr)
			u.metrics = p.metrics.forUpstream(p.Name, addr)
		}
		// A kept upstream keeps its metrics: the same pool name and
		// address give the same series, and requests of the old config
		// still read the field (reassigning it raced with them).
		p.upstreams = append(p.upstreams, u)
	}
	picker, err := newPicker(p.cfg, p.upstreams)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	p.picker = picker
	p.scheme = urlScheme(p.cfg.Protocol)
	if prev != nil && transportKey(prev.cfg) == transportKey(p.cfg) && prev.ownsTransport.CompareAndSwap(true, false) {
		p.transport, p.grpc = prev.transport, prev.grpc
		p.takenFrom = prev
	} else {
		p.transport, p.grpc = newTransport(p.cfg), &grpcConns{}
	}
	p.ownsTransport.Store(true)
	if p.cfg.HealthCheck != nil {
		p.active = newActiveChecker(p, *p.cfg.HealthCheck)
		if prev != nil {
			p.active.carryCounts(prev.active)
		}
	} else {
		// Without active checks nothing else would ever clear a verdict
		// left over from a previous config that had them.
		for _, u := range p.upstreams {
			u.healthy.Store(true)
		}
	}
	return nil
}

// giveBack returns a transport taken over by Provision to its
// predecessor: the generation was not installed (a later part of its
// config failed), and the running one goes on with it.
func (p *Pool) giveBack() {
	if prev := p.takenFrom; prev != nil {
		p.takenFrom = nil
		p.ownsTransport.Store(false)
		prev.ownsTransport.Store(true)
	}
}

// start launches the background health loop.
func (p *Pool) start() {
	if p.takenFrom != nil {
		// Installed: connections to upstreams the reload removed go
		// now, not when their idle time runs out.
		p.takenFrom = nil
		if t, ok := p.transport.(*h1Transport); ok {
			t.keepOnly(p.cfg.Upstreams)
		}
		p.grpc.keepOnly(p.cfg.Upstreams)
	}
	if p.active != nil {
		p.active.start()
	}
}

// Close stops health checks and drops idle connections the pool still
// owns. Requests in flight keep their connections until they finish.
func (p *Pool) Close() error {
	if p.active != nil {
		p.active.stop()
	}
	if p.ownsTransport.Load() {
		p.transport.CloseIdleConnections()
		// Closing a grpc.ClientConn would cut the calls still relayed over
		// it (a reload must not), so wait for the pool's calls to end.
		go func() {
			// A call that took the old state just before the swap counts
			// itself in (pending) a moment later: one poll's grace first,
			// or it finds the connections closed (errPoolClosed).
			time.Sleep(retiredPoolPoll)
			for p.pending.Load() > 0 {
				time.Sleep(retiredPoolPoll) // polling a counter; nothing to wait on
			}
			p.grpc.close()
		}()
	}
	return nil
}

// retiredPoolPoll is how often a retired pool checks whether its last
// gRPC call has ended.
const retiredPoolPoll = 100 * time.Millisecond

// Upstreams returns the pool's upstreams in config order.
func (p *Pool) Upstreams() []*Upstream { return slices.Clone(p.upstreams) }

// provisioner is the life cycle every pluggable part of a generation
// follows: Validate its config, Provision (taking over from its
// predecessor), Close when the generation is retired.
type provisioner[T any] interface {
	Validate() error
	Provision(prev T) error
	Close() error
}

var _ provisioner[*Pool] = (*Pool)(nil)
