package lb

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newRequest(t testing.TB, method, url, contentType string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func TestRouteMatching(t *testing.T) {
	rt := &router{}
	for _, rc := range []RouteConfig{
		{Name: "matcher", Match: MatchConfig{GRPCServices: []string{"vigil.matcher.v1.MatcherService"}}},
		{Name: "grpc", Match: MatchConfig{GRPC: true}},
		{Name: "api-host", Match: MatchConfig{Hosts: []string{"api.example.com", "*.tenants.example.com"}, PathPrefix: "/v1/"}},
		{Name: "static", Match: MatchConfig{PathPrefix: "/static/"}},
		{Name: "catchall", Match: MatchConfig{PathPrefix: "/"}},
	} {
		rt.routes = append(rt.routes, &route{name: rc.Name, matcher: newRouteMatcher(rc.Match)})
	}
	cases := []struct {
		name, method, url, ct, want string
	}{
		{"grpc service", "POST", "http://lb/vigil.matcher.v1.MatcherService/Search", "application/grpc", "matcher"},
		{"grpc+proto service", "POST", "http://lb/vigil.matcher.v1.MatcherService/Search", "application/grpc+proto", "matcher"},
		{"other grpc service", "POST", "http://lb/vigil.backend.v1.BackendService/Get", "application/grpc", "grpc"},
		{"service name prefix is not the service", "POST", "http://lb/vigil.matcher.v1.MatcherServiceX/Search", "application/grpc", "grpc"},
		{"not grpc content type", "POST", "http://lb/vigil.matcher.v1.MatcherService/Search", "application/grpcx", "catchall"},
		{"grpc-web is not grpc", "POST", "http://lb/vigil.matcher.v1.MatcherService/Search", "application/grpc-web", "catchall"},
		{"exact host", "GET", "http://api.example.com/v1/persons", "", "api-host"},
		{"host with port and case", "GET", "http://API.Example.com:8080/v1/persons", "", "api-host"},
		{"wildcard host", "GET", "http://acme.tenants.example.com/v1/x", "", "api-host"},
		{"deep wildcard host", "GET", "http://a.b.tenants.example.com/v1/x", "", "api-host"},
		{"wildcard needs a label", "GET", "http://tenants.example.com/v1/x", "", "catchall"},
		{"fully qualified host", "GET", "http://api.example.com./v1/persons", "", "api-host"},
		{"fully qualified host with port", "GET", "http://api.example.com.:8080/v1/persons", "", "api-host"},
		{"fully qualified wildcard host", "GET", "http://acme.tenants.example.com./v1/x", "", "api-host"},
		{"host right, path wrong", "GET", "http://api.example.com/v2/persons", "", "catchall"},
		{"prefix", "GET", "http://other/static/app.js", "", "static"},
		{"catchall", "GET", "http://other/", "", "catchall"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rt.match(newRequest(t, tc.method, tc.url, tc.ct))
			require.NotNil(t, got)
			require.Equal(t, tc.want, got.name)
		})
	}
	noCatchall := &router{routes: rt.routes[:4]}
	require.Nil(t, noCatchall.match(newRequest(t, "GET", "http://x/nothing", "")))
}

// FuzzRouteMatch checks the matcher against its definition on arbitrary
// hosts, paths and content types: it never panics, and a match implies
// every configured condition holds when checked the slow, obvious way.
func FuzzRouteMatch(f *testing.F) {
	f.Add("api.example.com", "/v1/x", "", "api.example.com", "/v1/", false, "")
	f.Add("a.b.example.com:443", "/pkg.S/M", "application/grpc", "*.example.com", "/", true, "pkg.S")
	f.Add("[::1]:8080", "/", "application/grpc+proto", "", "", true, "")
	f.Add("EXAMPLE.com", "//x", "application/grpc;x", "example.com", "//", false, "x")
	f.Add("", "", "", "*.", "", false, "")
	f.Fuzz(func(t *testing.T, host, path, ct, hostPattern, prefix string, grpc bool, service string) {
		m := MatchConfig{PathPrefix: prefix, GRPC: grpc}
		if hostPattern != "" {
			m.Hosts = []string{hostPattern}
		}
		if service != "" {
			m.GRPCServices = []string{service}
		}
		rm := newRouteMatcher(m)
		got := rm.matches(host, path, ct)
		if !got {
			return
		}
		require.True(t, strings.HasPrefix(path, prefix))
		if hostPattern != "" {
			h := strings.ToLower(stripPort(host))
			p := strings.ToLower(hostPattern)
			if wild, ok := strings.CutPrefix(p, "*."); ok {
				require.True(t, strings.HasSuffix(h, "."+wild) && len(h) > len(wild)+1, "host %q vs %q", host, hostPattern)
			} else {
				require.Equal(t, p, h)
			}
		}
		if grpc || service != "" {
			require.True(t, strings.HasPrefix(ct, "application/grpc"))
		}
		if service != "" {
			require.True(t, strings.HasPrefix(path, "/"+service+"/"), "path %q service %q", path, service)
		}
	})
}

func BenchmarkRouteMatch(b *testing.B) {
	rt := &router{}
	for _, rc := range []RouteConfig{
		{Name: "matcher", Match: MatchConfig{GRPCServices: []string{"vigil.matcher.v1.MatcherService"}}},
		{Name: "grpc", Match: MatchConfig{GRPC: true}},
		{Name: "api", Match: MatchConfig{Hosts: []string{"api.example.com"}, PathPrefix: "/v1/"}},
		{Name: "catchall", Match: MatchConfig{PathPrefix: "/"}},
	} {
		rt.routes = append(rt.routes, &route{name: rc.Name, matcher: newRouteMatcher(rc.Match)})
	}
	r := newRequest(b, "GET", "http://www.example.com/index.html", "")
	b.ReportAllocs()
	for b.Loop() {
		if rt.match(r) == nil {
			b.Fatal("no match")
		}
	}
}
