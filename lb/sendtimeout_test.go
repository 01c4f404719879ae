package lb

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// waitCut fails the test unless the backend reports an answer cut off
// (its writes failed) within 5 s.
func waitCut(t *testing.T, cut <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-cut:
	case <-time.After(5 * time.Second):
		t.Fatal(why)
	}
}

// sendTimeoutBackend answers /big with size bytes in 32 KiB writes (/mid
// with 512 KiB) and reports on cut each answer whose writes failed: the
// lb let go of its upstream connection. A size past what the socket
// buffers on the way hold (tens of MiB on loopback) keeps the backend
// writing until then.
func sendTimeoutBackend(t *testing.T, size int) (*backend, chan struct{}) {
	cut := make(chan struct{}, 8)
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		size := size
		switch r.URL.Path {
		case "/big":
		case "/mid":
			size = 512 << 10
		default:
			io.WriteString(w, "small")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := bytes.Repeat([]byte("z"), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				cut <- struct{}{}
				return
			}
		}
	})
	return b, cut
}

// A client that asks for a large answer and stops reading it is let go
// after send_timeout, on plain HTTP/1.1 and over TLS: its connection is
// closed and the upstream's answer cut off, which frees the upstream
// connection. A client that reads slowly but steadily gets its answer
// whole, and its connection then serves its next request after a pause
// longer than send_timeout (the write deadline does not linger).
func TestSendTimeoutLetsStalledReadersGo(t *testing.T) {
	const size = 64 << 20 // past what the socket buffers on the way hold
	const stall = 300 * time.Millisecond
	b, cut := sendTimeoutBackend(t, size)

	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].SendTimeout = Duration(stall)
	plain, _ := startLB(t, cfg)
	tlsSrv, _, roots := startTLSLBWith(t, addrs(b), RouteConfig{}, func(l *ListenerConfig) { l.SendTimeout = Duration(stall) })
	dial := map[string]func(t *testing.T) net.Conn{
		"plain": func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", plain.Addr())
			require.NoError(t, err)
			return c
		},
		"tls": func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsSrv.Addr(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
			require.NoError(t, err)
			return c
		},
	}
	for name, dial := range dial {
		t.Run(name+"/stalled", func(t *testing.T) {
			c := dial(t)
			defer c.Close()
			_, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			waitCut(t, cut, "the upstream's answer still flows 5 s after its client stopped reading")
		})
		t.Run(name+"/slow", func(t *testing.T) {
			c := dial(t)
			defer c.Close()
			rd := bufio.NewReader(c)
			_, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			res, err := http.ReadResponse(rd, nil)
			require.NoError(t, err)
			got := 0
			buf := make([]byte, 256<<10)
			for {
				n, err := res.Body.Read(buf)
				got += n
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				if got%(4<<20) < n {
					time.Sleep(stall / 6) // slow, never near a stall (TLS may cut at half of one)
				}
			}
			require.Equal(t, size, got)
			time.Sleep(2 * stall)
			_, err = io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			res, err = http.ReadResponse(rd, nil)
			require.NoError(t, err)
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Equal(t, "small", string(body))
		})
	}
	select {
	case <-cut:
		t.Fatal("a steady reader's answer was cut off")
	default:
	}
}

// On HTTP/2 a stream whose client withholds credit for send_timeout is
// reset (CANCEL) and its upstream answer cut off; the connection and its
// other streams go on.
func TestH2ServeSendTimeoutResetsStalledStream(t *testing.T) {
	b, cut := sendTimeoutBackend(t, 64<<20)
	srv, _, roots := startTLSLBWith(t, addrs(b), RouteConfig{}, func(l *ListenerConfig) { l.SendTimeout = Duration(300 * time.Millisecond) })
	c := dialRawH2TLS(t, srv.Addr(), roots, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	start := time.Now()
	c.headers(t, 1, true, ":method", "GET", ":scheme", "https", ":path", "/big", ":authority", "lb")
	f := c.until(t, func(f http2.Frame) bool { r, ok := f.(*http2.RSTStreamFrame); return ok && r.StreamID == 1 })
	require.Equal(t, http2.ErrCodeCancel, f.(*http2.RSTStreamFrame).ErrCode)
	require.Less(t, time.Since(start), 3*time.Second)
	waitCut(t, cut, "the upstream's answer still flows after its stream was reset")

	c.headers(t, 3, true, ":method", "GET", ":scheme", "https", ":path", "/small", ":authority", "lb")
	d := c.until(t, func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamID == 3 })
	require.Equal(t, "small", string(d.(*http2.DataFrame).Data()))

	// A client that grants credit slowly but steadily (64 KiB every 100
	// ms, most of a second for 512 KiB, past send_timeout) gets it all.
	require.NoError(t, c.fr.WriteWindowUpdate(0, 1<<20))
	c.headers(t, 5, true, ":method", "GET", ":scheme", "https", ":path", "/mid", ":authority", "lb")
	got, granted := 0, 100
	for {
		f := c.until(t, func(f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.DataFrame:
				return f.StreamID == 5
			case *http2.RSTStreamFrame:
				return f.StreamID == 5
			}
			return false
		})
		d, ok := f.(*http2.DataFrame)
		require.True(t, ok, "a steady stream was reset")
		got += len(d.Data())
		if d.StreamEnded() {
			break
		}
		if got == granted {
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, c.fr.WriteWindowUpdate(5, 64<<10))
			granted += 64 << 10
		}
	}
	require.Equal(t, 512<<10, got)
}

// A request the fast loop leaves to net/http (here HTTP/2 with prior
// knowledge on a listener without native_grpc) is bounded too, through
// its ResponseController's write deadline: the stalled stream ends and
// its upstream answer is cut off; the connection's next stream is served.
func TestSendTimeoutOnNetHTTPPath(t *testing.T) {
	b, cut := sendTimeoutBackend(t, 64<<20)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].SendTimeout = Duration(300 * time.Millisecond)
	srv, _ := startLB(t, cfg)
	nc, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	c := startRawH2(t, nc, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	c.headers(t, 1, true, ":method", "GET", ":scheme", "http", ":path", "/big", ":authority", "lb")
	c.until(t, func(f http2.Frame) bool { r, ok := f.(*http2.RSTStreamFrame); return ok && r.StreamID == 1 })
	waitCut(t, cut, "the upstream's answer still flows after its stream ended")
	c.headers(t, 3, true, ":method", "GET", ":scheme", "http", ":path", "/small", ":authority", "lb")
	d := c.until(t, func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamID == 3 })
	require.Equal(t, "small", string(d.(*http2.DataFrame).Data()))
}

// An upgraded connection (WebSocket) whose client stops reading what the
// upstream pushes is closed after send_timeout, both ways: the upstream's
// writes fail.
func TestSendTimeoutEndsStalledUpgrade(t *testing.T) {
	cut := make(chan struct{}, 1)
	b := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		chunk := bytes.Repeat([]byte("p"), 32<<10)
		for range 4096 { // 128 MiB, past every buffer on the way
			if _, err := conn.Write(chunk); err != nil {
				cut <- struct{}{}
				return
			}
		}
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].SendTimeout = Duration(300 * time.Millisecond)
	srv, _ := startLB(t, cfg)
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /push HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	waitCut(t, cut, "the upstream still pushes 5 s after its client stopped reading") // reading nothing more
}

// A TLS connection's send_timeout deadline, left set after the fast
// loop's answer, is cleared when a later request on it goes to net/http
// (here one with Expect: 100-continue), whose writes set none.
func TestSendTimeoutDeadlineDoesNotOutliveTheFastLoop(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(body))
	})
	srv, _, roots := startTLSLBWith(t, addrs(b), RouteConfig{}, func(l *ListenerConfig) { l.SendTimeout = Duration(200 * time.Millisecond) })
	c, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	rd := bufio.NewReader(c)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	res, err := http.ReadResponse(rd, nil)
	require.NoError(t, err)
	io.Copy(io.Discard, res.Body)
	time.Sleep(500 * time.Millisecond) // past the deadline the answer left
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
	require.NoError(t, err)
	res, err = http.ReadResponse(rd, nil)
	require.NoError(t, err, "net/http's 100 Continue")
	require.Equal(t, http.StatusContinue, res.StatusCode)
	_, err = io.WriteString(c, "hi")
	require.NoError(t, err)
	res, err = http.ReadResponse(rd, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, "got hi", string(body))
}
