package lb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// The PROXY protocol (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt)
// is how a layer-4 load balancer in front of the lb (AWS NLB, GCP's TCP
// proxy, HAProxy in TCP mode, a Kubernetes ingress controller) passes on
// the client's address: a header before the connection's first byte,
// text (version 1) or binary (version 2). A listener with proxy_protocol
// reads it from every connection (sniffer.sniff), which then reports the
// client's address as its RemoteAddr (proxiedConn): what X-Forwarded-For,
// rate limits with key ip, the access log and trusted_proxies see.
//
// The header is parsed here rather than with a library's connection
// wrapper: those read through a buffer of their own, while the fast loop
// reads and writes the socket's descriptor directly (rawconn_unix.go)
// and must find the request's first byte there or in the sniffer's
// prefix, which is what it is given.

// proxyV2Len is the length of the version 2 header b begins with, once
// its fixed part is in; 0 otherwise.
func proxyV2Len(b []byte) int {
	if len(b) < proxyV2Fixed || string(b[:len(proxyV2Sig)]) != proxyV2Sig {
		return 0
	}
	return proxyV2Fixed + int(binary.BigEndian.Uint16(b[14:16]))
}

// proxyV2Sig starts every version 2 header.
const proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

const (
	proxyV1Max       = 107 // the longest version 1 line, CRLF included
	proxyV2Fixed     = 16  // signature, version and command, family, length
	proxyV2MaxHeader = proxyV2Fixed + 0xffff
)

var (
	errProxyHeaderShort = errors.New("PROXY header incomplete")
	errProxyNoClient    = errors.New("the PROXY header names no TCP client (UNKNOWN, or another address family)")
)

// parseProxyHeader reads a PROXY protocol header at the start of b. It
// returns the header's length and the client's address, which is invalid
// for version 2's LOCAL command (the balancer's own connection, as its
// health checks are): the connection's own peer then stands.
// errProxyHeaderShort says b holds only the start of a header that may
// still be valid: read more. Any other error refuses the connection, and
// errProxyNoClient does so for a relayed connection whose client the
// header does not name (version 1's UNKNOWN; version 2 with no TCP
// address): the spec would have the balancer's address stand, and the
// requests of every such client would then count as the balancer's (rate
// limits with key ip, the logs).
func parseProxyHeader(b []byte) (n int, client netip.AddrPort, err error) {
	switch {
	case len(b) >= len(proxyV2Sig) && string(b[:len(proxyV2Sig)]) == proxyV2Sig:
		return parseProxyV2(b)
	case len(b) < len(proxyV2Sig) && string(b) == proxyV2Sig[:len(b)]:
		return 0, client, errProxyHeaderShort
	case len(b) >= 6 && string(b[:6]) == "PROXY ":
		return parseProxyV1(b)
	case len(b) < 6 && string(b) == "PROXY "[:len(b)]:
		return 0, client, errProxyHeaderShort
	}
	return 0, client, errors.New("the connection does not begin with a PROXY protocol header")
}

// parseProxyV1 reads "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".
func parseProxyV1(b []byte) (int, netip.AddrPort, error) {
	var none netip.AddrPort
	end := bytes.Index(b[:min(len(b), proxyV1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= proxyV1Max || bytes.IndexByte(b, '\n') >= 0 {
			return 0, none, errors.New("PROXY v1 header: no CRLF within 107 bytes")
		}
		return 0, none, errProxyHeaderShort
	}
	if bytes.IndexByte(b[:end], '\n') >= 0 {
		// Refused even in an UNKNOWN line's ignored part: whether a line
		// is valid does not then depend on how much of it was read.
		return 0, none, errors.New("PROXY v1 header: a bare LF before its CRLF")
	}
	n := end + 2
	f := bytes.Split(b[6:end], []byte(" "))
	if string(f[0]) == "UNKNOWN" {
		return 0, none, errProxyNoClient
	}
	if len(f) != 5 || string(f[0]) != "TCP4" && string(f[0]) != "TCP6" {
		return 0, none, fmt.Errorf("PROXY v1 header: %q is not TCP4, TCP6 or UNKNOWN with two addresses and two ports", b[:end])
	}
	four := string(f[0]) == "TCP4"
	var addrs [2]netip.Addr
	for i, s := range f[1:3] {
		a, err := netip.ParseAddr(string(s))
		if err != nil || a.Zone() != "" || a.Is4() != four {
			return 0, none, fmt.Errorf("PROXY v1 header: %q is not an %s address", s, f[0])
		}
		addrs[i] = a
	}
	var ports [2]uint16
	for i, s := range f[3:5] {
		p, ok := proxyV1Port(s)
		if !ok {
			return 0, none, fmt.Errorf("PROXY v1 header: %q is not a port", s)
		}
		ports[i] = p
	}
	// An IPv4 client of a dual-stack balancer, as Go reports one itself.
	return n, netip.AddrPortFrom(addrs[0].Unmap(), ports[0]), nil
}

// proxyV1Port reads a decimal port: 0 to 65535, no sign, no leading zero.
func proxyV1Port(s []byte) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	p, err := strconv.ParseUint(string(s), 10, 16)
	return uint16(p), err == nil
}

// parseProxyV2 reads a binary header; b starts with proxyV2Sig.
func parseProxyV2(b []byte) (int, netip.AddrPort, error) {
	var none netip.AddrPort
	if len(b) < proxyV2Fixed {
		return 0, none, errProxyHeaderShort
	}
	verCmd, fam := b[12], b[13]
	n := proxyV2Len(b)
	if verCmd>>4 != 2 {
		return 0, none, fmt.Errorf("PROXY v2 header: version %d", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd > 1 {
		return 0, none, fmt.Errorf("PROXY v2 header: command %d is neither LOCAL nor PROXY", cmd)
	}
	if len(b) < n {
		return 0, none, errProxyHeaderShort
	}
	body := b[proxyV2Fixed:n]
	if cmd == 0 {
		return n, none, nil // LOCAL: the balancer's own connection
	}
	var client netip.AddrPort
	switch fam {
	case 0x11: // TCP over IPv4: source, destination, their ports
		if len(body) < 12 {
			return 0, none, errors.New("PROXY v2 header: TCP over IPv4 with fewer than 12 bytes of addresses")
		}
		client = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return 0, none, errors.New("PROXY v2 header: TCP over IPv6 with fewer than 36 bytes of addresses")
		}
		client = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
	case 0x00, 0x31, 0x32, 0x12, 0x22: // UNSPEC, a UNIX socket, UDP
		return 0, none, errProxyNoClient
	default:
		return 0, none, fmt.Errorf("PROXY v2 header: unknown address family and protocol 0x%02x", fam)
	}
	// The type-length-value fields after the addresses (a balancer's
	// connection or endpoint ids) are not used.
	return n, client, nil
}

// proxiedConn is a client connection whose PROXY header named its client:
// RemoteAddr reports that client; everything else is the socket's (the
// fast loop's descriptor I/O, CloseWrite, ReadFrom).
type proxiedConn struct {
	*net.TCPConn
	client net.Addr
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.client }
