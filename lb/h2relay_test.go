package lb

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// blockingService is an upstream whose UnaryCall waits for the end of its
// context and reports it, so tests see cancellations arrive.
type blockingService struct {
	testpb.UnimplementedTestServiceServer
	started chan struct{}
	ended   chan error
}

func (b *blockingService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	b.started <- struct{}{}
	<-stream.Context().Done()
	b.ended <- stream.Context().Err()
	return stream.Context().Err()
}

func (b *blockingService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	b.ended <- ctx.Err()
	return nil, ctx.Err()
}

func startGRPCServer(t *testing.T, svc testpb.TestServiceServer, opts ...grpc.ServerOption) (string, *grpc.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(srv, svc)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), srv
}

func dialLBOpts(t *testing.T, addr string, opts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// TestH2RelayLargeMessagesBothWays: 8 MiB messages each way arrive
// intact, which takes many windows' worth of flow control on both sides.
func TestH2RelayLargeMessagesBothWays(t *testing.T) {
	const size = 8 << 20
	addr, _ := startGRPCServer(t, &echoService{name: "big"}, grpc.MaxRecvMsgSize(2*size), grpc.MaxSendMsgSize(2*size))
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	client := dialLBOpts(t, srv.Addr(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2*size), grpc.MaxCallSendMsgSize(2*size)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	body := make([]byte, size)
	_, _ = rand.Read(body)
	res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, res.GetPayload().GetBody()), "unary echo differs")

	stream, err := client.FullDuplexCall(ctx)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		body[0] = byte(i)
		require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}))
		in, err := stream.Recv()
		require.NoError(t, err)
		require.True(t, bytes.Equal(body, in.GetPayload().GetBody()), "stream echo %d differs", i)
	}
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)
}

// TestH2RelayManyConcurrentCallsOnOneConn: 200 calls at once over one
// client connection each get their own answer.
func TestH2RelayManyConcurrentCallsOnOneConn(t *testing.T) {
	g1, g2 := newGRPCBackend(t, "g1"), newGRPCBackend(t, "g2")
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g1.addr, g2.addr}}, RouteConfig{}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const calls = 200
	errs := make(chan error, calls)
	var start sync.WaitGroup
	start.Add(1)
	for i := 0; i < calls; i++ {
		go func() {
			start.Wait()
			body := bytes.Repeat([]byte(fmt.Sprintf("call-%d;", i)), i+1)
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
			if err == nil && !bytes.Equal(body, res.GetPayload().GetBody()) {
				err = fmt.Errorf("call %d: got another call's answer", i)
			}
			errs <- err
		}()
	}
	start.Done()
	for i := 0; i < calls; i++ {
		require.NoError(t, <-errs)
	}
}

// TestH2RelayClientCancelReachesUpstream: a client that gives up cancels
// the upstream's handler too.
func TestH2RelayClientCancelReachesUpstream(t *testing.T) {
	svc := &blockingService{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		errc <- err
	}()
	select {
	case <-svc.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the call never reached the upstream")
	}
	cancel()
	require.Equal(t, codes.Canceled, status.Code(<-errc))
	select {
	case err := <-svc.ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream handler was not cancelled")
	}
	require.Eventually(t, func() bool { return srv.state.Load().pools["p"].pending.Load() == 0 }, 2*time.Second, 5*time.Millisecond)
}

// TestH2RelayRouteTimeout: the route's timeout ends the call with
// DeadlineExceeded and resets the upstream stream.
func TestH2RelayRouteTimeout(t *testing.T) {
	svc := &blockingService{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Timeout: Duration(200 * time.Millisecond)}, true))
	client := dialLB(t, srv.Addr())
	start := time.Now()
	_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	require.Less(t, time.Since(start), 3*time.Second)
	select {
	case err := <-svc.ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream stream was not reset")
	}
}

// TestH2RelayUpstreamDiesMidStream: an upstream that goes away in the
// middle of a stream ends it with Unavailable, not a hang.
func TestH2RelayUpstreamDiesMidStream(t *testing.T) {
	addr, up := startGRPCServer(t, &echoService{name: "g"})
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}))
	_, err = stream.Recv()
	require.NoError(t, err)
	up.Stop()
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.NoError(t, ctx.Err(), "the stream hung until the deadline")
}

// TestH2RelayGracefulStopFinishesCallsInFlight: Shutdown lets a call that
// is under way end normally.
func TestH2RelayGracefulStopFinishesCallsInFlight(t *testing.T) {
	g := newGRPCBackend(t, "g")
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	require.NoError(t, err)
	echo := func(s string) {
		require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(s)}}))
		in, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, s, string(in.GetPayload().GetBody()))
	}
	echo("before")
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond)
	echo("during")
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, <-done)
}

// rawH2Client speaks HTTP/2 frames to the relay directly, for what a
// grpc-go client never sends.
type rawH2Client struct {
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialRawH2(t *testing.T, addr string) *rawH2Client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	return startRawH2(t, nc)
}

// startRawH2 sends the preface and SETTINGS on nc, which it closes at
// the test's end.
func startRawH2(t *testing.T, nc net.Conn, settings ...http2.Setting) *rawH2Client {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(nc, h2Preface)
	require.NoError(t, err)
	c := &rawH2Client{nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	require.NoError(t, c.fr.WriteSettings(settings...))
	return c
}

func (c *rawH2Client) headers(t *testing.T, id uint32, end bool, kv ...string) {
	t.Helper()
	c.buf.Reset()
	for i := 0; i < len(kv); i += 2 {
		require.NoError(t, c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}))
	}
	require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: end, EndHeaders: true}))
}

// until reads frames until one satisfies ok; it fails on EOF or timeout.
func (c *rawH2Client) until(t *testing.T, ok func(http2.Frame) bool) http2.Frame {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		require.NoError(t, err)
		if ok(f) {
			return f
		}
	}
}

// TestH2RelayProtocolErrors: frames that break RFC 9113's stream rules
// end the connection with GOAWAY PROTOCOL_ERROR, non-gRPC requests get
// HTTP statuses, and the relay keeps serving other connections.
func TestH2RelayProtocolErrors(t *testing.T) {
	g := newGRPCBackend(t, "g")
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true))

	grpcReq := []string{":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/UnaryCall", ":authority", "lb", "content-type", "application/grpc", "te", "trailers"}

	// Not gRPC: an HTTP request, for which this config has no route.
	c := dialRawH2(t, srv.Addr())
	c.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "lb")
	f := c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok }).(*http2.MetaHeadersFrame)
	require.Equal(t, "404", f.PseudoValue("status"))
	c.headers(t, 3, true, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "lb", "content-type", "text/plain")
	f = c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok }).(*http2.MetaHeadersFrame)
	require.Equal(t, "404", f.PseudoValue("status"))

	// A real call on the same connection: an empty message, answered.
	c.headers(t, 5, false, grpcReq...)
	require.NoError(t, c.fr.WriteData(5, true, []byte{0, 0, 0, 0, 0}))
	f = c.until(t, func(f http2.Frame) bool { m, ok := f.(*http2.MetaHeadersFrame); return ok && m.StreamEnded() }).(*http2.MetaHeadersFrame)
	require.Equal(t, "0", fieldValue(f.Fields, "grpc-status"))

	rstOn := func(id uint32) http2.ErrCode {
		t.Helper()
		f := c.until(t, func(f http2.Frame) bool { r, ok := f.(*http2.RSTStreamFrame); return ok && r.StreamID == id })
		return f.(*http2.RSTStreamFrame).ErrCode
	}
	// RFC 9113 section 5.1: DATA on a stream that ended is a stream
	// error, STREAM_CLOSED.
	require.NoError(t, c.fr.WriteData(1, false, []byte("x")))
	require.Equal(t, http2.ErrCodeStreamClosed, rstOn(1))
	// After our RST_STREAM (a malformed request), what the client still
	// sends on that stream is ignored: the connection serves on.
	c.headers(t, 7, false, append(grpcReq[:len(grpcReq):len(grpcReq)], "X-Upper", "1")...)
	require.Equal(t, http2.ErrCodeProtocol, rstOn(7))
	require.NoError(t, c.fr.WriteData(7, false, []byte("x")))
	c.headers(t, 7, true, "x-trailer", "1")
	// A stream that depends on itself is a stream error (section 5.3.1).
	require.NoError(t, c.fr.WritePriority(13, http2.PriorityParam{StreamDep: 13}))
	require.Equal(t, http2.ErrCodeProtocol, rstOn(13))
	c.headers(t, 15, false, grpcReq...)
	require.NoError(t, c.fr.WriteData(15, true, []byte{0, 0, 0, 0, 0}))
	f = c.until(t, func(f http2.Frame) bool { m, ok := f.(*http2.MetaHeadersFrame); return ok && m.StreamEnded() }).(*http2.MetaHeadersFrame)
	require.Equal(t, uint32(15), f.StreamID)
	// HEADERS on a stream that ended is a connection error.
	c.headers(t, 1, false, grpcReq...)
	ga := c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeStreamClosed, ga.ErrCode)

	// DATA on a stream never opened is a connection error.
	c = dialRawH2(t, srv.Addr())
	require.NoError(t, c.fr.WriteData(101, false, []byte("x")))
	ga = c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)
	// So is a new stream with a lower id than one used (section 5.1.1).
	c = dialRawH2(t, srv.Addr())
	c.headers(t, 5, true, grpcReq...)
	c.headers(t, 3, true, grpcReq...)
	ga = c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)

	// An even (server-side) stream id from a client.
	c = dialRawH2(t, srv.Addr())
	c.headers(t, 2, true, grpcReq...)
	ga = c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)

	// Still serving.
	_, err := dialLB(t, srv.Addr()).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
}

// TestH2RelayEnforcesFlowControl: a client that sends more than the
// stream window while the upstream reads nothing gets FLOW_CONTROL_ERROR:
// the relay queued what it could not pass on and gave no credit for it.
func TestH2RelayEnforcesFlowControl(t *testing.T) {
	svc := &blockingService{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/FullDuplexCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers")
	var flowErr atomic.Bool
	go func() { // read what the relay says, or its writes could stall
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 && r.ErrCode == http2.ErrCodeFlowControl {
				flowErr.Store(true)
			}
		}
	}()
	<-svc.started
	chunk := make([]byte, h2MaxFrame)
	for sent := 0; sent <= 4*h2StreamWindow; sent += len(chunk) {
		if err := c.fr.WriteData(1, false, chunk); err != nil {
			break
		}
	}
	select {
	case err := <-svc.ended:
		require.ErrorIs(t, err, context.Canceled, "the upstream stream was reset")
	case <-time.After(5 * time.Second):
		t.Fatal("no FLOW_CONTROL_ERROR: the relay buffered past its window")
	}
	require.Eventually(t, flowErr.Load, 5*time.Second, 5*time.Millisecond)
}

// TestH2RelaySlowClientBackPressuresUpstream: a client that stops reading
// a server stream does not make the relay buffer the upstream's output
// without bound; the upstream is held back by flow control.
func TestH2RelaySlowClientBackPressuresUpstream(t *testing.T) {
	svc := &streamingService{}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))

	// A raw client that asks for the stream and never reads (nor credits).
	c := dialRawH2(t, srv.Addr())
	c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/StreamingOutputCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers")
	require.NoError(t, c.fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}))
	require.Eventually(t, func() bool { return svc.sent.Load() > 0 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	n := svc.sent.Load()
	// The client's 64 KiB window, the relay's windows and grpc-go's own
	// buffers together are a few MiB, far below the 1 GiB on offer.
	require.Less(t, n, int64(64<<20), "the upstream sent %d bytes to a client that reads nothing", n)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, n, svc.sent.Load(), "the upstream is still sending")
}

// streamingService streams 64 KiB messages, up to 1 GiB, counting what it
// got out and the calls that ended in an error (cancelled).
type streamingService struct {
	testpb.UnimplementedTestServiceServer
	sent, failed atomic.Int64
}

func (s *streamingService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	msg := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, 64<<10)}}
	for s.sent.Load() < 1<<30 {
		if err := stream.Send(msg); err != nil {
			s.failed.Add(1)
			return err
		}
		s.sent.Add(64 << 10)
	}
	return nil
}

// startUnreadStream asks for a server stream on c's stream id and then
// reads nothing (and credits nothing).
func (c *rawH2Client) startUnreadStream(t *testing.T, id uint32) {
	t.Helper()
	c.headers(t, id, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/StreamingOutputCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers")
	require.NoError(t, c.fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}))
}

// waitStalled waits until the service has stopped sending: what its
// streams hold is then all flow control lets out.
func (s *streamingService) waitStalled(t *testing.T) int64 {
	t.Helper()
	last := int64(-1)
	require.Eventually(t, func() bool {
		n := s.sent.Load()
		stalled := n == last && n > 0
		last = n
		return stalled
	}, 15*time.Second, 300*time.Millisecond)
	return last
}

// TestH2RelaySlowClientsDoNotStallTheUpstreamConnection: clients that
// do not read their server streams hold, each, at most their streams'
// windows of the upstream's output, never the window of the upstream
// connection that the calls of all clients share. Seventy-two such
// clients hold more than that connection's 16 MiB window; a fresh call
// on it still gets its answers.
func TestH2RelaySlowClientsDoNotStallTheUpstreamConnection(t *testing.T) {
	svc := &streamingService{}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	for range h2ConnWindow/h2UpStreamWindow + 8 {
		dialRawH2(t, srv.Addr()).startUnreadStream(t, 1)
	}
	held := svc.waitStalled(t)
	require.Greater(t, held, int64(h2ConnWindow), "the slow clients hold less than the upstream connection's window: the test proves nothing")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := dialLBOpts(t, srv.Addr()).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	require.NoError(t, err)
	// More than h2HoldLimit in all: what leaves is no longer held.
	for range (h2HoldLimit + 8<<20) / (64 << 10) {
		m, err := stream.Recv()
		require.NoError(t, err, "a reading client's call stalls behind the slow clients, or is taken for one")
		require.Len(t, m.GetPayload().GetBody(), 64<<10)
	}
}

// TestH2RelayResetsStreamsOfAClientHoldingTooMuch: one client connection
// with many server streams it does not read makes the relay hold at most
// h2HoldLimit for it: the streams past it are reset with
// ENHANCE_YOUR_CALM, and their upstream calls cancelled.
func TestH2RelayResetsStreamsOfAClientHoldingTooMuch(t *testing.T) {
	svc := &streamingService{}
	addr, _ := startGRPCServer(t, svc)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	const held = h2HoldLimit / h2UpStreamWindow // streams the limit holds
	const streams = held + 16
	for i := range streams {
		c.startUnreadStream(t, uint32(2*i+1))
	}
	reset := map[uint32]bool{}
	_ = c.nc.SetDeadline(time.Now().Add(15 * time.Second))
	c.until(t, func(f http2.Frame) bool {
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			require.Equal(t, http2.ErrCodeEnhanceYourCalm, rst.ErrCode)
			reset[rst.StreamID] = true
		}
		// Each stream holds at most the window the relay gives the
		// upstream per stream.
		return len(reset) >= streams-held
	})
	svc.waitStalled(t)
	require.EqualValues(t, len(reset), svc.failed.Load(), "the upstream calls of the reset streams are cancelled, and only those")
	require.EqualValues(t, len(reset), counterValue(srv.metrics.rejected.WithLabelValues("r", "client_not_reading")))

	// The client's connection and the relay go on.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := dialLBOpts(t, srv.Addr()).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
}

// rawH2Upstream is a raw HTTP/2 server for relay tests: it reads the
// preface, sends settings, acknowledges the client's, and hands every
// other frame to the handler newConn made for that connection (HPACK
// state is per connection), which may answer on fr; returning false
// closes the connection.
func rawH2Upstream(t *testing.T, settings []http2.Setting, newConn func() func(fr *http2.Framer, f http2.Frame) bool) string {
	t.Helper()
	return serveConns(t, func(nc net.Conn) {
		preface := make([]byte, len(h2Preface))
		if _, err := io.ReadFull(nc, preface); err != nil {
			return
		}
		fr := http2.NewFramer(nc, nc)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		_ = fr.WriteSettings(settings...)
		onFrame := newConn()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok {
				if !sf.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			} else if !onFrame(fr, f) {
				return
			}
		}
	})
}

// refusingUpstream is a raw HTTP/2 server that turns every stream away,
// with RST_STREAM(REFUSED_STREAM) or, with goAway, a GOAWAY that covers
// no stream. It counts the streams it refused.
func refusingUpstream(t *testing.T, goAway bool) (string, *atomic.Int64) {
	var refused atomic.Int64
	addr := rawH2Upstream(t, nil, func() func(*http2.Framer, http2.Frame) bool {
		return func(fr *http2.Framer, f http2.Frame) bool {
			h, ok := f.(*http2.MetaHeadersFrame)
			if !ok {
				return true
			}
			refused.Add(1)
			if goAway {
				// Stay open and keep reading, as a server going away
				// does: closing with the call's body unread would reset
				// the connection, and the relay might never read the
				// GOAWAY (a flake under -race).
				_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
				return true
			}
			_ = fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
			return true
		}
	})
	return addr, &refused
}

// TestH2RelayRetriesRefusedStreams: a stream the upstream refused (or
// left out of its GOAWAY) never reached it, so the call, body and all,
// goes to another upstream.
func TestH2RelayRetriesRefusedStreams(t *testing.T) {
	for _, goAway := range []bool{false, true} {
		t.Run(fmt.Sprintf("goaway=%v", goAway), func(t *testing.T) {
			bad, refused := refusingUpstream(t, goAway)
			g := newGRPCBackend(t, "g")
			srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{bad, g.addr}}, RouteConfig{Retries: ptr(1)}, true))
			client := dialLB(t, srv.Addr())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := 0; i < 6; i++ {
				body := bytes.Repeat([]byte{byte('a' + i)}, 20000)
				res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
				require.NoError(t, err)
				require.Equal(t, "g", res.GetServerId())
				require.True(t, bytes.Equal(body, res.GetPayload().GetBody()), "call %d: body changed on the retry", i)
			}
			require.Positive(t, refused.Load(), "the refusing upstream was never tried")
		})
	}
}

// TestH2RelayUpstreamTakingNoStreamsGetsNoMoreConnections: an upstream
// whose SETTINGS allow no streams (MAX_CONCURRENT_STREAMS 0) has its
// calls retried elsewhere, not a new connection dialled for each.
func TestH2RelayUpstreamTakingNoStreamsGetsNoMoreConnections(t *testing.T) {
	var conns, streams atomic.Int64
	zero := rawH2Upstream(t, []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 0}}, func() func(*http2.Framer, http2.Frame) bool {
		conns.Add(1)
		return func(fr *http2.Framer, f http2.Frame) bool {
			if h, ok := f.(*http2.MetaHeadersFrame); ok {
				streams.Add(1) // opened before our SETTINGS arrived
				_ = fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
			}
			return true
		}
	})
	g := newGRPCBackend(t, "g")
	// Not ejected for its refusals: it must stay in the rotation.
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{zero, g.addr}, Outlier: OutlierConfig{ConsecutiveFailures: 1000}}, RouteConfig{Retries: ptr(1)}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 30 {
		res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		require.NoError(t, err)
		require.Equal(t, "g", res.GetServerId())
	}
	require.Positive(t, conns.Load(), "the upstream that takes no streams was never tried")
	require.LessOrEqual(t, conns.Load(), int64(2), "connections dialled to an upstream that takes no streams (%d streams refused)", streams.Load())

	// A connection told so over zeroStreamsRetry ago, with no call on
	// it, is let go: the next call dials afresh, once.
	first := conns.Load()
	time.Sleep(zeroStreamsRetry + 200*time.Millisecond)
	for range 30 {
		res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		require.NoError(t, err)
		require.Equal(t, "g", res.GetServerId())
	}
	require.Greater(t, conns.Load(), first, "the stale connection keeps the upstream from being tried again")
	require.LessOrEqual(t, conns.Load(), first+2)
}

// BenchmarkH2RelayUnary: small unary calls through the relay, 32 at a
// time on one client connection (with -memprofile, the relay's share of
// the allocations shows under package lb).
func BenchmarkH2RelayUnary(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	up := grpc.NewServer()
	testpb.RegisterTestServiceServer(up, &echoService{name: "g"})
	go up.Serve(ln)
	defer up.Stop()
	srv, err := New(grpcRouteConfig(PoolConfig{Upstreams: []string{ln.Addr().String()}}, RouteConfig{}, true), testLogger(), nil)
	require.NoError(b, err)
	require.NoError(b, srv.Start(context.Background()))
	defer srv.Shutdown(context.Background())
	cc, err := grpc.NewClient("passthrough:///"+srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(b, err)
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.UnaryCall(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// mdService answers UnaryCall with the request metadata it received, as
// response headers, so tests see what the relay sent upstream.
type mdService struct {
	testpb.UnimplementedTestServiceServer
}

func (mdService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for _, k := range []string{":authority", "x-request-id", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-custom", "x-custom-bin"} {
		if v := md.Get(k); len(v) > 0 {
			out.Set("seen-"+strings.TrimPrefix(k, ":"), v...)
		}
	}
	_ = grpc.SetHeader(ctx, out)
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

// TestH2RelayHeadersMetadataAndMetrics: what relayGRPC did for every call
// still happens: X-Request-Id kept or made and returned, X-Forwarded-*
// added, metadata (binary too) passed untouched, the upstream as
// :authority, and the route and upstream metrics counted.
func TestH2RelayHeadersMetadataAndMetrics(t *testing.T) {
	addr, _ := startGRPCServer(t, mdService{})
	reg := prometheus.NewRegistry()
	srv, err := New(grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Name: "g"}, true), testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Shutdown(context.Background())
	client := dialLB(t, srv.Addr())

	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "rid-1", "x-custom", "v",
		"x-custom-bin", string([]byte{0, 1, 2, 255}), "x-forwarded-for", "10.0.0.1", "x-forwarded-host", "evil.example")
	var hdr metadata.MD
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Equal(t, []string{"rid-1"}, hdr.Get("x-request-id"), "returned to the client")
	require.Equal(t, []string{"rid-1"}, hdr.Get("seen-x-request-id"), "kept upstream")
	require.Equal(t, []string{"10.0.0.1, 127.0.0.1"}, hdr.Get("seen-x-forwarded-for"))
	require.Equal(t, []string{srv.Addr()}, hdr.Get("seen-x-forwarded-host"), "the client's replaced by its :authority")
	require.Equal(t, []string{"http"}, hdr.Get("seen-x-forwarded-proto"))
	require.Equal(t, []string{addr}, hdr.Get("seen-authority"))
	require.Equal(t, []string{"v"}, hdr.Get("seen-x-custom"))
	require.Equal(t, []string{string([]byte{0, 1, 2, 255})}, hdr.Get("seen-x-custom-bin"))

	// Without one (or with one too long), the relay makes one up.
	_, err = client.UnaryCall(metadata.AppendToOutgoingContext(context.Background(), "x-request-id", strings.Repeat("x", 201)), &testpb.SimpleRequest{}, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Len(t, hdr.Get("x-request-id"), 1)
	require.Len(t, hdr.Get("x-request-id")[0], 32)
	require.Equal(t, hdr.Get("x-request-id"), hdr.Get("seen-x-request-id"))

	p := srv.state.Load().pools["p"]
	u := p.upstreams[0]
	require.Equal(t, 2.0, counterValue(srv.metrics.requests.WithLabelValues("g", "200")))
	require.Equal(t, 2.0, counterValue(u.metrics.success))
	require.Positive(t, u.EWMA(), "latency observed at response headers")
	require.Zero(t, u.Inflight())
	require.Zero(t, p.pending.Load())
}

// countingUpstream is a raw HTTP/2 server that counts the streams opened
// on it and answers none of them.
func countingUpstream(t *testing.T) (string, *atomic.Int64) {
	var opened atomic.Int64
	addr := rawH2Upstream(t, []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 1000}}, func() func(*http2.Framer, http2.Frame) bool {
		return func(_ *http2.Framer, f http2.Frame) bool {
			if _, ok := f.(*http2.MetaHeadersFrame); ok {
				opened.Add(1)
			}
			return true
		}
	})
	return addr, &opened
}

// TestH2RelayRapidReset: a client that opens streams and resets them at
// once (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM and its connection
// closed, and the upstream sees a bounded number of the streams, not one
// for each of the client's.
func TestH2RelayRapidReset(t *testing.T) {
	addr, opened := countingUpstream(t)
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	goAway := make(chan http2.ErrCode, 1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				select {
				case goAway <- ga.ErrCode:
				default:
				}
			}
		}
	}()
	// A first call, left open, has the relay connect to the upstream:
	// from then on every new stream is opened upstream at once.
	c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/UnaryCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers")
	require.Eventually(t, func() bool { return opened.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
	start := time.Now()
	const pairs = 10000
	sent := 0
	for id := uint32(3); sent < pairs; id += 2 {
		c.buf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.testing.TestService/UnaryCall"},
			{":authority", "lb"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			require.NoError(t, c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]}))
		}
		if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndHeaders: true}) != nil ||
			c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	select {
	case code := <-goAway:
		require.Equal(t, http2.ErrCodeEnhanceYourCalm, code)
	case <-time.After(5 * time.Second):
		t.Fatalf("no GOAWAY after %d HEADERS+RST_STREAM pairs", sent)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open")
	}
	elapsed := time.Since(start)
	// Streams the relay opened before the client was cut off, each
	// reset at once: what reaches the upstream settles quickly.
	time.Sleep(200 * time.Millisecond)
	// The first call, the streams the bucket allowed and the one that
	// overflowed it (opened before its reset arrived), give or take a few.
	limit := int64(1 + h2ResetBurst + h2ResetRate*elapsed.Seconds() + 8)
	t.Logf("%d pairs sent in %v, %d streams upstream (limit %d)", sent, elapsed, opened.Load(), limit)
	require.LessOrEqual(t, opened.Load(), limit, "the upstream saw a stream for each of the client's %d", sent)
	require.Positive(t, opened.Load(), "the calls never reached the upstream: the test proves nothing")

	// The listener still takes other clients.
	c2 := dialRawH2(t, srv.Addr())
	c2.until(t, func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && !s.IsAck() })
}

// TestH2RelayIdleTimeout: a client connection with no stream open for
// the listener's idle_timeout gets GOAWAY (NO_ERROR, naming the last
// stream it opened) and is closed; one with a stream open is not, however
// quiet; and a client that never finishes its handshake is cut off after
// read_header_timeout.
func TestH2RelayIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	g := newGRPCBackend(t, "g")
	cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true)
	cfg.Listeners[0].IdleTimeout = Duration(idle)
	cfg.Listeners[0].ReadHeaderTimeout = Duration(idle)
	srv, _ := startLB(t, cfg)

	goAwayWithin := func(t *testing.T, c *rawH2Client, lastID uint32, min, max time.Duration) {
		t.Helper()
		start := time.Now()
		ga := c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
		took := time.Since(start)
		require.Equal(t, http2.ErrCodeNo, ga.ErrCode)
		require.Equal(t, lastID, ga.LastStreamID)
		require.GreaterOrEqual(t, took, min, "GOAWAY came before the connection was idle for idle_timeout")
		require.Less(t, took, max)
		for { // then the relay closes the connection
			if _, err := c.fr.ReadFrame(); err != nil {
				require.Less(t, time.Since(start), max)
				return
			}
		}
	}

	t.Run("no stream ever", func(t *testing.T) {
		c := dialRawH2(t, srv.Addr())
		goAwayWithin(t, c, 0, 0, idle+time.Second)
	})

	t.Run("quiet stream keeps it open", func(t *testing.T) {
		c := dialRawH2(t, srv.Addr())
		c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/FullDuplexCall",
			":authority", "lb", "content-type", "application/grpc", "te", "trailers")
		time.Sleep(3 * idle)
		require.NoError(t, c.fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}))
		f := c.until(t, func(f http2.Frame) bool {
			_, ga := f.(*http2.GoAwayFrame)
			m, ok := f.(*http2.MetaHeadersFrame)
			return ga || ok && m.StreamEnded()
		})
		require.IsType(t, &http2.MetaHeadersFrame{}, f, "the connection was closed with a stream open")
		require.Equal(t, "0", fieldValue(f.(*http2.MetaHeadersFrame).Fields, "grpc-status"))
		// The stream ended just now: idle from here on.
		goAwayWithin(t, c, 1, idle-50*time.Millisecond, idle+time.Second)
	})

	t.Run("unfinished handshake", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(nc, h2Preface) // and no SETTINGS
		require.NoError(t, err)
		start := time.Now()
		_, err = io.ReadAll(nc) // the relay's SETTINGS, then EOF
		require.NoError(t, err, "the relay did not close the connection")
		require.Less(t, time.Since(start), idle+time.Second)
	})

	// grpc-go clients take the GOAWAY in stride: the next call redials.
	client := dialLB(t, srv.Addr())
	_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	time.Sleep(2 * idle)
	_, err = client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
}

// TestH2RelayResponseWithoutTrailersEndsUpstreamStream: an upstream that
// ends its response with DATA (no trailers) while the request is still
// open gets the stream reset, so it does not keep a place on the
// connection for good.
func TestH2RelayResponseWithoutTrailersEndsUpstreamStream(t *testing.T) {
	rst := make(chan uint32, 10)
	addr := rawH2Upstream(t, nil, func() func(*http2.Framer, http2.Frame) bool {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		return func(fr *http2.Framer, f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				hb.Reset()
				_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true})
				_ = fr.WriteData(f.StreamID, true, []byte{0, 0, 0, 0, 0})
			case *http2.RSTStreamFrame:
				rst <- f.StreamID
			}
			return true
		}
	})
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/FullDuplexCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers")
	c.until(t, func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamEnded() })
	select {
	case id := <-rst:
		require.Equal(t, uint32(1), id)
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream stream was left open")
	}
	require.Eventually(t, func() bool {
		a := srv.state.Load().pools["p"].grpc.forAddr(addr, 0, KeepaliveConfig{})
		a.mu.Lock()
		defer a.mu.Unlock()
		n := 0
		for _, uc := range a.conns {
			uc.mu.Lock()
			n += len(uc.streams)
			uc.mu.Unlock()
		}
		return n == 0
	}, 2*time.Second, 5*time.Millisecond, "the stream still holds a place on the upstream connection")
}

// TestH2RelayCancellingClientIsNotRapidReset: a client that cancels half
// of its calls, far more of them than the rapid-reset burst, but has the
// other half answered, keeps its connection.
func TestH2RelayCancellingClientIsNotRapidReset(t *testing.T) {
	g := newGRPCBackend(t, "g")
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	_ = c.nc.SetDeadline(time.Now().Add(60 * time.Second))
	req := []string{":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/UnaryCall",
		":authority", "lb", "content-type", "application/grpc", "te", "trailers"}
	answers := make(chan error, 1<<14)
	go func() {
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				answers <- err
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				answers <- fmt.Errorf("GOAWAY %v", f.ErrCode)
				return
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					answers <- nil
				}
			}
		}
	}()
	// Batches of 100 calls and 100 cancelled calls, each batch answered
	// before the next, as a client within MAX_CONCURRENT_STREAMS goes.
	const batch, batches = 100, (h2ResetBurst + 500) / 100
	id := uint32(1)
	for b := 0; b < batches; b++ {
		for i := 0; i < batch; i++ {
			c.headers(t, id, false, req...)
			require.NoError(t, c.fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}))
			c.headers(t, id+2, false, req...)
			require.NoError(t, c.fr.WriteRSTStream(id+2, http2.ErrCodeCancel))
			id += 4
		}
		for i := 0; i < batch; i++ {
			require.NoError(t, <-answers, "batch %d, answer %d", b, i)
		}
	}
}

// TestH2RelayCallGoneBeforeItBegan: a connection can end (its writer
// failed) between a stream's registration and the call's begin, which
// runs on the reader. The call then ends without having begun, and the
// begin that follows does nothing: no panic (the fuzzer found one), no
// pending request left on the pool.
func TestH2RelayCallGoneBeforeItBegan(t *testing.T) {
	g := newGRPCBackend(t, "g")
	srv, err := New(grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true), testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	c := newH2Conn(&net.TCPConn{}, true, testLogger())
	c.srv = srv
	r := &relayCall{s: srv}
	r.down = leg{c: c, id: 1, r: r, down: true}
	require.NotPanics(t, r.onClientGone)
	var fields []hpack.HeaderField
	for i := 0; i+1 < len(fuzzGRPCRequest); i += 2 {
		fields = append(fields, hpack.HeaderField{Name: fuzzGRPCRequest[i], Value: fuzzGRPCRequest[i+1]})
	}
	st, ro, relay := c.relayRoute(fields)
	require.True(t, relay)
	require.NotNil(t, ro)
	require.NotPanics(t, func() { r.begin(&h2hdrs{StreamID: 1, end: true, Fields: fields}, st, ro) })
	require.Nil(t, r.ro, "a call that ended before it began must not be routed")
	require.Zero(t, srv.state.Load().pools["p"].pending.Load())
}

// HEADERS whose padding is longer than its payload is a connection error
// (RFC 9113 section 6.2): x/net reports a stream error, after which the
// block, never decoded, would leave the two sides' HPACK tables apart.
func TestH2RelayHeadersPaddingPastPayload(t *testing.T) {
	g := newGRPCBackend(t, "g")
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{}, true))
	c := dialRawH2(t, srv.Addr())
	// PADDED and END_HEADERS; pad length 200 with three bytes of block.
	require.NoError(t, c.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersEndHeaders, 1, []byte{200, 0x82, 0x86, 0x84}))
	ga := c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)
}

// TestH2RelayAnswerFlood: a client that never reads and sends frames the
// relay answers with RST_STREAM (DATA on a stream that has ended; new
// streams after its own GOAWAY, which are refused) has its connection
// ended within a few seconds, as a PING or SETTINGS flood has, instead
// of the relay queueing the answers for as long as its writer waits
// (h2WriteTimeout, 30 s): at line rate, gigabytes per connection.
func TestH2RelayAnswerFlood(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(c *rawH2Client)
		frame func(c *rawH2Client, i uint32) error
	}{
		{"DATA on an ended stream", func(c *rawH2Client) {
			c.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":path", "/nowhere", ":authority", "lb")
			time.Sleep(200 * time.Millisecond) // its answer (404) ends it
		}, func(c *rawH2Client, _ uint32) error { return c.fr.WriteData(1, false, nil) }},
		{"streams after a GOAWAY", func(c *rawH2Client) {
			// A call left open keeps the connection up after the GOAWAY.
			c.headers(t, 1, false, ":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/UnaryCall",
				":authority", "lb", "content-type", "application/grpc", "te", "trailers")
			time.Sleep(200 * time.Millisecond)
			require.NoError(t, c.fr.WriteGoAway(0, http2.ErrCodeNo, nil))
		}, func(c *rawH2Client, i uint32) error {
			c.buf.Reset()
			for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/x"}, {":authority", "lb"}} {
				_ = c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2*i + 1, BlockFragment: c.buf.Bytes(), EndStream: true, EndHeaders: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := countingUpstream(t)
			srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true))
			c := dialRawH2(t, srv.Addr())
			_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
			tc.start(c)
			start := time.Now()
			var err error
			for i := uint32(1); err == nil && time.Since(start) < 8*time.Second; i++ {
				err = tc.frame(c, i)
			}
			require.Error(t, err, "the relay still takes frames after %v", time.Since(start))
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the relay stopped reading but kept the connection: %v", err)
		})
	}
}
