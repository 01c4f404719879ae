package lb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// echoService is a real gRPC upstream: UnaryCall echoes its payload and
// sets a trailer naming the server, FullDuplexCall echoes every message.
type echoService struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (s *echoService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if string(in.GetPayload().GetBody()) == "fail" {
		return nil, status.Error(codes.FailedPrecondition, "asked to fail")
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-served-by", s.name))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+s.name))
	return &testpb.SimpleResponse{Payload: in.GetPayload(), ServerId: s.name}, nil
}

func (s *echoService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	n := 0
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs("x-count", fmt.Sprint(n)))
			return nil
		}
		if err != nil {
			return err
		}
		n++
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

type grpcBackend struct {
	addr   string
	health *health.Server
	srv    *grpc.Server
}

func newGRPCBackend(t *testing.T, name string) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &echoService{name: name})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return &grpcBackend{addr: ln.Addr().String(), health: hs, srv: srv}
}

func dialLB(t *testing.T, addr string) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func grpcRouteConfig(pool PoolConfig, ro RouteConfig, native bool) *Config {
	pool.Protocol = "h2c"
	ro.Match = MatchConfig{GRPC: true}
	cfg := oneRoute(pool, ro)
	cfg.Listeners[0].NativeGRPC = native
	return cfg
}

// forEachEngine runs a gRPC test through net/http's HTTP/2 and through the
// native engine, the frame relay (listener native_grpc: true).
func forEachEngine(t *testing.T, test func(t *testing.T, native bool)) {
	for _, native := range []bool{false, true} {
		name := "net-http"
		if native {
			name = "native"
		}
		t.Run(name, func(t *testing.T) { test(t, native) })
	}
}

// grpcEngineCase is one way gRPC reaches the lb: h2c through net/http's
// HTTP/2 server, h2c through the frame relay (native_grpc), or HTTP/2
// over TLS through the native engine's server (h2serve.go).
type grpcEngineCase struct {
	native bool
	tls    *TLSConfig
	roots  *x509.CertPool
}

// forEachGRPCEngine runs a gRPC test on each way in.
func forEachGRPCEngine(t *testing.T, test func(t *testing.T, e grpcEngineCase)) {
	forEachEngine(t, func(t *testing.T, native bool) { test(t, grpcEngineCase{native: native}) })
	t.Run("tls-h2", func(t *testing.T) {
		certFile, keyFile, roots := writeCert(t, t.TempDir(), 1)
		test(t, grpcEngineCase{tls: &TLSConfig{CertFile: certFile, KeyFile: keyFile}, roots: roots})
	})
}

// listen makes l a listener of this way in.
func (e grpcEngineCase) listen(l *ListenerConfig) {
	l.NativeGRPC = e.native
	if e.tls != nil {
		l.H2C, l.TLS = false, e.tls
	}
}

// config is grpcRouteConfig on this way in.
func (e grpcEngineCase) config(pool PoolConfig, ro RouteConfig) *Config {
	cfg := grpcRouteConfig(pool, ro, e.native)
	e.listen(&cfg.Listeners[0])
	return cfg
}

// conn is a client connection to the lb at addr.
func (e grpcEngineCase) conn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if e.tls != nil {
		creds = credentials.NewTLS(&tls.Config{RootCAs: e.roots})
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (e grpcEngineCase) dial(t *testing.T, addr string) testpb.TestServiceClient {
	return testpb.NewTestServiceClient(e.conn(t, addr))
}

func TestGRPCUnaryWithHeadersAndTrailers(t *testing.T) { forEachGRPCEngine(t, testGRPCUnary) }

func testGRPCUnary(t *testing.T, e grpcEngineCase) {
	g1, g2 := newGRPCBackend(t, "g1"), newGRPCBackend(t, "g2")
	srv, _ := startLB(t, e.config(PoolConfig{Upstreams: []string{g1.addr, g2.addr}}, RouteConfig{}))
	client := e.dial(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		var hdr, trl metadata.MD
		body := fmt.Sprintf("hello-%d", i)
		res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}}, grpc.Header(&hdr), grpc.Trailer(&trl))
		require.NoError(t, err)
		require.Equal(t, body, string(res.GetPayload().GetBody()))
		require.Equal(t, []string{res.GetServerId()}, hdr.Get("x-served-by"))
		require.Equal(t, []string{"t-" + res.GetServerId()}, trl.Get("x-trailer"), "trailers pass through")
		require.NotEmpty(t, hdr.Get("x-request-id"))
		seen[res.GetServerId()]++
	}
	require.Equal(t, map[string]int{"g1": 10, "g2": 10}, seen)

	// An application error keeps its code and message.
	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("fail")}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, "asked to fail", status.Convert(err).Message())
}

func TestGRPCBidiStreamPassesThroughIntact(t *testing.T) { forEachGRPCEngine(t, testGRPCBidi) }

func testGRPCBidi(t *testing.T, e grpcEngineCase) {
	g := newGRPCBackend(t, "g")
	srv, _ := startLB(t, e.config(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{TryTimeout: Duration(time.Second), Timeout: 0}))
	client := e.dial(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A shortened "minutes of traffic": several concurrent streams, each
	// sending interleaved messages for two seconds (well past try_timeout)
	// and checking every echo in order.
	const streams = 4
	errs := make(chan error, streams)
	for s := 0; s < streams; s++ {
		go func() {
			errs <- func() error {
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					return err
				}
				deadline := time.Now().Add(2 * time.Second)
				n := 0
				for time.Now().Before(deadline) {
					body := []byte(fmt.Sprintf("stream-%d-msg-%d", s, n))
					if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
						return err
					}
					in, err := stream.Recv()
					if err != nil {
						return err
					}
					if string(in.GetPayload().GetBody()) != string(body) {
						return fmt.Errorf("echo %q, want %q", in.GetPayload().GetBody(), body)
					}
					n++
				}
				if err := stream.CloseSend(); err != nil {
					return err
				}
				if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
					return fmt.Errorf("want EOF after close, got %v", err)
				}
				if got := stream.Trailer().Get("x-count"); len(got) != 1 || got[0] != fmt.Sprint(n) {
					return fmt.Errorf("trailer x-count %v, want %d", got, n)
				}
				if n < 100 {
					return fmt.Errorf("only %d round trips in 2s", n)
				}
				return nil
			}()
		}()
	}
	for s := 0; s < streams; s++ {
		require.NoError(t, <-errs)
	}
}

func TestGRPCRoutesByServiceAndErrorsAreGRPCCodes(t *testing.T) { forEachGRPCEngine(t, testGRPCRoutes) }

func testGRPCRoutes(t *testing.T, e grpcEngineCase) {
	g := newGRPCBackend(t, "g")
	cfg := &Config{
		Listeners: []ListenerConfig{{Address: "127.0.0.1:0", H2C: true}},
		Routes: []RouteConfig{
			{Name: "health-only", Match: MatchConfig{GRPCServices: []string{"grpc.health.v1.Health"}}, Pool: "real"},
			{Name: "dead", Match: MatchConfig{GRPC: true}, Pool: "dead"},
		},
		Pools: []PoolConfig{
			{Name: "real", Protocol: "h2c", Upstreams: []string{g.addr}},
			{Name: "dead", Protocol: "h2c", Upstreams: []string{"127.0.0.1:1"}},
		},
	}
	e.listen(&cfg.Listeners[0])
	srv, _ := startLB(t, cfg)
	cc := e.conn(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())

	// TestService routes to the dead pool: the client sees Unavailable.
	_, err = testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
}

func TestGRPCNoRouteIsUnimplemented(t *testing.T) { forEachGRPCEngine(t, testGRPCNoRoute) }

func testGRPCNoRoute(t *testing.T, e grpcEngineCase) {
	g := newGRPCBackend(t, "g")
	cfg := oneRoute(PoolConfig{Protocol: "h2c", Upstreams: []string{g.addr}}, RouteConfig{Match: MatchConfig{GRPCServices: []string{"other.v1.Service"}}})
	e.listen(&cfg.Listeners[0])
	srv, _ := startLB(t, cfg)
	_, err := e.dial(t, srv.Addr()).EmptyCall(context.Background(), &testpb.Empty{})
	require.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestGRPCActiveHealthCheck(t *testing.T) { forEachGRPCEngine(t, testGRPCHealth) }

func testGRPCHealth(t *testing.T, e grpcEngineCase) {
	g1, g2 := newGRPCBackend(t, "g1"), newGRPCBackend(t, "g2")
	const svc = "grpc.testing.TestService"
	g1.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	g2.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	cfg := e.config(PoolConfig{
		Upstreams: []string{g1.addr, g2.addr},
		HealthCheck: &HealthCheckConfig{Type: "grpc", Service: svc, Interval: Duration(20 * time.Millisecond),
			Timeout: Duration(20 * time.Millisecond), UnhealthyThreshold: 1, HealthyThreshold: 1},
	}, RouteConfig{})
	srv, _ := startLB(t, cfg)
	client := e.dial(t, srv.Addr())
	u2 := srv.state.Load().pools["p"].upstreams[1]

	g2.health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	require.Eventually(t, func() bool { return !u2.healthy.Load() }, 5*time.Second, 5*time.Millisecond)
	for i := 0; i < 10; i++ {
		res, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		require.NoError(t, err)
		require.Equal(t, "g1", res.GetServerId())
	}
	g2.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	require.Eventually(t, func() bool { return u2.healthy.Load() }, 5*time.Second, 5*time.Millisecond)
}

func TestNativeGRPCListenerServesHTTP1AndRetriesDeadUpstream(t *testing.T) {
	g := newGRPCBackend(t, "g")
	web := newBackend(t, "web", nil)
	cfg := &Config{
		Listeners: []ListenerConfig{{Address: "127.0.0.1:0", H2C: true, NativeGRPC: true}},
		Routes: []RouteConfig{
			{Name: "grpc", Match: MatchConfig{GRPC: true}, Pool: "grpc", Retries: ptr(1)},
			{Name: "web", Pool: "web"},
		},
		Pools: []PoolConfig{
			// The dead upstream comes first in round robin order.
			{Name: "grpc", Protocol: "h2c", Upstreams: []string{"127.0.0.1:1", g.addr}},
			{Name: "web", Upstreams: addrs(web)},
		},
	}
	srv, base := startLB(t, cfg)

	// HTTP/1.1 on the same port still goes through net/http.
	code, body := get(t, newClient(t), base+"/page", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "web", body)

	// So does HTTP/2 without TLS (h2c) that is not gRPC: the native
	// engine proxies it as an HTTP request, on the connection its gRPC
	// calls use.
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer h2c.CloseIdleConnections()
	res, err := (&http.Client{Transport: h2c}).Post(base+"/form", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, "HTTP/2.0", res.Proto)
	require.Equal(t, "web", string(got))
	require.Equal(t, "web", res.Header.Get("X-Backend"))

	// Calls that meet the dead upstream first are retried on the live one:
	// no stream could be opened, so nothing was sent.
	client := dialLB(t, srv.Addr())
	for i := 0; i < 6; i++ {
		res, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}})
		require.NoError(t, err)
		require.Equal(t, "g", res.GetServerId())
	}
}

func TestGRPCLimits(t *testing.T) { forEachGRPCEngine(t, testGRPCLimits) }

// testGRPCLimits: a per-key rate limit and max_body_bytes reach gRPC
// clients as ResourceExhausted on both engines.
func testGRPCLimits(t *testing.T, e grpcEngineCase) {
	g := newGRPCBackend(t, "g")
	cfg := e.config(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{
		MaxBodyBytes: 1000,
		RateLimit:    &RateLimitConfig{Key: "header:X-Api-Key", Rate: 0.001, Burst: 2},
	})
	srv, _ := startLB(t, cfg)
	client := e.dial(t, srv.Addr())
	call := func(key string, size int) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-api-key", key)
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, size)}})
		return err
	}
	require.NoError(t, call("alice", 10))
	err := call("alice", 5000)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "too large: %v", err)
	err = call("alice", 10)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "rate limited: %v", err)
	require.NoError(t, call("bob", 10), "another key has its own bucket")
}

// TestNativeGRPCUpstreamRestartIsUsedAgainSoon: after an upstream was down
// and comes back on the same address, calls reach it again within seconds.
// (The frame relay dials on demand, merging concurrent dials, with no
// backoff to wait out; grpc-go's ClientConn, which it replaced, needed a
// short backoff here because its default grows to two minutes.)
func TestNativeGRPCUpstreamRestartIsUsedAgainSoon(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	first := grpc.NewServer()
	testpb.RegisterTestServiceServer(first, &echoService{name: "g"})
	go first.Serve(ln)

	cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Retries: ptr(0)}, true)
	srv, _ := startLB(t, cfg)
	client := dialLB(t, srv.Addr())
	_, err = client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)

	first.Stop()
	for i := 0; i < 3; i++ { // down: several failed reconnects grow the backoff
		_, err = client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err))
	}
	ln2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	second := grpc.NewServer()
	testpb.RegisterTestServiceServer(second, &echoService{name: "g2"})
	go second.Serve(ln2)
	t.Cleanup(second.Stop)
	require.Eventually(t, func() bool {
		res, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		return err == nil && res.GetServerId() == "g2"
	}, 5*time.Second, 20*time.Millisecond)
}

// TestReloadKeepsGRPCStreamsOpen: a bidi stream keeps working while the
// config is reloaded several times, including to one where its pool is
// gone, on both engines.
func TestReloadKeepsGRPCStreamsOpen(t *testing.T) { forEachGRPCEngine(t, testReloadKeepsStreams) }

func testReloadKeepsStreams(t *testing.T, e grpcEngineCase) {
	g := newGRPCBackend(t, "g")
	cfgWithPool := func(name string) *Config {
		cfg := e.config(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{})
		cfg.Pools[0].Name, cfg.Routes[0].Pool = name, name
		return cfg
	}
	srv, _ := startLB(t, cfgWithPool("a"))
	client := e.dial(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	require.NoError(t, err)
	echo := func(i int) {
		body := []byte(fmt.Sprintf("msg-%d", i))
		require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}))
		in, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, body, in.GetPayload().GetBody())
	}
	echo(0)
	for i, pool := range []string{"b", "a", "c"} { // every reload retires the stream's pool at least once
		require.NoError(t, srv.Reload(cfgWithPool(pool)))
		echo(i + 1)
	}
	// The retired pools' connections are closed only after their calls
	// end: well past the poll interval, the stream still echoes.
	// (A plain loop, not require.Never: its condition runs on another goroutine that can
	// still be sending when Never returns, racing CloseSend below.)
	for n, end := 100, time.Now().Add(3*retiredPoolPoll); time.Now().Before(end); n++ {
		echo(n)
		time.Sleep(retiredPoolPoll / 2) // pace the echoes across the poll intervals
	}
	require.NoError(t, stream.CloseSend())
	for {
		if _, err := stream.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
}

func TestGRPCConsistentHashOnMetadata(t *testing.T) { forEachGRPCEngine(t, testGRPCHash) }

func testGRPCHash(t *testing.T, e grpcEngineCase) {
	g1, g2 := newGRPCBackend(t, "g1"), newGRPCBackend(t, "g2")
	srv, _ := startLB(t, e.config(PoolConfig{
		Upstreams: []string{g1.addr, g2.addr}, Policy: "consistent_hash", HashHeader: "X-Shard-Key",
	}, RouteConfig{}))
	client := e.dial(t, srv.Addr())
	owners := map[string]bool{}
	for k := 0; k < 20; k++ {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-shard-key", fmt.Sprintf("person-%d", k))
		var owner string
		for i := 0; i < 5; i++ {
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			require.NoError(t, err)
			if i == 0 {
				owner = res.GetServerId()
			}
			require.Equal(t, owner, res.GetServerId(), "key person-%d moved", k)
		}
		owners[owner] = true
	}
	require.Len(t, owners, 2, "keys spread over both upstreams")
}

// stallingService answers unary calls and never reads a client stream's
// messages: its upstream windows fill, and what the client sends on
// waits in the lb.
type stallingService struct {
	testpb.UnimplementedTestServiceServer
}

func (stallingService) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: in.GetPayload().GetBody()[:min(8, len(in.GetPayload().GetBody()))]}}, nil
}

func (stallingService) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	<-stream.Context().Done()
	return nil
}

// A client-streaming call whose upstream stops reading (an agent's
// stream to a busy service) holds back what it sends, and not the other
// calls on the same client connection: a unary call with a body still
// goes through while the stalled stream holds its whole stream window in
// the lb. The connection's window is several streams' (4 MiB against 1),
// in each engine, as grpc-go's own server never blocks a connection on
// one stream.
func TestGRPCStalledStreamLeavesOtherCallsAlone(t *testing.T) {
	forEachGRPCEngine(t, func(t *testing.T, e grpcEngineCase) {
		// A fixed upstream window (no BDP growth): the upstream takes
		// 64 KiB of the stream and no more.
		addr, _ := startGRPCServer(t, stallingService{}, grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10))
		srv, _ := startLB(t, e.config(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}))
		client := testpb.NewTestServiceClient(e.conn(t, srv.Addr()))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := client.StreamingInputCall(ctx)
		require.NoError(t, err)
		chunk := &testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 64<<10)}}
		sent := make(chan int, 64)
		go func() {
			for i := 1; i <= 48; i++ { // 3 MiB: past its stream window, whatever it is
				if stream.Send(chunk) != nil {
					return
				}
				sent <- i
			}
		}()
		// Until the sender blocks: no message for a while.
		n := 0
	wait:
		for {
			select {
			case n = <-sent:
			case <-time.After(500 * time.Millisecond):
				break wait
			}
		}
		require.Less(t, n, 48, "the stalled stream never blocked")
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		res, err := client.UnaryCall(uctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 256<<10)}})
		require.NoError(t, err, "a unary call behind a stalled stream (%d KiB of it sent)", n*64)
		require.Len(t, res.GetPayload().GetBody(), 8)
	})
}

// An upstream whose gRPC health checks failed for a while (its process
// down for seconds) is marked healthy again within a few intervals of
// its return: the checks' connection waits no longer than the interval
// between reconnects, where gRPC's default backoff had grown to seconds
// (120 s at most) and held the verdict that long.
func TestGRPCHealthCheckRecoversPromptly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *grpc.Server {
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, health.NewServer()) // "" is SERVING
		go s.Serve(ln)
		t.Cleanup(s.Stop)
		return s
	}
	g := serve(ln)
	cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{addr}, HealthCheck: &HealthCheckConfig{Type: "grpc",
		Interval: Duration(50 * time.Millisecond), Timeout: Duration(50 * time.Millisecond), UnhealthyThreshold: 1, HealthyThreshold: 1}},
		RouteConfig{}, true)
	srv, _ := startLB(t, cfg)
	u := srv.state.Load().pools["p"].upstreams[0]
	require.Eventually(t, func() bool { return u.healthy.Load() }, 5*time.Second, 10*time.Millisecond)
	g.Stop()
	require.Eventually(t, func() bool { return !u.healthy.Load() }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(4 * time.Second) // gRPC's backoff would be past 2.5 s by now
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	serve(ln)
	back := time.Now()
	require.Eventually(t, func() bool { return u.healthy.Load() }, 5*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(back), time.Second, "healthy again only after %v", time.Since(back))
}
