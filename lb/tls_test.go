package lb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// writeCert creates a self-signed certificate for 127.0.0.1 with the given
// serial and writes it to dir; it returns the file paths and a pool that
// trusts it.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "vigil-lb-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSListenerNegotiatesH2AndHTTP1AndRotatesCerts(t *testing.T) {
	b := newBackend(t, "b", nil)
	g := newGRPCBackend(t, "g")
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir, 1)
	tlsCfg := func() *Config {
		return &Config{
			Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
			Routes: []RouteConfig{
				{Name: "grpc", Match: MatchConfig{GRPC: true}, Pool: "grpc"},
				{Name: "web", Pool: "web"},
			},
			Pools: []PoolConfig{
				{Name: "grpc", Protocol: "h2c", Upstreams: []string{g.addr}},
				{Name: "web", Upstreams: addrs(b)},
			},
		}
	}
	srv, _ := startLB(t, tlsCfg())
	base := "https://" + srv.Addr()

	for _, tc := range []struct {
		name      string
		h2        bool
		wantProto string
	}{{"h2 by ALPN", true, "HTTP/2.0"}, {"http/1.1", false, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			res, err := (&http.Client{Transport: tr}).Get(base + "/")
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, tc.wantProto, res.Proto)
			require.Equal(t, "b", res.Header.Get("X-Backend"))
		})
	}

	// gRPC over TLS to the lb, h2c behind it.
	cc, err := grpc.NewClient("passthrough:///"+srv.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	require.NoError(t, err)
	defer cc.Close()
	res, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	require.Equal(t, "g", res.GetServerId())

	// Rotate the certificate: new handshakes get serial 2.
	_, _, roots2 := writeCert(t, dir, 2)
	require.NoError(t, srv.Reload(tlsCfg()))
	conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: roots2})
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, int64(2), conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64())
}
