package lb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// watchPollInterval is how often WatchConfig looks at the file. Polling
// (instead of inotify) also catches editors that replace the file and
// ConfigMap symlink swaps, at the cost of up to a second's delay.
const watchPollInterval = time.Second

// WatchConfig reloads srv from path on SIGHUP and whenever the file's
// content changes, until ctx ends. A config that fails to load or validate
// is logged with its precise error and the running config keeps serving.
// A change is applied once the content stayed the same for a poll
// interval: a file rewritten in place (`cat > lb.yaml`) may be read
// half-written, and a prefix of a config can be a valid config.
func WatchConfig(ctx context.Context, path string, srv *Server) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Apply the file as it is now: it may have changed between the caller's
	// LoadConfig and this point, and no later tick would notice.
	lastSum := fileSum(path)
	var seenSum []byte // a changed content, applied if the next tick sees it again
	srv.reloadFrom(path)
	t := time.NewTicker(watchPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			srv.log.Info("SIGHUP: reloading config", "path", path)
			lastSum, seenSum = fileSum(path), nil
			srv.reloadFrom(path)
		case <-t.C:
			sum := fileSum(path)
			if sum == nil || bytes.Equal(sum, lastSum) {
				seenSum = nil
				continue
			}
			if !bytes.Equal(sum, seenSum) {
				seenSum = sum // still being written, maybe: wait a tick
				continue
			}
			lastSum, seenSum = sum, nil
			srv.log.Info("config file changed: reloading", "path", path)
			srv.reloadFrom(path)
		}
	}
}

func (s *Server) reloadFrom(path string) {
	cfg, err := LoadConfig(path)
	if err != nil {
		s.log.Error("config reload rejected; keeping the running config", "err", err)
		s.metrics.reloads.WithLabelValues("error").Inc()
		return
	}
	_ = s.Reload(cfg) // Reload logs and counts its own outcome
}

// fileSum is the content hash of path, nil when it cannot be read (a
// half-written or briefly missing file is retried on the next tick).
func fileSum(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}
