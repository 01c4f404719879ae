package log

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that counts the writes it got.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.buf.Write(p)
}

func (s *syncBuffer) state() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String(), s.writes
}

// Lines are held until the buffer fills or the interval passes, then go
// out together, in order; Close writes the rest and later lines at once.
func TestBufferedBatchesLines(t *testing.T) {
	var out syncBuffer
	b := NewBuffered(&out, 400, 100*time.Millisecond)
	l := New(b, nil)
	l.Info("one")
	l.Info("two")
	if got, _ := out.state(); got != "" {
		t.Fatalf("written before the interval: %q", got)
	}
	time.Sleep(250 * time.Millisecond)
	got, writes := out.state()
	if !strings.Contains(got, `"msg":"one"`) || !strings.Contains(got, `"msg":"two"`) || strings.Index(got, "one") > strings.Index(got, "two") {
		t.Fatalf("after the interval: %q", got)
	}
	if writes != 1 {
		t.Fatalf("%d writes for two lines in one interval, want 1", writes)
	}

	// Past size: out at once, without waiting for the timer.
	l.Info(strings.Repeat("x", 500))
	if got, _ := out.state(); !strings.Contains(got, strings.Repeat("x", 500)) {
		t.Fatal("a full buffer was not written at once")
	}

	l.Info("flushed")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.state(); !strings.Contains(got, `"msg":"flushed"`) {
		t.Fatal("Flush did not write")
	}

	l.Info("three")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.state(); !strings.Contains(got, `"msg":"three"`) {
		t.Fatal("Close did not flush")
	}
	l.Info("four")
	if got, _ := out.state(); !strings.Contains(got, `"msg":"four"`) {
		t.Fatal("after Close a line waited")
	}
}
