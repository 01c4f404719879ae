package log

import (
	"io"
	"sync"
	"time"
)

// Buffered batches a logger's lines: they collect in a buffer that goes
// to the underlying writer when it holds size bytes, every interval
// (timed from the first line it holds), and on Flush and Close. A proxy
// logs a line per request; written one by one, each costs a write system
// call (and a wake-up of whoever reads the pipe): about a fifth of the
// load balancer's CPU per request. This is nginx's `access_log … buffer=
// flush=`. What a crash leaves in the buffer is lost; a panic's own
// report goes to standard error directly.
type Buffered struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	size     int
	interval time.Duration
	timer    *time.Timer
	armed    bool // the timer will flush
	closed   bool // Close ran: lines go straight through
}

// NewBuffered returns a Buffered writing to w.
func NewBuffered(w io.Writer, size int, interval time.Duration) *Buffered {
	b := &Buffered{w: w, size: size, interval: interval, buf: make([]byte, 0, size)}
	b.timer = time.AfterFunc(time.Hour, b.onTimer)
	b.timer.Stop()
	return b
}

// Write takes one line (slog's handlers write each record whole).
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= b.size {
		return len(p), b.flushLocked()
	}
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.interval)
	}
	return len(p), nil
}

func (b *Buffered) onTimer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	_ = b.flushLocked()
}

// Flush writes out what the buffer holds.
func (b *Buffered) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Buffered) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	if cap(b.buf) > 4*b.size {
		b.buf = make([]byte, 0, b.size) // one huge line does not stay
	} else {
		b.buf = b.buf[:0]
	}
	return err
}

// Close flushes and stops buffering: later lines are written at once.
func (b *Buffered) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.timer.Stop()
	b.armed = false
	return b.flushLocked()
}
