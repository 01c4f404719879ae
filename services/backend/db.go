package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// DB is the backend's database access: the pool, and the transaction of the current
// request when there is one (carried in the context, so an idempotent call's change and
// its recorded result commit together without every store method taking a tx).
type DB struct {
	pool *pgxpool.Pool
}

type txKey struct{}

// txState is the transaction of a request and what to do once it commits.
type txState struct {
	tx    pgx.Tx
	after []func()
}

// q returns the transaction in ctx, or the pool.
func (d *DB) q(ctx context.Context) querier {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return d.pool
}

// inTransaction reports whether ctx carries a transaction.
func (d *DB) inTransaction(ctx context.Context) bool {
	_, ok := ctx.Value(txKey{}).(*txState)
	return ok
}

// afterCommit runs fn once the transaction in ctx commits (at once without one): cache
// invalidations must not run before the change is visible, or a reader could cache the
// old state again.
func (d *DB) afterCommit(ctx context.Context, fn func()) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		st.after = append(st.after, fn)
		return
	}
	fn()
}

// inTx runs fn in a transaction (joining the one in ctx if any).
func (d *DB) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*txState); ok {
		return fn(ctx)
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", dbErr(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	st := &txState{tx: tx}
	if err := fn(context.WithValue(ctx, txKey{}, st)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", dbErr(err))
	}
	for _, f := range st.after {
		f()
	}
	return nil
}

// dbErr maps driver errors to domain errors: no rows → ErrNotFound, unique violation →
// ErrAlreadyExists, foreign-key violation → ErrNotFound (a referenced row is missing),
// bad text encoding → ErrInvalid.
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w", ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%s: %w", pe.ConstraintName, ErrAlreadyExists)
		case "23503":
			return fmt.Errorf("referenced row missing (%s): %w", pe.ConstraintName, ErrNotFound)
		case "22021", "22P05", "54000":
			return fmt.Errorf("%s: %w", pe.Message, ErrInvalid)
		}
	}
	return err
}

// Page sizes.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "must not be negative")
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// Page tokens are the last row's id (lists are ordered by id, newest first: ids are
// UUIDv7, so that is creation order), base64url so clients treat them as opaque.
func encodeIDToken(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// decodeIDToken returns the id after which the page starts; uuid.Max for the first page.
func decodeIDToken(tok string) (uuid.UUID, error) {
	if tok == "" {
		return uuid.Max, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 16 {
		return uuid.Nil, invalid("page_token", "malformed")
	}
	return uuid.UUID(b), nil
}

// newID returns a time-ordered id.
func newID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// cutPage trims a page fetched with LIMIT n+1 to n items and returns the next token.
func cutPage[T any](items []T, n int, id func(T) uuid.UUID) ([]T, string) {
	if len(items) <= n {
		return items, ""
	}
	return items[:n], encodeIDToken(id(items[n-1]))
}

// listPage runs a keyset query whose last two arguments are the "after" id and the
// limit, and scans its rows.
func listPage[T any](ctx context.Context, q querier, size int32, token string, sql string, scan func(pgx.Row) (T, error),
	id func(T) uuid.UUID, args ...any) ([]T, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeIDToken(token)
	if err != nil {
		return nil, "", err
	}
	rows, err := q.Query(ctx, sql, append(args, after, n+1)...)
	if err != nil {
		return nil, "", dbErr(err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, "", dbErr(err)
	}
	out, next := cutPage(items, n, id)
	return out, next, nil
}
