package lb

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// freezableProxy forwards TCP connections to target. freeze makes the
// connections open so far go silent both ways without closing, as a
// vanished host or a dropped NAT entry does; later ones are unaffected.
func freezableProxy(t *testing.T, target string) (addr string, freeze func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var frozen []chan struct{}
	var conns []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	pipe := func(dst, src net.Conn, stop chan struct{}) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-stop:
				<-done // silent from now on, until the test ends
				return
			default:
			}
			if n > 0 {
				dst.Write(buf[:n])
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			stop := make(chan struct{})
			mu.Lock()
			frozen = append(frozen, stop)
			conns = append(conns, c, up)
			mu.Unlock()
			go pipe(up, c, stop)
			go pipe(c, up, stop)
		}
	}()
	return ln.Addr().String(), func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range frozen {
			close(ch)
		}
		frozen = nil
	}
}

// keepaliveBackend is an echo server that allows frequent pings, as
// vigil's services do (grpc-go's default would send GOAWAY).
func keepaliveBackend(t *testing.T) string {
	addr, _ := startGRPCServer(t, &echoService{name: "ka"},
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Millisecond, PermitWithoutStream: true}))
	return addr
}

func echoOnce(t *testing.T, stream grpc.BidiStreamingClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse], body string) {
	t.Helper()
	require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}}))
	res, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, body, string(res.GetPayload().GetBody()))
}

// TestH2RelayKeepaliveFailsCallsOnADeadUpstream: an upstream connection
// that goes silent under an open stream is pinged, found dead and closed,
// and the stream fails with UNAVAILABLE instead of hanging; the next call
// gets a fresh connection. With keepalive off the same stream hangs.
func TestH2RelayKeepaliveFailsCallsOnADeadUpstream(t *testing.T) {
	for _, on := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			proxy, freeze := freezableProxy(t, keepaliveBackend(t))
			ka := KeepaliveConfig{Time: Duration(50 * time.Millisecond), Timeout: Duration(100 * time.Millisecond)}
			if !on {
				ka.Off = true
			}
			srv, _ := startLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{proxy}, Keepalive: ka}, RouteConfig{Retries: ptr(0)}, true))
			client := dialLB(t, srv.Addr())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := client.FullDuplexCall(ctx)
			require.NoError(t, err)
			echoOnce(t, stream, "before")

			freeze()
			start := time.Now()
			recvErr := make(chan error, 1)
			go func() { _, err := stream.Recv(); recvErr <- err }()
			select {
			case err := <-recvErr:
				require.True(t, on, "with keepalive off the stream ended: %v", err)
				require.Equal(t, codes.Unavailable, status.Code(err), "got %v", err)
				require.Less(t, time.Since(start), 2*time.Second)
			case <-time.After(1500 * time.Millisecond):
				require.False(t, on, "the stream still hangs on the dead connection")
				return
			}

			// The dead connection is gone: a new call dials afresh.
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("after")}})
			require.NoError(t, err)
			require.Equal(t, "after", string(res.GetPayload().GetBody()))
		})
	}
}

// TestH2RelayKeepaliveKeepsAnsweringConnections: a stream that stays
// silent for many keepalive periods on a live upstream is pinged and
// answered, and survives.
func TestH2RelayKeepaliveKeepsAnsweringConnections(t *testing.T) {
	srv, _ := startLB(t, grpcRouteConfig(PoolConfig{
		Upstreams: []string{keepaliveBackend(t)},
		Keepalive: KeepaliveConfig{Time: Duration(20 * time.Millisecond), Timeout: Duration(50 * time.Millisecond)},
	}, RouteConfig{}, true))
	client := dialLB(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	require.NoError(t, err)
	echoOnce(t, stream, "first")
	time.Sleep(600 * time.Millisecond) // ~30 periods of silence
	echoOnce(t, stream, "second")
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)
}
