package lb

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// proxyTrust is trusted_proxies: the peers (a cloud load balancer, an
// ingress, a CDN) whose X-Forwarded-For and -Proto the lb believes. A
// request from one of them keeps its X-Forwarded-Proto (the proxy in
// front terminated the client's TLS, or not), and its client is the
// nearest X-Forwarded-For hop that is not a trusted proxy: the address
// rate limits with key ip count it by, the access log's client, and the
// hop the lb appends to X-Forwarded-For (forwardedFor). From any other
// peer the lb sets X-Forwarded-Proto itself, as an edge proxy must (a
// client's own value is whatever it likes). X-Forwarded-Host is always
// the lb's own (outboundHeader). A nil *proxyTrust trusts nobody.
type proxyTrust struct{ prefixes []netip.Prefix }

// newProxyTrust parses trusted_proxies (addresses or CIDR prefixes);
// Validate has checked them. None gives nil.
func newProxyTrust(entries []string) *proxyTrust {
	if len(entries) == 0 {
		return nil
	}
	t := &proxyTrust{}
	for _, e := range entries {
		p, err := parseTrustedProxy(e)
		if err == nil {
			t.prefixes = append(t.prefixes, p)
		}
	}
	return t
}

// parseTrustedProxy reads one trusted_proxies entry: "10.0.0.0/8",
// "2001:db8::/32", or a single address ("192.0.2.7", a /32 or /128).
func parseTrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix: %v", s, err)
		}
		return unmapPrefix(p).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmapPrefix turns ::ffff:10.0.0.0/104 into 10.0.0.0/8, so that an
// IPv4 peer (which Go reports unmapped) matches either spelling.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// trusts reports whether a is a trusted proxy.
func (t *proxyTrust) trusts(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("") // a link-local peer's zone names our interface
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedTrusted reports whether r's X-Forwarded-* fields may be
// believed from a trusted proxy: not on a proxy_protocol listener. There
// the PROXY header names the client, and the trusted peers are layer-4
// balancers, which write no X-Forwarded-For: what a request carries is
// its client's own. A connection a balancer opens for itself (v2 LOCAL,
// which HAProxy also sends for relayed clients it has no address for)
// keeps the balancer's address, which is in trusted_proxies, and a
// client's PROXY address may fall in a trusted range: either would
// otherwise let a client choose the address rate limits and logs see.
func forwardedTrusted(r *http.Request) bool {
	if x := connCtxOf(r.Context()); x != nil {
		return !x.noForwarded
	}
	l, _ := r.Context().Value(listenerKey{}).(*listener)
	return l == nil || !l.cfg.ProxyProtocol
}

// peerAddr is the address of "host:port", or the zero Addr.
func peerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(host)
	return a
}

// client returns the address a request from peer (a trusted proxy)
// came from, by its X-Forwarded-For values (in order; each a list): the
// hops are walked from the right, each written by the proxy the next
// one names, and the first that is not itself trusted is the client.
// All trusted gives the leftmost; a hop that is no address (port and
// brackets allowed) ends the walk at the last trusted one, since a
// trusted proxy wrote it and what is left of it cannot be believed.
func (t *proxyTrust) client(peer netip.Addr, xff []string) netip.Addr {
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			hop := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue // "a,,b" or a trailing comma
			}
			a, ok := hopAddr(hop)
			if !ok {
				return last
			}
			if !t.trusts(a) {
				return a.Unmap()
			}
			last = a.Unmap()
		}
	}
	return last
}

// hopAddr reads an X-Forwarded-For hop: an address, or an address with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies write.
func hopAddr(hop string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr(), true
	}
	if len(hop) > 2 && hop[0] == '[' && hop[len(hop)-1] == ']' {
		if a, err := netip.ParseAddr(hop[1 : len(hop)-1]); err == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}
