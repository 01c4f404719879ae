package licensing

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Watcher reloads the license on SIGHUP and when the file's content changes.
type Watcher struct {
	enforcer *Enforcer
	interval time.Duration

	stop chan struct{}
	done chan struct{}
}

// NewWatcher returns a watcher of e's license file polling every interval (0: only SIGHUP).
func NewWatcher(e *Enforcer, interval time.Duration) *Watcher {
	return &Watcher{enforcer: e, interval: interval}
}

// Start begins watching in the background.
func (w *Watcher) Start(context.Context) error {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer close(w.done)
		defer signal.Stop(hup)
		var tick <-chan time.Time
		if w.interval > 0 {
			t := time.NewTicker(w.interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-w.stop:
				return
			case <-hup:
				w.enforcer.log.Info("SIGHUP: reloading the license")
				_, _ = w.enforcer.Reload() // logged and remembered inside
			case <-tick:
				w.enforcer.reloadIfChanged()
			}
		}
	}()
	return nil
}

// Stop ends watching.
func (w *Watcher) Stop(ctx context.Context) error {
	close(w.stop)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
