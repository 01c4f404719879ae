package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// drainWhileSniffing starts a server whose port is split by the protocol
// sniffer (native_grpc), opens one connection that sends first (the
// sniff's first read has it) and one that sends nothing, and begins a
// shutdown once the sniffer holds both. It returns the two connections
// and the shutdown's result.
func drainWhileSniffing(t *testing.T, first string) (begun, idle net.Conn, shutdown <-chan error) {
	t.Helper()
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "done "+string(body))
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].NativeGRPC = true
	cfg.Listeners[0].ReadHeaderTimeout = Duration(20 * time.Second) // longer than the test may wait
	srv, _ := startLB(t, cfg)
	sn := srv.listeners[0].sniff
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	begun, idle = dial(), dial()
	_, err := io.WriteString(begun, first)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		sn.mu.Lock()
		defer sn.mu.Unlock()
		n := 0
		for _, st := range sn.sniffing {
			if st.begun {
				n++
			}
		}
		return len(sn.sniffing) == 2 && n == 1
	}, 5*time.Second, time.Millisecond, "the sniffer holds both connections")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", srv.Addr())
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, time.Millisecond, "the port closes")
	// The connection that sent nothing is closed as idle, at once.
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = idle.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the idle connection is closed, not left to its read_header_timeout")
	return begun, idle, done
}

// A request whose first bytes reached the protocol sniffer of a
// native_grpc port before a shutdown is served: the sniffer used to close
// its hand-offs once the port closed, cutting the request without an
// answer. Its first byte, P, is also the HTTP/2 preface's, so the sniff
// waits for more while the drain begins.
func TestShutdownServesAnHTTPRequestBeingSniffed(t *testing.T) {
	begun, _, done := drainWhileSniffing(t, "P")
	_, err := io.WriteString(begun, "OST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	require.NoError(t, err)
	begun.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(begun), nil)
	require.NoError(t, err, "the request begun before the drain gets its answer")
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "done hi", string(body))
	// The connection then closes: with the answer (Connection: close)
	// when the fast loop was draining by then, or as idle right after.
	_, err = begun.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the draining connection closes")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the shutdown did not finish")
	}
}

// An h2c connection whose preface had begun before a shutdown is handed
// to the gRPC engine, which answers with its SETTINGS and a GOAWAY that
// says no stream was taken: its client knows that a call sent with the
// preface was not served and may send it elsewhere. It used to be closed
// without a frame.
func TestShutdownSendsGOAWAYToAPrefaceBeingSniffed(t *testing.T) {
	begun, _, done := drainWhileSniffing(t, h2Preface[:10])
	_, err := io.WriteString(begun, h2Preface[10:])
	require.NoError(t, err)
	settingsThenGOAWAY(t, begun)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the shutdown did not finish")
	}
}

// stalledSniff starts a native_grpc listener with a long
// read_header_timeout and a connection that sent one byte, "P" (the
// HTTP/2 preface's first too), and nothing more; it returns them once
// the sniffer has that byte.
func stalledSniff(t *testing.T) (*Server, net.Conn) {
	t.Helper()
	cfg := oneRoute(PoolConfig{Upstreams: []string{"127.0.0.1:1"}}, RouteConfig{})
	cfg.Listeners[0].NativeGRPC = true
	cfg.Listeners[0].ReadHeaderTimeout = Duration(time.Minute)
	srv, _ := startLB(t, cfg)
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "P")
	sn := srv.listeners[0].sniff
	require.Eventually(t, func() bool {
		sn.mu.Lock()
		defer sn.mu.Unlock()
		for _, st := range sn.sniffing {
			return st.begun
		}
		return false
	}, 5*time.Second, time.Millisecond, "the sniffer has the connection's first byte")
	return srv, c
}

// A connection still being sniffed when the drain's time runs out is
// closed, and the shutdown returns.
func TestShutdownAbortsASniffPastTheDrainTimeout(t *testing.T) {
	srv, c := stalledSniff(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.ErrorIs(t, srv.Shutdown(ctx), context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

// A client that sent a first byte and then nothing holds the drain of
// its listener for sniffDrainGrace at most, not for its
// read_header_timeout: the engines drain only once the sniffs are done.
func TestShutdownGivesAStalledSniffAGraceOnly(t *testing.T) {
	srv, _ := stalledSniff(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Shutdown(ctx))
	took := time.Since(start)
	require.GreaterOrEqual(t, took, sniffDrainGrace-50*time.Millisecond, "the sniff had its grace")
	require.Less(t, took, sniffDrainGrace+2*time.Second)
}

// h2OverTLSWithoutPreface starts a TLS listener with a long
// read_header_timeout and a client connection that negotiated h2 but
// has sent no preface yet, which the HTTP/2 engine holds.
func h2OverTLSWithoutPreface(t *testing.T) (*Server, *tls.Conn) {
	t.Helper()
	srv, _, roots := startTLSLBWith(t, []string{"127.0.0.1:1"}, RouteConfig{}, func(l *ListenerConfig) {
		l.ReadHeaderTimeout = Duration(20 * time.Second)
	})
	c, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	require.Eventually(t, func() bool { return engineConns(srv) == 1 }, 5*time.Second, time.Millisecond)
	return srv, c
}

// A TLS client that negotiated h2 but has not sent its preface is idle:
// a drain closes it after sniffDrainGrace rather than wait out its
// read_header_timeout.
func TestShutdownClosesAnHTTP2ConnectionWaitingForItsPreface(t *testing.T) {
	srv, _ := h2OverTLSWithoutPreface(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Shutdown(ctx))
	require.Less(t, time.Since(start), sniffDrainGrace+2*time.Second)
}

// A TLS client that negotiated h2 and sends its preface (with a request)
// as the drain begins is answered with SETTINGS and GOAWAY, which tell
// it that the request was not served: its connection, waiting for the
// preface, gets a grace to send it rather than a bare close.
func TestShutdownAnswersAnHTTP2PrefaceSentAsTheDrainBegins(t *testing.T) {
	srv, c := h2OverTLSWithoutPreface(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	e := srv.listeners[0].h2
	require.Eventually(t, func() bool { return e.isDraining() }, 5*time.Second, time.Millisecond)
	// GracefulStop has most likely looked at the connection by now; if it
	// has not, the preface is read first and the GOAWAY still comes (from
	// serveConn, as for a sniffed connection).
	time.Sleep(100 * time.Millisecond)
	_, err := io.WriteString(c, h2Preface)
	require.NoError(t, err)
	settingsThenGOAWAY(t, c)
	require.NoError(t, <-done)
}

// On a proxy_protocol listener (no native_grpc), a request whose PROXY
// header and first bytes came before the drain is served, with the
// header's client: the sniffer hands the connection on with the bytes
// past the header, and the fast loop does not take it for idle. (The
// sniffer's own window, a drain between its read and its hand-off, is
// microseconds long and has no test.)
func TestShutdownServesARequestBegunBehindAPROXYHeader(t *testing.T) {
	srv, _ := proxyLB(t, []string{"127.0.0.1"}, nil)
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET /x HT")
	require.NoError(t, err)
	fast := srv.listeners[0].fast
	require.Eventually(t, func() bool { return len(fast.connList()) == 1 }, 5*time.Second, time.Millisecond, "the fast loop has the connection")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	require.Eventually(t, func() bool { return fast.draining.Load() }, 5*time.Second, time.Millisecond)
	_, err = io.WriteString(c, "TP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, "203.0.113.7", string(body))
	require.True(t, res.Close)
	require.NoError(t, <-done)
}

// When the HTTP/2 engine closes a client's connection (here after the
// client's GOAWAY) while the client is still sending, it shuts its side
// and reads on before closing: the client reads to a clean end. Closed
// with the client's bytes unread, the socket sent a reset, which may
// destroy the last frames written (h2spec's GOAWAY cases failed on it
// now and then).
func TestH2CloseLingersWhileTheClientSends(t *testing.T) {
	cfg := oneRoute(PoolConfig{Upstreams: []string{"127.0.0.1:1"}}, RouteConfig{})
	cfg.Listeners[0].NativeGRPC = true
	srv, _ := startLB(t, cfg)
	var pings bytes.Buffer
	pfr := http2.NewFramer(&pings, nil)
	for i := range 200 {
		require.NoError(t, pfr.WritePing(false, [8]byte{byte(i)}))
	}
	for range 10 {
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		var out bytes.Buffer
		out.WriteString(h2Preface)
		fr := http2.NewFramer(&out, nil)
		require.NoError(t, fr.WriteSettings())
		require.NoError(t, fr.WriteGoAway(0, http2.ErrCodeNo, nil))
		_, err = c.Write(out.Bytes())
		require.NoError(t, err)
		// PINGs keep coming while the engine closes the connection.
		stop := make(chan struct{})
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write(pings.Bytes()); err != nil {
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
		close(stop)
		<-sent
		c.Close()
		require.NoError(t, err, "the connection must end cleanly, not be reset")
	}
}

// tlsHandshakeDuringDrain opens a TCP connection to a TLS listener,
// starts a shutdown once the fast loop holds it (its handshake not yet
// begun), and returns it with the shutdown's result once the fast loop
// drains.
func tlsHandshakeDuringDrain(t *testing.T) (net.Conn, *x509.CertPool, <-chan error) {
	t.Helper()
	b := newBackend(t, "b", nil)
	srv, _, roots := startTLSLBWith(t, addrs(b), RouteConfig{}, nil)
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	fast := srv.listeners[0].fast
	require.Eventually(t, func() bool { return len(fast.connList()) == 1 }, 5*time.Second, time.Millisecond)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	require.Eventually(t, func() bool { return fast.draining.Load() && srv.listeners[0].h2.isDraining() }, 5*time.Second, time.Millisecond)
	return c, roots, done
}

// A TLS client whose handshake meets the drain is served: HTTP/1.1 gets
// its first request answered (the fast loop gave a new connection's
// first request no time once draining), and HTTP/2 gets SETTINGS and
// GOAWAY(0) (it was closed bare).
func TestShutdownServesATLSHandshakeItMet(t *testing.T) {
	t.Run("http/1.1", func(t *testing.T) {
		c, roots, done := tlsHandshakeDuringDrain(t)
		tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		require.NoError(t, tc.Handshake())
		time.Sleep(20 * time.Millisecond) // the fast loop waits for the request
		_, err := io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(tc), nil)
		require.NoError(t, err, "the first request is served")
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "b", string(body))
		require.True(t, res.Close)
		require.NoError(t, <-done)
	})
	t.Run("h2", func(t *testing.T) {
		c, roots, done := tlsHandshakeDuringDrain(t)
		tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		require.NoError(t, tc.Handshake())
		require.Equal(t, "h2", tc.ConnectionState().NegotiatedProtocol)
		_, err := io.WriteString(tc, h2Preface)
		require.NoError(t, err)
		settingsThenGOAWAY(t, tc)
		require.NoError(t, <-done)
	})
}

// settingsThenGOAWAY sends c's SETTINGS (its preface sent) and reads the
// engine's frames up to a GOAWAY, which must say that no stream was
// taken (last stream 0, no error).
func settingsThenGOAWAY(t *testing.T, c net.Conn) {
	t.Helper()
	fr := http2.NewFramer(c, c)
	require.NoError(t, fr.WriteSettings())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := fr.ReadFrame()
		require.NoError(t, err, "frames before the connection ends")
		goAway, _ = f.(*http2.GoAwayFrame)
	}
	require.Equal(t, http2.ErrCodeNo, goAway.ErrCode)
	require.Zero(t, goAway.LastStreamID)
}
