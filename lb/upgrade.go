package lb

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// relayUpgrade completes a protocol switch (WebSocket): it hands the
// upstream's 101 to the client over the hijacked connection and then
// copies bytes both ways until either side closes.
func (s *Server) relayUpgrade(w http.ResponseWriter, r *http.Request, res *http.Response, ex *exchange, upgrade string) {
	backConn, ok := res.Body.(io.ReadWriteCloser)
	if !ok || !asciiEqualFold(res.Header.Get("Upgrade"), upgrade) {
		res.Body.Close()
		ex.status = writeError(w, r, http.StatusBadGateway, 14, "upstream switched to an unexpected protocol")
		return
	}
	defer backConn.Close()
	// Counted for the drain before the hijack: from Hijack on, net/http's
	// Shutdown no longer waits for the connection, and the drain's wait
	// for upgraded ones could otherwise run in between and miss it.
	t := &s.hijacked
	t.wg.Add(1)
	defer t.wg.Done()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		ex.status = writeError(w, r, http.StatusInternalServerError, 13, "cannot take over connection for upgrade")
		return
	}
	defer conn.Close()
	defer t.track(conn, backConn)()

	removeHopHeaders(res.Header, upgrade)
	res.Body = nil // res.Write must not copy the (now bidirectional) body
	if err := res.Write(brw); err != nil {
		ex.err = err
		return
	}
	if err := brw.Flush(); err != nil {
		ex.err = err
		return
	}
	// A tunnel is no request in flight: open WebSockets, which may last
	// for hours, must not fill the pool's max_pending and refuse the
	// requests of its other routes.
	ex.releasePending()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// brw.Reader may hold bytes the client sent right after its request.
		if _, err := io.Copy(backConn, brw.Reader); err != nil {
			// Broken, or the client silent past upgradeLinger after the
			// upstream's end: both ends go.
			conn.Close()
			backConn.Close()
			return
		}
		closeWrite(backConn)
	}()
	go func() {
		defer wg.Done()
		// A client that stops reading is let go after send_timeout, as on
		// any answer (sendtimeout.go): the copy's write fails, and the
		// upgraded connections close.
		var out io.Writer = conn
		if l, _ := r.Context().Value(listenerKey{}).(*listener); l != nil {
			out = newDeadlineWriter(conn, time.Duration(l.cfg.SendTimeout))
		}
		n, err := io.Copy(out, backConn)
		ex.bytes = n
		if err != nil {
			// Broken either way: end the other direction's copy too, which
			// may wait on a client that sends nothing more.
			conn.Close()
			backConn.Close()
			return
		}
		closeWrite(conn)
		// The upstream is done: the client has upgradeLinger to finish
		// (a WebSocket's closing handshake), not for ever.
		_ = conn.SetReadDeadline(time.Now().Add(upgradeLinger))
	}()
	wg.Wait()
}

// upgradeLinger is how long a tunnel whose upstream has ended waits for
// the client's end (nginx's lingering_timeout).
const upgradeLinger = 5 * time.Second

// closeWrite half-closes where possible so the peer sees EOF while the
// other direction drains; otherwise it closes.
func closeWrite(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i]|0x20, b[i]|0x20
		if ca != cb {
			return false
		}
	}
	return true
}

// hijackTracker knows the upgraded connections, which http.Server.Shutdown
// does not track, so that a drain can wait for them and a forced stop can
// close them.
type hijackTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]io.Closer
	wg    sync.WaitGroup
}

// track lets a forced stop close client and back (closeAll) until the
// returned func runs; the caller counted the connection in wg already.
func (t *hijackTracker) track(client net.Conn, back io.Closer) func() {
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[net.Conn]io.Closer{}
	}
	t.conns[client] = back
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.conns, client)
		t.mu.Unlock()
	}
}

func (t *hijackTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, back := range t.conns {
		c.Close()
		back.Close()
	}
}
