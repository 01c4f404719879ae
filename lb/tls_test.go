package lb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// writeCert creates a self-signed certificate for 127.0.0.1 with the given
// serial and writes it to dir; it returns the file paths and a pool that
// trusts it.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "vigil-lb-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSListenerNegotiatesH2AndHTTP1AndRotatesCerts(t *testing.T) {
	b := newBackend(t, "b", nil)
	g := newGRPCBackend(t, "g")
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir, 1)
	tlsCfg := func() *Config {
		return &Config{
			Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
			Routes: []RouteConfig{
				{Name: "grpc", Match: MatchConfig{GRPC: true}, Pool: "grpc"},
				{Name: "web", Pool: "web"},
			},
			Pools: []PoolConfig{
				{Name: "grpc", Protocol: "h2c", Upstreams: []string{g.addr}},
				{Name: "web", Upstreams: addrs(b)},
			},
		}
	}
	srv, _ := startLB(t, tlsCfg())
	base := "https://" + srv.Addr()

	for _, tc := range []struct {
		name      string
		h2        bool
		wantProto string
	}{{"h2 by ALPN", true, "HTTP/2.0"}, {"http/1.1", false, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			res, err := (&http.Client{Transport: tr}).Get(base + "/")
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, tc.wantProto, res.Proto)
			require.Equal(t, "b", res.Header.Get("X-Backend"))
		})
	}

	// gRPC over TLS to the lb, h2c behind it.
	cc, err := grpc.NewClient("passthrough:///"+srv.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	require.NoError(t, err)
	defer cc.Close()
	res, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	require.Equal(t, "g", res.GetServerId())

	// Rotate the certificate: new handshakes get serial 2.
	_, _, roots2 := writeCert(t, dir, 2)
	require.NoError(t, srv.Reload(tlsCfg()))
	conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots2})
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, int64(2), conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64())
}

// HTTP/1.1 over TLS is served by the fast loop (nothing handed to
// net/http), keep-alive, GETs and POSTs alike, with X-Forwarded-Proto
// https; a request it leaves to net/http (chunked) still says https; a
// client that negotiated h2 goes to the native HTTP/2 engine whole.
func TestTLSListenerServesHTTP1InTheFastLoop(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Header.Get("X-Forwarded-Proto"), r.Method, len(body))
	})
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir, 1)
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", ReadHeaderTimeout: Duration(300 * time.Millisecond),
			TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
		Routes: []RouteConfig{{Name: "web", Pool: "web", TryTimeout: Duration(10 * time.Second)}},
		Pools:  []PoolConfig{{Name: "web", Upstreams: addrs(b)}},
	})
	hs := srv.listeners[0].fast
	base := "https://" + srv.Addr()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var conns atomic.Int64
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if !i.Reused {
				conns.Add(1)
			}
		},
	})
	do := func(method string, body io.Reader, chunked bool) string {
		req, err := http.NewRequestWithContext(trace, method, base+"/", body)
		require.NoError(t, err)
		if chunked {
			req.ContentLength = -1
		}
		res, err := c.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		got, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, string(got))
		return string(got)
	}
	for range 3 {
		require.Equal(t, "https GET 0", do(http.MethodGet, nil, false))
		require.Equal(t, "https POST 5", do(http.MethodPost, strings.NewReader("hello"), false))
	}
	require.Equal(t, int64(1), conns.Load(), "one keep-alive connection")
	require.Zero(t, hs.handedOff.Load(), "served by the fast loop")
	require.Equal(t, "https POST 7", do(http.MethodPost, strings.NewReader("chunked"), true))
	require.Equal(t, uint64(1), hs.handedOff.Load(), "a chunked body goes to net/http")

	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	res, err := (&http.Client{Transport: h2}).Get(base + "/")
	require.NoError(t, err)
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, "HTTP/2.0", res.Proto)
	require.Equal(t, "https GET 0", string(got))
	require.Equal(t, uint64(1), hs.handedOff.Load(), "h2 goes to the native HTTP/2 engine, not net/http")
	require.Equal(t, 1, engineConns(srv))
}

// A TLS client that never completes its handshake is closed at
// read_header_timeout and forgotten; one that speaks plain HTTP to the
// TLS port is closed at once. Neither keeps others from being served.
func TestTLSListenerEndsStalledAndBrokenHandshakes(t *testing.T) {
	b := newBackend(t, "b", nil)
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir, 1)
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", ReadHeaderTimeout: Duration(200 * time.Millisecond),
			TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
		Routes: []RouteConfig{{Name: "web", Pool: "web"}},
		Pools:  []PoolConfig{{Name: "web", Upstreams: addrs(b)}},
	})
	hs := srv.listeners[0].fast
	silent, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer silent.Close()
	plain, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(3 * time.Second))
	io.Copy(io.Discard, plain) // ends when the proxy closes it

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + srv.Addr() + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = silent.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "closed by the proxy, not by our deadline")
	require.Less(t, time.Since(start), 2*time.Second)
	tr.CloseIdleConnections()
	require.Eventually(t, func() bool { return connCount(hs) == 0 }, 2*time.Second, 10*time.Millisecond)
}

// A WebSocket over TLS (wss): the fast loop hands the upgrade to net/http
// mid-connection, which hijacks the TLS connection it was handed; frames
// pass both ways, and the upstream is told the client came over https.
func TestTLSListenerPassesWebSocket(t *testing.T) {
	b := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		echoWebSocket(w, r, r.Header.Get("X-Forwarded-Proto")+":")
	})
	certFile, keyFile, roots := writeCert(t, t.TempDir(), 1)
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
		Routes:    []RouteConfig{{Name: "web", Pool: "web", TryTimeout: Duration(10 * time.Second)}},
		Pools:     []PoolConfig{{Name: "web", Upstreams: addrs(b)}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	conn, res, err := websocket.Dial(ctx, "wss://"+srv.Addr()+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	defer conn.CloseNow()
	for i := range 50 {
		msg := fmt.Sprintf("message %d", i)
		require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := conn.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, "https:"+msg, string(got))
	}
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, "bye"))
	require.Equal(t, uint64(1), srv.listeners[0].fast.handedOff.Load(), "the upgrade went to net/http")
}
