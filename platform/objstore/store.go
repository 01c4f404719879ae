// Package objstore gives components an S3 object store through minio-go: the configured
// S3 service, or, when none is configured, an embedded S3 server on loopback that keeps
// objects as files under data_dir and accepts only requests signed with its own key.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
)

// Store is the process's object store: a minio-go client and Vigil's bucket.
type Store struct {
	// Client is the minio-go client, for anything the helpers below do not cover.
	Client *minio.Client
	// Bucket is the bucket Vigil keeps its objects in.
	Bucket string
	// Endpoint is host:port of the S3 service.
	Endpoint string

	embedded *Embedded
}

// Options select the store.
type Options struct {
	// Endpoint of an S3 service (host:port); empty starts the embedded store in DataDir.
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string
	UseTLS    bool
	Bucket    string
	DataDir   string
}

// Open connects to the store (starting the embedded one when no endpoint is given) and
// makes sure the bucket exists.
func Open(ctx context.Context, o Options, l *slog.Logger) (*Store, error) {
	s := &Store{Bucket: o.Bucket, Endpoint: o.Endpoint}
	access, secret, secure := o.AccessKey, o.SecretKey, o.UseTLS
	if o.Endpoint == "" {
		e, err := StartEmbedded(o.DataDir, o.Region, l)
		if err != nil {
			return nil, err
		}
		s.embedded, s.Endpoint = e, e.Endpoint
		access, secret, secure = e.AccessKey, e.SecretKey, false
		l.Info("embedded s3 started", "endpoint", e.Endpoint, "data_dir", o.DataDir)
	}
	client, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        miniocreds.NewStaticV4(access, secret, ""),
		Secure:       secure,
		Region:       o.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		_ = s.Close(ctx)
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	s.Client = client
	if err := s.EnsureBucket(ctx, o.Bucket); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	return s, nil
}

// Embedded returns the embedded server, or nil with an external S3 service.
func (s *Store) Embedded() *Embedded { return s.embedded }

// Close stops the embedded server, if any.
func (s *Store) Close(ctx context.Context) error {
	if s.embedded != nil {
		return s.embedded.Close(ctx)
	}
	return nil
}

// EnsureBucket creates bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	exists, err := s.Client.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("s3 at %s: bucket %s: %w", s.Endpoint, bucket, err)
	}
	if exists {
		return nil
	}
	if err := s.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
			return nil
		}
		return fmt.Errorf("s3 at %s: create bucket %s: %w", s.Endpoint, bucket, err)
	}
	return nil
}

// ErrNotFound is returned for a missing object.
var ErrNotFound = errors.New("object not found")

// Put stores r (size bytes; -1 if unknown) under key in the bucket.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	_, err := s.Client.PutObject(ctx, s.Bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get returns the object under key; the caller closes it. A missing object is ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, minio.ObjectInfo, error) {
	obj, err := s.Client.GetObject(ctx, s.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, minio.ObjectInfo{}, fmt.Errorf("get %s: %w", key, err)
	}
	info, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, minio.ObjectInfo{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, minio.ObjectInfo{}, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, info, nil
}

// Delete removes the object under key; deleting a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.Client.RemoveObject(ctx, s.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List returns the keys under prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range s.Client.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}

// PresignGet returns a URL that reads key without credentials until ttl passes.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	u, err := s.Client.PresignedGetObject(ctx, s.Bucket, key, ttl, nil)
	if err != nil {
		return nil, fmt.Errorf("presign %s: %w", key, err)
	}
	return u, nil
}

// Provide is the fx constructor: the configured S3 service, or the embedded store under
// <data_dir>/s3, stopped when the app stops.
func Provide(lc fx.Lifecycle, cfg *config.Config, l *slog.Logger) (*Store, error) {
	s, err := Open(context.Background(), Options{
		Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region, AccessKey: cfg.S3.AccessKey,
		SecretKey: cfg.S3.SecretKey, UseTLS: cfg.S3.UseTLS, Bucket: cfg.S3.Bucket,
		DataDir: filepath.Join(cfg.DataDir, "s3"),
	}, l.With("service", "objstore"))
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(s.Close))
	return s, nil
}

// Module provides the *Store.
var Module = fx.Provide(Provide)
