package lb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzH1Head checks the fast loop's accept decision against net/http:
// whatever head parseH1Head accepts, net/http's server must accept too
// and read as the same request (method, target, version, host, headers,
// length, keep-alive), consuming exactly the same bytes. A head it
// refuses goes to net/http, so refusing too much costs speed only.
//
//	go test ./lb -run '^$' -fuzz FuzzH1Head -fuzztime 60s
func FuzzH1Head(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
		"HEAD /%7Ex%20y?q=%41 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-type: text/plain\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\nX-Two: 1\r\nx-two: 2\r\n\r\n",
		"GET //x/../y?#f HTTP/1.1\r\nHost: [::1]:80\r\nTE: trailers\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n",
		"0 / HTTP/1.0\r00:\r\n\r\n", // a stray CR is no line end
		"GET /a!b(c)*'d?x=%zz&y=\"z\" HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab: \ta b\t\r\n\r\n",
		manyFields("GET / HTTP/1.1\r\nHost: x\r\n"),
		"GET /p?q=1 HTTP/1.1\r\nuser-agent: wrk\r\nHost: x\r\nAccept: */*\r\nx-a: 1\r\nX-A: 2\r\nX-Request-Id: r\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x:80\r\nContent-Length: 0\r\nX-Forwarded-Host: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.9\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: x\r\nConnection: Keep-Alive\r\nconnection: close\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	reused := http.Header{} // as the fast loop reuses its maps
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := scanH1Head(raw)
		if n <= 0 {
			return
		}
		var got http.Request
		if !parseH1Head(string(raw[:n]), &got, new(url.URL), nil) {
			return
		}
		clear(reused)
		again := http.Request{Header: reused}
		if !parseH1Head(string(raw[:n]), &again, new(url.URL), nil) || !sameHeader(again.Header, got.Header) {
			t.Fatalf("head %q parsed into a reused map: %v, into a new one: %v", raw[:n], again.Header, got.Header)
		}
		br := bufio.NewReader(bytes.NewReader(raw[:n]))
		want, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("fast path accepts %q; net/http refuses it: %v", raw[:n], err)
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Fatalf("head %q: net/http leaves %q unread", raw[:n], rest)
		}
		// What net/http's server checks beyond ReadRequest.
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw[:n])))
		tp.ReadLine()
		mh, _ := tp.ReadMIMEHeader()
		hosts, haveHost := mh["Host"]
		if want.ProtoAtLeast(1, 1) && !haveHost || len(hosts) > 1 || len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
			t.Fatalf("fast path accepts %q; net/http's server refuses its Host", raw[:n])
		}
		for k, vv := range want.Header {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("fast path accepts %q; net/http's server refuses header name %q", raw[:n], k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("fast path accepts %q; net/http's server refuses value %q", raw[:n], v)
				}
			}
		}
		if want.Header.Get("Expect") != "" || len(want.TransferEncoding) > 0 || want.Method == "CONNECT" || want.Method == "PRI" {
			t.Fatalf("fast path accepts %q, which net/http treats specially", raw[:n])
		}
		type view struct {
			Method, Proto, Host, RequestURI string
			Minor                           int
			Path, RawPath, RawQuery         string
			ForceQuery                      bool
			ContentLength                   int64
			Close                           bool
			Header                          http.Header
		}
		v := func(r *http.Request) view {
			return view{r.Method, r.Proto, r.Host, r.RequestURI, r.ProtoMinor, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery, r.ContentLength, r.Close, r.Header}
		}
		a, b := v(&got), v(want)
		if a.Method != b.Method || a.Proto != b.Proto || a.Host != b.Host || a.RequestURI != b.RequestURI || a.Minor != b.Minor ||
			a.Path != b.Path || a.RawPath != b.RawPath || a.RawQuery != b.RawQuery || a.ForceQuery != b.ForceQuery ||
			a.ContentLength != b.ContentLength || a.Close != b.Close || !sameHeader(a.Header, b.Header) || got.URL.String() != want.URL.String() {
			t.Fatalf("head %q:\nfast    %+v\nnet/http %+v", raw[:n], a, b)
		}
		// Relaying the head's lines upstream must send the request that
		// writing the header map sends.
		if relayed, ok := outboundHead(t, raw[:n], true); ok {
			mapped, _ := outboundHead(t, raw[:n], false)
			if !sameRequest(t, relayed, mapped) {
				t.Fatalf("head %q:\nrelayed %q\nmapped  %q", raw[:n], relayed, mapped)
			}
		}
	})
}

// outboundHead is the head the upstream transport writes for a client
// request with this head, made as the proxy makes it: X-Request-Id where
// the client's is missing or unfit (ServeHTTP), X-Forwarded-*
// (forwardHeader). relay lets it relay the client's lines, reporting
// whether it did; "" for a request the transport leaves to net/http.
func outboundHead(t *testing.T, head []byte, relay bool) (string, bool) {
	t.Helper()
	var rh requestHead
	x := &h1ConnCtx{Context: context.Background()}
	r := (&http.Request{RemoteAddr: "192.0.2.1:1234", Header: http.Header{}}).WithContext(x)
	if !parseH1Head(string(head), r, new(url.URL), &rh) {
		t.Fatalf("head %q: not parsed", head)
	}
	if relay && rh.relayable {
		x.reqHead = &rh
	}
	if vv := r.Header["X-Request-Id"]; len(vv) == 0 || vv[0] == "" || len(vv[0]) > 200 {
		r.Header["X-Request-Id"] = []string{"req-1"}
	}
	out := *r
	out.Header = forwardHeader(r, upgradeType(r), "")
	out.URL = &url.URL{Scheme: "http", Host: "up", Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI, out.Close, out.Body = "", false, nil
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	ok, err := writeRequestHead(bw, &out)
	if err != nil || !ok {
		return "", false
	}
	bw.Flush()
	if x.reqHead == nil {
		return b.String(), false
	}
	_, relayed := x.reqHead.relays(out.Header)
	return b.String(), relayed
}

// sameRequest reports whether two request heads read the same through
// http.ReadRequest: method, target, Host and fields.
func sameRequest(t *testing.T, a, b string) bool {
	t.Helper()
	read := func(s string) *http.Request {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			t.Fatalf("request %q: %v", s, err)
		}
		return r
	}
	ra, rb := read(a), read(b)
	return ra.Method == rb.Method && ra.RequestURI == rb.RequestURI && ra.Host == rb.Host &&
		ra.ContentLength == rb.ContentLength && sameHeader(ra.Header, rb.Header)
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
	}
	return true
}

// FuzzH1ResponseHead does for upstream response heads what FuzzH1Head
// does for request heads: a head readResponse parses itself must read
// the same through http.ReadResponse.
func FuzzH1ResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 24\r\nContent-Type: text/plain\r\nDate: x\r\n\r\n",
		"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 404 \r\nContent-Length: 3\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"HTTP/1.1 999 X\r\ncontent-length: 01\r\n\r\n",
		manyFields("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"),
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: X-Request-Id\r\nX-Request-Id: up\r\nContent-Length: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nconnection: Content-Type\r\nContent-Type: text/hop\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	reused := http.Header{} // as the fast loop reuses its maps
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := scanH1Head(raw)
		if n <= 0 {
			return
		}
		var got http.Response
		ok, hop := parseResponseHead(raw[:n], &got, nil)
		if !ok {
			return
		}
		// What stripHop removes, knowing hop, is what removeHopHeaders does.
		short, full := got.Header.Clone(), got.Header.Clone()
		stripHop(short, hop)
		removeHopHeaders(full, "")
		if hop == hopUnknown || !sameHeader(short, full) {
			t.Fatalf("head %q: hop %d leaves %v; removeHopHeaders %v", raw[:n], hop, short, full)
		}
		clear(reused)
		again := http.Response{Header: reused}
		if ok, _ := parseResponseHead(raw[:n], &again, nil); !ok || !sameHeader(again.Header, got.Header) {
			t.Fatalf("head %q parsed into a reused map: %v, into a new one: %v", raw[:n], again.Header, got.Header)
		}
		br := bufio.NewReader(bytes.NewReader(raw[:n]))
		want, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("fast path accepts %q; net/http refuses it: %v", raw[:n], err)
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Fatalf("head %q: net/http leaves %q unread", raw[:n], rest)
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto || got.ProtoMinor != want.ProtoMinor ||
			got.ContentLength != want.ContentLength || got.Close != want.Close || len(want.TransferEncoding) > 0 || !sameHeader(got.Header, want.Header) {
			t.Fatalf("head %q:\nfast     %+v\nnet/http %+v", raw[:n], got, *want)
		}
		if got.ContentLength <= 4096 {
			// Relaying the head's lines must give the client the answer
			// that writing the header map gives.
			relayed, ok := proxyAnswer(t, raw[:n], true, nil)
			mapped, _ := proxyAnswer(t, raw[:n], false, nil)
			if ok && !sameAnswer(t, relayed, mapped) {
				t.Fatalf("head %q:\nrelayed %q\nmapped  %q", raw[:n], relayed, mapped)
			}
		}
	})
}

// proxyAnswer is the answer the fast loop's writer gives a keep-alive
// HTTP/1.1 GET for an upstream answer with this head (and a body of its
// Content-Length), made as respond makes it: hop-by-hop fields stripped,
// the header adopted with the request's X-Request-Id, a nil Content-Type
// where the upstream sent none. relay lets the writer relay the head's
// lines (relayHead), reporting whether it did; edit, when not nil, then
// changes the header through Header, as a handler may.
func proxyAnswer(t *testing.T, head []byte, relay bool, edit func(http.Header)) (string, bool) {
	t.Helper()
	var res http.Response
	var ah answerHead
	ok, hop := parseResponseHead(head, &res, &ah)
	if !ok {
		t.Fatalf("head %q: not parsed", head)
	}
	var out bytes.Buffer
	c := &h1ServerConn{hs: &h1Server{}, bw: bufio.NewWriter(&out)}
	c.rw.c, c.rw.header, c.rw.pendingBuf = c, http.Header{}, new([h1PendingSize]byte)
	req := &http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
	w := &c.rw
	w.reset(req, nil)
	w.Header()["X-Request-Id"] = []string{"req-1"}
	stripHop(res.Header, hop)
	if !w.adoptHeader(res.Header) {
		t.Fatal("header not adopted")
	}
	if _, ok := res.Header["Content-Type"]; !ok {
		res.Header["Content-Type"] = nil
	}
	if relay && ah.relayable {
		w.relayHead(&ah)
	}
	if edit != nil {
		edit(w.Header())
	}
	relayed := w.relaying
	w.WriteHeader(res.StatusCode)
	w.Write(bytes.Repeat([]byte("b"), int(res.ContentLength)))
	w.finish()
	c.bw.Flush()
	return out.String(), relayed
}

// sameAnswer reports whether two answers read the same through
// http.ReadResponse: status, fields (Date's value aside: each writer
// takes the clock) and body.
func sameAnswer(t *testing.T, a, b string) bool {
	t.Helper()
	read := func(s string) (*http.Response, string) {
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(s)), &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("answer %q: %v", s, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("answer %q: %v", s, err)
		}
		if len(res.Header["Date"]) == 1 {
			res.Header["Date"] = []string{"-"}
		}
		return res, string(body)
	}
	ra, ba := read(a)
	rb, bb := read(b)
	return ra.Status == rb.Status && ra.ContentLength == rb.ContentLength && ba == bb && sameHeader(ra.Header, rb.Header)
}

// BenchmarkParseResponseHead: an nginx answer's head parsed into a reused
// map, as the fast loop's upstream transport does.
func BenchmarkParseResponseHead(b *testing.B) {
	head := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 01:30:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: keep-alive\r\n\r\n")
	spare := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		clear(spare)
		res := http.Response{Header: spare}
		if ok, _ := parseResponseHead(head, &res, nil); !ok {
			b.Fatal("the fast path refuses the head")
		}
	}
}

// BenchmarkParseH1Head: a browser's request head (Chrome's fields for a
// page load) parsed into a reused map, as the fast loop does.
func BenchmarkParseH1Head(b *testing.B) {
	head := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\nCache-Control: max-age=0\r\n" +
		"Upgrade-Insecure-Requests: 1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=2f7a9c1e4b8d6a3f; theme=dark\r\n\r\n")
	spare := http.Header{}
	var rh requestHead
	b.ReportAllocs()
	for b.Loop() {
		clear(spare)
		req := http.Request{Header: spare}
		var u url.URL
		if !parseH1Head(string(head), &req, &u, &rh) || !rh.relayable {
			b.Fatal("the fast path refuses the head")
		}
	}
}

// manyFields completes a head with more fields than headerBuilder tracks
// by name (16), repeating names from before and after that point, so that
// both ways of finding a repeated name are in the seed corpus.
func manyFields(start string) string {
	var b strings.Builder
	b.WriteString(start)
	for i := range 20 {
		fmt.Fprintf(&b, "X-F%d: %d\r\n", i, i)
	}
	b.WriteString("X-F2: again\r\nX-F19: again\r\nx-f18: lower\r\n\r\n")
	return b.String()
}
