package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/cache"
	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/redistest"
)

func uniqueKey() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test:" + hex.EncodeToString(b)
}

// replicas returns two caches that behave like two processes of one deployment.
func replicas(t *testing.T, withRedis bool) (*cache.Cache, *cache.Cache) {
	logger := slog.New(slog.DiscardHandler)
	var a, b *cache.Cache
	var err error
	if withRedis {
		ra, rb := redistest.Client(t), redistest.Client(t)
		a, err = cache.New(context.Background(), ra, pubsub.NewRedis(ra, logger), cache.Options{}, logger)
		require.NoError(t, err)
		b, err = cache.New(context.Background(), rb, pubsub.NewRedis(rb, logger), cache.Options{}, logger)
		require.NoError(t, err)
	} else {
		ps := pubsub.NewMemory(logger)
		a, err = cache.New(context.Background(), nil, ps, cache.Options{}, logger)
		require.NoError(t, err)
		b, err = cache.New(context.Background(), nil, ps, cache.Options{}, logger)
		require.NoError(t, err)
	}
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	return a, b
}

func TestCache(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		name := "in-process"
		if withRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) {
			a, b := replicas(t, withRedis)
			ctx := context.Background()
			key := uniqueKey()

			_, ok, err := a.Get(ctx, key)
			require.NoError(t, err)
			require.False(t, ok)

			require.NoError(t, a.Set(ctx, key, []byte("v1"), time.Minute))
			v, ok, err := a.Get(ctx, key)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "v1", string(v))

			if withRedis {
				// The shared tier serves the other replica, which then holds a local copy.
				v, ok, err = b.Get(ctx, key)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, "v1", string(v))
			} else {
				require.NoError(t, b.Set(ctx, key, []byte("v1"), time.Minute))
			}

			// A replaces the value: B drops its local copy (then, with Redis, reads v2).
			require.NoError(t, a.Set(ctx, key, []byte("v2"), time.Minute))
			require.Eventually(t, func() bool {
				v, ok, err := b.Get(ctx, key)
				require.NoError(t, err)
				if withRedis {
					return ok && string(v) == "v2"
				}
				return !ok
			}, 5*time.Second, 5*time.Millisecond)

			// Delete reaches every replica.
			require.NoError(t, b.Set(ctx, key, []byte("v3"), time.Minute))
			require.NoError(t, a.Delete(ctx, key))
			require.Eventually(t, func() bool {
				_, ok, err := b.Get(ctx, key)
				require.NoError(t, err)
				return !ok
			}, 5*time.Second, 5*time.Millisecond)
			_, ok, err = a.Get(ctx, key)
			require.NoError(t, err)
			require.False(t, ok)

			// TTL.
			require.NoError(t, a.Set(ctx, key, []byte("short"), 50*time.Millisecond))
			require.Eventually(t, func() bool {
				_, ok, err := a.Get(ctx, key)
				require.NoError(t, err)
				return !ok
			}, 5*time.Second, 10*time.Millisecond)

			require.Error(t, a.Set(ctx, key, []byte("x"), 0))
		})
	}
}

func TestLocalTierIsBounded(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	c, err := cache.New(context.Background(), nil, pubsub.NewMemory(logger), cache.Options{MaxEntries: 10}, logger)
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	for i := range 100 {
		require.NoError(t, c.Set(ctx, uniqueKey(), []byte{byte(i)}, time.Minute))
	}
	require.LessOrEqual(t, c.LocalLen(), 10)
	last := uniqueKey()
	require.NoError(t, c.Set(ctx, last, []byte("last"), time.Minute))
	v, ok, err := c.Get(ctx, last)
	require.NoError(t, err)
	require.True(t, ok, "the newest entry is kept")
	require.Equal(t, "last", string(v))
}

// TestCacheLocalCopyNeverOutlivesRedis: a replica that reads a value in
// its last millisecond in Redis (PTTL 0) must not keep a local copy for
// the full LocalTTL. Polling a.Get tightly while b's short-lived value
// expires lands in that millisecond nearly every time.
func TestCacheLocalCopyNeverOutlivesRedis(t *testing.T) {
	a, b := replicas(t, true)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		key := uniqueKey()
		require.NoError(t, b.Set(ctx, key, []byte("v"), 3*time.Millisecond))
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			_, ok, err := a.Get(ctx, key)
			require.NoError(t, err)
			if !ok {
				break
			}
			require.True(t, time.Now().Before(deadline), "round %d: a still serves a value that expired in Redis", i)
		}
	}
}
