package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/datadir"
	"github.com/vigilhq/vigil/platform/kafka"
)

func TestProduceConsumeThroughGroup(t *testing.T) {
	c, err := kafka.Open(nil, t.TempDir(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer c.Close()
	require.True(t, c.Embedded())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.Ping(ctx))

	require.NoError(t, c.CreateTopics(ctx, kafka.Topic{Name: "vigil.test.v1", Partitions: 3}))
	require.NoError(t, c.CreateTopics(ctx, kafka.Topic{Name: "vigil.test.v1", Partitions: 3}), "existing topic is fine")

	w := c.Writer("vigil.test.v1")
	defer w.Close()
	const n = 30
	var msgs []kafkago.Message
	for i := range n {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprintf("cam-%d", i%5)), Value: []byte(fmt.Sprintf("event-%d", i))})
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))

	r := c.Reader(kafkago.ReaderConfig{GroupID: "test-group", Topic: "vigil.test.v1", MaxWait: 100 * time.Millisecond})
	got := map[string]int{}
	lastPerKey := map[string]int{}
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		require.NoError(t, err)
		var i int
		_, err = fmt.Sscanf(string(m.Value), "event-%d", &i)
		require.NoError(t, err)
		got[string(m.Value)]++
		// Messages of one key keep their order (same partition).
		if prev, ok := lastPerKey[string(m.Key)]; ok {
			require.Greater(t, i, prev)
		}
		lastPerKey[string(m.Key)] = i
		require.NoError(t, r.CommitMessages(ctx, m))
	}
	require.NoError(t, r.Close())
	require.Len(t, got, n)

	// A new member of the same group resumes after the committed offsets: only new
	// messages arrive.
	require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Key: []byte("cam-0"), Value: []byte("after-commit")}))
	r2 := c.Reader(kafkago.ReaderConfig{GroupID: "test-group", Topic: "vigil.test.v1", MaxWait: 100 * time.Millisecond})
	defer r2.Close()
	m, err := r2.FetchMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "after-commit", string(m.Value))
}

func TestEmbeddedBrokerKeepsMessagesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := kafka.Open(nil, dir, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, c.CreateTopics(ctx, kafka.Topic{Name: "vigil.persist.v1"}))
	w := c.Writer("vigil.persist.v1")
	require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Value: []byte("kept")}))
	require.NoError(t, w.Close())
	c.Close()

	c2, err := kafka.Open(nil, dir, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer c2.Close()
	_, err = kafka.Open(nil, dir, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, datadir.ErrInUse, "a second broker on the same log is refused")
	r := c2.Reader(kafkago.ReaderConfig{Topic: "vigil.persist.v1", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "kept", string(m.Value))
}
