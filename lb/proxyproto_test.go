package lb

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// proxyV2 builds a version 2 header: cmd 1 (PROXY) or 0 (LOCAL), fam
// (0x11 TCP over IPv4, 0x21 over IPv6, …), the addresses' bytes and any
// TLVs after them.
func proxyV2(cmd, fam byte, body []byte) []byte {
	h := append([]byte(proxyV2Sig), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(body)))
	return append(h, body...)
}

// proxyV2Addrs is a PROXY command's header for client → server over TCP,
// with tlv after the addresses.
func proxyV2Addrs(client, server netip.AddrPort, tlv []byte) []byte {
	var body []byte
	fam := byte(0x11)
	if client.Addr().Is4() {
		a, b := client.Addr().As4(), server.Addr().As4()
		body = append(append(body, a[:]...), b[:]...)
	} else {
		fam = 0x21
		a, b := client.Addr().As16(), server.Addr().As16()
		body = append(append(body, a[:]...), b[:]...)
	}
	body = binary.BigEndian.AppendUint16(body, client.Port())
	body = binary.BigEndian.AppendUint16(body, server.Port())
	return proxyV2(1, fam, append(body, tlv...))
}

func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	cases := []struct {
		name   string
		in     string
		n      int
		client string // "" when the header names no client to use
		err    string // "" ok, "short" errProxyHeaderShort, else a part of the error
		tls    bool   // the header says the client came over TLS
	}{
		{"v1 TCP4", "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET /", 44, "203.0.113.7:56324", "", false},
		{"v1 TCP6", "PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n", 44, "[2001:db8::7]:1", "", false},
		{"v1 TCP6 mapped", "PROXY TCP6 ::ffff:203.0.113.7 ::1 80 81\r\n", 41, "203.0.113.7:80", "", false},
		{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", 0, "", "names no TCP client", false},
		{"v1 UNKNOWN with addresses", "PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\nX", 0, "", "names no TCP client", false},
		{"v1 port 0", "PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n", 32, "1.2.3.4:0", "", false},
		{"v1 partial", "PROXY TCP4 203.0.1", 0, "", "short", false},
		{"v1 partial CR", "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r", 0, "", "short", false},
		{"v1 start", "PRO", 0, "", "short", false},
		{"v1 no CRLF in 107", "PROXY TCP4 " + strings.Repeat("1", 100), 0, "", "no CRLF", false},
		{"v1 bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, "", "no CRLF", false},
		{"v1 UNKNOWN with a bare LF", "PROXY UNKNOWN x\ny\r\n", 0, "", "bare LF", false},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n", 0, "", "not an TCP4 address", false},
		{"v1 TCP6 with IPv4", "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", 0, "", "not an TCP6 address", false},
		{"v1 zone", "PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n", 0, "", "not an TCP6 address", false},
		{"v1 port too big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 0, "", "not a port", false},
		{"v1 port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", 0, "", "not a port", false},
		{"v1 port sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", 0, "", "not a port", false},
		{"v1 double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 0, "", "not TCP4, TCP6 or UNKNOWN", false},
		{"v1 too few fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0, "", "not TCP4, TCP6 or UNKNOWN", false},
		{"v1 UDP", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "", "not TCP4, TCP6 or UNKNOWN", false},
		{"no header", "GET / HTTP/1.1\r\n\r\n", 0, "", "does not begin with a PROXY", false},
		{"lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "", "does not begin with a PROXY", false},
		{"empty", "", 0, "", "short", false},
		{"v2 IPv4", string(proxyV2Addrs(ap("203.0.113.7:56324"), ap("192.0.2.1:443"), nil)) + "GET", 28, "203.0.113.7:56324", "", false},
		{"v2 IPv6 with a TLV", string(proxyV2Addrs(ap("[2001:db8::7]:9"), ap("[2001:db8::1]:443"), []byte{0xEA, 0, 3, 'v', 'p', 'c'})), 58, "[2001:db8::7]:9", "", false},
		{"v2 IPv6 mapped", string(proxyV2Addrs(ap("[::ffff:203.0.113.7]:9"), ap("[::1]:443"), nil)), 52, "203.0.113.7:9", "", false},
		{"v2 LOCAL", string(proxyV2(0, 0x00, nil)), 16, "", "", false},
		{"v2 LOCAL with addresses", string(proxyV2(0, 0x11, make([]byte, 12))), 28, "", "", false},
		{"v2 UNSPEC", string(proxyV2(1, 0x00, []byte{1, 2, 3})), 0, "", "names no TCP client", false},
		{"v2 UNIX", string(proxyV2(1, 0x31, make([]byte, 216))), 0, "", "names no TCP client", false},
		{"v2 UDP over IPv4", string(proxyV2(1, 0x12, make([]byte, 12))), 0, "", "names no TCP client", false},
		{"v2 partial signature", proxyV2Sig[:7], 0, "", "short", false},
		{"v2 partial fixed part", proxyV2Sig + "\x21\x11", 0, "", "short", false},
		{"v2 partial addresses", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), nil)[:20]), 0, "", "short", false},
		{"v2 version 1", proxyV2Sig + "\x11\x11\x00\x0c" + strings.Repeat("\x00", 12), 0, "", "version 1", false},
		{"v2 command 2", proxyV2Sig + "\x22\x11\x00\x0c" + strings.Repeat("\x00", 12), 0, "", "command 2", false},
		{"v2 IPv4 too short", string(proxyV2(1, 0x11, make([]byte, 11))), 0, "", "fewer than 12", false},
		{"v2 IPv6 too short", string(proxyV2(1, 0x21, make([]byte, 35))), 0, "", "fewer than 36", false},
		{"v2 unknown family", string(proxyV2(1, 0x41, make([]byte, 12))), 0, "", "unknown address family", false},
		{"v2 bad signature", "\r\n\r\n\x00\r\nQUIT!" + strings.Repeat("\x00", 20), 0, "", "does not begin with a PROXY", false},
		// HAProxy 2.6's send-proxy-v2-ssl with proxy-v2-options crc32c,
		// for a TLS client, as it sent it (haproxyV2SSL).
		{"v2 HAProxy over TLS", string(haproxyV2SSL) + "GET", len(haproxyV2SSL), "127.0.0.1:" + haproxyV2SSLPort, "", true},
		{"v2 HAProxy over TLS, a checksum bit flipped", string(flipByte(haproxyV2SSL, haproxyV2CRCAt)), 0, "", "CRC32C does not match", false},
		{"v2 HAProxy over TLS, an address byte changed", string(flipByte(haproxyV2SSL, 16)), 0, "", "CRC32C does not match", false},
		{"v2 checksum after other TLVs", string(withCRC32C(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x04, 0, 2, 0, 0, 0x20, 0, 5, 0x01, 0, 0, 0, 0, 0x03, 0, 4, 0, 0, 0, 0}))), 48, "1.2.3.4:1", "", true},
		{"v2 checksum after other TLVs, wrong", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x04, 0, 2, 0, 0, 0x20, 0, 5, 0x01, 0, 0, 0, 0, 0x03, 0, 4, 0, 0, 0, 0})), 0, "", "CRC32C does not match", false},
		{"v2 SSL TLV, client not over TLS", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x20, 0, 5, 0, 0, 0, 0, 0})), 36, "1.2.3.4:1", "", false},
		{"v2 SSL TLV, client over TLS", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x04, 0, 2, 0, 0, 0x20, 0, 5, 0x07, 0, 0, 0, 1})), 41, "1.2.3.4:1", "", true},
		{"v2 SSL TLV too short", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x20, 0, 1, 1})), 0, "", "an SSL TLV of 1 bytes", false},
		{"v2 CRC32C TLV too short", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0x03, 0, 2, 1, 2})), 0, "", "a CRC32C of 2 bytes", false},
		{"v2 TLV past the end", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0xEA, 0, 4, 'v', 'p', 'c'})), 0, "", "a TLV runs past", false},
		{"v2 TLV cut in its length", string(proxyV2Addrs(ap("1.2.3.4:1"), ap("5.6.7.8:2"), []byte{0xEA, 0})), 0, "", "a TLV runs past", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := parseProxyHeader([]byte(c.in))
			switch c.err {
			case "":
				require.NoError(t, err)
				require.Equal(t, c.n, h.len)
				if c.client == "" {
					require.False(t, h.client.IsValid(), "no client: %v", h.client)
				} else {
					require.Equal(t, c.client, h.client.String())
				}
				require.Equal(t, c.tls, h.tls, "the client came over TLS")
			case "short":
				require.ErrorIs(t, err, errProxyHeaderShort)
			default:
				require.Error(t, err)
				require.NotErrorIs(t, err, errProxyHeaderShort)
				require.Contains(t, err.Error(), c.err)
			}
		})
	}
}

// FuzzParseProxyHeader: no input panics; a header's length lies within
// what was given; every strict prefix of a valid header asks for more
// (the sniffer's reads rely on it), and whatever follows a header does
// not change what it says. Headers built from the fuzzed client parse
// back to it, in both versions.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET"), []byte{203, 0, 113, 7}, uint16(56324), false)
	f.Add([]byte("PROXY UNKNOWN\r\n"), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}, uint16(1), true)
	f.Add(proxyV2Addrs(netip.MustParseAddrPort("[2001:db8::7]:9"), netip.MustParseAddrPort("[2001:db8::1]:443"), []byte{1, 0, 1, 'h'}), []byte{1, 2, 3, 4}, uint16(0), false)
	f.Add(proxyV2(0, 0, nil), []byte{}, uint16(65535), true)
	f.Add(haproxyV2SSL, []byte{}, uint16(0), true)
	f.Add([]byte("PROXY UNKNOWN a\nb\r\n"), []byte{}, uint16(0), false)
	f.Fuzz(func(t *testing.T, b, ip []byte, port uint16, clientTLS bool) {
		h, err := parseProxyHeader(b)
		if err == nil {
			require.Positive(t, h.len)
			require.LessOrEqual(t, h.len, len(b))
			for k := range h.len {
				_, perr := parseProxyHeader(b[:k])
				require.ErrorIs(t, perr, errProxyHeaderShort, "the first %d bytes of a %d-byte header", k, h.len)
			}
			h2, err2 := parseProxyHeader(append(b[:h.len:h.len], "GET / HTTP/1.1\r\n"...))
			require.NoError(t, err2)
			require.Equal(t, h, h2)
		}
		if len(ip) != 4 && len(ip) != 16 {
			return
		}
		a, _ := netip.AddrFromSlice(ip)
		want := netip.AddrPortFrom(a.Unmap(), port)
		server := netip.AddrPortFrom(netip.IPv6Loopback(), 443)
		if a.Is4() {
			server = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 443)
		}
		fam := "TCP4"
		if !a.Is4() {
			fam = "TCP6"
		}
		for _, h := range [][]byte{
			fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", fam, a, server.Addr(), port, server.Port()),
			proxyV2Addrs(netip.AddrPortFrom(a, port), server, nil),
		} {
			got, err := parseProxyHeader(h)
			require.NoError(t, err, "%q", h)
			require.Equal(t, proxyHeader{len: len(h), client: want}, got)
		}
		// Version 2 with TLVs: padding, the SSL field, a checksum.
		client := byte(0)
		if clientTLS {
			client = proxySSLClientSSL
		}
		v2 := withCRC32C(proxyV2Addrs(netip.AddrPortFrom(a, port), server, []byte{0x04, 0, 1, 0, 0x20, 0, 5, client, 0, 0, 0, 0, 0x03, 0, 4, 0, 0, 0, 0}))
		got, err := parseProxyHeader(v2)
		require.NoError(t, err, "%x", v2)
		require.Equal(t, proxyHeader{len: len(v2), client: want, tls: clientTLS}, got)
	})
}

// proxyLB starts an lb whose listener takes PROXY headers from the
// trusted proxies given (edit changes the listener further), with one
// route to a backend answering its X-Forwarded-For, and a rate limit
// of one request per client (key ip).
func proxyLB(t *testing.T, trusted []string, edit func(*ListenerConfig)) (*Server, *lockedBuffer) {
	t.Helper()
	return proxyLBEchoing(t, "X-Forwarded-For", &RateLimitConfig{Key: "ip", Rate: 0.001, Burst: 1}, trusted, edit)
}

// proxyLBEchoing is proxyLB with a backend that answers the request
// field named instead, and the rate limit given (nil: none).
func proxyLBEchoing(t *testing.T, field string, limit *RateLimitConfig, trusted []string, edit func(*ListenerConfig)) (*Server, *lockedBuffer) {
	t.Helper()
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values(field), ","))
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{RateLimit: limit})
	cfg.TrustedProxies = trusted
	cfg.Listeners[0].ProxyProtocol = true
	if edit != nil {
		edit(&cfg.Listeners[0])
	}
	return startLoggedLB(t, cfg)
}

// proxySend opens a connection to addr, writes header and then, through
// wrap (TLS; nil: plain), an HTTP/1.1 request with the X-Forwarded-For
// given, and returns the answer's status and body; err when the lb
// closed the connection instead.
func proxySend(t *testing.T, addr string, header []byte, xff string, wrap func(net.Conn) net.Conn) (int, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(header); err != nil {
		return 0, "", err
	}
	var conn net.Conn = c
	if wrap != nil {
		conn = wrap(c)
	}
	req := "GET /x HTTP/1.1\r\nHost: lb.internal\r\n"
	if xff != "" {
		req += "X-Forwarded-For: " + xff + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return 0, "", err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

// A listener with proxy_protocol takes the client's address from the
// header of a trusted balancer, in either version: it is the
// X-Forwarded-For hop the upstream sees (a client's own X-Forwarded-For
// is not believed), what a rate limit with key ip counts, and the access
// log's remote. The fast loop serves these connections, on its
// descriptor I/O. A LOCAL header (a balancer's health check) leaves the
// balancer's own address.
func TestProxyProtocolHTTP(t *testing.T) {
	srv, buf := proxyLB(t, []string{"127.0.0.1"}, nil)
	ap := netip.MustParseAddrPort
	v1 := []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n")
	code, body, err := proxySend(t, srv.Addr(), v1, "198.51.100.66", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "198.51.100.66, 203.0.113.7", body)

	code, _, err = proxySend(t, srv.Addr(), v1, "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, code, "the same client, on another connection")

	v2 := proxyV2Addrs(ap("[2001:db8::7]:40000"), ap("[2001:db8::1]:443"), []byte{0xEA, 0, 2, 'i', 'd'})
	code, body, err = proxySend(t, srv.Addr(), v2, "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "another client behind the same balancer")
	require.Equal(t, "2001:db8::7", body)

	code, body, err = proxySend(t, srv.Addr(), proxyV2(0, 0, nil), "198.51.100.66", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "198.51.100.66, 127.0.0.1", body, "LOCAL: the balancer's own address, and its X-Forwarded-For is not believed")

	var lines []map[string]any
	require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 4 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "203.0.113.7:56324", lines[0]["remote"])
	require.Equal(t, "[2001:db8::7]:40000", lines[2]["remote"])
	require.True(t, strings.HasPrefix(lines[3]["remote"].(string), "127.0.0.1:"), lines[3]["remote"])
	require.EqualValues(t, 4, srv.listeners[0].fast.served.Load(), "served by the fast loop")
	require.Zero(t, srv.listeners[0].fast.handedOff.Load())
}

// A connection without a valid header, or whose peer is not a trusted
// proxy, is closed without an answer; one whose header arrives in pieces
// is served.
func TestProxyProtocolRefusals(t *testing.T) {
	srv, _ := proxyLB(t, []string{"127.0.0.1"}, nil)
	for name, header := range map[string]string{
		"no header":  "",
		"bad header": "PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n",
		"v2 garbage": proxyV2Sig + "\x21\x41\x00\x00",
		// No client named: the balancer's address (trusted) would stand,
		// and the client's own X-Forwarded-For be believed.
		"v1 UNKNOWN": "PROXY UNKNOWN\r\n",
		"v2 UNIX":    string(proxyV2(1, 0x31, make([]byte, 216))),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := proxySend(t, srv.Addr(), []byte(header), "198.51.100.66", nil)
			require.Error(t, err, "the connection must be closed")
		})
	}
	t.Run("in pieces", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		h := "PROXY TCP4 203.0.113.9 192.0.2.1 1000 443\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"
		for i := 0; i < len(h); i += 7 {
			_, err := io.WriteString(c, h[i:min(i+7, len(h))])
			require.NoError(t, err)
			time.Sleep(2 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, "203.0.113.9", string(body))
	})

	untrusted, _ := proxyLB(t, []string{"10.0.0.0/8"}, nil)
	_, _, err := proxySend(t, untrusted.Addr(), []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "", nil)
	require.Error(t, err, "a header from a peer outside trusted_proxies")

	// Operators see why: lb_proxy_protocol_refused_total by reason.
	for _, c := range []struct {
		srv                *Server
		untrusted, invalid float64
	}{{srv, 0, 5}, {untrusted, 1, 0}} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(&stateCollector{s: c.srv})
		m := metricValues(t, reg)
		require.Equal(t, c.untrusted, m["lb_proxy_protocol_refused_total{listener=test,reason=untrusted,}"])
		require.Equal(t, c.invalid, m["lb_proxy_protocol_refused_total{listener=test,reason=invalid,}"])
	}
}

// On a TLS listener the header comes before the handshake.
func TestProxyProtocolTLS(t *testing.T) {
	certFile, keyFile, roots := writeCert(t, t.TempDir(), 1)
	srv, _ := proxyLB(t, []string{"127.0.0.1"}, func(l *ListenerConfig) {
		l.H2C = false
		l.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	})
	wrap := func(c net.Conn) net.Conn {
		return tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	}
	code, body, err := proxySend(t, srv.Addr(), []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "", wrap)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "203.0.113.7", body)

	// HTTP/2, which the fast loop hands to the HTTP/2 engine.
	tr := &http2.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if _, err := c.Write(proxyV2Addrs(netip.MustParseAddrPort("[2001:db8::5]:7"), netip.MustParseAddrPort("[::1]:443"), nil)); err != nil {
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
			return tc, tc.HandshakeContext(ctx)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + srv.Addr() + "/x")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "2001:db8::5", string(b))
}

// On a native_grpc port the header comes before the sniff: HTTP/1.1
// goes to the fast loop, h2c (here an HTTP request over it, which the
// frame engine serves) to the gRPC engine, both with the header's client.
func TestProxyProtocolH2C(t *testing.T) {
	srv, _ := proxyLB(t, []string{"127.0.0.1"}, func(l *ListenerConfig) { l.NativeGRPC = true })
	code, body, err := proxySend(t, srv.Addr(), []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "203.0.113.7", body)

	code, body = h2cProxySend(t, srv.Addr(), []byte("PROXY TCP6 2001:db8::9 ::1 7 80\r\n"), "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "2001:db8::9", body)
}

// h2cProxySend is proxySend over h2c (prior knowledge): a GET of /x on a
// new connection that begins with header, with the X-Forwarded-For given.
func h2cProxySend(t *testing.T, addr string, header []byte, xff string) (int, string) {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_, err = c.Write(header)
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/x", nil)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestProxyProtocolNeedsTrustedProxies(t *testing.T) {
	cfg := oneRoute(PoolConfig{Upstreams: []string{"127.0.0.1:1"}}, RouteConfig{})
	cfg.Listeners[0].ProxyProtocol = true
	_, err := New(cfg, testLogger(), nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "listeners[0].proxy_protocol: needs trusted_proxies")
	require.False(t, errors.Is(err, errProxyHeaderShort))
}

// A version 2 header larger than the sniffer's buffer (a balancer's many
// TLVs), sent in one write with a request and its body after it: the
// sniffer reads the header to its end and no further, so what follows
// reaches the fast loop whole.
func TestProxyProtocolLargeHeader(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %s", r.Header.Get("X-Forwarded-For"), len(body), body[len(body)-3:])
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.TrustedProxies = []string{"127.0.0.1"}
	cfg.Listeners[0].ProxyProtocol = true
	srv, _ := startLB(t, cfg)
	tlv := append([]byte{0xE0, 0x50, 0x00}, make([]byte, 0x5000)...) // a 20 KiB TLV
	h := proxyV2Addrs(netip.MustParseAddrPort("203.0.113.8:1234"), netip.MustParseAddrPort("192.0.2.1:80"), tlv)
	body := strings.Repeat("b", 9000) + "end"
	msg := append(h, fmt.Sprintf("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body)...)
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(msg)
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	got, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, string(got))
	require.Equal(t, "203.0.113.8 9003 end", string(got))
}

// On a proxy_protocol listener no X-Forwarded-* field is believed, on
// any engine: the trusted peers are layer-4 balancers, which write none,
// so what a request carries is its client's. Neither a LOCAL connection
// (the balancer's address, which HAProxy also uses for relayed clients it
// has no address for) nor a client whose PROXY address lies in a trusted
// range may choose the client that rate limits and logs see.
func TestProxyProtocolBelievesNoForwardedFields(t *testing.T) {
	trusted := []string{"127.0.0.1", "10.1.0.0/16"}
	inRange := []byte("PROXY TCP4 10.1.2.3 10.1.0.1 4000 80\r\n")
	// Each header, and the X-Forwarded-For the upstream must see: the
	// client's value, then the connection's client (not believed).
	cases := []struct {
		h   []byte
		xff string
	}{{proxyV2(0, 0, nil), "198.51.100.66, 127.0.0.1"}, {inRange, "198.51.100.66, 10.1.2.3"}}
	t.Run("http1", func(t *testing.T) {
		srv, _ := proxyLB(t, trusted, nil)
		for _, tc := range cases {
			code, body, err := proxySend(t, srv.Addr(), tc.h, "198.51.100.66", nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.NotContains(t, body, "198.51.100.66, 198.51.100.66", "the forged hop was believed")
			require.Equal(t, tc.xff, body)
		}
	})
	t.Run("net/http", func(t *testing.T) {
		// A request the fast loop leaves to net/http (chunked).
		srv, _ := proxyLB(t, trusted, nil)
		for i, tc := range cases {
			require.Equal(t, tc.xff, chunkedProxySend(t, srv.Addr(), tc.h, "X-Forwarded-For: 198.51.100.66"))
			require.EqualValues(t, i+1, srv.listeners[0].fast.handedOff.Load(), "served by net/http")
		}
	})
	t.Run("h2c", func(t *testing.T) {
		srv, _ := proxyLB(t, trusted, func(l *ListenerConfig) { l.NativeGRPC = true })
		for _, tc := range cases {
			code, body := h2cProxySend(t, srv.Addr(), tc.h, "198.51.100.66")
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, tc.xff, body)
		}
	})
	t.Run("grpc relay", func(t *testing.T) {
		srv := grpcProxyLB(t, trusted, nil)
		for _, tc := range cases {
			client := dialProxied(t, srv.Addr(), tc.h)
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", "198.51.100.66", "x-forwarded-proto", "https")
			var hdr metadata.MD
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
			require.NoError(t, err)
			require.Len(t, hdr.Get("seen-x-forwarded-for"), 1)
			require.Equal(t, tc.xff, hdr.Get("seen-x-forwarded-for")[0])
			require.Equal(t, []string{"http"}, hdr.Get("seen-x-forwarded-proto"), "the client's own X-Forwarded-Proto is replaced")
		}
	})
}

// chunkedProxySend sends header and then a chunked POST with the field
// line given, which the fast loop hands to net/http, on a new connection
// to addr, and returns the answer's body.
func chunkedProxySend(t *testing.T, addr string, header []byte, field string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(append(append([]byte(nil), header...), "POST /x HTTP/1.1\r\nHost: a\r\n"+field+"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"...))
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// grpcProxyLB starts an lb that relays gRPC calls to an mdService on
// a listener with proxy_protocol from the trusted proxies given (edit,
// when not nil, changes the listener further).
func grpcProxyLB(t *testing.T, trusted []string, edit func(*ListenerConfig)) *Server {
	t.Helper()
	addr, _ := startGRPCServer(t, mdService{})
	cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{}, true)
	cfg.TrustedProxies = trusted
	cfg.Listeners[0].ProxyProtocol = true
	if edit != nil {
		edit(&cfg.Listeners[0])
	}
	srv, _ := startLB(t, cfg)
	return srv
}

// dialProxied is a gRPC client of addr whose connections begin with
// header, as a balancer's would.
func dialProxied(t *testing.T, addr string, header []byte) testpb.TestServiceClient {
	t.Helper()
	return dialLBOpts(t, addr, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			_, err = c.Write(header)
		}
		return c, err
	}))
}

// haproxyV2SSL is a version 2 header as HAProxy 2.6.12 (Debian 12's)
// sent it for a client of its TLS frontend, to a server with
// "send-proxy-v2-ssl proxy-v2-options crc32c": the addresses, then the
// TLVs CRC32C and SSL (PP2_CLIENT_SSL, verify 0 as no client certificate
// was asked for, the TLS version as a sub-TLV). Its checksum's value is
// at haproxyV2CRCAt.
var haproxyV2SSL = mustHex("0d0a0d0a000d0a515549540a211100257f0000017f0000019a79480b" + // addresses, ports
	"030004df6dcd66" + // CRC32C
	"20000f0100000000210007544c5376312e33") // SSL: client SSL, verify 0, version TLSv1.3

const (
	haproxyV2SSLPort = "39545"
	haproxyV2CRCAt   = 31
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// withCRC32C is h, a version 2 header whose last TLV is a CRC32C with
// the value zero, with that value set: the CRC32c of the whole header
// with it zero.
func withCRC32C(h []byte) []byte {
	out := append([]byte(nil), h...)
	binary.BigEndian.PutUint32(out[len(out)-4:], crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// flipByte is b with one bit of b[i] flipped.
func flipByte(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 1
	return out
}

// X-Forwarded-Proto behind a layer-4 balancer that terminates the
// clients' TLS: https where a v2 header's SSL TLV says the client came
// over TLS (HAProxy's send-proxy-v2-ssl, haproxyV2SSL), or where the
// listener's forwarded_proto says so for every client (with or without
// PROXY headers); http for a v1 header, which cannot say, and for a v2
// one without the TLV. In every engine: the fast loop, net/http (a
// chunked request, which the fast loop hands over), h2c requests (on the
// HTTP/2 engine and on net/http's) and gRPC calls (the engine's relay).
func TestProxyProtocolForwardedProto(t *testing.T) {
	ap := netip.MustParseAddrPort
	v1 := []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n")
	plainV2 := proxyV2Addrs(ap("203.0.113.7:1"), ap("192.0.2.1:443"), []byte{0xEA, 0, 3, 'v', 'p', 'c'})
	https := func(l *ListenerConfig) { l.ForwardedProto = "https" }
	noPROXY := func(l *ListenerConfig) { l.ProxyProtocol, l.ForwardedProto = false, "https" }
	cases := []struct {
		name   string
		header []byte
		edit   func(*ListenerConfig)
		want   string
	}{
		{"v1", v1, nil, "http"},
		{"v2 without TLS", plainV2, nil, "http"},
		{"v2 from HAProxy over TLS", haproxyV2SSL, nil, "https"},
		{"v1 with forwarded_proto", v1, https, "https"},
		{"forwarded_proto without PROXY headers", nil, noPROXY, "https"},
	}
	trusted := []string{"127.0.0.1"}
	both := func(edits ...func(*ListenerConfig)) func(*ListenerConfig) {
		return func(l *ListenerConfig) {
			for _, e := range edits {
				if e != nil {
					e(l)
				}
			}
		}
	}
	for _, c := range cases {
		// Without PROXY headers, a peer in trusted_proxies would be an
		// HTTP proxy whose X-Forwarded-Proto is believed: none here.
		trusted := trusted
		if c.header == nil {
			trusted = nil
		}
		t.Run(c.name, func(t *testing.T) {
			t.Run("http1", func(t *testing.T) {
				srv, _ := proxyLBEchoing(t, "X-Forwarded-Proto", nil, trusted, c.edit)
				code, body, err := proxySend(t, srv.Addr(), c.header, "", nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, body)
				require.Equal(t, c.want, body)
				// A client's X-Forwarded-For takes the path that rebuilds
				// the fields (outboundHeader).
				code, body, err = proxySend(t, srv.Addr(), c.header, "198.51.100.66", nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, body)
				require.Equal(t, c.want, body)
				require.EqualValues(t, 2, srv.listeners[0].fast.served.Load(), "served by the fast loop")
			})
			t.Run("net/http", func(t *testing.T) {
				srv, _ := proxyLBEchoing(t, "X-Forwarded-Proto", nil, trusted, c.edit)
				require.Equal(t, c.want, chunkedProxySend(t, srv.Addr(), c.header, "X-Forwarded-Proto: ftp"))
				require.EqualValues(t, 1, srv.listeners[0].fast.handedOff.Load(), "served by net/http")
			})
			for _, native := range []bool{true, false} {
				// h2c on the HTTP/2 engine (native_grpc), or net/http's.
				t.Run(fmt.Sprintf("h2c native %v", native), func(t *testing.T) {
					srv, _ := proxyLBEchoing(t, "X-Forwarded-Proto", nil, trusted, both(func(l *ListenerConfig) { l.NativeGRPC = native }, c.edit))
					code, body := h2cProxySend(t, srv.Addr(), c.header, "")
					require.Equal(t, http.StatusOK, code)
					require.Equal(t, c.want, body)
				})
			}
			t.Run("grpc relay", func(t *testing.T) {
				client := dialProxied(t, grpcProxyLB(t, trusted, c.edit).Addr(), c.header)
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-proto", "ftp")
				var hdr metadata.MD
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
				require.NoError(t, err)
				require.Equal(t, []string{c.want}, hdr.Get("seen-x-forwarded-proto"))
			})
		})
	}
}

// forwarded_proto yields to a trusted HTTP proxy's own X-Forwarded-Proto
// (trusted_proxies), which says what that proxy's client spoke; from that
// proxy without one, the listener's https stands. In the fast loop,
// net/http and the gRPC relay.
func TestForwardedProtoYieldsToTrustedProxies(t *testing.T) {
	trusted := []string{"127.0.0.1"}
	edit := func(l *ListenerConfig) { l.ProxyProtocol, l.ForwardedProto = false, "https" }
	srv, _ := proxyLBEchoing(t, "X-Forwarded-Proto", nil, trusted, edit)
	get := func(xfp string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/x", nil)
		if xfp != "" {
			req.Header.Set("X-Forwarded-Proto", xfp)
		}
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "http", get("http"))
	require.Equal(t, "https", get(""))
	require.Equal(t, "http", chunkedProxySend(t, srv.Addr(), nil, "X-Forwarded-Proto: http"))

	client := dialProxied(t, grpcProxyLB(t, trusted, edit).Addr(), nil)
	for _, c := range []struct{ sent, want string }{{"http", "http"}, {"", "https"}} {
		ctx := context.Background()
		if c.sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-proto", c.sent)
		}
		var hdr metadata.MD
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
		require.NoError(t, err)
		require.Equal(t, []string{c.want}, hdr.Get("seen-x-forwarded-proto"), "sent %q", c.sent)
	}
}
