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
// content changes, or that of a TLS listener's certificate or key file
// (a renewal rewrites them in place, with the config unchanged), until
// ctx ends. A config that fails to load or validate
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
	lastSum := srv.watchSum(path)
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
			lastSum, seenSum = srv.watchSum(path), nil
			srv.reloadFrom(path)
		case <-t.C:
			sum := srv.watchSum(path)
			if sum == nil || bytes.Equal(sum, lastSum) {
				seenSum = nil
				continue
			}
			if !bytes.Equal(sum, seenSum) {
				seenSum = sum // still being written, maybe: wait a tick
				continue
			}
			lastSum, seenSum = sum, nil
			srv.log.Info("config or certificate files changed: reloading", "path", path)
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

// watchSum is the content hash of the config file at path and of the
// certificate and key files of the running config's TLS listeners; nil
// when one cannot be read (a half-written or briefly missing file is
// retried on the next tick).
func (s *Server) watchSum(path string) []byte {
	h := sha256.New()
	files := []string{path}
	if st := s.state.Load(); st != nil {
		for _, l := range st.cfg.Listeners {
			if l.TLS != nil {
				files = append(files, l.TLS.CertFile, l.TLS.KeyFile)
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil
		}
		h.Write([]byte(f))
		h.Write(data)
	}
	return h.Sum(nil)
}
