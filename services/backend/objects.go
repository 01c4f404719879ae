package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vigilhq/vigil/platform/objstore"
)

// platformObjects is the ObjectStore over the platform's object store.
type platformObjects struct{ s *objstore.Store }

// NewObjectStore adapts the platform's object store.
func NewObjectStore(s *objstore.Store) ObjectStore { return platformObjects{s: s} }

func (p platformObjects) Put(ctx context.Context, key string, data []byte, contentType string) error {
	return p.s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType)
}

func (p platformObjects) Get(ctx context.Context, key string) ([]byte, string, error) {
	r, info, err := p.s.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, "", fmt.Errorf("object %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%v: %w", err, ErrUnavailable)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %v: %w", key, err, ErrUnavailable)
	}
	return data, info.ContentType, nil
}

func (p platformObjects) Delete(ctx context.Context, key string) error { return p.s.Delete(ctx, key) }
