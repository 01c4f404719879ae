package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // clients may compress; the relay must read it
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The native gRPC engine serves the h2c connections of a listener with
// grpc_native: true through grpc-go's own HTTP/2 transport and relays each
// call, message by message, over pooled grpc.ClientConns. grpc-go batches
// frames into few writes, where net/http's HTTP/2 server and client flush
// headers, data and trailers separately; on the bench this engine needs
// about a third of the CPU per call (see bench/lb/RESULTS.md). Messages are
// relayed as opaque bytes (rawCodec), never decoded.

// rawFrame is one gRPC message, undecoded.
type rawFrame struct{ b []byte }

// rawCodec passes message bytes through. Its name is "proto" so upstreams
// see the usual application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*rawFrame).b, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	f := v.(*rawFrame)
	f.b = append(f.b[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// maxRelayMsg bounds one relayed message; the upstream applies its own
// (usually 4 MiB) limit on top.
const maxRelayMsg = 256 << 20

// grpcEngine serves the h2c connections of a native_grpc listener: Serve
// until the listener closes, GracefulStop drains calls in flight, Stop
// ends them.
type grpcEngine interface {
	Serve(net.Listener) error
	GracefulStop()
	Stop()
}

func (s *Server) newGRPCServer(l *listener) grpcEngine {
	return grpc.NewServer(
		grpc.UnknownServiceHandler(s.relayGRPC),
		grpc.ForceServerCodec(rawCodec{}),
		grpc.MaxRecvMsgSize(maxRelayMsg),
		grpc.MaxSendMsgSize(maxRelayMsg),
		grpc.ConnectionTimeout(time.Duration(l.cfg.ReadHeaderTimeout)),
		grpc.MaxHeaderListSize(uint32(l.cfg.MaxHeaderBytes)),
		// Clients' keepalive pings are welcome (net/http's server does not
		// police them either).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
}

// grpcConns is a pool's set of client connections, one per upstream, for
// the native engine. It is handed over on reload like the transport.
type grpcConns struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (g *grpcConns) get(addr string) (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cc := g.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// grpc-go's default reconnect backoff grows to two minutes, which
		// would keep a restarted upstream out of rotation long after health
		// checks and ejection let it back in.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(maxRelayMsg), grpc.MaxCallSendMsgSize(maxRelayMsg)),
	)
	if err != nil {
		return nil, err
	}
	if g.conns == nil {
		g.conns = map[string]*grpc.ClientConn{}
	}
	g.conns[addr] = cc
	return cc, nil
}

func (g *grpcConns) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cc := range g.conns {
		cc.Close()
	}
	g.conns = nil
}

// relayStreamDesc covers every call shape: unary is a stream of one.
var relayStreamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// relayGRPC is the handler of every call on the native engine: the same
// routing and admission as ServeHTTP, then a message relay.
func (s *Server) relayGRPC(_ any, ss grpc.ServerStream) (err error) {
	start := time.Now()
	st := s.state.Load()
	ctx := ss.Context()
	method, _ := grpc.MethodFromServerStream(ss)
	md, _ := metadata.FromIncomingContext(ctx)
	host := firstMD(md, ":authority")
	ct := firstMD(md, "content-type")
	if ct == "" {
		ct = "application/grpc"
	}
	reqID := firstMD(md, "x-request-id")
	if reqID == "" || len(reqID) > 200 {
		reqID = newRequestID()
	}
	_ = ss.SetHeader(metadata.Pairs("x-request-id", reqID))
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}

	ex := exchange{status: 200}
	defer func() {
		d := time.Since(start)
		if ex.route != nil {
			ex.route.metrics.observe(ex.status, d)
		}
		if st.accessLog {
			s.logGRPCAccess(method, host, remote, reqID, md, &ex, status.Code(err), d)
		}
	}()

	ro := st.router.matchParts(host, method, ct)
	if ro == nil {
		s.noRoute.Inc()
		ex.status = 404
		return status.Error(codes.Unimplemented, "no route for this request")
	}
	ex.route = ro
	if ro.limiter != nil {
		key := ""
		if ro.limiter.header != "" {
			if v := firstMD(md, strings.ToLower(ro.limiter.header)); v != "" {
				key = "k:" + v
			}
		}
		if key == "" {
			host, _, _ := net.SplitHostPort(remote)
			key = "ip:" + host
		}
		if ok, _ := ro.limiter.allow(key, time.Now()); !ok {
			ro.metrics.reject("rate_limit")
			ex.status = 429
			return status.Error(codes.ResourceExhausted, "rate limit exceeded")
		}
	}
	pool := ro.pool
	if n := pool.pending.Add(1); n > int64(pool.cfg.MaxPending) {
		pool.pending.Add(-1)
		ro.metrics.reject("circuit_open")
		ex.status = 503
		return status.Error(codes.Unavailable, "upstream pool is saturated")
	}
	defer pool.pending.Add(-1)
	s.budget.request()
	if t := time.Duration(ro.cfg.Timeout); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, outboundMD(md, reqID, remote, host)))
	defer cancel()

	var hashReq *httpRequestForHash
	if ch, ok := pool.picker.(*ConsistentHash); ok {
		hashReq = newHashRequest(ch.header, firstMD(md, strings.ToLower(ch.header)))
	}
	var triedBuf [4]*Upstream
	tried := triedBuf[:0]
	maxAttempts := 1 + *ro.cfg.Retries
	for attempt := 1; ; attempt++ {
		u := pool.picker.Pick(hashReq.request(), pool.upstreams, tried)
		if u == nil {
			ex.status = 503
			ro.metrics.reject("no_upstream")
			return status.Error(codes.Unavailable, "no upstream available")
		}
		tried = append(tried, u)
		ex.attempts, ex.upstream = attempt, u.Addr
		cc, cerr := pool.grpc.get(u.Addr)
		if cerr != nil {
			return status.Error(codes.Internal, "upstream client: "+cerr.Error())
		}
		u.inflight.Add(1)
		tryStart := time.Now()
		cs, serr := cc.NewStream(ctx, relayStreamDesc, method)
		if serr != nil {
			u.inflight.Add(-1)
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			// Nothing was sent: the stream could not even be opened (the
			// upstream is down), so another upstream may be tried.
			pool.recordOutcome(u, outcomeGatewayFailure)
			if attempt < maxAttempts && s.budget.tryRetry() {
				ro.metrics.retries.Inc()
				continue
			}
			ex.status = 502
			return serr
		}
		err := relayStream(ss, cs, cancel, u, tryStart, int64(ro.cfg.MaxBodyBytes))
		if errors.Is(err, errBodyTooLarge) {
			ro.metrics.reject("body_too_large")
			ex.status = 413
			err = status.Error(codes.ResourceExhausted, "request messages exceed max_body_bytes")
		}
		u.inflight.Add(-1)
		if status.Code(err) == codes.Unavailable && ctx.Err() == nil {
			pool.recordOutcome(u, outcomeGatewayFailure)
		} else {
			pool.recordOutcome(u, outcomeSuccess)
		}
		if err != nil {
			ex.err = err
		}
		return err
	}
}

// relayStream copies messages both ways until the upstream ends the call,
// then hands its trailers and status to the client.
// maxBody > 0 caps the bytes of all request messages of the call
// (max_body_bytes); going over it ends the call with errBodyTooLarge.
func relayStream(ss grpc.ServerStream, cs grpc.ClientStream, cancel context.CancelFunc, u *Upstream, start time.Time, maxBody int64) error {
	var tooLarge atomic.Bool
	go func() {
		var total int64
		for {
			f := &rawFrame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					_ = cs.CloseSend()
				} else {
					cancel() // the client went away: end the upstream call
				}
				return
			}
			if total += int64(len(f.b)); maxBody > 0 && total > maxBody {
				tooLarge.Store(true)
				cancel()
				return
			}
			if err := cs.SendMsg(f); err != nil {
				return // the upstream ended the call; RecvMsg below reports why
			}
		}
	}()
	hdr, err := cs.Header()
	if tooLarge.Load() {
		return errBodyTooLarge
	}
	u.observeLatency(time.Since(start))
	u.metrics.latency.Observe(time.Since(start).Seconds())
	if err == nil && len(hdr) > 0 {
		if err := ss.SendHeader(hdr); err != nil {
			return err
		}
	}
	f := &rawFrame{}
	for {
		if err := cs.RecvMsg(f); err != nil {
			if tooLarge.Load() {
				return errBodyTooLarge
			}
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}

// reservedMD are metadata keys grpc-go sets itself or that describe the
// client's hop; the rest is passed on.
var reservedMD = map[string]bool{
	":authority": true, "content-type": true, "user-agent": true, "te": true,
	"grpc-timeout": true, "grpc-encoding": true, "grpc-accept-encoding": true,
}

func outboundMD(md metadata.MD, reqID, remote, host string) metadata.MD {
	out := make(metadata.MD, len(md)+3)
	for k, v := range md {
		if !reservedMD[k] {
			out[k] = v
		}
	}
	out["x-request-id"] = []string{reqID}
	if ip, _, err := net.SplitHostPort(remote); err == nil {
		if prior := md["x-forwarded-for"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out["x-forwarded-for"] = []string{ip}
	}
	if _, ok := md["x-forwarded-host"]; !ok && host != "" {
		out["x-forwarded-host"] = []string{host}
	}
	out["x-forwarded-proto"] = []string{"http"}
	return out
}

func firstMD(md metadata.MD, key string) string {
	if v := md[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

var _ encoding.Codec = rawCodec{}
