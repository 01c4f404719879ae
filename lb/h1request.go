package lb

import (
	"bufio"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequestHead writes a bodyless request's head the way
// http.Request.Write does, without its per-request transfer writer,
// header sorting and formatting allocations (header order carries no
// meaning; the values of one field keep their order). ok is false when
// the request has anything unusual (a non-ASCII or invalid host, control
// bytes in the target, a length without a body, Close): the caller then
// uses http.Request.Write, which handles or rejects those cases. A
// request of the fast loop whose header is the client's plus the proxy's
// own fields has the client's field lines relayed as they came
// (requestHead) instead of the map written out again.
func writeRequestHead(bw *bufio.Writer, req *http.Request) (ok bool, err error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if req.ContentLength != 0 || req.Close || req.URL.Opaque != "" || !plainASCII(host) || !httpguts.ValidHostHeader(host) || strings.IndexByte(host, '%') >= 0 {
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
	if x := connCtxOf(req.Context()); x != nil && x.reqHead != nil && x.reqHead.relays(req.Header) {
		if sendsLength {
			bw.WriteString("Content-Length: 0\r\n")
		}
		x.reqHead.writeFields(bw, req.Header)
		_, err = bw.WriteString("\r\n")
		return true, err
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
	if sendsLength {
		bw.WriteString("Content-Length: 0\r\n")
	}
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

// relays reports whether h, a request's outbound header, holds just the
// fields of the client's head (rh, relayable) and what the proxy makes of
// them: X-Request-Id added where the client sent none (ServeHTTP),
// forwardHeader's X-Forwarded-For, -Proto, -Host where the client sent
// none, and the empty User-Agent that keeps one from being added;
// Connection removed (outboundHeader). A request the proxy changes
// otherwise is not relayable (parseH1Head).
func (rh *requestHead) relays(h http.Header) bool {
	want := rh.keys + 2 // X-Forwarded-For, X-Forwarded-Proto
	if rh.hasConn {
		want--
	}
	if !rh.hasXFH {
		want++
	}
	if !rh.hasUA {
		want++
	}
	if !rh.hasReqID {
		want++
	}
	return len(h) == want && h["Connection"] == nil && len(h["X-Forwarded-For"]) == 1 && len(h["X-Forwarded-Proto"]) == 1 &&
		(rh.hasXFH || len(h["X-Forwarded-Host"]) == 1) && (rh.hasReqID || len(h["X-Request-Id"]) == 1)
}

// writeFields writes the client's field lines as they came, less those
// left out (Host and Content-Length, which writeRequestHead writes
// itself, and Connection), then the proxy's (relays).
func (rh *requestHead) writeFields(bw *bufio.Writer, h http.Header) {
	rh.lines.writeTo(bw)
	writeHeaderField(bw, "X-Forwarded-For", h["X-Forwarded-For"][0])
	writeHeaderField(bw, "X-Forwarded-Proto", h["X-Forwarded-Proto"][0])
	if !rh.hasXFH {
		writeHeaderField(bw, "X-Forwarded-Host", h["X-Forwarded-Host"][0])
	}
	if !rh.hasReqID {
		writeHeaderField(bw, "X-Request-Id", h["X-Request-Id"][0])
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
