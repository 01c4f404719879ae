package auth

import (
	"context"
	"net"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/vigilhq/vigil/platform/rpc"
)

// MetadataAPIKey is the alternative header for API keys ("x-api-key: <key>").
const MetadataAPIKey = "x-api-key"

// maxCredentialLen bounds what is looked up at all.
const maxCredentialLen = 512

// Credential returns the bearer credential of an incoming call: "authorization: Bearer
// <token>", else "x-api-key: <token>". Empty when there is none.
func Credential(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(rpc.MetadataAuthorization) {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	if v := md.Get(MetadataAPIKey); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// workspaceHeader returns the x-vigil-workspace-id an internal caller names.
func workspaceHeader(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(rpc.MetadataWorkspace); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// PeerAddr is where a call came from: the transport peer, or, when that peer is on
// loopback (the gateway or the lb in front of us), the client address our own proxies
// recorded in x-forwarded-for. Each proxy appends the address it saw, so the entries a
// client sent itself come first: walking from the right past our loopback hops, the
// first other address is the one our outermost proxy saw, and cannot be forged.
func PeerAddr(ctx context.Context) string {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if addr != "bufconn" && ip != nil && !ip.IsLoopback() {
		return addr
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var hops []string
	for _, v := range md.Get("x-forwarded-for") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := ""
	for i := len(hops) - 1; i >= 0; i-- {
		hop := net.ParseIP(strings.TrimSpace(hops[i]))
		if hop == nil {
			break
		}
		client = hop.String()
		if !hop.IsLoopback() {
			break
		}
	}
	if client != "" {
		return client
	}
	return addr
}
