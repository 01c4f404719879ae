package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// permanentError is a failure retrying cannot cure (a malformed upload, a license
// limit): the job goes to the dead letter at once instead of using up its attempts.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent marks err as not worth retrying.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// settle turns a worker's error into River's outcome: nil completes, a permanent error
// kills the job (River cancels it; the flag makes us show it dead), anything else is
// retried with back-off until the attempts run out (then River discards it: dead).
func settle(ctx context.Context, pool *pgxpool.Pool, jobID int64, err error) error {
	var perm permanentError
	if err == nil || !errors.As(err, &perm) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, dbErr := pool.Exec(ctx,
		`UPDATE river_job SET metadata = jsonb_set(metadata, '{`+metaDead+`}', 'true') WHERE id = $1`, jobID); dbErr != nil {
		// Without the flag the job would show as cancelled; retrying is the safer outcome.
		return fmt.Errorf("%w (and marking it dead failed: %v)", err, dbErr)
	}
	return river.JobCancel(err)
}
