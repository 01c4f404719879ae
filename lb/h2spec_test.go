package lb

import (
	"bytes"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestH2SpecConformance runs h2spec (pinned in tools/go.mod), the HTTP/2
// conformance suite, against both ways into the lb's own HTTP/2 engine:
// a TLS listener, and the h2c connections of a native_grpc listener.
// Its strict cases included, every one must pass, but one: on the h2c
// port, an invalid connection preface is taken for what it looks like,
// an HTTP/1.1 request, since that port speaks both.
func TestH2SpecConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs h2spec")
	}
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(make([]byte, 16<<10)) // past the small windows some cases set

	})
	certFile, keyFile, _ := writeCert(t, t.TempDir(), 1)
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{
			{Name: "tls", Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}},
			{Name: "h2c", Address: "127.0.0.1:0", H2C: true, NativeGRPC: true},
		},
		Routes: []RouteConfig{{Name: "web", Pool: "web"}},
		Pools:  []PoolConfig{{Name: "web", Upstreams: addrs(b)}},
	})
	modfile, err := filepath.Abs("../tools/go.mod")
	require.NoError(t, err)
	for _, tc := range []struct {
		listener string
		args     []string
		mayFail  map[string]bool // package/title
	}{
		{"tls", []string{"-t", "-k"}, nil},
		{"h2c", nil, map[string]bool{"http2/3.5/Sends invalid connection preface": true}},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			_, port, err := net.SplitHostPort(srv.Addrs()[tc.listener])
			require.NoError(t, err)
			report := filepath.Join(t.TempDir(), "h2spec.xml")
			args := append([]string{"tool", "-modfile=" + modfile, "h2spec", "-h", "127.0.0.1", "-p", port, "-S", "-o", "5", "-j", report}, tc.args...)
			cmd := exec.Command("go", args...)
			start := time.Now()
			out, runErr := cmd.CombinedOutput() // exits 1 when any case fails
			data, err := os.ReadFile(report)
			require.NoError(t, err, "h2spec wrote no report (%v): %s", runErr, out)
			var suites struct {
				Suites []struct {
					Cases []struct {
						Package string    `xml:"package,attr"`
						Title   string    `xml:"classname,attr"`
						Failure *string   `xml:"failure"`
						Error   *string   `xml:"error"`
						Skipped *struct{} `xml:"skipped"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			// Error texts may quote the bytes a case got, control bytes
			// included, which XML cannot hold.
			data = bytes.Map(func(r rune) rune {
				if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
					return '?'
				}
				return r
			}, data)
			require.NoError(t, xml.Unmarshal(data, &suites))
			n := 0
			for _, s := range suites.Suites {
				for _, c := range s.Cases {
					n++
					name := c.Package + "/" + c.Title
					if (c.Failure != nil || c.Error != nil) && !tc.mayFail[name] {
						t.Errorf("%s failed", name)
					}
					if c.Skipped != nil {
						t.Errorf("%s skipped", name)
					}
				}
			}
			require.GreaterOrEqual(t, n, 146, "h2spec ran too few cases: %s", out)
			t.Logf("%d cases in %v", n, time.Since(start).Round(time.Millisecond))
		})
	}
}
