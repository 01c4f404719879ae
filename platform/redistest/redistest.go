// Package redistest connects tests to the machine's Redis (which `make test` starts when
// none answers), failing the test clearly when it is absent, as dbtest does for
// PostgreSQL.
package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr is the test Redis.
const Addr = "127.0.0.1:6379"

// Client connects to the test Redis and closes the connection when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is not reachable at %s: %v\nRun the tests with `make test` (it starts what they need) or start redis-server.", Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
