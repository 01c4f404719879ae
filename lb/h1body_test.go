package lb

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// post sends POST path with body on the connection (its head declaring
// the body's length) and returns the answer's status and body.
func (k *keepAlive) post(path string, body []byte) (int, string, error) {
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := k.nc.Write(append([]byte(head), body...)); err != nil {
		return 0, "", err
	}
	return k.readAnswer()
}

// bodyDigest is what bodyEcho answers for a body.
func bodyDigest(b []byte) string { return fmt.Sprintf("%d %x", len(b), sha256.Sum256(b)) }

// bodyEcho is an upstream that answers a request's body's digest, when
// its Content-Length matched it, and counts the connections it accepted.
func bodyEcho(t *testing.T) (addr string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || (r.ContentLength != int64(len(body)) && len(body) > 0) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, bodyDigest(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), conns
}

// Request bodies up to nativeBodyMax go on the transport's own
// connections, after their head, intact whatever their size against the
// writer's buffer; larger ones through net/http's transport, also intact.
func TestH1TransportRelaysSmallBodiesOnItsOwnConnections(t *testing.T) {
	up, conns := bodyEcho(t)
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{}))
	k := dialKeepAlive(t, srv.Addr())
	body := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	_, _, err := k.do("/warm")
	require.NoError(t, err)
	for _, n := range []int{1, 200, 8191, 8192, 8193, nativeBodyMax - 1, nativeBodyMax} {
		b := body(n)
		code, got, err := k.post("/p", b)
		require.NoError(t, err, "%d bytes", n)
		require.Equal(t, http.StatusOK, code, "%d bytes", n)
		require.Equal(t, bodyDigest(b), got, "%d bytes", n)
		code, _, err = k.do("/between")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, int64(1), conns.Load(), "bodies up to nativeBodyMax share the GETs' upstream connection")

	b := body(nativeBodyMax + 1)
	code, got, err := k.post("/p", b)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, bodyDigest(b), got)
	require.Equal(t, int64(2), conns.Load(), "a larger body goes through net/http's transport, on a connection of its own")
}

// A body that arrives in pieces is relayed as it comes (the upstream has
// the request before the client sent all of it) and whole; one the client
// breaks off reaches no upstream as a complete request, and the upstream
// connection it was being written on is not used again.
func TestH1TransportBodyFromASlowOrBrokenClient(t *testing.T) {
	started := make(chan struct{}, 1)
	slowUp := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, bodyDigest(body))
	})
	var complete atomic.Int64
	counting := newBackend(t, "count", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err == nil {
			complete.Add(1)
		}
		io.WriteString(w, "ok")
	})
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(slowUp)}, RouteConfig{}))
	k := dialKeepAlive(t, srv.Addr())
	io.WriteString(k.nc, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	select {
	case <-started:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream got nothing of a request whose body is not all there yet")
	}
	io.WriteString(k.nc, "world")
	code, got, err := k.readAnswer()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, bodyDigest([]byte("helloworld")), got)

	srv2, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(counting)}, RouteConfig{}))
	k2 := dialKeepAlive(t, srv2.Addr())
	_, _, err = k2.do("/warm") // an upstream connection to reuse
	require.NoError(t, err)
	require.Equal(t, int64(1), complete.Load())
	broken := dialKeepAlive(t, srv2.Addr())
	io.WriteString(broken.nc, "POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	time.Sleep(50 * time.Millisecond) // the proxy is now writing the body
	broken.nc.Close()
	for range 5 {
		code, got, err := k2.do("/after")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok", got)
	}
	require.Equal(t, int64(6), complete.Load(), "the cut-off POST never reached the upstream whole")
}

// A connection the upstream closed moments ago (well within
// probeIdleAfter) is probed before a request with a body uses it: that
// request could not be sent again, as a GET is (see
// TestH1TransportRetriesOnConnectionClosedJustBefore).
func TestH1TransportProbesBeforeSendingABody(t *testing.T) {
	addr, served := closingUpstream(t)
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Retries: ptr(0)}))
	k := dialKeepAlive(t, srv.Addr())
	for i := range 5 {
		code, got, err := k.post("/p", []byte("body"))
		require.NoError(t, err, "request %d", i)
		require.Equal(t, http.StatusOK, code, "request %d", i)
		require.Equal(t, "ok", got)
		// Time for the upstream's FIN to arrive, well short of the probe.
		time.Sleep(probeIdleAfter / 10) // models idle time, not synchronisation
	}
	require.Equal(t, 5, served())
}

// writeBody copies exactly n bytes through a writer buffer smaller than
// the body, reads nothing past them, and reports a body that ends early.
func TestH1ConnWriteBody(t *testing.T) {
	var out bytes.Buffer
	c := &h1Conn{bw: bufio.NewWriterSize(&out, 16)}
	src := strings.NewReader("0123456789abcdefghijklmnopqrstuvwxyz-and-more")
	require.NoError(t, c.writeBody(src, 36))
	require.NoError(t, c.bw.Flush())
	require.Equal(t, "0123456789abcdefghijklmnopqrstuvwxyz", out.String())
	require.Equal(t, 9, src.Len(), "nothing past the declared length is read")

	out.Reset()
	err := c.writeBody(strings.NewReader("short"), 10)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

// The fast loop reuses a request head's storage only after a request that
// left nothing holding it. One to an h2c pool does: the HPACK encoder's
// table keeps the field values it sent. Were that storage reused, the
// next request's head would rewrite those values in the table, and the
// encoder would then send an index the upstream decodes as the old value.
func TestFastLoopKeepsHeadsHeldUpstream(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Token"))
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetHTTP1(true)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	t.Cleanup(up.Close)
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up.Listener.Addr().String()}, Protocol: "h2c"}, RouteConfig{}))
	k := dialKeepAlive(t, srv.Addr())
	for i := range 30 {
		token := fmt.Sprintf("tok-%04d", i)
		io.WriteString(k.nc, "GET / HTTP/1.1\r\nHost: x\r\nX-Token: "+token+"\r\n\r\n")
		code, got, err := k.readAnswer()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, token, got, "request %d", i)
	}
}
