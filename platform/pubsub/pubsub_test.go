package pubsub_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/redistest"
)

func uniqueChannel() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "vigil.test." + hex.EncodeToString(b)
}

func TestPubSub(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	impls := map[string]func(t *testing.T) (pubsub.PubSub, pubsub.PubSub){
		"memory": func(t *testing.T) (pubsub.PubSub, pubsub.PubSub) {
			m := pubsub.NewMemory(logger)
			return m, m
		},
		// Two clients: two replicas talking through the server.
		"redis": func(t *testing.T) (pubsub.PubSub, pubsub.PubSub) {
			return pubsub.NewRedis(redistest.Client(t), logger), pubsub.NewRedis(redistest.Client(t), logger)
		},
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			pub, sub := mk(t)
			ch := uniqueChannel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			subCtx1, stop1 := context.WithCancel(ctx)
			s1, err := sub.Subscribe(subCtx1, ch)
			require.NoError(t, err)
			s2, err := sub.Subscribe(ctx, ch)
			require.NoError(t, err)
			other, err := sub.Subscribe(ctx, ch+".other")
			require.NoError(t, err)

			for i := range 3 {
				require.NoError(t, pub.Publish(ctx, ch, []byte(fmt.Sprintf("m%d", i))))
			}
			for _, s := range []<-chan []byte{s1, s2} {
				for i := range 3 {
					select {
					case m := <-s:
						require.Equal(t, fmt.Sprintf("m%d", i), string(m), "in order")
					case <-ctx.Done():
						t.Fatal("message not delivered")
					}
				}
			}
			select {
			case m := <-other:
				t.Fatalf("message leaked to another channel: %s", m)
			default:
			}

			// Unsubscribing closes the channel; the other subscriber still receives.
			stop1()
			require.Eventually(t, func() bool {
				select {
				case _, ok := <-s1:
					return !ok
				default:
					return false
				}
			}, 5*time.Second, 5*time.Millisecond)
			require.NoError(t, pub.Publish(ctx, ch, []byte("after")))
			select {
			case m := <-s2:
				require.Equal(t, "after", string(m))
			case <-ctx.Done():
				t.Fatal("message not delivered after another subscriber left")
			}
		})
	}
}
