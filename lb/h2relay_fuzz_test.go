package lb

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// h2FuzzSeed builds a frame sequence a client could send after the
// preface.
func h2FuzzSeed(build func(fr *http2.Framer, hdr func(kv ...string) []byte)) []byte {
	var out, hbuf bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hbuf)
	hdr := func(kv ...string) []byte {
		hbuf.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(hbuf.Bytes())
	}
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	build(fr, hdr)
	return out.Bytes()
}

var fuzzGRPCRequest = []string{":method", "POST", ":scheme", "http", ":path", "/grpc.testing.TestService/UnaryCall",
	":authority", "lb", "content-type", "application/grpc", "te", "trailers"}

// FuzzH2RelayServerConn feeds arbitrary bytes after the preface to a
// client connection of the relay, whose route leads to a real gRPC
// upstream: the connection must neither panic nor hang once the client
// goes away.
//
//	go test ./lb -run '^$' -fuzz FuzzH2RelayServerConn -fuzztime 60s
func FuzzH2RelayServerConn(f *testing.F) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	up := grpc.NewServer()
	testpb.RegisterTestServiceServer(up, &echoService{name: "g"})
	go up.Serve(ln)
	f.Cleanup(up.Stop)
	cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{ln.Addr().String()}}, RouteConfig{MaxBodyBytes: 1 << 20}, true)
	srv, err := New(cfg, testLogger(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Shutdown(f.Context()) })
	e := srv.newGRPCServer(&listener{cfg: ListenerConfig{ReadHeaderTimeout: Duration(time.Second), MaxHeaderBytes: 16 << 10}}).(*h2Relay)

	f.Add([]byte{})
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(fuzzGRPCRequest...), EndHeaders: true})
		_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 2, 0x12, 0})
	}))
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		b := hdr(fuzzGRPCRequest...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3]})
		_ = fr.WriteContinuation(1, true, b[3:])
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteData(1, false, []byte{0, 0, 0, 0, 0})
		_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr(fuzzGRPCRequest...), EndHeaders: true, EndStream: true})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(":method", "GET", ":path", "/"), EndHeaders: true, EndStream: true})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		_ = fr.WriteData(3, true, []byte("x"))
	}))

	f.Fuzz(func(t *testing.T, data []byte) { fuzzEngineConn(t, e, false, data) })
}

// fuzzEngineConn feeds the preface and data to a new client connection of
// e (serve: an HTTP client's, else a gRPC relay's), then goes away: the
// connection must end, and nothing may have panicked.
func fuzzEngineConn(t *testing.T, e *h2Relay, serve bool, data []byte) {
	client, server := net.Pipe()
	c := e.track(server, true)
	if c == nil {
		t.Fatal("engine stopped")
	}
	if serve {
		c.serveHTTP(nil)
	}
	done := make(chan struct{})
	go func() { e.serveConn(c); close(done) }()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_, _ = client.Write([]byte(h2Preface))
	_, _ = client.Write(data)
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end after its client went away")
	}
	if n := e.panics.Load(); n > 0 {
		t.Fatalf("%d panics recovered", n)
	}
}

// FuzzH2ServeConn is FuzzH2RelayServerConn for the engine's HTTP server
// (h2serve.go): arbitrary frames from an HTTP/2 client whose requests go
// to a real HTTP/1.1 upstream that reads their bodies and answers with
// trailers. Neither a connection nor a request handler may panic, and
// the connection must end once the client goes away.
//
//	go test ./lb -run '^$' -fuzz FuzzH2ServeConn -fuzztime 60s
func FuzzH2ServeConn(f *testing.F) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Len")
		w.Write(body)
		w.Header().Set("X-Len", strconv.Itoa(len(body)))
	}))
	f.Cleanup(up.Close)
	cfg := oneRoute(PoolConfig{Upstreams: []string{up.Listener.Addr().String()}}, RouteConfig{MaxBodyBytes: 1 << 20})
	srv, err := New(cfg, testLogger(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Shutdown(f.Context()) })
	e := &h2Relay{s: srv, l: &listener{cfg: ListenerConfig{ReadHeaderTimeout: Duration(time.Second), MaxHeaderBytes: 16 << 10}}}
	get := []string{":method", "GET", ":scheme", "https", ":path", "/a?b=c", ":authority", "lb", "cookie", "a=1", "cookie", "b=2"}
	post := []string{":method", "POST", ":scheme", "https", ":path", "/", ":authority", "lb", "content-length", "5", "expect", "100-continue"}

	f.Add([]byte{})
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(get...), EndHeaders: true, EndStream: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr(post...), EndHeaders: true})
		_ = fr.WriteData(3, false, []byte("he"))
		_ = fr.WriteData(3, true, []byte("llo"))
	}))
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		b := hdr(post...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:4]})
		_ = fr.WriteContinuation(1, true, b[4:])
		_ = fr.WriteData(1, false, []byte("hello!"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr(get...), EndHeaders: true, EndStream: true})
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: hdr(":method", "CONNECT", ":authority", "x:1"), EndHeaders: true})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add(h2FuzzSeed(func(fr *http2.Framer, hdr func(...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(post...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr("x-trailer", "1"), EndHeaders: true, EndStream: true})
		_ = fr.WriteWindowUpdate(1, 3)
	}))

	f.Fuzz(func(t *testing.T, data []byte) { fuzzEngineConn(t, e, true, data) })
}
