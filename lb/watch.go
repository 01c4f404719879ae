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
	// LoadConfig and this point, and no later tick would notice. lastSum
	// is taken before each reload, not after: a reload that fails on a
	// certificate and key read half-way through their renewal must be
	// tried again once the renewal is done. (A reload that moves the
	// certificate files is followed by one more, for their new sum.)
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
// when the config file cannot be read (a half-written or briefly missing
// file is retried on the next tick). A certificate file that cannot be
// read counts as a content of its own: the config may be moving to other
// files (the old ones deleted first), which must still apply.
func (s *Server) watchSum(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	h := sha256.New()
	h.Write(data)
	if st := s.state.Load(); st != nil {
		for _, l := range st.cfg.Listeners {
			if l.TLS == nil {
				continue
			}
			for _, f := range []string{l.TLS.CertFile, l.TLS.KeyFile} {
				h.Write([]byte("\x00" + f + "\x00"))
				if data, err := os.ReadFile(f); err == nil {
					h.Write(data)
				} else {
					h.Write([]byte("\x00missing"))
				}
			}
		}
	}
	return h.Sum(nil)
}
