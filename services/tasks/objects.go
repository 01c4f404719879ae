package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/vigilhq/vigil/platform/objstore"
)

// ObjectStore is what the tasks service needs of Vigil's object store (one bucket):
// imports are uploaded into it and read back by the worker; the retention purge deletes
// event images from it.
type ObjectStore interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get returns an error wrapping fs.ErrNotExist for a missing key.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes an object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// missingObjectStore stands in when the process has no object store: every use fails
// with ErrUnavailable, saying so.
type missingObjectStore struct{}

var errNoObjectStore = fmt.Errorf("%w: no object store configured in this process", ErrUnavailable)

func (missingObjectStore) Put(context.Context, string, io.Reader, int64, string) error {
	return errNoObjectStore
}
func (missingObjectStore) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errNoObjectStore
}
func (missingObjectStore) Delete(context.Context, string) error { return errNoObjectStore }

// storeObjects adapts the platform's object store.
type storeObjects struct{ s *objstore.Store }

func (o storeObjects) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	return o.s.Put(ctx, key, r, size, contentType)
}

func (o storeObjects) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := o.s.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return rc, err
}

func (o storeObjects) Delete(ctx context.Context, key string) error { return o.s.Delete(ctx, key) }
