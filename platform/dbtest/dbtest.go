// Package dbtest gives a test its own fresh PostgreSQL database, dropped when the test
// ends. It never skips: without PostgreSQL the test fails and says how to get one.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the variable holding the admin URL of the test server.
const EnvURL = "VIGIL_TEST_DATABASE_URL"

// DefaultURL is the local server `make test` starts or finds.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL of the test server's maintenance database.
func AdminURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// DB is a fresh database.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates a randomly named database, returns its URL and a pool, and drops it
// (closing the pool first) when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("dbtest: PostgreSQL is not reachable at %s: %v\n"+
			"Run the tests with `make test` (it starts a local PostgreSQL), or point %s at one.", admin, err, EnvURL)
	}
	defer conn.Close(context.Background())

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "vigil_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("dbtest: create database %s: %v", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("dbtest: %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	d := &DB{Name: name, URL: u.String()}
	t.Cleanup(func() { drop(t, admin, name) })

	d.Pool, err = pgxpool.New(ctx, d.URL)
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", name, err)
	}
	t.Cleanup(d.Pool.Close)
	return d
}

func drop(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("dbtest: drop %s: %v", name, err)
		return
	}
	defer conn.Close(context.Background())
	// FORCE ends sessions a test left open (a stopped app's pool still closing).
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("dbtest: drop %s: %v", name, err)
	}
}
