package lb

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestProxyTrustClient(t *testing.T) {
	trust := newProxyTrust([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:172.16.0.0/108"})
	peer := netip.MustParseAddr("10.1.1.1")
	for _, tc := range []struct {
		xff  []string
		want string
	}{
		{nil, "10.1.1.1"}, // no hops: the proxy itself
		{[]string{"203.0.113.9"}, "203.0.113.9"},
		{[]string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},           // the client's own claim (left) is not believed
		{[]string{"198.51.100.1, 203.0.113.9, 10.2.2.2"}, "203.0.113.9"}, // a second trusted hop is skipped
		{[]string{"198.51.100.1", "203.0.113.9, 192.0.2.7"}, "203.0.113.9"},
		{[]string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"}, // all trusted: the leftmost
		{[]string{"203.0.113.9:4711"}, "203.0.113.9"},
		{[]string{"[2001:db9::1]:4711, 2001:db8::5"}, "2001:db9::1"},
		{[]string{"[2001:db9::2]"}, "2001:db9::2"},
		{[]string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{[]string{"172.16.5.5, 203.0.113.9,,"}, "203.0.113.9"},
		{[]string{"172.16.5.5, 10.9.9.9"}, "172.16.5.5"},          // trusted through the mapped prefix: leftmost
		{[]string{"198.51.100.1, unknown, 10.2.2.2"}, "10.2.2.2"}, // garbage ends the walk at the last trusted hop
		{[]string{"<script>"}, "10.1.1.1"},
	} {
		require.Equal(t, tc.want, trust.client(peer, tc.xff).String(), "%q", tc.xff)
	}
	require.True(t, trust.trusts(peerAddr("[::ffff:10.0.0.1]:80")))
	require.True(t, trust.trusts(peerAddr("172.16.0.1:80")))
	require.False(t, trust.trusts(peerAddr("192.0.2.8:80")))
	require.False(t, trust.trusts(peerAddr("nonsense")))
	require.False(t, (*proxyTrust)(nil).trusts(peerAddr("10.0.0.1:80")))
	require.True(t, newProxyTrust([]string{"fe80::/10"}).trusts(peerAddr("[fe80::1%eth0]:80")), "a link-local peer has its zone")
	require.Nil(t, newProxyTrust(nil))
}

func TestTrustedProxiesAreValidated(t *testing.T) {
	cfg := oneRoute(PoolConfig{Upstreams: []string{"127.0.0.1:1"}}, RouteConfig{})
	cfg.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33"}
	_, err := New(cfg, testLogger(), nil)
	require.ErrorContains(t, err, "trusted_proxies[1]")
	cfg.TrustedProxies = []string{"proxy.example"}
	_, err = New(cfg, testLogger(), nil)
	require.ErrorContains(t, err, `trusted_proxies[0]: "proxy.example" is neither an IP address nor a CIDR prefix`)
}

// TestTrustedProxyHTTP: a trusted proxy's X-Forwarded-Proto reaches the
// upstream as it sent it, and its clients are told apart by
// X-Forwarded-For for rate limits, in the access log and in the hop the
// lb appends; another peer's is replaced and it is its own client,
// whatever X-Forwarded-For says. X-Forwarded-Host is the lb's either way.
func TestTrustedProxyHTTP(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+"|"+r.Header.Get("X-Forwarded-Host")+"|"+strings.Join(r.Header.Values("X-Forwarded-For"), ","))
	})
	send := func(t *testing.T, addr, xff string) (int, string) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: lb.internal\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\nX-Forwarded-For: "+xff+"\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, trusted := range []bool{true, false} {
		t.Run(map[bool]string{true: "trusted", false: "untrusted"}[trusted], func(t *testing.T) {
			cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{RateLimit: &RateLimitConfig{Key: "ip", Rate: 0.001, Burst: 1}})
			cfg.TrustedProxies = []string{"10.9.0.0/16"}
			if trusted {
				cfg.TrustedProxies = append(cfg.TrustedProxies, "127.0.0.0/8")
			}
			srv, buf := startLoggedLB(t, cfg)
			code, body := send(t, srv.Addr(), "203.0.113.9")
			require.Equal(t, http.StatusOK, code, body)
			if trusted {
				require.Equal(t, "https|lb.internal|203.0.113.9, 203.0.113.9", body)
			} else {
				require.Equal(t, "http|lb.internal|203.0.113.9, 127.0.0.1", body)
			}
			code, _ = send(t, srv.Addr(), "203.0.113.9")
			require.Equal(t, http.StatusTooManyRequests, code, "the same client (trusted) or the same peer (untrusted)")
			code, body = send(t, srv.Addr(), "203.0.113.9, 198.51.100.4, 10.9.1.1")
			if trusted {
				require.Equal(t, http.StatusOK, code, "another client behind the trusted proxies")
				require.Equal(t, "https|lb.internal|203.0.113.9, 198.51.100.4, 10.9.1.1, 198.51.100.4", body)
			} else {
				require.Equal(t, http.StatusTooManyRequests, code, "X-Forwarded-For of an untrusted peer is not believed")
			}
			var lines []map[string]any
			require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 3 }, 5*time.Second, 10*time.Millisecond)
			if trusted {
				require.Equal(t, []any{"203.0.113.9", "203.0.113.9", "198.51.100.4"}, []any{lines[0]["client"], lines[1]["client"], lines[2]["client"]})
			} else {
				for _, l := range lines {
					require.NotContains(t, l, "client")
				}
			}
			require.True(t, strings.HasPrefix(lines[0]["remote"].(string), "127.0.0.1:"))
		})
	}
}

// TestTrustedProxyGRPC is TestTrustedProxyHTTP for gRPC calls, through
// net/http's HTTP/2 and the frame relay.
func TestTrustedProxyGRPC(t *testing.T) {
	addr, _ := startGRPCServer(t, mdService{})
	forEachEngine(t, func(t *testing.T, native bool) {
		for _, trusted := range []bool{true, false} {
			t.Run(map[bool]string{true: "trusted", false: "untrusted"}[trusted], func(t *testing.T) {
				cfg := grpcRouteConfig(PoolConfig{Upstreams: []string{addr}}, RouteConfig{RateLimit: &RateLimitConfig{Key: "ip", Rate: 0.001, Burst: 1}}, native)
				if trusted {
					cfg.TrustedProxies = []string{"127.0.0.1"}
				}
				srv, buf := startLoggedLB(t, cfg)
				client := dialLB(t, srv.Addr())
				call := func(xff string) (metadata.MD, error) {
					ctx := metadata.AppendToOutgoingContext(context.Background(),
						"x-forwarded-proto", "https", "x-forwarded-host", "public.example", "x-forwarded-for", xff)
					var hdr metadata.MD
					_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
					return hdr, err
				}
				hdr, err := call("203.0.113.9")
				require.NoError(t, err)
				if trusted {
					require.Equal(t, []string{"https"}, hdr.Get("seen-x-forwarded-proto"))
					require.Equal(t, []string{"203.0.113.9, 203.0.113.9"}, hdr.Get("seen-x-forwarded-for"))
				} else {
					require.Equal(t, []string{"http"}, hdr.Get("seen-x-forwarded-proto"))
					require.Equal(t, []string{"203.0.113.9, 127.0.0.1"}, hdr.Get("seen-x-forwarded-for"))
				}
				require.Equal(t, []string{srv.Addr()}, hdr.Get("seen-x-forwarded-host"), "never the client's")
				_, err = call("203.0.113.9")
				require.Equal(t, codes.ResourceExhausted, status.Code(err))
				_, err = call("198.51.100.4")
				if trusted {
					require.NoError(t, err, "another client behind the trusted proxy")
				} else {
					require.Equal(t, codes.ResourceExhausted, status.Code(err))
				}
				var lines []map[string]any
				require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 3 }, 5*time.Second, 10*time.Millisecond)
				if trusted {
					require.Equal(t, "203.0.113.9", lines[0]["client"])
					require.Equal(t, "198.51.100.4", lines[2]["client"])
				} else {
					require.NotContains(t, lines[0], "client")
				}
			})
		}
	})
}

// FuzzProxyTrustClient: X-Forwarded-For is whatever the client wrote
// (left of the trusted hops). The client found is the first hop from the
// right that is not a trusted proxy; a hop that is no address, or the
// end of the list, gives the last trusted one (the peer when there is
// none): checked against a plain split of the same values.
func FuzzProxyTrustClient(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "1.2.3.4, 10.0.0.1", "[::1]:80,,", "x, 10.0.0.2", ",", "::ffff:10.1.2.3"} {
		f.Add(s, "10.2.2.2")
	}
	trust := newProxyTrust([]string{"10.0.0.0/8", "::1"})
	f.Fuzz(func(t *testing.T, xff, second string) {
		peer := netip.MustParseAddr("10.1.1.1")
		got := trust.client(peer, []string{xff, second})
		want := peer
		hops := strings.Split(xff+","+second, ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop := strings.TrimSpace(hops[i])
			if hop == "" {
				continue
			}
			a, ok := hopAddr(hop)
			if !ok {
				break
			}
			want = a.Unmap()
			if !trust.trusts(a) {
				break
			}
		}
		require.Equal(t, want, got, "%q, %q", xff, second)
	})
}
