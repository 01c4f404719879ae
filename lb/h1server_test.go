package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	vlog "github.com/vigilhq/vigil/platform/log"
)

// startH1 runs handler behind the fast loop on a loopback listener, with
// a net/http server taking what it hands off, as Start wires them.
func startH1(t *testing.T, handler http.Handler, lc ListenerConfig) (string, *h1Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if lc.ReadHeaderTimeout == 0 {
		lc.ReadHeaderTimeout = Duration(5 * time.Second)
	}
	if lc.IdleTimeout == 0 {
		lc.IdleTimeout = Duration(5 * time.Second)
	}
	if lc.MaxHeaderBytes == 0 {
		lc.MaxHeaderBytes = 64 << 10
	}
	s := &Server{log: testLogger()}
	l := &listener{cfg: lc}
	handoff := newChanListener(ln.Addr())
	hs := s.newH1Server(l, handoff)
	hs.handler = handler
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: time.Duration(lc.ReadHeaderTimeout), MaxHeaderBytes: int(lc.MaxHeaderBytes)}
	hs.start(ln)
	go srv.Serve(handoff)
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.shutdown(ctx)
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), hs
}

// exchangeAll writes raw and reads until the server closes.
func exchangeAll(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	out, err := io.ReadAll(c)
	require.NoError(t, err, "the server did not close the connection; got %q", out)
	return string(out)
}

// summarise parses the answers to reqs in raw into what must agree
// between two servers: status, headers but Date, framing, body, trailers,
// and how many answers came before the connection closed. Header order
// and chunk sizes carry no meaning and are left out.
func summarise(raw string, reqs []string) string {
	rd := bufio.NewReader(strings.NewReader(raw))
	var out strings.Builder
	for _, rq := range reqs {
		method, _, _ := strings.Cut(rq, " ")
		res, err := http.ReadResponse(rd, &http.Request{Method: method})
		if err != nil {
			fmt.Fprintf(&out, "end: %v\n", err)
			return out.String()
		}
		body, err := io.ReadAll(res.Body)
		keys := make([]string, 0, len(res.Header))
		for k, vv := range res.Header {
			if k != "Date" {
				keys = append(keys, k+"="+strings.Join(vv, "|"))
			}
		}
		slices.Sort(keys)
		fmt.Fprintf(&out, "%s %d te=%v cl=%d close=%v %v\nbody %d %.40q err=%v trailer=%v\n",
			res.Proto, res.StatusCode, res.TransferEncoding, res.ContentLength, res.Close, keys, len(body), body, err, res.Trailer)
	}
	rest, _ := io.ReadAll(rd)
	fmt.Fprintf(&out, "rest %q\n", rest)
	return out.String()
}

// The fast loop's writer frames answers as net/http does: the same
// status lines, lengths, chunking, sniffed types, keep-alive and close
// decisions, trailers and body draining, for HTTP/1.1 and 1.0 clients.
func TestH1ServerFramesAnswersLikeNetHTTP(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"plain": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
		"length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		},
		"short": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "9")
			io.WriteString(w, "hello")
		},
		"big": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("z", 5000)) },
		"204": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
		"304": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "x/y")
			w.WriteHeader(http.StatusNotModified)
		},
		"flush": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		},
		"error": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) },
		"close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		},
		"identity": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			io.WriteString(w, "id")
		},
		"sniff":      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html><body>hi</body></html>") },
		"empty":      func(w http.ResponseWriter, r *http.Request) {},
		"odd status": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599); io.WriteString(w, "x") },
		"keep-alive": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "keep-alive")
			io.WriteString(w, "k")
		},
		"read body": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d %s", len(b), r.URL.Path)
		},
		"ignore body": func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "ignored %s", r.URL.Path) },
		"trailers": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T")
			io.WriteString(w, "x")
			w.Header().Set("X-T", "v")
		},
		"trailer prefix": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "x")
			w.Header().Set(http.TrailerPrefix+"X-U", "u")
		},
		"echo": func(w http.ResponseWriter, r *http.Request) {
			keys := make([]string, 0, len(r.Header))
			for k, vv := range r.Header {
				keys = append(keys, k+"="+strings.Join(vv, "|"))
			}
			slices.Sort(keys)
			fmt.Fprintf(w, "%s %s %q %q %s %d %v %s", r.Method, r.Proto, r.URL.Path, r.URL.RawQuery, r.Host, r.ContentLength, r.Close, strings.Join(keys, ";"))
		},
	}
	next := "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	requests := [][]string{
		{"GET /a?b=c HTTP/1.1\r\nHost: x\r\nuser-agent: t\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n", next},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", next},
		{"GET / HTTP/1.0\r\n\r\n"},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", next},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", next},
		{"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", next},
		{"PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("q", 300000), next},
		{"GET /%7Ex%20y?q=%41 HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", next},
	}
	for name, h := range handlers {
		fastAddr, hs := startH1(t, h, ListenerConfig{})
		ref := &http.Server{Handler: h}
		refLn, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go ref.Serve(refLn)
		t.Cleanup(func() { ref.Close() })
		for i, reqs := range requests {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				served := hs.served.Load()
				raw := strings.Join(reqs, "")
				got := summarise(exchangeAll(t, fastAddr, raw), reqs)
				want := summarise(exchangeAll(t, refLn.Addr().String(), raw), reqs)
				require.Equal(t, want, got)
				require.Greater(t, hs.served.Load(), served, "served by the fast loop")
			})
		}
	}
}

// What the fast loop does not parse goes to net/http with every byte,
// and net/http's answer is what the client gets.
func TestH1ServerHandsOffWhatItDoesNotServe(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	addr, hs := startH1(t, echo, ListenerConfig{MaxHeaderBytes: 1024})
	cases := map[string]struct{ raw, want string }{
		"chunked":        {"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /c abc"},
		"expect":         {"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", "HTTP/1.1 100 Continue"},
		"bare LF":        {"GET /lf HTTP/1.1\nHost: x\nConnection: close\n\n", "GET /lf"},
		"absolute form":  {"GET http://x/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /abs"},
		"folded header":  {"GET /fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n", "GET /fold"},
		"two lengths":    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\nConnection: close\r\n\r\na", "POST / a"},
		"oversize head":  {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n", "HTTP/1.1 431"},
		"cut short":      {"GET / HTTP/1.1\r\nHost: x\r\nX-", ""},
		"second request": {"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nz\r\n0\r\n\r\n", "POST /2 z"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := hs.handedOff.Load()
			raw := tc.raw
			var out string
			if name == "cut short" {
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				io.WriteString(c, raw)
				c.(*net.TCPConn).CloseWrite()
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				b, _ := io.ReadAll(c)
				c.Close()
				out = string(b)
				require.True(t, strings.HasPrefix(out, "HTTP/1.1 400"), "got %q", out)
			} else {
				out = exchangeAll(t, addr, raw)
				require.Contains(t, out, tc.want)
			}
			require.Equal(t, before+1, hs.handedOff.Load())
		})
	}
}

// Pipelined requests are answered in order, over one connection.
func TestH1ServerPipelining(t *testing.T) {
	addr, hs := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}), ListenerConfig{})
	var raw strings.Builder
	for i := range 20 {
		fmt.Fprintf(&raw, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	raw.WriteString("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	out := exchangeAll(t, addr, raw.String())
	rd := bufio.NewReader(strings.NewReader(out))
	for i := range 21 {
		res, err := http.ReadResponse(rd, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		want := fmt.Sprintf("/%d", i)
		if i == 20 {
			want = "/last"
		}
		require.Equal(t, want, string(b))
	}
	require.Equal(t, uint64(21), hs.served.Load())
	require.Zero(t, hs.handedOff.Load())
}

// A panicking handler costs its own connection only; ErrAbortHandler
// truncates the answer without a log line, like net/http.
func TestH1ServerPanicClosesOnlyThatConnection(t *testing.T) {
	addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	}), ListenerConfig{})
	out := exchangeAll(t, addr, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	require.Empty(t, out)
	out = exchangeAll(t, addr, "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
	require.True(t, strings.HasPrefix(out, "HTTP/1.1 200 OK"), out)
	require.True(t, strings.HasSuffix(out, "\r\n\r\npart"), out)
	out = exchangeAll(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.True(t, strings.HasSuffix(out, "fine"), out)
}

// idle_timeout closes a keep-alive connection that sends nothing more;
// read_header_timeout one whose head does not complete.
func TestH1ServerTimeouts(t *testing.T) {
	addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ListenerConfig{IdleTimeout: Duration(200 * time.Millisecond), ReadHeaderTimeout: Duration(300 * time.Millisecond)})
	for _, tc := range []struct{ name, raw string }{
		{"idle", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"slow head", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n"},
		{"silent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out := exchangeAll(t, addr, tc.raw)
			require.Less(t, time.Since(start), 2*time.Second)
			require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
			require.Equal(t, strings.Count(tc.raw, "\r\n\r\n"), strings.Count(out, "HTTP/1.1 200 OK"))
		})
	}
}

// Shutdown closes idle connections at once and lets a running request
// finish, its answer carrying Connection: close.
// The idle deadline stays armed through a request (see beforeWait), so
// it may pass while one runs. The connection must then carry on: the
// next request is read, and idle_timeout still ends the connection once
// the client goes quiet.
func TestH1ServerIdleDeadlinePassingMidRequest(t *testing.T) {
	addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d) // under watchDelay: no client watch clears the deadline
		}
		io.WriteString(w, "ok")
	}), ListenerConfig{IdleTimeout: Duration(150 * time.Millisecond)})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(target string) {
		t.Helper()
		_, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "the connection broke after %s", target)
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, "ok", string(body))
	}
	get("/")                           // the idle deadline is armed as the loop waits for the next
	time.Sleep(110 * time.Millisecond) // ~40 ms of it left
	get("/?sleep=70ms")                // it passes during this request
	get("/")                           // the next read meets the passed deadline first
	time.Sleep(100 * time.Millisecond) // under idle_timeout: still open
	get("/")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "idle_timeout must still close the connection")
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
}

func TestH1ServerShutdownDrains(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{log: testLogger()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := s.newH1Server(&listener{cfg: ListenerConfig{ReadHeaderTimeout: Duration(5 * time.Second), IdleTimeout: Duration(time.Minute), MaxHeaderBytes: 64 << 10}}, newChanListener(ln.Addr()))
	hs.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	hs.start(ln)

	idle, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleRd := bufio.NewReader(idle)
	res, err := http.ReadResponse(idleRd, nil)
	require.NoError(t, err)
	io.ReadAll(res.Body)

	busy, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer busy.Close()
	io.WriteString(busy, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	ln.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- hs.shutdown(ctx)
	}()
	idle.SetReadDeadline(time.Now().Add(time.Second))
	_, err = idleRd.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the idle connection is closed at once")
	select {
	case <-done:
		t.Fatal("shutdown returned with a request in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(3 * time.Second))
	out, _ := io.ReadAll(busy)
	require.Contains(t, string(out), "Connection: close")
	require.True(t, strings.HasSuffix(string(out), "done"))
	require.NoError(t, <-done)
}

// BenchmarkH1ServerProxy measures one keep-alive request through the
// fast loop and the proxy to a raw upstream (a fixed 24-byte answer, no
// net/http on either side, neither side allocating), so that allocs/op is
// the lb's own: 5, 272 B (issue #6; it was 25, then 13, then 6). They
// are the request's value array, the request id, the X-Forwarded-*
// values, and the response's head string and value array; the rest,
// the request head's string included (headString), is reused from one
// request to the next (h1ResponseWriter.recycle).
func BenchmarkH1ServerProxy(b *testing.B) { benchH1ServerProxy(b, nil) }

// BenchmarkH1ServerProxyAccessLog is BenchmarkH1ServerProxy with the
// access log on, as JSON lines to a file (what `vigil lb` writes to its
// standard error): what a request's line costs.
func BenchmarkH1ServerProxyAccessLog(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	require.NoError(b, err)
	defer f.Close()
	benchH1ServerProxy(b, slog.New(slog.NewJSONHandler(f, nil)))
}

// BenchmarkH1ServerProxyAccessLogBuffered is the same with the lines
// batched as `vigil lb` writes them (vlog.Buffered): one write per 32 KiB.
func BenchmarkH1ServerProxyAccessLogBuffered(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	require.NoError(b, err)
	defer f.Close()
	out := vlog.NewBuffered(f, 32<<10, 200*time.Millisecond)
	defer out.Close()
	benchH1ServerProxy(b, slog.New(slog.NewJSONHandler(out, nil)))
}

// benchH1ServerProxy runs BenchmarkH1ServerProxy; a logger turns the
// access log on.
func benchH1ServerProxy(b *testing.B, accessLog *slog.Logger) {
	up := fixedAnswerUpstream(b)
	cfg := oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{})
	cfg.AccessLog = ptr(accessLog != nil)
	log := testLogger()
	if accessLog != nil {
		log = accessLog
	}
	srv, err := New(cfg, log, nil)
	require.NoError(b, err)
	require.NoError(b, srv.Start(context.Background()))
	defer srv.Shutdown(context.Background())
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(b, err)
	defer c.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	rd := bufio.NewReader(c)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Write(req)
		if err := readRawAnswer(rd); err != nil {
			b.Fatal(err)
		}
	}
}

// readRawAnswer reads a 200 answer with a Content-Length without
// allocating (the benchmark counts the lb's allocations only).
func readRawAnswer(rd *bufio.Reader) error {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	n := -1
	for {
		line, err = rd.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n = 0
			for _, d := range bytes.TrimSpace(v) {
				n = n*10 + int(d-'0')
			}
		}
	}
	if n < 0 {
		return errors.New("no Content-Length")
	}
	_, err = rd.Discard(n)
	return err
}

// A request that outlives watchDelay gets a reader on its connection; the
// byte it takes from a pipelined next request goes back into the input,
// and a client that leaves cancels the request's context.
func TestH1ServerClientWatch(t *testing.T) {
	gone := make(chan error, 1)
	addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(2 * watchDelay)
		case "/wait":
			select {
			case <-r.Context().Done():
				gone <- context.Cause(r.Context())
			case <-time.After(5 * time.Second):
				gone <- nil
			}
			return
		}
		io.WriteString(w, r.URL.Path)
	}), ListenerConfig{})

	// The next request arrives while the watch is on.
	pc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer pc.Close()
	io.WriteString(pc, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(watchDelay * 3 / 2)
	io.WriteString(pc, "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	rd := bufio.NewReader(pc)
	for _, want := range []string{"/slow", "/next"} {
		res, err := http.ReadResponse(rd, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, want, string(b))
	}

	// A long request after a short one on the same connection: the watch
	// timer armed for the short one, still pending, arms itself again for
	// the long one.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	io.ReadAll(res.Body)
	time.Sleep(watchDelay / 2)
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(5 * watchDelay / 2)
	c.Close()
	select {
	case err := <-gone:
		require.ErrorIs(t, err, errClientGone)
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running")
	}
}

// The fast loop's writer takes an upstream answer's header map as its
// own (adoptHeader) instead of copying it. On one keep-alive connection,
// every answer must carry exactly its upstream's fields: X-Request-Id the
// upstream's when it sets one, else the request's; nothing left over from
// the answer before.
func TestH1ServerAnswerHeadersPerRequest(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range r.URL.Query()["set"] {
			k, v, _ := strings.Cut(kv, ":")
			w.Header().Set(k, v)
		}
		io.WriteString(w, "ok")
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	c, br := rawConnToLB(t, base)
	get := func(target, reqID string) http.Header {
		t.Helper()
		_, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\n\r\n", target, reqID)
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, "ok", string(body))
		return res.Header
	}
	h := get("/?set=X-One:1&set=X-Request-Id:from-upstream", "req-1")
	require.Equal(t, "1", h.Get("X-One"))
	require.Equal(t, []string{"from-upstream"}, h.Values("X-Request-Id"))
	require.Equal(t, "b", h.Get("X-Backend"))

	h = get("/?set=X-Two:2", "req-2")
	require.Equal(t, "2", h.Get("X-Two"))
	require.Empty(t, h.Values("X-One"), "a field of the previous answer leaked into this one")
	require.Equal(t, []string{"req-2"}, h.Values("X-Request-Id"))

	h = get("/", "req-3")
	require.Empty(t, h.Values("X-Two"))
	require.Equal(t, []string{"req-3"}, h.Values("X-Request-Id"))
}

// An answer whose head the fast loop writes from the header map (here
// because the request has a body) has its fields sorted by
// name, as net/http writes them, so the same answer reads the same every
// time instead of in each map range's own order.
func TestH1ServerWritesFieldsSorted(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"Zeta", "Alpha", "Mu", "X-Two", "Beta", "Omega", "Kappa", "Delta", "Pi"} {
			w.Header().Add(k, k+"-1")
		}
		w.Header().Add("Mu", "Mu-2")
		io.WriteString(w, "ok")
	})
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	c, br := rawConnToLB(t, base)
	for i := range 5 {
		_, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nX-Request-Id: fixed\r\nContent-Length: 2\r\n\r\nhi")
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		status, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1 200 OK\r\n", status)
		var names, lines []string
		for {
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			if line == "\r\n" {
				break
			}
			name, _, _ := strings.Cut(line, ":")
			// What the writer adds comes last, in net/http's order.
			if name != "Date" && name != "Content-Length" && name != "Content-Type" {
				names = append(names, name)
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		body := make([]byte, 2)
		_, err = io.ReadFull(br, body)
		require.NoError(t, err)
		require.True(t, slices.IsSorted(names), "answer %d: fields out of order: %v", i, names)
		require.Equal(t, []string{"Alpha: Alpha-1", "Beta: Beta-1", "Delta: Delta-1", "Kappa: Kappa-1",
			"Mu: Mu-1", "Mu: Mu-2", "Omega: Omega-1", "Pi: Pi-1", "X-Backend: b", "X-Request-Id: fixed",
			"X-Two: X-Two-1", "Zeta: Zeta-1"}, lines, "answer %d", i)
	}
	require.Zero(t, srv.listeners[0].fast.handedOff.Load(), "served by the fast loop")
}

// The fast loop relays an answer's field lines as the upstream wrote them:
// its order and spelling, repeated fields as they came, less the
// hop-by-hop Connection lines, plus the X-Request-Id and Date it lacked;
// an answer with its own keeps them. The map's fields are the same either
// way (proxyAnswer, and FuzzH1ResponseHead, compare the two writers).
func TestH1ServerRelaysAnswerFieldsAsTheyCame(t *testing.T) {
	answers := []string{
		"HTTP/1.1 200 OK\r\nzeta: z\r\nServer: raw\r\nConnection: keep-alive\r\nAlpha: a\r\nset-cookie: a=1\r\n" +
			"X-Mid: m\r\nSet-Cookie: b=2\r\ncontent-length: 2\r\n\r\nok",
		"HTTP/1.1 201 Created\r\nDate: Sat, 05 Dec 2026 01:30:00 GMT\r\nX-Request-Id: upstream-id\r\nContent-Type: text/x\r\n" +
			"Connection: keep-alive\r\nContent-Length: 3\r\nConnection: Keep-Alive\r\n\r\nyes",
		"HTTP/1.1 200 OK\r\nX-Empty: yes\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
	}
	up := rawUpstream(t, func(i int, _ string) string { return answers[i%len(answers)] })
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{}))
	c, br := rawConnToLB(t, base)
	want := []struct {
		head []string
		body string
	}{
		{[]string{"HTTP/1.1 200 OK\r\n", "zeta: z\r\n", "Server: raw\r\n", "Alpha: a\r\n", "set-cookie: a=1\r\n",
			"X-Mid: m\r\n", "Set-Cookie: b=2\r\n", "content-length: 2\r\n", "X-Request-Id: fixed\r\n", "Date: (added)\r\n"}, "ok"},
		{[]string{"HTTP/1.1 201 Created\r\n", "Date: Sat, 05 Dec 2026 01:30:00 GMT\r\n", "X-Request-Id: upstream-id\r\n",
			"Content-Type: text/x\r\n", "Content-Length: 3\r\n"}, "yes"},
		// An empty answer is relayed too.
		{[]string{"HTTP/1.1 200 OK\r\n", "X-Empty: yes\r\n", "Content-Length: 0\r\n", "X-Request-Id: fixed\r\n", "Date: (added)\r\n"}, ""},
	}
	for i := range 2 * len(answers) {
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: fixed\r\n\r\n")
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		w := want[i%len(answers)]
		var head []string
		for {
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			if line == "\r\n" {
				break
			}
			if strings.HasPrefix(line, "Date: ") && w.head[len(w.head)-1] == "Date: (added)\r\n" {
				line = "Date: (added)\r\n"
			}
			head = append(head, line)
		}
		body := make([]byte, len(w.body))
		_, err = io.ReadFull(br, body)
		require.NoError(t, err)
		require.Equal(t, w.head, head, "answer %d", i)
		require.Equal(t, w.body, string(body))
	}
	require.Zero(t, srv.listeners[0].fast.handedOff.Load(), "served by the fast loop")

	for _, a := range answers {
		head := a[:strings.Index(a, "\r\n\r\n")+4]
		relayed, ok := proxyAnswer(t, []byte(head), true, nil)
		require.True(t, ok, "relayed")
		mapped, ok := proxyAnswer(t, []byte(head), false, nil)
		require.False(t, ok)
		require.True(t, sameAnswer(t, relayed, mapped), "relayed %q\nmapped  %q", relayed, mapped)
		// A field set through Header after relayHead is in the answer: the
		// writer writes the map then.
		edited, ok := proxyAnswer(t, []byte(head), true, func(h http.Header) { h.Set("X-Late", "1") })
		require.False(t, ok, "relaying after a Header call")
		require.Contains(t, edited, "\r\nX-Late: 1\r\n")
	}
}

// The upstream transport relays a plain request's field lines as the
// client wrote them (its order and spelling, repeated fields as they
// came), less Host and Content-Length, which it writes itself, plus the
// proxy's X-Forwarded-* and the X-Request-Id the client lacked. A request
// with a field the proxy removes or replaces goes from the header map.
func TestH1ServerRelaysRequestFieldsAsTheyCame(t *testing.T) {
	t.Run("plain route", func(t *testing.T) { testRelaysRequestFields(t, RouteConfig{}) })
	// Their contexts derive from the connection's (connCtxOf).
	t.Run("route and try time-outs", func(t *testing.T) {
		testRelaysRequestFields(t, RouteConfig{Timeout: Duration(time.Minute), TryTimeout: Duration(30 * time.Second)})
	})
}

func testRelaysRequestFields(t *testing.T, route RouteConfig) {
	heads := make(chan string, 8)
	up := rawUpstream(t, func(_ int, head string) string {
		heads <- head
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, route))
	c, br := rawConnToLB(t, base)
	send := func(req string) string {
		t.Helper()
		_, body := exchangeRaw(t, c, br, req)
		require.Equal(t, "ok", body)
		select {
		case h := <-heads:
			return h
		case <-time.After(5 * time.Second):
			t.Fatal("no request upstream")
			return ""
		}
	}
	lb := c.LocalAddr().(*net.TCPAddr).IP.String()
	for range 3 {
		got := send("GET /p?q=1 HTTP/1.1\r\nzeta: z\r\nHost: front\r\naccept: */*\r\nX-Two: 1\r\nContent-Length: 0\r\nx-two: 2\r\nX-Request-Id: fixed\r\n\r\n")
		require.Equal(t, "GET /p?q=1 HTTP/1.1\r\nHost: front\r\nzeta: z\r\naccept: */*\r\nX-Two: 1\r\nx-two: 2\r\nX-Request-Id: fixed\r\n"+
			"X-Forwarded-For: "+lb+"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\n\r\n", got)
	}
	// No X-Request-Id: the proxy's goes last.
	got := send("DELETE /d HTTP/1.1\r\nHost: front\r\nUser-Agent: ua\r\nX-Custom: orig\r\n\r\n")
	id, ok := strings.CutPrefix(got[strings.LastIndex(got[:len(got)-4], "\r\n")+2:], "X-Request-Id: ")
	require.True(t, ok, "X-Request-Id last in %q", got)
	require.Len(t, strings.TrimSpace(id), 32)
	require.Equal(t, "DELETE /d HTTP/1.1\r\nHost: front\r\nUser-Agent: ua\r\nX-Custom: orig\r\n"+
		"X-Forwarded-For: "+lb+"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\nX-Request-Id: "+id, got)
	// A browser's Connection: keep-alive is left out.
	got = send("GET /b HTTP/1.1\r\nHost: front\r\nConnection: keep-alive\r\nAccept: text/html\r\nX-Request-Id: b\r\n\r\n")
	require.Equal(t, "GET /b HTTP/1.1\r\nHost: front\r\nAccept: text/html\r\nX-Request-Id: b\r\n"+
		"X-Forwarded-For: "+lb+"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\n\r\n", got)
	// An HTTP/1.0 client's keep-alive still keeps the connection: its
	// Connection field is the answer's business too.
	res, body := exchangeRaw(t, c, br, "GET /old HTTP/1.0\r\nHost: front\r\nConnection: keep-alive\r\n\r\n")
	require.Equal(t, "keep-alive", res.Header.Get("Connection"))
	require.Equal(t, "ok", body)
	got = <-heads
	require.NotContains(t, got, "Connection")
	// Connection naming a field, and a client's X-Forwarded-For: from the
	// map, without the field and with the address merged.
	got = send("GET / HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Forwarded-For: 192.0.2.9\r\nX-Request-Id: m\r\n\r\n")
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
	require.NoError(t, err)
	require.Empty(t, r.Header.Values("Connection"))
	require.Empty(t, r.Header.Values("X-Secret"))

	require.Equal(t, []string{"192.0.2.9, " + lb}, r.Header.Values("X-Forwarded-For"))
	require.Equal(t, []string{"m"}, r.Header.Values("X-Request-Id"))
	// A client's X-Forwarded-Host is replaced by the request's Host: at
	// the edge it is whatever the client likes, and upstreams build
	// links from it.
	got = send("GET / HTTP/1.1\r\nHost: front\r\nX-Forwarded-Host: evil.example\r\nX-Request-Id: h\r\n\r\n")
	r, err = http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
	require.NoError(t, err)
	require.Equal(t, []string{"front"}, r.Header.Values("X-Forwarded-Host"))
	require.Zero(t, srv.listeners[0].fast.handedOff.Load(), "served by the fast loop")

	for _, h := range []string{
		"GET /p?q=1 HTTP/1.1\r\nzeta: z\r\nHost: front\r\naccept: */*\r\nX-Two: 1\r\nContent-Length: 0\r\nx-two: 2\r\nX-Request-Id: fixed\r\n\r\n",
		"DELETE /d HTTP/1.1\r\nHost: front\r\nUser-Agent: ua\r\nX-Custom: orig\r\n\r\n",
		"GET /b HTTP/1.1\r\nHost: front\r\nConnection: keep-alive\r\nAccept: text/html\r\nX-Request-Id: b\r\n\r\n",
	} {
		relayed, ok := outboundHead(t, []byte(h), true)
		require.True(t, ok, "relayed")
		mapped, ok := outboundHead(t, []byte(h), false)
		require.False(t, ok)
		require.True(t, sameRequest(t, relayed, mapped), "relayed %q\nmapped  %q", relayed, mapped)
	}
}

// An answer whose Connection names fields the proxy adds back (the
// client's X-Request-Id, Content-Type's nil entry) has them removed, as
// hop-by-hop fields: the relay, which would still write the upstream's
// lines for them, must not take it (found by review).
func TestH1ServerAnswerConnectionNamingFieldsIsNotRelayed(t *testing.T) {
	up := rawUpstream(t, func(int, string) string {
		return "HTTP/1.1 200 OK\r\nConnection: X-Request-Id, Content-Type\r\nX-Request-Id: upstream-secret\r\n" +
			"Content-Type: text/hop\r\nContent-Length: 2\r\n\r\nok"
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{}))
	c, br := rawConnToLB(t, base)
	for range 2 {
		res, body := exchangeRaw(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-id\r\n\r\n")
		require.Equal(t, "ok", body)
		require.Equal(t, []string{"client-id"}, res.Header.Values("X-Request-Id"))
		require.Empty(t, res.Header.Values("Content-Type"))
		require.Empty(t, res.Header.Values("Connection"))
	}
}

// rawUpstream serves keep-alive connections that answer each request head
// with answer(n, head), n counting the requests of all connections, byte
// for byte. It returns its address.
func rawUpstream(t *testing.T, answer func(n int, head string) string) string {
	t.Helper()
	var n atomic.Int64
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			if _, err := io.WriteString(c, answer(int(n.Add(1)-1), head.String())); err != nil {
				return
			}
		}
	})
}

// exchangeRaw writes req on the raw connection c and reads the answer
// from br, with its body.
func exchangeRaw(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	_, err := io.WriteString(c, req)
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

// rawConnToLB opens a raw keep-alive connection to the lb at base (closed at
// the test's end), with a reader for its answers.
func rawConnToLB(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// The fast loop reuses a request's storage (its request, header maps, the
// proxy's exchange, the upstream answer's) for the connection's next
// request once nothing can hold it (h1ResponseWriter.recycle). Mixed
// requests on several keep-alive connections at once (plain GETs, HEADs,
// bodies through the fallback transport, empty answers, retried 503s)
// must each reach the upstream and come back with their own fields only;
// run under -race, this also shows that nothing still uses a recycled
// part.
func TestH1ServerRecycledStorageKeepsRequestsApart(t *testing.T) {
	var failedOnce sync.Map
	handler := func(w http.ResponseWriter, r *http.Request) {
		seq := r.Header.Get("X-Seq")
		if r.URL.Query().Get("fail") != "" {
			if _, done := failedOnce.LoadOrStore(seq, true); !done {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		var seen []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Req-") {
				seen = append(seen, k)
			}
		}
		slices.Sort(seen)
		w.Header().Set("X-Ans-"+seq, seq)
		w.Header().Set("X-Seen", strings.Join(seen, ","))
		if r.URL.Query().Get("empty") != "" {
			w.Header().Set("Content-Length", "0")
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", seq, body)
	}
	// Two upstreams: a retry goes to the one not tried yet.
	b1, b2 := newBackend(t, "b1", handler), newBackend(t, "b2", handler)
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b1, b2)}, RouteConfig{Retries: ptr(1)}))
	var wg sync.WaitGroup
	for conn := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, br := rawConnToLB(t, base)
			for i := range 40 {
				seq := strconv.Itoa(conn*1000 + i)
				method, target, body, want := "GET", "/", "", seq+":"
				switch i % 5 {
				case 1:
					method, body, want = "POST", "body-"+seq, seq+":body-"+seq
				case 2:
					method, want = "HEAD", ""
				case 3:
					target, want = "/?empty=1", ""
				case 4:
					target = "/?fail=1"
				}
				head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nX-Seq: %s\r\nX-Req-%s: 1\r\n", method, target, seq, seq)
				if i%3 == 0 {
					head += "X-Request-Id: id-" + seq + "\r\n"
				}
				if body != "" {
					head += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
				}
				if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
					t.Error(err)
					return
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				res, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(res.Body)
				if res.StatusCode != http.StatusOK || string(got) != want {
					t.Errorf("request %s: %d %q, want 200 %q", seq, res.StatusCode, got, want)
				}
				for k := range res.Header {
					if strings.HasPrefix(k, "X-Ans-") && k != "X-Ans-"+seq {
						t.Errorf("request %s: answer has %s, another request's", seq, k)
					}
				}
				if res.Header.Get("X-Ans-"+seq) != seq {
					t.Errorf("request %s: answer lacks its own X-Ans-%s: %v", seq, seq, res.Header)
				}
				if s := res.Header.Get("X-Seen"); s != "X-Req-"+seq {
					t.Errorf("request %s: upstream saw %q", seq, s)
				}
				ids := res.Header.Values("X-Request-Id")
				if len(ids) != 1 || i%3 == 0 && ids[0] != "id-"+seq || i%3 != 0 && strings.HasPrefix(ids[0], "id-") {
					t.Errorf("request %s: X-Request-Id %v", seq, ids)
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkH1WriteAnswer: the fast loop's writer framing a proxied
// nginx answer (its header adopted, as respond does) to a discarding
// connection writer.
func BenchmarkH1WriteAnswer(b *testing.B) {
	c := &h1ServerConn{hs: &h1Server{}, bw: bufio.NewWriter(io.Discard)}
	c.rw.c, c.rw.header, c.rw.pendingBuf = c, http.Header{}, new([h1PendingSize]byte)
	req := &http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
	answer := http.Header{}
	body := []byte("hello from the origin\n")
	id := []string{"0123456789abcdef0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		w := &c.rw
		w.reset(req, nil)
		w.Header()["X-Request-Id"] = id
		clear(answer)
		answer["Server"] = []string{"nginx/1.22.1"}
		answer["Date"] = []string{"Sat, 05 Dec 2026 01:30:00 GMT"}
		answer["Content-Type"] = []string{"text/plain"}
		answer["Content-Length"] = []string{"22"}
		if !w.adoptHeader(answer) {
			b.Fatal("not adopted")
		}
		answer = w.released
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		w.finish()
	}
}

// A keep-alive connection waiting for its next request holds no read
// buffer, no answer writer and no body buffer (releaseIdle), and what it
// keeps for its next request refers to nothing else (recycle): they go back to their pools
// and come again with the next request, which is served as usual.
func TestH1ServerIdleConnectionHoldsNoBuffers(t *testing.T) {
	if raceEnabled {
		// The test reads the connection's fields once it reports idle, then
		// sends the next request, after which the connection takes a buffer
		// again. What orders the two is the request crossing the socket,
		// which the race detector cannot see.
		t.Skip("the detector cannot see the socket ordering this test relies on")
	}
	b := newBackend(t, "b", nil)
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	hs := srv.listeners[0].fast
	c, br := rawConnToLB(t, base)
	idleConn := func() *h1ServerConn {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			hs.mu.Lock()
			var sc *h1ServerConn
			for x := range hs.conns {
				sc = x
			}
			hs.mu.Unlock()
			if sc != nil && sc.state.Load() == connIdle {
				return sc
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the connection never went idle")
		return nil
	}
	ask := func(reqs string, n int) {
		t.Helper()
		_, err := io.WriteString(c, reqs)
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range n {
			res, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			require.Equal(t, "b", string(body))
		}
	}
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for round, reqs := range []string{get, get + get, get} {
		ask(reqs, strings.Count(reqs, "GET"))
		sc := idleConn()
		require.Nil(t, sc.bufp, "round %d: an idle connection keeps its read buffer", round)
		require.Nil(t, sc.bw, "round %d: an idle connection keeps its answer writer", round)
		require.Nil(t, sc.rw.pendingBuf, "round %d: an idle connection keeps its body buffer", round)
		// The storage kept for the next request pins nothing else: not the
		// upstream connection the answer came on, nor the route.
		require.NotNil(t, sc.ctx.answer, "round %d: the answer's storage was not kept", round)
		require.Equal(t, &h1Response{hdr: sc.ctx.answer.hdr}, sc.ctx.answer, "round %d", round)
		require.Empty(t, sc.ctx.answer.hdr, "round %d", round)
		require.NotNil(t, sc.px, "round %d: the exchange was not kept", round)
		require.Nil(t, sc.px.ex.route, "round %d", round)
		require.Nil(t, sc.px.res, "round %d", round)
	}
	require.Zero(t, hs.handedOff.Load(), "served by the fast loop")
}

// A handler that panics (http.ErrAbortHandler: the upstream broke off
// mid-answer) while something else still reads its request body, as the
// fallback transport's writer does: the body is closed with the request,
// so that reader gets an error instead of reading the connection's buffer
// after it went back to the pool (a panic, or another connection's bytes).
func TestH1ServerPanicClosesRequestBody(t *testing.T) {
	readLater := make(chan io.Reader, 1)
	got := make(chan error, 1)
	addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		readLater <- r.Body
		panic(http.ErrAbortHandler)
	}), ListenerConfig{})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	// Half the body comes with the head, so it sits in the read buffer.
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("a", 50))
	body := <-readLater
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c) // the connection closes after the panic
	require.NoError(t, err)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				got <- fmt.Errorf("reading the body panicked: %v", p)
			}
		}()
		_, err := body.Read(make([]byte, 100))
		got <- err
	}()
	require.ErrorIs(t, <-got, http.ErrBodyReadAfterClose)
}

// An upstream answer's hop-by-hop fields never reach the client, whether
// the head has none, only "Connection: keep-alive", or others (stripHop
// takes a shortcut for the first two); the other fields always do.
func TestH1ServerAnswerHopFields(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Plain: 1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Plain: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-Plain: 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive, X-Secret\r\nX-Secret: s\r\nX-Plain: 4\r\n\r\nok",
	}
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for _, a := range answers {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, a)
		}
	}()
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up.Addr().String()}}, RouteConfig{}))
	c, br := rawConnToLB(t, base)
	for i := range answers {
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		io.ReadAll(res.Body)
		require.Equal(t, strconv.Itoa(i+1), res.Header.Get("X-Plain"), "answer %d", i)
		for _, k := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
			require.Empty(t, res.Header.Values(k), "answer %d: %s reached the client", i, k)
		}
	}
}

// Write reports every byte it took: with some bytes already held for the
// head's sniffing, a write that crosses h1PendingSize sends part of
// itself with the head, and that part counts too (it did not: the access
// log's byte count fell short, and io.Copy would stop, ErrShortWrite).
func TestH1ResponseWriterCountsBytesSentWithHead(t *testing.T) {
	var out bytes.Buffer
	c := &h1ServerConn{hs: &h1Server{}, bw: bufio.NewWriter(&out)}
	c.rw.c, c.rw.header, c.rw.pendingBuf = c, http.Header{}, new([h1PendingSize]byte)
	w := &c.rw
	w.reset(&http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}, nil)
	first, second := bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte("b"), 3000)
	w.Header().Set("Content-Length", "4000") // no chunked framing in out
	n, err := w.Write(first)
	require.NoError(t, err)
	require.Equal(t, len(first), n)
	n, err = w.Write(second)
	require.NoError(t, err)
	require.Equal(t, len(second), n, "bytes reported for the write that crossed the sniffing buffer")
	w.finish()
	require.NoError(t, c.bw.Flush())
	require.True(t, bytes.HasSuffix(out.Bytes(), append(first, second...)), "the body went out whole:\n%q", out.Bytes())
}

// A client that half-closes its end after its request (nc -N) is taken
// for gone while the upstream thinks: its connection is closed without an
// answer (nginx's 499), not answered with an empty 200 as if the
// upstream had sent that.
func TestClientGoneIsNotAnsweredEmpty(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
		io.WriteString(w, "late")
	})
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	nc, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, nc.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(nc)
	require.NoError(t, err)
	require.False(t, strings.HasPrefix(string(got), "HTTP/1.1 200"), "answered: %q", got)
}

// A client's X-Forwarded-Host is replaced by the request's Host on the
// requests net/http serves too (here a chunked one, which the fast loop
// hands over, and its map path in forwardHeader).
func TestClientXForwardedHostIsReplaced(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, strings.Join(r.Header.Values("X-Forwarded-Host"), ","))
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	for _, req := range []string{
		"POST /x HTTP/1.1\r\nHost: front\r\nX-Forwarded-Host: evil.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: front\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Host: worse.example\r\nConnection: close\r\n\r\n",
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		require.NoError(t, err)
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		got, _ := io.ReadAll(res.Body)
		c.Close()
		require.Equal(t, "front", string(got), req)
	}
}
