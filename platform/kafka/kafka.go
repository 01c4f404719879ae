// Package kafka gives components Kafka through segmentio/kafka-go: the configured
// brokers, or, when none are configured, an in-process broker (franz-go's kfake) on
// loopback with its log persisted under data_dir, started and stopped with the app.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/datadir"
)

// Cluster is the Kafka cluster of the process.
type Cluster struct {
	brokers  []string
	embedded *kfake.Cluster
	lock     *datadir.Lock
	log      *slog.Logger
}

// Open connects to brokers, or starts an in-process broker persisting under dataDir
// when brokers is empty (dataDir empty: memory only).
func Open(brokers []string, dataDir string, l *slog.Logger) (*Cluster, error) {
	c := &Cluster{brokers: brokers, log: l}
	if len(brokers) > 0 {
		return c, nil
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1)}
	if dataDir != "" {
		lock, err := datadir.Acquire(dataDir)
		if err != nil {
			return nil, fmt.Errorf("in-process kafka: %w", err)
		}
		c.lock = lock
		opts = append(opts, kfake.DataDir(dataDir))
	}
	k, err := kfake.NewCluster(opts...)
	if err != nil {
		_ = c.lock.Release()
		return nil, fmt.Errorf("start in-process kafka: %w", err)
	}
	c.embedded = k
	c.brokers = k.ListenAddrs()
	l.Info("in-process kafka started", "brokers", c.brokers, "data_dir", dataDir)
	return c, nil
}

// Provide is the fx constructor: the configured brokers, else the in-process broker
// under <data_dir>/kafka, closed when the app stops (after every component using it).
func Provide(lc fx.Lifecycle, cfg *config.Config, l *slog.Logger) (*Cluster, error) {
	dir := ""
	if len(cfg.Kafka.Brokers) == 0 {
		dir = filepath.Join(cfg.DataDir, "kafka")
	}
	c, err := Open(cfg.Kafka.Brokers, dir, l.With("service", "kafka"))
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(c.Close))
	return c, nil
}

// Module provides the *Cluster.
var Module = fx.Provide(Provide)

// Brokers are the bootstrap addresses.
func (c *Cluster) Brokers() []string { return append([]string(nil), c.brokers...) }

// Embedded says whether the broker runs in this process.
func (c *Cluster) Embedded() bool { return c.embedded != nil }

// Close stops the in-process broker, if any.
func (c *Cluster) Close() {
	if c.embedded != nil {
		c.embedded.Close()
		_ = c.lock.Release()
	}
}

// Writer returns a writer to topic: keyed messages go to a partition by key hash (so one
// person's or camera's messages stay in order), every replica acknowledges, and a
// batch is sent after at most 10 ms. Close it when done.
func (c *Cluster) Writer(topic string) *kafkago.Writer {
	return &kafkago.Writer{
		Addr:         kafkago.TCP(c.brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
		ErrorLogger:  kafkago.LoggerFunc(func(msg string, args ...any) { c.log.Warn(fmt.Sprintf(msg, args...)) }),
	}
}

// Reader returns a reader with cfg's brokers filled in. With cfg.GroupID set it is a
// consumer-group member: use FetchMessage and CommitMessages after the work is done for
// at-least-once delivery. Close it when done.
func (c *Cluster) Reader(cfg kafkago.ReaderConfig) *kafkago.Reader {
	cfg.Brokers = c.Brokers()
	if cfg.ErrorLogger == nil {
		cfg.ErrorLogger = kafkago.LoggerFunc(func(msg string, args ...any) { c.log.Warn(fmt.Sprintf(msg, args...)) })
	}
	return kafkago.NewReader(cfg)
}

// Topic describes a topic to create.
type Topic struct {
	Name       string
	Partitions int
	// ReplicationFactor defaults to 1 for the in-process broker and 3 otherwise.
	ReplicationFactor int
	// Configs are topic settings such as "retention.ms".
	Configs map[string]string
}

// CreateTopics creates the topics that do not exist yet; existing ones are left as they are.
func (c *Cluster) CreateTopics(ctx context.Context, topics ...Topic) error {
	client := &kafkago.Client{Addr: kafkago.TCP(c.brokers...), Timeout: 30 * time.Second}
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		rf := t.ReplicationFactor
		if rf == 0 {
			rf = 3
			if c.Embedded() {
				rf = 1
			}
		}
		tc := kafkago.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: rf}
		if tc.NumPartitions == 0 {
			tc.NumPartitions = 1
		}
		for k, v := range t.Configs {
			tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Ping checks a broker answers.
func (c *Cluster) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.brokers[0])
	if err != nil {
		return fmt.Errorf("kafka broker %s: %w", c.brokers[0], err)
	}
	return conn.Close()
}
