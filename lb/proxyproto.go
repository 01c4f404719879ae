package lb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
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
// rate limits with key ip, the access log and trusted_proxies see. Where
// a version 2 header says the balancer terminated the client's TLS, the
// requests' X-Forwarded-Proto is https (balancerTLS).
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

// proxyHeader is what a PROXY protocol header says.
type proxyHeader struct {
	len int // its length in bytes
	// client is the client's address, invalid for version 2's LOCAL
	// command (the balancer's own connection, as its health checks are):
	// the connection's own peer then stands.
	client netip.AddrPort
	// tls: the client reached the balancer over TLS, which the balancer
	// terminated (version 2's PP2_TYPE_SSL with PP2_CLIENT_SSL, as
	// HAProxy's send-proxy-v2-ssl sends): its requests were https.
	tls bool
}

// parseProxyHeader reads a PROXY protocol header at the start of b.
// errProxyHeaderShort says b holds only the start of a header that may
// still be valid: read more. Any other error refuses the connection, and
// errProxyNoClient does so for a relayed connection whose client the
// header does not name (version 1's UNKNOWN; version 2 with no TCP
// address): the spec would have the balancer's address stand, and the
// requests of every such client would then count as the balancer's (rate
// limits with key ip, the logs).
func parseProxyHeader(b []byte) (proxyHeader, error) {
	switch {
	case len(b) >= len(proxyV2Sig) && string(b[:len(proxyV2Sig)]) == proxyV2Sig:
		return parseProxyV2(b)
	case len(b) < len(proxyV2Sig) && string(b) == proxyV2Sig[:len(b)]:
		return proxyHeader{}, errProxyHeaderShort
	case len(b) >= 6 && string(b[:6]) == "PROXY ":
		return parseProxyV1(b)
	case len(b) < 6 && string(b) == "PROXY "[:len(b)]:
		return proxyHeader{}, errProxyHeaderShort
	}
	return proxyHeader{}, errors.New("the connection does not begin with a PROXY protocol header")
}

// parseProxyV1 reads "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".
func parseProxyV1(b []byte) (proxyHeader, error) {
	var none proxyHeader
	end := bytes.Index(b[:min(len(b), proxyV1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= proxyV1Max || bytes.IndexByte(b, '\n') >= 0 {
			return none, errors.New("PROXY v1 header: no CRLF within 107 bytes")
		}
		return none, errProxyHeaderShort
	}
	if bytes.IndexByte(b[:end], '\n') >= 0 {
		// Refused even in an UNKNOWN line's ignored part: whether a line
		// is valid does not then depend on how much of it was read.
		return none, errors.New("PROXY v1 header: a bare LF before its CRLF")
	}
	f := bytes.Split(b[6:end], []byte(" "))
	if string(f[0]) == "UNKNOWN" {
		return none, errProxyNoClient
	}
	if len(f) != 5 || string(f[0]) != "TCP4" && string(f[0]) != "TCP6" {
		return none, fmt.Errorf("PROXY v1 header: %q is not TCP4, TCP6 or UNKNOWN with two addresses and two ports", b[:end])
	}
	four := string(f[0]) == "TCP4"
	var addrs [2]netip.Addr
	for i, s := range f[1:3] {
		a, err := netip.ParseAddr(string(s))
		if err != nil || a.Zone() != "" || a.Is4() != four {
			return none, fmt.Errorf("PROXY v1 header: %q is not an %s address", s, f[0])
		}
		addrs[i] = a
	}
	var ports [2]uint16
	for i, s := range f[3:5] {
		p, ok := proxyV1Port(s)
		if !ok {
			return none, fmt.Errorf("PROXY v1 header: %q is not a port", s)
		}
		ports[i] = p
	}
	// An IPv4 client of a dual-stack balancer, as Go reports one itself.
	return proxyHeader{len: end + 2, client: netip.AddrPortFrom(addrs[0].Unmap(), ports[0])}, nil
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
func parseProxyV2(b []byte) (proxyHeader, error) {
	var none proxyHeader
	if len(b) < proxyV2Fixed {
		return none, errProxyHeaderShort
	}
	verCmd, fam := b[12], b[13]
	n := proxyV2Len(b)
	if verCmd>>4 != 2 {
		return none, fmt.Errorf("PROXY v2 header: version %d", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd > 1 {
		return none, fmt.Errorf("PROXY v2 header: command %d is neither LOCAL nor PROXY", cmd)
	}
	if len(b) < n {
		return none, errProxyHeaderShort
	}
	body := b[proxyV2Fixed:n]
	if cmd == 0 {
		return proxyHeader{len: n}, nil // LOCAL: the balancer's own connection
	}
	h := proxyHeader{len: n}
	var addrLen int
	switch fam {
	case 0x11: // TCP over IPv4: source, destination, their ports
		if addrLen = 12; len(body) < addrLen {
			return none, errors.New("PROXY v2 header: TCP over IPv4 with fewer than 12 bytes of addresses")
		}
		h.client = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
	case 0x21: // TCP over IPv6
		if addrLen = 36; len(body) < addrLen {
			return none, errors.New("PROXY v2 header: TCP over IPv6 with fewer than 36 bytes of addresses")
		}
		h.client = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
	case 0x00, 0x31, 0x32, 0x12, 0x22: // UNSPEC, a UNIX socket, UDP
		return none, errProxyNoClient
	default:
		return none, fmt.Errorf("PROXY v2 header: unknown address family and protocol 0x%02x", fam)
	}
	// The type-length-value fields after the addresses. Two are read: a
	// checksum, and whether the client came over TLS; the rest (ALPN, the
	// authority, a cloud's connection or endpoint ids) are not used.
	for tlvs := body[addrLen:]; len(tlvs) > 0; {
		if len(tlvs) < 3 || len(tlvs) < 3+int(binary.BigEndian.Uint16(tlvs[1:3])) {
			return none, errors.New("PROXY v2 header: a TLV runs past the header's end")
		}
		typ, v := tlvs[0], tlvs[3:3+int(binary.BigEndian.Uint16(tlvs[1:3]))]
		switch typ {
		case proxyTLVCRC32C:
			if len(v) != 4 {
				return none, fmt.Errorf("PROXY v2 header: a CRC32C of %d bytes", len(v))
			}
			if !proxyV2ChecksumOK(b[:n], len(b[:n])-len(tlvs)+3) {
				return none, errors.New("PROXY v2 header: its CRC32C does not match")
			}
		case proxyTLVSSL:
			// client (a bit field), verify (4 bytes), sub-TLVs (the
			// version, cipher, certificate names) not used.
			if len(v) < 5 {
				return none, fmt.Errorf("PROXY v2 header: an SSL TLV of %d bytes", len(v))
			}
			h.tls = v[0]&proxySSLClientSSL != 0
		}
		tlvs = tlvs[3+len(v):]
	}
	return h, nil
}

// The TLVs parseProxyV2 reads, and PP2_CLIENT_SSL, the SSL TLV's bit for
// a client that connected over TLS.
const (
	proxyTLVCRC32C    = 0x03
	proxyTLVSSL       = 0x20
	proxySSLClientSSL = 0x01
)

// proxyV2ChecksumOK checks a header's PP2_TYPE_CRC32C, whose 4-byte value
// is at at: the CRC32c (Castagnoli) of the whole header with that value
// zeroed.
func proxyV2ChecksumOK(header []byte, at int) bool {
	want := binary.BigEndian.Uint32(header[at : at+4])
	crc := crc32.Update(0, castagnoli, header[:at])
	crc = crc32.Update(crc, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(crc, castagnoli, header[at+4:]) == want
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// proxiedConn is a client connection whose PROXY header named its client:
// RemoteAddr reports that client; everything else is the socket's (the
// fast loop's descriptor I/O, CloseWrite, ReadFrom).
type proxiedConn struct {
	*net.TCPConn
	client net.Addr
	tls    bool // proxyHeader.tls
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.client }

// balancerTLS reports whether a layer-4 balancer in front of the lb
// terminated the TLS of nc's client: the listener's forwarded_proto says
// so for all of them, or the connection's PROXY header for this one.
// (Where the lb terminates TLS itself, the request's TLS says it.)
func balancerTLS(forwardedProto string, nc net.Conn) bool {
	if forwardedProto == "https" {
		return true
	}
	if pc, ok := nc.(*prefixConn); ok {
		nc = pc.Conn
	}
	pc, ok := nc.(*proxiedConn)
	return ok && pc.tls
}

// clientTLS reports whether r's client spoke TLS, to the lb or to a
// balancer in front of it (balancerTLS): the https of X-Forwarded-Proto.
func clientTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if x := connCtxOf(r.Context()); x != nil {
		return x.balancerTLS
	}
	tls, _ := r.Context().Value(balancerTLSKey{}).(bool)
	return tls
}
