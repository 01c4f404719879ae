package lb

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"
)

// upstreamTransport is what a Pool sends requests through.
type upstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newTransport builds the connection pool a Pool uses for its upstreams:
// HTTP/1.1 pools get the synchronous fast path for bodyless requests in
// front of net/http's Transport, HTTP/2 pools net/http's Transport alone.
func newTransport(cfg PoolConfig) upstreamTransport {
	std := newStdTransport(cfg)
	if cfg.Protocol == "http1" {
		return newH1Transport(cfg, std)
	}
	return std
}

// newStdTransport builds net/http's Transport for a pool.
// One transport serves every upstream of the pool; it keeps up to
// MaxIdleConnsPerUpstream keep-alive connections per address (HTTP/1.1)
// or multiplexes streams over few connections (HTTP/2).
func newStdTransport(cfg PoolConfig) *http.Transport {
	dialer := &net.Dialer{Timeout: time.Duration(cfg.DialTimeout), KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if cfg.Protocol == "http1" {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dialer.DialContext(ctx, network, addr)
			if tc, ok := nc.(*net.TCPConn); ok && err == nil {
				return pooledReadFromConn{tc}, nil
			}
			return nc, err
		}
	}
	t := &http.Transport{
		// Never take a proxy from the environment: the upstreams are ours.
		Proxy:               nil,
		DialContext:         dial,
		MaxIdleConns:        0, // no global cap; the per-host cap governs
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerUpstream,
		IdleConnTimeout:     90 * time.Second,
		// The client negotiates compression with the upstream itself; the
		// proxy must not add Accept-Encoding or decompress.
		DisableCompression:  true,
		WriteBufferSize:     32 << 10,
		ReadBufferSize:      32 << 10,
		TLSHandshakeTimeout: time.Duration(cfg.DialTimeout),
	}
	protocols := new(http.Protocols)
	switch cfg.Protocol {
	case "h2c":
		protocols.SetUnencryptedHTTP2(true)
	case "h2":
		protocols.SetHTTP2(true)
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: cfg.TLSInsecureSkipVerify, NextProtos: []string{"h2"}} //nolint:gosec // opt-in per pool for self-signed upstreams
	default:
		protocols.SetHTTP1(true)
	}
	t.Protocols = protocols
	if ka := cfg.Keepalive; cfg.Protocol != "http1" && ka.enabled() {
		// Allow long-lived gRPC streams and detect dead peers.
		t.HTTP2 = &http.HTTP2Config{
			SendPingTimeout: time.Duration(ka.Time),
			PingTimeout:     time.Duration(ka.Timeout),
		}
	}
	return t
}

// pooledReadFromConn is an HTTP/1.1 upstream connection of net/http's
// transport whose ReadFrom copies through a pooled buffer. The transport
// writes a request body (one the h1Transport leaves to it: larger than
// 16 KiB, or of unknown length) with io.Copy, which reaches the
// connection's ReadFrom once its write buffer is flushed; a TCPConn's,
// with no file or socket to splice from, then copies through a new 32
// KiB buffer: 28 KB of garbage per upload, a quarter of the proxy's user
// time on 256 KiB uploads. The TCPConn's other methods stay: an upgrade
// tunnel half-closes the upstream with its CloseWrite (closeWrite).
type pooledReadFromConn struct{ *net.TCPConn }

func (c pooledReadFromConn) ReadFrom(r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(writeOnly{c.TCPConn}, r, *bp)
}

// writeOnly hides its writer's ReadFrom from io.CopyBuffer, which would
// call it instead of using the buffer given.
type writeOnly struct{ io.Writer }

// urlScheme is the scheme of outbound request URLs for a pool protocol.
func urlScheme(protocol string) string {
	if protocol == "h2" {
		return "https"
	}
	return "http"
}

// transportKey says when a reloaded pool may keep its predecessor's
// transport (and with it the warm connections).
type transportSettings struct {
	Protocol                string
	TLSInsecureSkipVerify   bool
	MaxIdleConnsPerUpstream int
	DialTimeout             Duration
	Keepalive               KeepaliveConfig
}

func transportKey(cfg PoolConfig) transportSettings {
	return transportSettings{
		Protocol:                cfg.Protocol,
		TLSInsecureSkipVerify:   cfg.TLSInsecureSkipVerify,
		MaxIdleConnsPerUpstream: cfg.MaxIdleConnsPerUpstream,
		DialTimeout:             cfg.DialTimeout,
		Keepalive:               cfg.Keepalive,
	}
}
