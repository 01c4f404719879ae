package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Server is the load balancer: its listeners stay for the life of the
// process while the routing state (routes, pools, limits) is swapped
// atomically on Reload. A request keeps the state it started with, so a
// reload never disturbs requests in flight.
type Server struct {
	log       *slog.Logger
	accessLog *slog.Logger
	metrics   *metrics
	noRoute   prometheus.Counter

	state     atomic.Pointer[state]
	listeners []*listener
	hijacked  hijackTracker

	mu      sync.Mutex // serialises Start, Reload and Shutdown
	started bool
	stopped bool
	stopBg  context.CancelFunc
	bgDone  chan struct{}
}

// state is one config generation.
type state struct {
	cfg       *Config
	router    *router
	pools     map[string]*Pool
	accessLog bool
	trust     *proxyTrust // trusted_proxies; nil: none
}

type listener struct {
	cfg  ListenerConfig
	srv  *http.Server
	ln   net.Listener
	cert atomic.Pointer[tls.Certificate]
	done chan struct{}

	// With native_grpc: h2c connections go to grpcSrv, the rest to srv.
	grpcSrv  grpcEngine
	grpcDone chan struct{}
	sniff    *sniffer // reads PROXY headers and/or splits the port between the two; nil: neither

	// HTTP/1.x connections, over TLS too, go to the fast loop, which
	// hands srv the requests it leaves to net/http (h1server.go), and h2
	// the connections that negotiated HTTP/2 over TLS.
	fast *h1Server
	// h2 serves the HTTP/2 connections of a TLS listener, which the fast
	// loop hands it after the handshake (h2serve.go).
	h2 *h2Relay
}

// New validates cfg and builds a Server; it starts health checks but does
// not listen until Start. Metrics go to reg (a private registry when nil).
// Call Shutdown to release it, even if Start was never called.
func New(cfg *Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("lb: nil config")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lb: invalid config: %w", err)
	}
	s := &Server{
		log:       log.With("component", "lb"),
		accessLog: log.With("component", "lb", "log", "access"),
	}
	m, err := newMetrics(reg, s)
	if err != nil {
		return nil, fmt.Errorf("lb: register metrics: %w", err)
	}
	s.metrics = m
	s.noRoute = m.rejected.WithLabelValues("", "no_route")
	for _, lc := range cfg.Listeners {
		l := &listener{cfg: lc, done: make(chan struct{})}
		if err := l.loadCert(); err != nil {
			return nil, fmt.Errorf("lb: %w", err)
		}
		l.srv = s.newHTTPServer(l)
		if lc.TLS != nil {
			l.h2 = &h2Relay{s: s, l: l}
		}
		if lc.NativeGRPC {
			l.grpcSrv = s.newGRPCServer(l)
			l.grpcDone = make(chan struct{})
		}
		s.listeners = append(s.listeners, l)
	}
	st, err := s.buildState(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	s.install(st)
	bg, cancel := context.WithCancel(context.Background())
	s.stopBg, s.bgDone = cancel, make(chan struct{})
	go s.background(bg)
	return s, nil
}

func (s *Server) newHTTPServer(l *listener) *http.Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if l.cfg.TLS != nil {
		protocols.SetHTTP2(true)
	}
	if l.cfg.H2C {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           s,
		Protocols:         protocols,
		ReadHeaderTimeout: time.Duration(l.cfg.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(l.cfg.IdleTimeout),
		MaxHeaderBytes:    int(l.cfg.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// HTTP/2 (h2c without native_grpc): the native engine's windows,
		// so that one stream whose upstream stops reading does not hold
		// back the connection's other streams (net/http's default
		// connection window is one stream's).
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerConnection: h2ServeConnWindow, MaxReceiveBufferPerStream: h2StreamWindow},
	}
	if l.cfg.TLS != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			// Read at handshake time, so a reload can rotate certificates.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil },
		}
	}
	// The listener goes with each connection's requests (its
	// body_read_timeout). A TLS connection the fast loop hands over
	// mid-way (a request it leaves to net/http) comes as a prefixConn,
	// in which net/http sees no *tls.Conn: its requests then learn their
	// TLS state from the context (ServeHTTP), for X-Forwarded-Proto.
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		ctx = context.WithValue(ctx, listenerKey{}, l)
		if balancerTLS(l.cfg.ForwardedProto, c) {
			ctx = context.WithValue(ctx, balancerTLSKey{}, true)
		}
		if pc, ok := c.(*prefixConn); ok {
			ctx = context.WithValue(ctx, handedConnKey{}, pc) // its body_read_timeout
			if tc, ok := pc.Conn.(*tls.Conn); ok {
				st := tc.ConnectionState()
				return context.WithValue(ctx, handedTLSKey{}, &st)
			}
		}
		return ctx
	}
	return srv
}

// listenerKey carries the listener of a connection net/http serves (its
// body_read_timeout, in proxy).
type listenerKey struct{}

// handedConnKey holds, in the context of net/http's requests, the
// connection they came on (a *prefixConn).
type handedConnKey struct{}

// handedTLSKey carries the TLS state of a connection the fast loop
// handed to net/http (see newHTTPServer).
type handedTLSKey struct{}

// balancerTLSKey marks, in the context of net/http's requests, a
// connection whose TLS a balancer in front terminated (balancerTLS).
type balancerTLSKey struct{}

func (l *listener) loadCert() error {
	if l.cfg.TLS == nil {
		return nil
	}
	c, err := tls.LoadX509KeyPair(l.cfg.TLS.CertFile, l.cfg.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("listener %s: load certificate: %w", l.cfg.Name, err)
	}
	l.cert.Store(&c)
	return nil
}

// buildState provisions a generation from cfg, taking over what still
// fits from prev.
func (s *Server) buildState(cfg *Config, prev *state) (*state, error) {
	st := &state{cfg: cfg, pools: map[string]*Pool{}, router: &router{}, accessLog: *cfg.AccessLog, trust: newProxyTrust(cfg.TrustedProxies)}
	for _, pc := range cfg.Pools {
		p := newPool(pc, s.log, s.metrics)
		var old *Pool
		if prev != nil {
			old = prev.pools[pc.Name]
		}
		if err := p.Provision(old); err != nil {
			for _, q := range st.pools {
				q.giveBack() // or Close would close the running generation's
				q.Close()
			}
			return nil, err
		}
		st.pools[pc.Name] = p
	}
	prevLimiters := map[string]*rateLimiter{}
	if prev != nil {
		for _, ro := range prev.router.routes {
			if ro.limiter != nil {
				prevLimiters[ro.name] = ro.limiter
			}
		}
	}
	for _, rc := range cfg.Routes {
		ro := &route{cfg: rc, name: rc.Name, matcher: newRouteMatcher(rc.Match), pool: st.pools[rc.Pool], metrics: s.metrics.forRoute(rc.Name)}
		if rc.RateLimit != nil {
			// Keep the buckets across a reload when the limit is unchanged,
			// or a reload would hand every client a fresh burst.
			if old := prevLimiters[rc.Name]; old != nil && old.cfg == *rc.RateLimit {
				ro.limiter = old
			} else {
				ro.limiter = newRateLimiter(*rc.RateLimit)
			}
		}
		st.router.routes = append(st.router.routes, ro)
	}
	return st, nil
}

// install makes st current, starts its health checks and retires the
// generation it replaces.
func (s *Server) install(st *state) {
	for _, p := range st.pools {
		budget := st.cfg.RetryBudget
		p.budget.cfg.Store(&budget)
		p.start()
	}
	old := s.state.Swap(st)
	if old != nil {
		for _, p := range old.pools {
			p.Close()
		}
		s.metrics.forget(old, st)
		// An old pool's checker may have recorded a verdict on a kept
		// upstream after the new pool cleared it (Provision) and before
		// Close stopped it: a pool without checks clears it again, now
		// that no old checker runs, or the upstream stays out for good.
		for _, p := range st.pools {
			if p.active == nil {
				for _, u := range p.upstreams {
					u.healthy.Store(true)
				}
			}
		}
	}
}

// background runs housekeeping: rate limiter sweeps.
func (s *Server) background(ctx context.Context) {
	defer close(s.bgDone)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("lb background loop panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, ro := range s.state.Load().router.routes {
				if ro.limiter != nil {
					ro.limiter.sweep(now)
				}
			}
		}
	}
}

// Start opens every listener and serves in the background. It returns
// once all sockets are listening, or the first error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("lb: already started")
	}
	if s.stopped {
		return errors.New("lb: shut down")
	}
	var lc net.ListenConfig
	for i, l := range s.listeners {
		ln, err := lc.Listen(ctx, "tcp", l.cfg.Address)
		if err != nil {
			for _, prev := range s.listeners[:i] {
				prev.ln.Close()
			}
			return fmt.Errorf("lb: listener %s: %w", l.cfg.Name, err)
		}
		l.ln = ln
	}
	for _, l := range s.listeners {
		httpLn := l.ln
		if l.grpcSrv != nil || l.cfg.ProxyProtocol {
			var proxy func() *proxyTrust
			if l.cfg.ProxyProtocol {
				proxy = func() *proxyTrust { return s.state.Load().trust }
			}
			l.sniff = newSniffer(l.ln.Addr(), time.Duration(l.cfg.ReadHeaderTimeout), s.log, l.grpcSrv != nil, proxy)
			go l.sniff.run(l.ln)
			httpLn = l.sniff.h1
		}
		if l.grpcSrv != nil {
			go func() {
				defer close(l.grpcDone)
				if err := l.grpcSrv.Serve(l.sniff.h2); err != nil {
					s.log.Error("gRPC engine stopped", "listener", l.cfg.Name, "err", err)
				}
			}()
		}
		if l.cfg.TLS != nil {
			// After any PROXY header, which comes before the handshake.
			httpLn = tls.NewListener(httpLn, l.srv.TLSConfig)
		}
		handoff := newChanListener(l.ln.Addr())
		l.fast = s.newH1Server(l, handoff)
		l.fast.start(httpLn)
		httpLn = handoff
		go func() {
			defer close(l.done)
			if err := l.srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("listener stopped", "listener", l.cfg.Name, "err", err)
			}
		}()
		s.log.Info("listening", "listener", l.cfg.Name, "addr", l.ln.Addr().String(), "tls", l.cfg.TLS != nil, "h2c", l.cfg.H2C, "proxy_protocol", l.cfg.ProxyProtocol, "forwarded_proto", l.cfg.ForwardedProto)
	}
	s.started = true
	return nil
}

// DrainTimeout is the drain_timeout of the config being served (the last
// one a reload applied).
func (s *Server) DrainTimeout() time.Duration {
	return time.Duration(s.state.Load().cfg.DrainTimeout)
}

// Addr is the address the first listener is bound to (useful with port 0).
// It is "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 || s.listeners[0].ln == nil {
		return ""
	}
	return s.listeners[0].ln.Addr().String()
}

// Addrs maps listener names to their bound addresses.
func (s *Server) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, l := range s.listeners {
		if l.ln != nil {
			out[l.cfg.Name] = l.ln.Addr().String()
		}
	}
	return out
}

// Reload validates cfg and, if it is good, switches routes and pools to it
// atomically. Requests in flight finish on the old generation; open
// connections stay open. On any error the running config stays in force
// and the error says what is wrong. Listeners cannot change on reload
// (that needs a restart); certificates are re-read.
func (s *Server) Reload(cfg *Config) (err error) {
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
			s.log.Error("config reload rejected; keeping the running config", "err", err)
		} else {
			s.log.Info("config reloaded", "routes", len(cfg.Routes), "pools", len(cfg.Pools))
		}
		s.metrics.reloads.WithLabelValues(result).Inc()
	}()
	if cfg == nil {
		return errors.New("lb reload: nil config")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("lb reload: server is shut down")
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("lb reload: %w", err)
	}
	if err := s.sameListeners(cfg); err != nil {
		return fmt.Errorf("lb reload: %w", err)
	}
	certs := make([]*tls.Certificate, len(s.listeners))
	for i, l := range s.listeners {
		if lc := cfg.Listeners[i]; lc.TLS != nil {
			c, err := tls.LoadX509KeyPair(lc.TLS.CertFile, lc.TLS.KeyFile)
			if err != nil {
				return fmt.Errorf("lb reload: listeners[%d].tls: %w", i, err)
			}
			certs[i] = &c
			_ = l
		}
	}
	st, err := s.buildState(cfg, s.state.Load())
	if err != nil {
		return fmt.Errorf("lb reload: %w", err)
	}
	for i, l := range s.listeners {
		if certs[i] != nil {
			l.cert.Store(certs[i])
		}
	}
	s.install(st)
	return nil
}

func (s *Server) sameListeners(cfg *Config) error {
	if len(cfg.Listeners) != len(s.listeners) {
		return fmt.Errorf("listeners: %d configured but %d running; changing listeners needs a restart", len(cfg.Listeners), len(s.listeners))
	}
	for i, l := range s.listeners {
		// Every setting but the certificate files (loaded below, which
		// may be others now) is compared, so that no listener setting a
		// reload cannot apply is taken in silence.
		n, o := cfg.Listeners[i], l.cfg
		withTLS := n.TLS != nil
		n.TLS, o.TLS = nil, nil
		if n != o || withTLS != (l.cfg.TLS != nil) {
			return fmt.Errorf("listeners[%d] (%s): changed; only tls certificate files may change without a restart", i, o.Name)
		}
	}
	return nil
}

// Shutdown drains: listeners stop accepting, idle connections close,
// requests in flight (upgraded connections included) run to completion
// until ctx ends, after which what remains is closed and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()

	var firstErr error
	if started {
		var wg sync.WaitGroup
		errs := make([]error, len(s.listeners))
		for i, l := range s.listeners {
			if l.sniff != nil {
				l.ln.Close() // stop the sniffer's accepts; the engines drain below
			}
			if l.grpcSrv != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if !l.sniff.wait(ctx) {
						l.sniff.abort()
					}
					drainEngine(ctx, l.grpcSrv)
				}()
			}
			if l.h2 != nil {
				wg.Add(1)
				go func() { defer wg.Done(); drainEngine(ctx, l.h2) }()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var fastErr error
				if l.sniff != nil && !l.sniff.wait(ctx) {
					l.sniff.abort() // the fast loop's drain then ends at once too
				}
				if l.fast != nil {
					// The fast loop drains first: until it is done, its
					// connections may still hand requests to srv. It
					// closes its listener (l.ln, or the sniffer's, which
					// closes once it has handed on what it held).
					fastErr = l.fast.shutdown(ctx)
				}
				errs[i] = errors.Join(fastErr, l.srv.Shutdown(ctx))
			}()
		}
		wg.Wait()
		hijackedDone := make(chan struct{})
		go func() { s.hijacked.wg.Wait(); close(hijackedDone) }()
		select {
		case <-hijackedDone:
		case <-ctx.Done():
		}
		if err := errors.Join(errs...); err != nil || ctx.Err() != nil {
			firstErr = errors.Join(err, ctx.Err())
			for _, l := range s.listeners {
				l.srv.Close()
				if l.fast != nil {
					l.fast.closeAll()
				}
			}
			s.hijacked.closeAll()
		}
		for _, l := range s.listeners {
			<-l.done
			if l.fast != nil {
				l.fast.acceptWG.Wait()
				l.fast.wg.Wait()
			}
			if l.grpcSrv != nil {
				<-l.grpcDone
			}
		}
	}
	s.stopBg()
	<-s.bgDone
	if st := s.state.Load(); st != nil {
		for _, p := range st.pools {
			p.Close()
		}
	}
	if firstErr != nil {
		return fmt.Errorf("lb shutdown: %w", firstErr)
	}
	s.log.Info("lb drained")
	return nil
}

// drainEngine stops an HTTP/2 engine gracefully, or at once when ctx
// ends first.
func drainEngine(ctx context.Context, e grpcEngine) {
	stopped := make(chan struct{})
	go func() { e.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		e.Stop()
	}
}

var _ http.Handler = (*Server)(nil)
