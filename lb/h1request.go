package lb

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequestHead writes a request's head the way http.Request.Write
// does, without its per-request transfer writer, header sorting and
// formatting allocations (header order carries no meaning; the values of
// one field keep their order). A body must have a known length, sent as
// Content-Length; the caller writes the body itself. ok is false when
// the request has anything unusual (a non-ASCII or invalid host, control
// bytes in the target, a length without a body or a body without one,
// Close): the caller then
// uses http.Request.Write, which handles or rejects those cases. A
// request of the fast loop whose header is the client's plus the proxy's
// own fields has the client's field lines relayed as they came
// (requestHead) instead of the map written out again.
func writeRequestHead(bw *bufio.Writer, req *http.Request) (ok bool, err error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if req.ContentLength < 0 || (req.ContentLength > 0) != requestHasBody(req) || req.Close || req.URL.Opaque != "" || !plainASCII(host) || !httpguts.ValidHostHeader(host) || strings.IndexByte(host, '%') >= 0 {
		return false, nil
	}
	ruri := req.URL.RequestURI()
	if !plainASCII(ruri) {
		return false, nil
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	// Many servers expect a length on these methods even when empty (as
	// net/http sends it).
	sendsLength := method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
	if x := connCtxOf(req.Context()); x != nil && x.reqHead != nil {
		if added, ok := x.reqHead.relays(req.Header); ok {
			writeContentLength(bw, req.ContentLength, sendsLength)
			x.reqHead.writeFields(bw, &added)
			_, err = bw.WriteString("\r\n")
			return true, err
		}
	}
	userAgent := "Go-http-client/1.1"
	if vv, has := req.Header["User-Agent"]; has {
		userAgent = ""
		if len(vv) > 0 {
			userAgent = vv[0]
		}
	}
	if userAgent != "" {
		writeHeaderField(bw, "User-Agent", userAgent)
	}
	writeContentLength(bw, req.ContentLength, sendsLength)
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue // as net/http does: drop, never forward, a bad name
		}
		for _, v := range vv {
			writeHeaderField(bw, k, v)
		}
	}
	_, err = bw.WriteString("\r\n")
	return true, err
}

// writeContentLength writes the Content-Length field of a body of n
// bytes; without a body (n 0) only where the method expects one.
func writeContentLength(bw *bufio.Writer, n int64, sendsLength bool) {
	if n == 0 && !sendsLength {
		return
	}
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), n, 10))
	bw.WriteString("\r\n")
}

// relays reports whether h, a request's outbound header, holds just the
// fields of the client's head (rh, relayable) and what the proxy makes of
// them: X-Request-Id added where the client sent none (ServeHTTP),
// forwardHeader's X-Forwarded-For, -Proto and -Host (the client sent
// none: parseH1Head), and the empty User-Agent that keeps one from being added;
// Connection removed (outboundHeader). A request the proxy changes
// otherwise is not relayable (parseH1Head). It returns the values of the
// fields the proxy added, which it had to look up anyway, for writeFields.
func (rh *requestHead) relays(h http.Header) (added proxyFields, ok bool) {
	want := rh.keys + 3 // X-Forwarded-For, -Proto, -Host
	if rh.hasConn {
		want--
	}
	if !rh.hasUA {
		want++
	}
	if !rh.hasReqID {
		want++
	}
	if len(h) != want || h["Connection"] != nil {
		return added, false
	}
	xff, xfp := h["X-Forwarded-For"], h["X-Forwarded-Proto"]
	if len(xff) != 1 || len(xfp) != 1 {
		return added, false
	}
	added.xff, added.xfp = xff[0], xfp[0]
	xfh := h["X-Forwarded-Host"]
	if len(xfh) != 1 {
		return added, false
	}
	added.xfh = xfh[0]
	if !rh.hasReqID {
		id := h["X-Request-Id"]
		if len(id) != 1 {
			return added, false
		}
		added.reqID = id[0]
	}
	return added, true
}

// proxyFields are the values of the fields the proxy adds to a relayed
// request head (relays): X-Request-Id only where the client sent none.
type proxyFields struct{ xff, xfp, xfh, reqID string }

// writeFields writes the client's field lines as they came, less those
// left out (Host and Content-Length, which writeRequestHead writes
// itself, and Connection), then the proxy's (relays).
func (rh *requestHead) writeFields(bw *bufio.Writer, added *proxyFields) {
	rh.lines.writeTo(bw)
	writeHeaderField(bw, "X-Forwarded-For", added.xff)
	writeHeaderField(bw, "X-Forwarded-Proto", added.xfp)
	writeHeaderField(bw, "X-Forwarded-Host", added.xfh)
	if !rh.hasReqID {
		writeHeaderField(bw, "X-Request-Id", added.reqID)
	}
}

// writeHeaderField writes "k: v\r\n" with v sanitised as net/http does:
// line breaks become spaces (no header injection), outer space trimmed.
func writeHeaderField(bw *bufio.Writer, k, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			break
		}
	}
	v = trimOWS(v)
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// plainASCII reports whether s has only printable ASCII (no controls,
// no spaces, nothing that would need escaping or punycode).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
