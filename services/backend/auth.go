package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// Identity is what a credential stands for.
type Identity struct {
	Kind        commonv1.Access_Kind
	WorkspaceID uuid.UUID
	Role        commonv1.Role
	SubjectID   string
	SubjectName string
	Superuser   bool
	// ExpireTime is zero when the credential does not expire.
	ExpireTime time.Time
}

// Session is the result of a login.
type Session struct {
	Token       string
	ExpireTime  time.Time
	WorkspaceID uuid.UUID
	Role        commonv1.Role
	UserID      uuid.UUID
}

// dummyHash is checked against when the email is unknown, so a login takes as long for
// an unknown email as for a wrong password (no account enumeration by timing).
var dummyHash = hashPassword("not a password of anyone")

// Login checks email and password and opens a session in a workspace of the user.
func (b *Backend) Login(ctx context.Context, email, password, workspaceID string) (*Session, error) {
	if err := checkText("email", email, true, maxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("password", password, true, maxNameLen); err != nil {
		return nil, err
	}
	var wantWS uuid.UUID
	if workspaceID != "" {
		var err error
		if wantWS, err = parseID("workspace_id", workspaceID); err != nil {
			return nil, err
		}
	}
	q := b.db.q(ctx)
	var userID uuid.UUID
	var hash string
	err := q.QueryRow(ctx, `SELECT id, password_hash FROM users WHERE lower(email) = lower($1)`, email).Scan(&userID, &hash)
	if err != nil && err != pgx.ErrNoRows {
		return nil, fmt.Errorf("login: %w", dbErr(err))
	}
	found := err == nil
	if !found {
		hash = dummyHash
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if !found || !ok {
		return nil, fmt.Errorf("wrong email or password: %w", ErrUnauthenticated)
	}

	rows, err := q.Query(ctx, `SELECT workspace_id, role FROM memberships WHERE user_id = $1 ORDER BY workspace_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("login: %w", dbErr(err))
	}
	type membership struct {
		ws   uuid.UUID
		role int16
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (membership, error) {
		var m membership
		return m, r.Scan(&m.ws, &m.role)
	})
	if err != nil {
		return nil, fmt.Errorf("login: %w", dbErr(err))
	}
	var chosen *membership
	switch {
	case workspaceID != "":
		for i := range ms {
			if ms[i].ws == wantWS {
				chosen = &ms[i]
			}
		}
		if chosen == nil {
			return nil, fmt.Errorf("not a member of workspace %s: %w", workspaceID, ErrPermission)
		}
	case len(ms) == 1:
		chosen = &ms[0]
	case len(ms) == 0:
		return nil, fmt.Errorf("the user belongs to no workspace: %w", ErrPermission)
	default:
		return nil, invalid("workspace_id", "required: the user belongs to %d workspaces", len(ms))
	}

	s := &Session{
		Token: newSecret(prefixSession), ExpireTime: time.Now().Add(b.cfg.SessionTTL).UTC().Truncate(time.Microsecond),
		WorkspaceID: chosen.ws, Role: commonv1.Role(chosen.role), UserID: userID,
	}
	if _, err := q.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, workspace_id, expire_time) VALUES ($1, $2, $3, $4)`,
		hashSecret(s.Token), userID, chosen.ws, s.ExpireTime); err != nil {
		return nil, fmt.Errorf("login: %w", dbErr(err))
	}
	// Expired sessions of this user go with each login, so the table does not grow.
	if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND expire_time < now()`, userID); err != nil {
		return nil, fmt.Errorf("login: %w", dbErr(err))
	}
	return s, nil
}

// Logout ends the session whose token is presented.
func (b *Backend) Logout(ctx context.Context, token string) error {
	if !strings.HasPrefix(token, prefixSession) {
		return fmt.Errorf("only a session can log out: %w", ErrFailedCondition)
	}
	var user uuid.UUID
	err := b.db.q(ctx).QueryRow(ctx, `DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id`, hashSecret(token)).Scan(&user)
	if err == pgx.ErrNoRows {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", dbErr(err))
	}
	b.invalidateSubject(ctx, user.String())
	return nil
}

// Authenticate resolves a session token, API key or agent token.
func (b *Backend) Authenticate(ctx context.Context, token string) (*Identity, error) {
	if len(token) > 200 {
		return nil, fmt.Errorf("credential too long: %w", ErrUnauthenticated)
	}
	q := b.db.q(ctx)
	h := hashSecret(token)
	id := &Identity{}
	var expire *time.Time
	var err error
	switch {
	case strings.HasPrefix(token, prefixSession):
		var userID uuid.UUID
		var role int16
		err = q.QueryRow(ctx, `SELECT s.user_id, s.workspace_id, m.role, u.email, u.superuser, s.expire_time
			FROM sessions s
			JOIN users u ON u.id = s.user_id
			JOIN memberships m ON m.workspace_id = s.workspace_id AND m.user_id = s.user_id
			WHERE s.token_hash = $1 AND s.expire_time > now()`, h).
			Scan(&userID, &id.WorkspaceID, &role, &id.SubjectName, &id.Superuser, &expire)
		id.Kind, id.SubjectID, id.Role = commonv1.Access_KIND_WORKSPACE, userID.String(), commonv1.Role(role)
	case strings.HasPrefix(token, prefixAPIKey):
		var keyID uuid.UUID
		var role int16
		err = q.QueryRow(ctx, `SELECT id, workspace_id, role, name, expire_time FROM api_keys
			WHERE secret_hash = $1 AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())`, h).
			Scan(&keyID, &id.WorkspaceID, &role, &id.SubjectName, &expire)
		id.Kind, id.SubjectID, id.Role = commonv1.Access_KIND_WORKSPACE, keyID.String(), commonv1.Role(role)
	case strings.HasPrefix(token, prefixAgent):
		var agentID uuid.UUID
		err = q.QueryRow(ctx, `SELECT id, workspace_id, name FROM agents WHERE token_hash = $1`, h).
			Scan(&agentID, &id.WorkspaceID, &id.SubjectName)
		id.Kind, id.SubjectID = commonv1.Access_KIND_AGENT, agentID.String()
	default:
		return nil, fmt.Errorf("unknown credential: %w", ErrUnauthenticated)
	}
	if err == pgx.ErrNoRows {
		return nil, fmt.Errorf("unknown, expired or revoked credential: %w", ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", dbErr(err))
	}
	if expire != nil {
		id.ExpireTime = *expire
	}
	return id, nil
}
