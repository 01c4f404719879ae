package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// InsertOpts overrides a kind's defaults (queue, attempts, schedule, uniqueness) for one
// insert; nil keeps them.
type InsertOpts = river.InsertOpts

// ErrNoWorkspace is returned for a job whose args name no workspace.
var ErrNoWorkspace = errors.New("job args name no workspace")

// inserter is an insert-only River client: it holds no pool and runs nothing, so it is
// safe to share between every caller of InsertTx.
var inserter = sync.OnceValues(func() (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(nil), &river.Config{})
})

// InsertTx enqueues a job within tx: the job becomes visible to the workers only when tx
// commits, and disappears with it on rollback. It returns the job's id.
func InsertTx(ctx context.Context, tx pgx.Tx, args Args, opts *InsertOpts) (int64, error) {
	if args.Workspace() == "" {
		return 0, fmt.Errorf("insert %s: %w", args.Kind(), ErrNoWorkspace)
	}
	client, err := inserter()
	if err != nil {
		return 0, fmt.Errorf("insert %s: %w", args.Kind(), err)
	}
	res, err := client.InsertTx(ctx, tx, args, opts)
	if err != nil {
		return 0, fmt.Errorf("insert %s: %w", args.Kind(), err)
	}
	return res.Job.ID, nil
}

// InsertManyTx enqueues several jobs within tx in one round trip (e.g. one delivery per
// matching webhook) and returns their ids in order.
func InsertManyTx(ctx context.Context, tx pgx.Tx, args []Args) ([]int64, error) {
	if len(args) == 0 {
		return nil, nil
	}
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		if a.Workspace() == "" {
			return nil, fmt.Errorf("insert %s: %w", a.Kind(), ErrNoWorkspace)
		}
		params[i] = river.InsertManyParams{Args: a}
	}
	client, err := inserter()
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids, nil
}
