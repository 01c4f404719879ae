package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/jobs"
)

// newDatabase is a fresh database with River's schema.
func newDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	db := dbtest.New(t)
	require.NoError(t, jobs.Migrate(context.Background(), db.Pool))
	return db.Pool
}

func TestInsertTxFollowsTheTransaction(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	// A second Migrate is a no-op: every process start runs it.
	require.NoError(t, jobs.Migrate(ctx, pool))

	countJobs := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM river_job").Scan(&n))
		return n
	}
	delivery := jobs.WebhookDeliveryArgs{
		WorkspaceID: "ws1", WebhookID: "wh1", URL: "http://127.0.0.1:1/hook", Secret: "s",
		EventIDs: []string{"e1"}, Body: []byte(`{"id": "e1",  "n":1}`),
	}

	// Rolled back: the job never existed.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = jobs.InsertTx(ctx, tx, delivery, nil)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 0, countJobs())

	// Committed: the job is there, on its kind's queue with its kind's attempts.
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		id, err = jobs.InsertTx(ctx, tx, delivery, nil)
		return err
	}))
	var kind, queue string
	var maxAttempts int
	var args []byte
	require.NoError(t, pool.QueryRow(ctx, "SELECT kind, queue, max_attempts, args FROM river_job WHERE id = $1", id).
		Scan(&kind, &queue, &maxAttempts, &args))
	require.Equal(t, jobs.KindWebhookDelivery, kind)
	require.Equal(t, jobs.QueueWebhooks, queue)
	require.Equal(t, jobs.MaxAttemptsWebhook, maxAttempts)
	var stored jobs.WebhookDeliveryArgs
	require.NoError(t, json.Unmarshal(args, &stored))
	require.Equal(t, delivery, stored)

	// Several at once.
	var ids []int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ids, err = jobs.InsertManyTx(ctx, tx, []jobs.Args{
			jobs.ReextractArgs{WorkspaceID: "ws1"},
			jobs.RetentionPurgeArgs{WorkspaceID: "ws2"},
		})
		return err
	}))
	require.Len(t, ids, 2)
	require.Equal(t, 3, countJobs())

	// Options override the kind's defaults.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		id, err = jobs.InsertTx(ctx, tx, jobs.RetentionPurgeArgs{WorkspaceID: "ws1"}, &jobs.InsertOpts{MaxAttempts: 2})
		return err
	}))
	require.NoError(t, pool.QueryRow(ctx, "SELECT max_attempts FROM river_job WHERE id = $1", id).Scan(&maxAttempts))
	require.Equal(t, 2, maxAttempts)
}

func TestInsertTxRefusesJobsWithoutWorkspace(t *testing.T) {
	pool := newDatabase(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = jobs.InsertTx(ctx, tx, jobs.ReextractArgs{}, nil)
	require.ErrorIs(t, err, jobs.ErrNoWorkspace)
	_, err = jobs.InsertManyTx(ctx, tx, []jobs.Args{jobs.ReextractArgs{WorkspaceID: "w"}, jobs.RetentionPurgeArgs{}})
	require.ErrorIs(t, err, jobs.ErrNoWorkspace)
}

func TestSignAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event":"identification"}`)
	sig := jobs.Sign("secret", now.Unix(), body)
	// Known answer: HMAC-SHA256("secret", "1800000000.{...}") computed independently with
	// `printf '1800000000.{"event":"identification"}' | openssl dgst -sha256 -hmac secret`.
	require.Equal(t, "sha256=1dac0824f5dc41d07b206335b2ef30aa6e911c6e79e84614e16958a225d07f77", sig)

	ts := "1800000000"
	tests := []struct {
		name      string
		secret    string
		signature string
		timestamp string
		body      []byte
		now       time.Time
		want      error
	}{
		{"valid", "secret", sig, ts, body, now, nil},
		{"valid within tolerance", "secret", sig, ts, body, now.Add(4 * time.Minute), nil},
		{"wrong secret", "other", sig, ts, body, now, jobs.ErrBadSignature},
		{"body changed", "secret", sig, ts, []byte(`{"event":"x"}`), now, jobs.ErrBadSignature},
		{"timestamp changed", "secret", sig, "1800000001", body, now, jobs.ErrBadSignature},
		{"timestamp not a number", "secret", sig, "yesterday", body, now, jobs.ErrBadSignature},
		{"replayed later", "secret", sig, ts, body, now.Add(time.Hour), jobs.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := jobs.Verify(tt.secret, tt.signature, tt.timestamp, tt.body, tt.now, 5*time.Minute)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}
