package pubsub

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Memory is the in-process PubSub.
type Memory struct {
	log  *slog.Logger
	mu   sync.RWMutex
	subs map[string]map[*memorySub]struct{}
}

type memorySub struct {
	ch      chan []byte
	dropped atomic.Int64
}

// NewMemory returns an in-process PubSub.
func NewMemory(l *slog.Logger) *Memory {
	return &Memory{log: l, subs: map[string]map[*memorySub]struct{}{}}
}

// Publish implements PubSub. It never blocks on a slow subscriber: a full subscriber
// misses the message.
func (m *Memory) Publish(_ context.Context, channel string, msg []byte) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for s := range m.subs[channel] {
		cp := append([]byte(nil), msg...)
		select {
		case s.ch <- cp:
		default:
			if n := s.dropped.Add(1); n == 1 || n%1000 == 0 {
				m.log.Warn("pubsub subscriber too slow; messages dropped", "channel", channel, "dropped", n)
			}
		}
	}
	return nil
}

// Subscribe implements PubSub.
func (m *Memory) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	s := &memorySub{ch: make(chan []byte, subscriberBuffer)}
	m.mu.Lock()
	if m.subs[channel] == nil {
		m.subs[channel] = map[*memorySub]struct{}{}
	}
	m.subs[channel][s] = struct{}{}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.subs[channel], s)
		if len(m.subs[channel]) == 0 {
			delete(m.subs, channel)
		}
		m.mu.Unlock()
		close(s.ch)
	}()
	return s.ch, nil
}

var _ PubSub = (*Memory)(nil)
