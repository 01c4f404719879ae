package lb

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestReloadUnderLoadDropsNothing(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	holdOnce := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				close(entered)
				<-release
			}
			w.Write([]byte(name))
		}
	}
	b1, b2 := newBackend(t, "b1", holdOnce("b1")), newBackend(t, "b2", nil)
	b3, b4 := newBackend(t, "b3", nil), newBackend(t, "b4", nil)
	setA := oneRoute(PoolConfig{Upstreams: addrs(b1, b2)}, RouteConfig{})
	setA.Pools[0].Upstreams = addrs(b1) // the held request lands on b1
	srv, base := startLB(t, setA)
	c := newClient(t)

	held := make(chan int, 1)
	go func() { code, _ := get(t, c, base+"/hold", nil); held <- code }()
	<-entered

	lg := startLoad(t, newClient(t), base+"/", 8)
	for i := 0; i < 20; i++ {
		var next *Config
		if i%2 == 0 {
			next = oneRoute(PoolConfig{Upstreams: addrs(b3, b4), Policy: "least_requests"}, RouteConfig{})
		} else {
			next = oneRoute(PoolConfig{Upstreams: addrs(b1, b2), Policy: "p2c_ewma"}, RouteConfig{})
		}
		before := lg.ok.Load()
		require.NoError(t, srv.Reload(next))
		require.Eventually(t, func() bool { return lg.ok.Load() > before+50 }, 10*time.Second, time.Millisecond)
	}
	lg.finish()
	require.Zero(t, lg.failed.Load(), "first error: %v", lg.firstErr.Load())

	// The request that started two generations ago still completes.
	close(release)
	require.Equal(t, http.StatusOK, <-held)

	// The last config (i=19, odd) is b1+b2: nothing goes to b3/b4 now.
	h3, h4 := b3.hits.Load(), b4.hits.Load()
	for i := 0; i < 20; i++ {
		_, body := get(t, c, base+"/", nil)
		require.Contains(t, []string{"b1", "b2"}, body)
	}
	require.Equal(t, h3, b3.hits.Load())
	require.Equal(t, h4, b4.hits.Load())
}

func TestInvalidReloadKeepsOldConfig(t *testing.T) {
	b1 := newBackend(t, "b1", nil)
	reg := prometheus.NewRegistry()
	srv, err := New(oneRoute(PoolConfig{Upstreams: addrs(b1)}, RouteConfig{}), testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + srv.Addr()

	cases := []struct {
		name string
		cfg  *Config
		want string
	}{
		{"unknown pool", &Config{Listeners: []ListenerConfig{{Name: "test", Address: "127.0.0.1:0", H2C: true}}, Routes: []RouteConfig{{Pool: "nope"}}, Pools: []PoolConfig{{Name: "p", Upstreams: []string{"h:1"}}}}, `routes[0].pool: unknown pool "nope"`},
		{"listener change", oneRoute(PoolConfig{Upstreams: addrs(b1)}, RouteConfig{}), "changing listeners needs a restart"},
		{"listener setting change", oneRoute(PoolConfig{Upstreams: addrs(b1)}, RouteConfig{}), "listeners[0] (test): changed"},
	}
	cases[1].cfg.Listeners = append(cases[1].cfg.Listeners, ListenerConfig{Name: "extra", Address: "127.0.0.1:1"})
	// A setting the running listener cannot take (it was ignored, the
	// reload reported ok).
	cases[2].cfg.Listeners[0].SendTimeout = Duration(time.Second)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := srv.Reload(tc.cfg)
			require.ErrorContains(t, err, tc.want)
			_, body := get(t, newClient(t), base+"/", nil)
			require.Equal(t, "b1", body, "old config still serves")
		})
	}
	require.Equal(t, 3.0, counterValue(srv.metrics.reloads.WithLabelValues("error")))
}

// watchedLB starts an lb from a config file that sends everything to up,
// watched by WatchConfig; write(cfgFor(addr)) points the file elsewhere.
func watchedLB(t *testing.T, up string) (srv *Server, base string, write func(string), cfgFor func(string) string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lb.yaml")
	write = func(body string) { require.NoError(t, os.WriteFile(path, []byte(body), 0o600)) }
	cfgFor = func(up string) string {
		return fmt.Sprintf("listeners: [{name: main, address: \"127.0.0.1:0\"}]\npools: [{name: p, upstreams: [%q]}]\nroutes: [{pool: p}]\n", up)
	}
	write(cfgFor(up))
	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	srv, base = startLB(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan error, 1)
	go func() { watchDone <- WatchConfig(ctx, path, srv) }()
	t.Cleanup(func() { cancel(); <-watchDone })
	return srv, base, write, cfgFor
}

func TestWatchConfigReloadsOnFileChangeAndSIGHUP(t *testing.T) {
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	srv, base, write, cfgFor := watchedLB(t, b1.addr())
	c := newClient(t)

	write(cfgFor(b2.addr()))
	require.Eventually(t, func() bool { _, body := get(t, c, base+"/", nil); return body == "b2" }, 10*time.Second, 20*time.Millisecond)

	// A broken file is rejected; b2 keeps serving.
	write("routes: [{pool: missing}]\n")
	require.Eventually(t, func() bool {
		return counterValue(srv.metrics.reloads.WithLabelValues("error")) >= 1
	}, 10*time.Second, 20*time.Millisecond)
	_, body := get(t, c, base+"/", nil)
	require.Equal(t, "b2", body)

	// SIGHUP reloads even without a change. The watcher has provably
	// installed its handler (it performed the reloads above).
	write(cfgFor(b1.addr()))
	require.Eventually(t, func() bool { _, body := get(t, c, base+"/", nil); return body == "b1" }, 10*time.Second, 20*time.Millisecond)
	okBefore := counterValue(srv.metrics.reloads.WithLabelValues("ok"))
	raiseSIGHUP(t)
	require.Eventually(t, func() bool {
		return counterValue(srv.metrics.reloads.WithLabelValues("ok")) > okBefore
	}, 10*time.Second, 10*time.Millisecond)
}

// A content the file had for less than a poll interval (a file being
// rewritten in place, read half-written) is never applied: a change is
// applied once a tick sees it again.
func TestWatchConfigWaitsForTheFileToSettle(t *testing.T) {
	b1, b2, b3 := newBackend(t, "b1", nil), newBackend(t, "b2", nil), newBackend(t, "b3", nil)
	srv, base, write, cfgFor := watchedLB(t, b1.addr())
	c := newClient(t)
	// The watcher's first look applies the file as it is then; its ticks
	// follow each second from about then.
	require.Eventually(t, func() bool { return counterValue(srv.metrics.reloads.WithLabelValues("ok")) == 1 }, 5*time.Second, time.Millisecond)

	// b3's config lasts 900 ms, from half a second on: the first tick
	// sees it, and no other does.
	time.Sleep(watchPollInterval / 2)
	write(cfgFor(b3.addr()))
	time.Sleep(900 * time.Millisecond)
	write(cfgFor(b2.addr()))
	require.Eventually(t, func() bool { _, body := get(t, c, base+"/", nil); return body == "b2" }, 10*time.Second, 20*time.Millisecond)
	require.Zero(t, b3.hits.Load())
	require.Equal(t, 2.0, counterValue(srv.metrics.reloads.WithLabelValues("ok")), "reloads: the watcher's first and b2's, not b3's")
}

// watchedTLSLB starts an lb with one TLS listener on the certificate
// and key files first given, from a config file watched by WatchConfig;
// write(cert, key) rewrites the config for other files, and serial
// reports the serial number of the certificate a handshake gets (0: the
// handshake failed).
func watchedTLSLB(t *testing.T, cert, key string) (write func(cert, key string), serial func() int64) {
	t.Helper()
	b := newBackend(t, "b", nil)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	write = func(cert, key string) {
		require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(
			"listeners: [{name: tls, address: \"127.0.0.1:0\", tls: {cert_file: %q, key_file: %q}}]\npools: [{name: p, upstreams: [%q]}]\nroutes: [{pool: p}]\n",
			cert, key, b.addr())), 0o600))
	}
	write(cert, key)
	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	srv, _ := startLB(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WatchConfig(ctx, path, srv) }()
	t.Cleanup(func() { cancel(); <-done })
	serial = func() int64 {
		c, err := tls.Dial("tcp", srv.Addr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return 0
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	return write, serial
}

// A renewal rewrites a TLS listener's certificate and key files in
// place, with the config unchanged: the watcher reloads, and new
// handshakes get the new certificate. Before, only SIGHUP or a change
// to the config file did.
func TestWatchConfigReloadsRenewedCertificates(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCertFiles(t, dir, 1)
	_, serial := watchedTLSLB(t, certFile, keyFile)
	require.Equal(t, int64(1), serial())
	writeCert(t, dir, 2) // the same two files, rewritten
	require.Eventually(t, func() bool { return serial() == 2 }, 10*time.Second, 50*time.Millisecond, "the renewed certificate is not served")
}

// A config that moves to other certificate files applies even when the
// old ones were deleted first: the watcher used to skip every tick once
// a watched certificate could not be read, the config's change too.
func TestWatchConfigMovesToOtherCertificates(t *testing.T) {
	certFile, keyFile := writeCertFiles(t, t.TempDir(), 1)
	write, serial := watchedTLSLB(t, certFile, keyFile)
	require.Equal(t, int64(1), serial())
	require.NoError(t, os.Remove(certFile))
	require.NoError(t, os.Remove(keyFile))
	write(writeCertFiles(t, t.TempDir(), 2))
	require.Eventually(t, func() bool { return serial() == 2 }, 10*time.Second, 50*time.Millisecond, "the config's move to the new certificate is not applied")
}

// writeCertFiles is writeCert for the file names alone.
func writeCertFiles(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	certFile, keyFile, _ = writeCert(t, dir, serial)
	return certFile, keyFile
}
