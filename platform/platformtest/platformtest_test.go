package platformtest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/testkit/testsvc"
	"github.com/vigilhq/vigil/platform/cache"
	"github.com/vigilhq/vigil/platform/kafka"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/platform/platformtest"
	"github.com/vigilhq/vigil/platform/rpc"
)

var testComponent = fx.Module("testcomponent",
	fx.Provide(rpc.AsService(func() rpc.Service { return testsvc.New().Service() })),
)

func TestModuleValidates(t *testing.T) {
	require.NoError(t, fx.ValidateApp(platformtest.Module, testComponent))
}

// TestStartRunsEverythingEmbedded starts the platform and uses each embedded part: a
// Kafka message and an S3 object make a round trip, the cache answers, and the
// component is served with health and through the gateway.
func TestStartRunsEverythingEmbedded(t *testing.T) {
	var (
		k *kafka.Cluster
		s *objstore.Store
		c *cache.Cache
	)
	app := platformtest.Start(t, testComponent, fx.Populate(&k, &s, &c))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	resp, err := healthpb.NewHealthClient(app.GRPC).Check(ctx, &healthpb.HealthCheckRequest{Service: testsvc.Name})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)

	require.True(t, k.Embedded())
	require.NoError(t, k.CreateTopics(ctx, kafka.Topic{Name: "vigil.roundtrip.v1"}))
	w := k.Writer("vigil.roundtrip.v1")
	require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Key: []byte("k"), Value: []byte("event")}))
	require.NoError(t, w.Close())
	r := k.Reader(kafkago.ReaderConfig{GroupID: "roundtrip", Topic: "vigil.roundtrip.v1", MaxWait: 100 * time.Millisecond})
	m, err := r.FetchMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "event", string(m.Value))
	require.NoError(t, r.CommitMessages(ctx, m))
	require.NoError(t, r.Close())

	require.NotNil(t, s.Embedded())
	require.NoError(t, s.Put(ctx, "frames/1.jpg", bytes.NewReader([]byte("jpeg")), 4, "image/jpeg"))
	rc, _, err := s.Get(ctx, "frames/1.jpg")
	require.NoError(t, err)
	got, _ := io.ReadAll(rc)
	rc.Close()
	require.Equal(t, "jpeg", string(got))

	require.NoError(t, c.Set(ctx, "k", []byte("v"), time.Minute))
	v, ok, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v", string(v))

	hresp, err := http.Get(app.HTTPBase + "/healthz?service=" + testsvc.Name)
	require.NoError(t, err)
	hresp.Body.Close()
	require.Equal(t, http.StatusOK, hresp.StatusCode)

	// The production authorizer guards the process: a method outside the access table
	// is refused even to the internal token.
	_, err = testpb.NewTestServiceClient(app.GRPC).EmptyCall(ctx, &testpb.Empty{}, platformtest.InternalCredentials())
	require.Error(t, err)
	require.Contains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented}, status.Code(err))
}
