package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"

	"github.com/vigilhq/vigil/platform/datadir"
)

// Embedded is an S3 server on loopback storing objects as files under a folder
// (gofakes3 with its file-system backend), behind a SigV4 check: gofakes3 itself checks
// no signatures, so every request must be signed with the server's key pair or is
// refused with 403.
type Embedded struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Region    string

	server   *http.Server
	listener net.Listener
	lock     *datadir.Lock
	done     chan struct{}
}

// maxMemorySpool is the largest upload held in memory while its hash or chunk
// signatures are checked; larger ones are spooled to a temporary file.
const maxMemorySpool = 8 << 20

// StartEmbedded serves an S3 store persisted under dir on 127.0.0.1 (random port),
// with a fresh random key pair.
func StartEmbedded(dir, region string, l *slog.Logger) (*Embedded, error) {
	lock, err := datadir.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	e, err := startEmbedded(dir, region, l, lock)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	return e, nil
}

func startEmbedded(dir, region string, l *slog.Logger, lock *datadir.Lock) (*Embedded, error) {
	base := afero.NewBasePathFs(afero.NewOsFs(), dir)
	backend, err := s3afero.MultiBucket(base)
	if err != nil {
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithIntegrityCheck(true))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	e := &Embedded{
		Endpoint: ln.Addr().String(), AccessKey: randomKey(10), SecretKey: randomKey(20), Region: region,
		listener: ln, lock: lock, done: make(chan struct{}),
	}
	tmp := filepath.Join(dir, ".spool")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	g := &guard{
		creds: credentials{accessKey: e.AccessKey, secretKey: e.SecretKey, region: region},
		next:  fake.Server(), log: l, spoolDir: tmp, now: time.Now,
	}
	e.server = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(l.Handler(), slog.LevelWarn)}
	go func() {
		defer close(e.done)
		if err := e.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.Error("embedded s3 stopped", "err", err.Error())
		}
	}()
	return e, nil
}

// Close stops the server, letting in-flight requests finish until ctx ends.
func (e *Embedded) Close(ctx context.Context) error {
	err := e.server.Shutdown(ctx)
	if err != nil {
		_ = e.server.Close()
	}
	<-e.done
	_ = e.lock.Release()
	return err
}

func randomKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// guard authenticates every request before gofakes3 sees it, and hands it a body whose
// integrity is checked: a signed payload hash is verified, a signed-chunk stream is
// decoded with every chunk's signature verified.
type guard struct {
	creds    credentials
	next     http.Handler
	log      *slog.Logger
	spoolDir string
	now      func() time.Time
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, err := g.creds.verify(r, g.now())
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	body, err := g.checkedBody(r, v)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	if body != nil {
		defer body.close()
		r.Body = io.NopCloser(body.reader)
		r.ContentLength = body.size
		r.Header.Set("Content-Length", strconv.FormatInt(body.size, 10))
		r.Header.Set("X-Amz-Content-Sha256", body.sha256)
		r.Header.Del("X-Amz-Decoded-Content-Length")
		if r.Header.Get("Content-Encoding") == "aws-chunked" {
			r.Header.Del("Content-Encoding")
		}
	}
	g.next.ServeHTTP(w, r)
}

// checkedBody returns the request body verified against its signed hash, or nil when
// there is nothing to check (no body, or an UNSIGNED-PAYLOAD the client chose).
func (g *guard) checkedBody(r *http.Request, v *verified) (*spooled, error) {
	switch {
	case v.payloadHash == streamingPayload:
		sp, err := g.spool(func(w io.Writer) (int64, error) { return decodeSignedChunks(r.Body, w, v) })
		if err != nil {
			return nil, err
		}
		if want := r.Header.Get("X-Amz-Decoded-Content-Length"); want != "" && want != strconv.FormatInt(sp.size, 10) {
			sp.close()
			return nil, denied("IncompleteBody", "decoded length %d, declared %s", sp.size, want)
		}
		return sp, nil
	case v.payloadHash == unsignedPayload:
		return nil, nil
	case len(v.payloadHash) == 64:
		if r.ContentLength == 0 && v.payloadHash == emptySHA256 {
			return nil, nil
		}
		sp, err := g.spool(func(w io.Writer) (int64, error) { return io.Copy(w, r.Body) })
		if err != nil {
			return nil, err
		}
		if sp.sha256 != v.payloadHash {
			sp.close()
			return nil, denied("XAmzContentSHA256Mismatch", "the body does not match its signed hash")
		}
		return sp, nil
	default:
		return nil, denied("NotImplemented", "payload mode %q is not supported", v.payloadHash)
	}
}

// spooled is a checked request body, in memory or in a temporary file.
type spooled struct {
	reader io.Reader
	size   int64
	sha256 string
	file   *os.File
}

func (s *spooled) close() {
	if s.file != nil {
		_ = s.file.Close()
		_ = os.Remove(s.file.Name())
	}
}

// spoolWriter keeps up to maxMemorySpool bytes in memory, then moves to a file.
type spoolWriter struct {
	dir  string
	mem  bytes.Buffer
	file *os.File
	hash hash.Hash
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	s.hash.Write(p)
	if s.file == nil && s.mem.Len()+len(p) > maxMemorySpool {
		f, err := os.CreateTemp(s.dir, "upload-*")
		if err != nil {
			return 0, err
		}
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	if s.file != nil {
		return s.file.Write(p)
	}
	return s.mem.Write(p)
}

func (g *guard) spool(copyBody func(io.Writer) (int64, error)) (*spooled, error) {
	sw := &spoolWriter{dir: g.spoolDir, hash: sha256.New()}
	n, err := copyBody(sw)
	sp := &spooled{size: n, sha256: hex.EncodeToString(sw.hash.Sum(nil)), file: sw.file}
	if err != nil {
		sp.close()
		return nil, err
	}
	if sw.file != nil {
		if _, err := sw.file.Seek(0, io.SeekStart); err != nil {
			sp.close()
			return nil, err
		}
		sp.reader = sw.file
	} else {
		sp.reader = bytes.NewReader(sw.mem.Bytes())
	}
	return sp, nil
}

// s3Error is S3's XML error body.
type s3Error struct {
	XMLName  xml.Name `xml:"Error"`
	Code     string   `xml:"Code"`
	Message  string   `xml:"Message"`
	Resource string   `xml:"Resource"`
}

func (g *guard) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var ae *authError
	if !errors.As(err, &ae) {
		g.log.Error("embedded s3: request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	status := http.StatusForbidden
	switch ae.code {
	case "IncompleteBody", "InvalidRequest", "XAmzContentSHA256Mismatch", "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError":
		status = http.StatusBadRequest
	case "NotImplemented":
		status = http.StatusNotImplemented
	}
	if status == http.StatusForbidden {
		g.log.Warn("embedded s3: refused request", "method", r.Method, "path", r.URL.Path, "code", ae.code, "remote", r.RemoteAddr)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(s3Error{Code: ae.code, Message: ae.msg, Resource: r.URL.Path})
}
