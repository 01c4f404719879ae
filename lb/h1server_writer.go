package lb

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1ResponseWriter is the fast loop's http.ResponseWriter. It frames the
// answer exactly as net/http's server does (chunkWriter.writeHeader):
// the same automatic Content-Length, Content-Type sniffing, Date,
// chunking, HTTP/1.0 keep-alive and Connection: close decisions, the
// same body-draining rule, trailers. It writes a header map's fields
// sorted by name, as net/http does, but relays a proxied answer's field
// lines as the upstream wrote them when nothing changed them beyond what
// the proxy itself does (relayHead), and reuses its header map from one
// request to the next.
type h1ResponseWriter struct {
	c    *h1ServerConn
	req  *http.Request
	body *h1ReqBody

	header       http.Header
	released     http.Header // the map adoptHeader replaced, free for reuse
	snap         http.Header // the header as of WriteHeader, when it may change later
	calledHeader bool        // Header was called before WriteHeader
	hasTrailers  bool        // the header announced trailers at WriteHeader
	wroteHeader  bool        // WriteHeader was called (logically)
	headerSent   bool        // the head is in the connection's writer
	handlerDone  bool
	status       int
	clen         int64 // -1: unknown
	written      int64
	chunking     bool
	closeAfter   bool
	werr         error
	pending      []byte // body written before the head was sent
	trailers     []string
	pendingBuf   *[h1PendingSize]byte // from h1PendingPool while the connection is not idle
	// relay: the upstream head whose field lines the head relays as they
	// came (relayHead), while relaying.
	relay    answerHead
	relaying bool
}

var h1PendingPool = sync.Pool{New: func() any { return new([h1PendingSize]byte) }}

// h1PendingSize is how much body is held back before the head is sent,
// so that a short answer gets a Content-Length (net/http's
// bufferBeforeChunkingSize).
const h1PendingSize = 2048

func (w *h1ResponseWriter) reset(req *http.Request, body *h1ReqBody) {
	clear(w.header)
	// Field by field: a struct literal would also drop pendingBuf.
	w.req, w.body, w.snap, w.released = req, body, nil, nil
	w.calledHeader, w.hasTrailers, w.wroteHeader, w.headerSent, w.handlerDone = false, false, false, false, false
	w.status, w.clen, w.written = 0, -1, 0
	w.chunking, w.closeAfter, w.werr = false, false, nil
	w.pending, w.trailers = w.pendingBuf[:0], w.trailers[:0]
	w.relaying, w.relay.lines.s = false, ""
}

// Header implements http.ResponseWriter.
func (w *h1ResponseWriter) Header() http.Header {
	if !w.wroteHeader {
		w.calledHeader = true
	}
	w.relaying = false // whoever asked may change it
	return w.header
}

// relayHead makes the answer's head relay the upstream's field lines as
// they came (ah) rather than write the header map out again, when the
// map holds just those fields and what respond made of them: X-Request-Id
// added (adoptHeader), Content-Type's nil entry added, Connection removed
// (stripHop). Call it once the header is final, before WriteHeader; a
// later Header call, which nothing in the proxy makes, or a head that
// needs fields of its own (Connection: close, a draining server, an
// HTTP/1.0 client) writes the map instead.
func (w *h1ResponseWriter) relayHead(ah *answerHead) {
	want := ah.keys
	if ah.hasConn {
		want--
	}
	if !ah.hasReqID {
		want++
	}
	if !ah.hasType {
		want++
	}
	h := w.header
	if w.wroteHeader || len(h) != want || h["Connection"] != nil ||
		(!ah.hasReqID && len(h["X-Request-Id"]) != 1) || (!ah.hasType && h["Content-Type"] != nil) {
		return
	}
	w.relay, w.relaying = *ah, true
}

// adoptHeader makes h (an upstream response's header, which the caller
// hands over) the answer's header, instead of copying it field by field,
// when nothing but X-Request-Id is set yet; that one is kept unless h has
// its own, as a copy would. It reports false, taking nothing, otherwise.
func (w *h1ResponseWriter) adoptHeader(h http.Header) bool {
	if w.wroteHeader || len(w.header) > 1 || h == nil {
		return false
	}
	for k, vv := range w.header {
		if k != "X-Request-Id" {
			return false
		}
		if _, ok := h[k]; !ok {
			h[k] = vv
		}
	}
	w.released = w.header
	w.header, w.calledHeader = h, true
	return true
}

// WriteHeader implements http.ResponseWriter.
func (w *h1ResponseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.relaying {
		// relayHead saw the fields: no trailers, and this length.
		w.clen = w.relay.clen
		return
	}
	if w.calledHeader {
		// net/http takes the head from a copy of the header made now and
		// looks for trailers only in that copy. Keys set later are the
		// trailers' (skipped in the head below), except declared ones,
		// which need the copy.
		for k, vv := range w.header {
			if k == "Trailer" {
				w.hasTrailers = true
				w.snap = w.header.Clone()
				for _, v := range vv {
					for _, f := range strings.Split(v, ",") {
						if f = http.CanonicalHeaderKey(textTrim(f)); f != "" && httpguts.ValidTrailerHeader(f) {
							w.trailers = append(w.trailers, f)
						}
					}
				}
			} else if strings.HasPrefix(k, http.TrailerPrefix) {
				w.hasTrailers = true
			}
		}
	}
	if cl := headerGet(w.header, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.clen = v
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

func (w *h1ResponseWriter) writeInterim(code int) {
	bw := w.c.bw
	writeStatusLine(bw, w.req.ProtoMinor, code)
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			writeHeaderField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	bw.Flush()
}

// Write implements http.ResponseWriter.
func (w *h1ResponseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.clen != -1 && w.written > w.clen {
		return 0, http.ErrContentLength
	}
	taken := 0 // bytes of p that went out with the head
	if !w.headerSent {
		if len(w.pending)+len(p) <= h1PendingSize {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		// The head goes out with the first h1PendingSize bytes in view
		// (for sniffing), as net/http's buffered writer has them.
		if len(w.pending) == 0 {
			w.writeHead(p)
			w.headerSent = true
		} else {
			taken = h1PendingSize - len(w.pending)
			w.pending = append(w.pending, p[:taken]...)
			p = p[taken:]
			w.sendHead()
		}
	}
	n, err := w.writeBody(p)
	return taken + n, err
}

// Flush implements http.Flusher.
func (w *h1ResponseWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *h1ResponseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHead()
	}
	if err := w.c.bw.Flush(); err != nil {
		w.werr = err
		return err
	}
	return w.werr
}

// sendHead writes the head and whatever body was held back.
func (w *h1ResponseWriter) sendHead() {
	w.writeHead(w.pending)
	w.headerSent = true
	if len(w.pending) > 0 {
		w.writeBody(w.pending)
	}
	w.pending = w.pendingBuf[:0]
}

func (w *h1ResponseWriter) writeBody(p []byte) (int, error) {
	if w.werr != nil {
		return 0, w.werr
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	bw := w.c.bw
	if w.chunking {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.werr = err
	}
	return n, err
}

// finish completes the answer after the handler and reports whether the
// connection may carry another request.
func (w *h1ResponseWriter) finish() bool {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHead()
	} else if req := w.req; req.ContentLength != 0 && !w.closeAfter && w.body != nil {
		// The head went out before the handler was done (writeHead):
		// the body it left unread is read now, or the connection closes
		// after this answer (h1ReqBody.finish).
		w.body.discardRest(256<<10, false)
	}
	if w.chunking && w.werr == nil {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeHeaderField(bw, kk, v)
				}
			}
		}
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				writeHeaderField(bw, k, v)
			}
		}
		if _, err := bw.WriteString("\r\n"); err != nil {
			w.werr = err
		}
	}
	if w.closeAfter || w.werr != nil {
		return false
	}
	if w.req.Method != http.MethodHead && w.clen != -1 && bodyAllowedForStatus(w.status) && w.clen != w.written {
		return false // did not write what it announced: out of sync
	}
	return true
}

// writeHead is net/http's chunkWriter.writeHeader for this writer; p is
// the body written so far (all of it when the handler is done).
func (w *h1ResponseWriter) writeHead(p []byte) {
	h := w.header
	if w.snap != nil {
		h = w.snap
	}
	req := w.req
	keepAlives := !w.c.hs.draining.Load()
	// An HTTP/1.1 request's Connection matters below only when it says
	// close, which req.Close has.
	if w.relaying && keepAlives && w.body == nil && req.ProtoMinor == 1 && !req.Close {
		w.writeRelayedHead()
		return
	}
	isHEAD := req.Method == http.MethodHead
	var exclCL, exclTE, exclConn, exclCT bool
	var setCL, setConn, setTE, setCT string

	// One pass over the header finds what the framing below looks at and
	// gathers the fields to write: the same as a lookup per key, at a
	// fraction of the map work.
	var fieldsBuf [16]headerField
	fields := fieldsBuf[:0]
	var te, connHeader, contentEncoding string
	var connValues []string
	var hasCLHeader, haveConn, haveType, haveDate bool
	for k, vv := range h {
		switch k {
		case "Transfer-Encoding":
			te = firstValue(vv)
		case "Content-Length":
			hasCLHeader = true
		case "Connection":
			haveConn, connValues, connHeader = true, vv, firstValue(vv)
		case "Content-Type":
			haveType = true
		case "Content-Encoding":
			contentEncoding = firstValue(vv)
		case "Date":
			haveDate = true
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		fields = append(fields, headerField{k, vv})
	}

	trailers := w.hasTrailers
	hasTE := te != ""
	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !hasCLHeader && (!isHEAD || len(p) > 0) {
		w.clen = int64(len(p))
		setCL = strconv.Itoa(len(p))
	}
	conn := req.Header["Connection"]
	wants10KeepAlive := req.ProtoMinor == 0 && conn != nil && httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	wantsClose := req.Close || conn != nil && httpguts.HeaderValuesContainsToken(conn, "close")
	if wants10KeepAlive && keepAlives {
		if headerGet(h, "Content-Length") != "" && connHeader == "keep-alive" {
			w.closeAfter = false
		}
	}
	hasCL := w.clen != -1
	if wants10KeepAlive && (isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if !haveConn {
			setConn = "keep-alive"
		}
	} else if req.ProtoMinor == 0 || wantsClose {
		w.closeAfter = true
	}
	if connHeader == "close" || !keepAlives {
		w.closeAfter = true
	}

	// A request body the handler left unread: read a little of it so
	// the connection can carry on, or give up on the connection. A head
	// sent by a flush before the handler is done may be an upstream's
	// early answer while it still takes the upload (full duplex): the
	// body is still being relayed, and only checked here; finish reads
	// what is left of it.
	if req.ContentLength != 0 && !w.closeAfter && w.body != nil {
		if !w.body.discardRest(256<<10, !w.handlerDone) {
			w.closeAfter = true
			exclConn, setConn = true, "close"
		}
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		if contentEncoding == "" && !haveType && !hasTE && len(p) > 0 {
			setCT = http.DetectContentType(p)
		}
	} else {
		exclCL, exclTE = true, true
		if code == http.StatusNotModified {
			exclCT = true
		}
	}
	date := ""
	if !haveDate {
		date = httpDate()
	}
	if hasCL && hasTE && te != "identity" {
		exclCL, hasCL = true, false
	}
	if isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent {
		exclTE = true
	} else if hasCL {
		exclTE = true
	} else if req.ProtoMinor == 1 {
		if hasTE && te == "identity" {
			w.chunking, w.closeAfter, exclTE = false, true, true
		} else {
			w.chunking, setTE = true, "chunked"
			if hasTE && te == "chunked" {
				exclTE = true
			}
		}
	} else {
		w.closeAfter, exclTE = true, true
	}
	if w.chunking {
		exclCL, setCL = true, ""
	}
	if w.closeAfter && (!keepAlives || !httpguts.HeaderValuesContainsToken(connValues, "close")) && code != http.StatusSwitchingProtocols {
		exclConn, setConn = true, ""
		if req.ProtoMinor == 1 {
			setConn = "close"
		}
	}

	bw := w.c.bw
	writeStatusLine(bw, req.ProtoMinor, code)
	// Sorted by name, as net/http writes them: the same answer then reads
	// the same every time (a map's order changes from one range to the
	// next), whichever of the two paths served it.
	slices.SortFunc(fields, func(a, b headerField) int { return strings.Compare(a.name, b.name) })
	for _, f := range fields {
		switch {
		case exclCL && f.name == "Content-Length", exclTE && f.name == "Transfer-Encoding",
			exclConn && f.name == "Connection", exclCT && f.name == "Content-Type":
			continue
		}
		for _, v := range f.values {
			writeHeaderField(bw, f.name, v)
		}
	}
	// In net/http's order for what the server adds.
	if setCT != "" {
		writeHeaderField(bw, "Content-Type", setCT)
	}
	if setConn != "" {
		writeHeaderField(bw, "Connection", setConn)
	}
	if setTE != "" {
		writeHeaderField(bw, "Transfer-Encoding", setTE)
	}
	if date != "" {
		writeHeaderField(bw, "Date", date)
	}
	if setCL != "" {
		writeHeaderField(bw, "Content-Length", setCL)
	}
	bw.WriteString("\r\n")
}

// writeRelayedHead writes the head of an answer that relays the
// upstream's field lines (relayHead), for a keep-alive HTTP/1.1 request
// without a body, whose head writeHead would write with just the map's
// fields: the same fields, in the upstream's order and spelling, less its
// Connection lines, plus the X-Request-Id and Date it lacked.
func (w *h1ResponseWriter) writeRelayedHead() {
	bw := w.c.bw
	ah := &w.relay
	writeStatusLine(bw, 1, w.status)
	ah.lines.writeTo(bw)
	if !ah.hasReqID {
		writeHeaderField(bw, "X-Request-Id", w.header["X-Request-Id"][0])
	}
	if !ah.hasDate {
		writeHeaderField(bw, "Date", httpDate())
	}
	bw.WriteString("\r\n")
	ah.lines.s = "" // written: nothing more to keep
}

// headerField is a header name with its values, for writing in order.
type headerField struct {
	name   string
	values []string
}

func writeStatusLine(bw interface {
	WriteString(string) (int, error)
	Write([]byte) (int, error)
}, minor, code int) {
	if minor == 1 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	if code == http.StatusOK {
		bw.WriteString("200 OK\r\n")
		return
	}
	var b [3]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteString(" ")
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code " + strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

// firstValue is a field's first value, or "" (what Header.Get returns).
func firstValue(vv []string) string {
	if len(vv) > 0 {
		return vv[0]
	}
	return ""
}

func headerGet(h http.Header, k string) string { return firstValue(h[k]) }

func textTrim(s string) string { return strings.Trim(s, " \t") }

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

// httpDate is the Date header value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateValue{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateValue struct {
	sec int64
	s   string
}

var cachedDate atomic.Pointer[dateValue]

var (
	_ http.ResponseWriter = (*h1ResponseWriter)(nil)
	_ http.Flusher        = (*h1ResponseWriter)(nil)
)
