package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// APIKey describes a key; its secret exists only in the creation result.
type APIKey struct {
	ID         uuid.UUID
	Name       string
	Role       commonv1.Role
	Prefix     string
	CreateTime time.Time
	ExpireTime *time.Time
	RevokeTime *time.Time
}

const apiKeyColumns = `id, name, role, prefix, create_time, expire_time, revoke_time`

func scanAPIKey(row pgx.Row) (*APIKey, error) {
	k := &APIKey{}
	var role int16
	if err := row.Scan(&k.ID, &k.Name, &role, &k.Prefix, &k.CreateTime, &k.ExpireTime, &k.RevokeTime); err != nil {
		return nil, dbErr(err)
	}
	k.Role = commonv1.Role(role)
	return k, nil
}

// CreateAPIKey creates a key and returns it with its secret.
func (b *Backend) CreateAPIKey(ctx context.Context, sc scope, name string, role commonv1.Role, expire *time.Time) (*APIKey, string, error) {
	if err := checkText("name", name, true, maxNameLen); err != nil {
		return nil, "", err
	}
	if err := checkRole("role", role); err != nil {
		return nil, "", err
	}
	// A key may not outrank its creator (an operator cannot mint admin keys, should the
	// access table ever let operators create keys).
	if p := sc.principal; p != nil && p.Kind == commonv1.Access_KIND_WORKSPACE && role > p.Role {
		return nil, "", fmt.Errorf("a key cannot have a higher role than its creator: %w", ErrPermission)
	}
	if expire != nil && !expire.After(time.Now()) {
		return nil, "", invalid("expire_time", "must be in the future")
	}
	secret := newSecret(prefixAPIKey)
	k, err := scanAPIKey(b.db.q(ctx).QueryRow(ctx, `INSERT INTO api_keys (id, workspace_id, name, role, prefix, secret_hash, expire_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+apiKeyColumns,
		newID(), sc.workspace, name, int16(role), secretPrefix(secret), hashSecret(secret), expire))
	if err != nil {
		return nil, "", fmt.Errorf("create api key: %w", err)
	}
	return k, secret, nil
}

// GetAPIKey returns a key of the scope's workspace.
func (b *Backend) GetAPIKey(ctx context.Context, sc scope, keyID string) (*APIKey, error) {
	id, err := parseID("api_key_id", keyID)
	if err != nil {
		return nil, err
	}
	k, err := scanAPIKey(b.db.q(ctx).QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE workspace_id = $1 AND id = $2`,
		sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("api key %s: %w", keyID, err)
	}
	return k, nil
}

// ListAPIKeys lists the workspace's keys, newest first.
func (b *Backend) ListAPIKeys(ctx context.Context, sc scope, size int32, token string) ([]*APIKey, string, error) {
	ks, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, scanAPIKey, func(k *APIKey) uuid.UUID { return k.ID }, sc.workspace)
	if err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	return ks, next, nil
}

// RevokeAPIKey revokes a key (a second revoke keeps the first revoke time).
func (b *Backend) RevokeAPIKey(ctx context.Context, sc scope, keyID string) (*APIKey, error) {
	id, err := parseID("api_key_id", keyID)
	if err != nil {
		return nil, err
	}
	k, err := scanAPIKey(b.db.q(ctx).QueryRow(ctx, `UPDATE api_keys SET revoke_time = coalesce(revoke_time, now())
		WHERE workspace_id = $1 AND id = $2 RETURNING `+apiKeyColumns, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("api key %s: %w", keyID, err)
	}
	b.invalidateSubject(ctx, k.ID.String())
	return k, nil
}
