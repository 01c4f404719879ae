package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// mutate runs fn, a mutating call, in one transaction. With a request_id it is
// idempotent: the first call's result is stored in the same transaction as its change,
// and a replay returns that result without running fn again. A concurrent replay waits
// on the first call's row lock and then sees its result. redact, when set, removes
// secrets from the stored copy (they are never stored, so a replay returns them empty).
func mutate[T proto.Message](ctx context.Context, d *DB, scopeKey, method, requestID string, req proto.Message,
	fn func(ctx context.Context) (T, error), redact func(T)) (T, error) {
	var zero T
	if requestID == "" {
		var out T
		err := d.inTx(ctx, func(ctx context.Context) error {
			var err error
			out, err = fn(ctx)
			return err
		})
		return out, err
	}
	if err := checkText("request_id", requestID, false, maxRequestIDLen); err != nil {
		return zero, err
	}
	reqBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("hash request: %w", err)
	}
	reqHash := sha256.Sum256(reqBytes)

	var out T
	err = d.inTx(ctx, func(ctx context.Context) error {
		q := d.q(ctx)
		tag, err := q.Exec(ctx, `INSERT INTO idempotency_keys (scope, request_id, method, request_hash, response)
			VALUES ($1, $2, $3, $4, '') ON CONFLICT DO NOTHING`, scopeKey, requestID, method, reqHash[:])
		if err != nil {
			return fmt.Errorf("record request id: %w", dbErr(err))
		}
		if tag.RowsAffected() == 0 {
			var storedMethod string
			var storedHash, resp []byte
			if err := q.QueryRow(ctx, `SELECT method, request_hash, response FROM idempotency_keys
				WHERE scope = $1 AND request_id = $2`, scopeKey, requestID).Scan(&storedMethod, &storedHash, &resp); err != nil {
				return fmt.Errorf("read request id: %w", dbErr(err))
			}
			if storedMethod != method || !bytes.Equal(storedHash, reqHash[:]) {
				return invalid("request_id", "already used for a different request")
			}
			out = zero.ProtoReflect().New().Interface().(T)
			if err := proto.Unmarshal(resp, out); err != nil {
				return fmt.Errorf("decode stored response: %w", err)
			}
			return nil
		}
		out, err = fn(ctx)
		if err != nil {
			return err
		}
		stored := proto.Clone(out).(T)
		if redact != nil {
			redact(stored)
		}
		b, err := proto.Marshal(stored)
		if err != nil {
			return fmt.Errorf("encode response: %w", err)
		}
		if _, err := q.Exec(ctx, `UPDATE idempotency_keys SET response = $3 WHERE scope = $1 AND request_id = $2`,
			scopeKey, requestID, b); err != nil {
			return fmt.Errorf("store response: %w", dbErr(err))
		}
		return nil
	})
	if err != nil {
		return zero, err
	}
	return out, nil
}

// seen reports whether requestID already has a recorded result, so a pre-check that
// would refuse a new call (a license limit) lets the replay of an earlier one through.
func (d *DB) seen(ctx context.Context, scopeKey, requestID string) bool {
	if requestID == "" {
		return false
	}
	var ok bool
	err := d.q(ctx).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE scope = $1 AND request_id = $2 AND response <> '')`,
		scopeKey, requestID).Scan(&ok)
	return err == nil && ok
}
