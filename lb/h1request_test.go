package lb

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// The hand-written request head must read back exactly as what
// http.Request.Write produces for the same request.
func TestWriteRequestHeadMatchesRequestWrite(t *testing.T) {
	tests := []struct {
		name   string
		method string
		url    string
		host   string
		header http.Header
		fast   bool
	}{
		{"plain get", "GET", "http://10.0.0.1:80/v1/persons?limit=10", "api.example.com", http.Header{"Accept": {"application/json"}, "User-Agent": {""}}, true},
		{"multi-valued and forwarded", "GET", "http://10.0.0.1/a%20b/c", "api.example.com:8080", http.Header{"X-Forwarded-For": {"1.2.3.4, 5.6.7.8"}, "Cookie": {"a=1", "b=2"}, "User-Agent": {"curl/8"}}, true},
		{"bodyless delete has no length", "DELETE", "http://10.0.0.1/x", "h", http.Header{}, true},
		{"bodyless post gets a zero length", "POST", "http://10.0.0.1/x", "h", http.Header{"Content-Length": {"0"}}, true},
		{"head", "HEAD", "http://10.0.0.1/x", "h", http.Header{}, true},
		{"no user agent uses Go's", "GET", "http://10.0.0.1/", "h", http.Header{}, true},
		{"line breaks in a value become spaces", "GET", "http://10.0.0.1/", "h", http.Header{"X-Evil": {"a\r\nX-Injected: 1"}}, true},
		{"invalid field names are dropped", "GET", "http://10.0.0.1/", "h", http.Header{"Bad Name": {"x"}, "Ok": {" padded\t"}}, true},
		{"hop and framing fields are not copied", "GET", "http://10.0.0.1/", "h", http.Header{"Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Host": {"other"}}, true},
		{"non-ascii host falls back", "GET", "http://10.0.0.1/", "bücher.example", http.Header{}, false},
		{"zone in host falls back", "GET", "http://10.0.0.1/", "[fe80::1%25eth0]:80", http.Header{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			req := &http.Request{Method: tc.method, URL: u, Host: tc.host, Header: tc.header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}

			var want bytes.Buffer
			require.NoError(t, req.Write(&want))

			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			ok, err := writeRequestHead(bw, req)
			require.NoError(t, err)
			require.Equal(t, tc.fast, ok)
			if !ok {
				return
			}
			require.NoError(t, bw.Flush())

			wr, err := http.ReadRequest(bufio.NewReader(&want))
			require.NoError(t, err)
			gr, err := http.ReadRequest(bufio.NewReader(&got))
			require.NoError(t, err, "written head:\n%s", got.String())
			require.Equal(t, wr.Method, gr.Method)
			require.Equal(t, wr.RequestURI, gr.RequestURI)
			require.Equal(t, wr.Host, gr.Host)
			require.Equal(t, wr.ContentLength, gr.ContentLength)
			require.Equal(t, wr.Header, gr.Header)
		})
	}
}

func BenchmarkWriteRequestHead(b *testing.B) {
	u, _ := url.Parse("http://10.0.0.1:80/v1/persons?limit=10")
	req := &http.Request{Method: "GET", URL: u, Host: "api.example.com", Header: http.Header{
		"Accept": {"application/json"}, "User-Agent": {""}, "X-Request-Id": {"0123456789abcdef0123456789abcdef"},
		"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"api.example.com"},
	}}
	bw := bufio.NewWriterSize(&bytes.Buffer{}, 8<<10)
	for _, fast := range []bool{false, true} {
		name := "RequestWrite"
		if fast {
			name = "Handwritten"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bw.Reset(&bytes.Buffer{})
				if fast {
					writeRequestHead(bw, req)
				} else {
					req.Write(bw)
				}
			}
		})
	}
}
