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
// uses http.Request.Write, which handles or rejects those cases.
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
	// Many servers expect a length on these methods even when empty (as
	// net/http sends it).
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
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
