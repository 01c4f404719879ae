package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// User is a user as seen from one workspace.
type User struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
	Role        commonv1.Role
	CreateTime  time.Time
}

func checkRole(field string, r commonv1.Role) error {
	if r < commonv1.Role_ROLE_VIEWER || r > commonv1.Role_ROLE_ADMIN {
		return invalid(field, "must be ROLE_VIEWER, ROLE_OPERATOR or ROLE_ADMIN")
	}
	return nil
}

func checkPasswordText(field, p string) error {
	if err := checkText(field, p, true, maxNameLen); err != nil {
		return err
	}
	if len([]rune(p)) < minPasswordLen {
		return invalid(field, "at least %d characters", minPasswordLen)
	}
	return nil
}

// ensureUser returns the user with email, creating it (with password, or a generated
// one when empty) if there is none.
func (b *Backend) ensureUser(ctx context.Context, email, name, password string, superuser bool) (id uuid.UUID, created bool, pw string, err error) {
	q := b.db.q(ctx)
	err = q.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1)`, email).Scan(&id)
	if err == nil {
		return id, false, "", nil
	}
	if err != pgx.ErrNoRows {
		return uuid.Nil, false, "", fmt.Errorf("find user: %w", dbErr(err))
	}
	pw = password
	if pw == "" {
		pw = newPassword()
	}
	id = newID()
	if _, err := q.Exec(ctx, `INSERT INTO users (id, email, display_name, password_hash, superuser) VALUES ($1, $2, $3, $4, $5)`,
		id, email, name, hashPassword(pw), superuser); err != nil {
		return uuid.Nil, false, "", fmt.Errorf("create user: %w", dbErr(err))
	}
	return id, true, pw, nil
}

func (b *Backend) setMembership(ctx context.Context, ws, user uuid.UUID, role commonv1.Role) error {
	if _, err := b.db.q(ctx).Exec(ctx, `INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, $3)`,
		ws, user, int16(role)); err != nil {
		return fmt.Errorf("add member: %w", dbErr(err))
	}
	return nil
}

const userColumns = `u.id, u.email, u.display_name, m.role, m.create_time`

func scanUser(row pgx.Row) (*User, error) {
	u := &User{}
	var role int16
	if err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &role, &u.CreateTime); err != nil {
		return nil, dbErr(err)
	}
	u.Role = commonv1.Role(role)
	return u, nil
}

// CreateUser adds a user to the scope's workspace (creating the user if the email is new).
func (b *Backend) CreateUser(ctx context.Context, sc scope, email, name, password string, role commonv1.Role) (*User, error) {
	if err := checkEmail("email", email); err != nil {
		return nil, err
	}
	if err := checkText("display_name", name, false, maxNameLen); err != nil {
		return nil, err
	}
	if err := checkRole("role", role); err != nil {
		return nil, err
	}
	var exists bool
	if err := b.db.q(ctx).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))`, email).Scan(&exists); err != nil {
		return nil, fmt.Errorf("create user: %w", dbErr(err))
	}
	if !exists {
		if err := checkPasswordText("password", password); err != nil {
			return nil, err
		}
	}
	id, _, _, err := b.ensureUser(ctx, email, name, password, false)
	if err != nil {
		return nil, err
	}
	if err := b.setMembership(ctx, sc.workspace, id, role); err != nil {
		return nil, fmt.Errorf("user %s: %w", email, err)
	}
	return b.GetUser(ctx, sc, id.String())
}

// GetUser returns a member of the scope's workspace.
func (b *Backend) GetUser(ctx context.Context, sc scope, userID string) (*User, error) {
	id, err := parseID("user_id", userID)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(b.db.q(ctx).QueryRow(ctx, `SELECT `+userColumns+` FROM users u
		JOIN memberships m ON m.user_id = u.id WHERE m.workspace_id = $1 AND u.id = $2`, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", userID, err)
	}
	return u, nil
}

// ListUsers lists the members of the scope's workspace.
func (b *Backend) ListUsers(ctx context.Context, sc scope, size int32, token string) ([]*User, string, error) {
	us, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+userColumns+` FROM users u JOIN memberships m ON m.user_id = u.id
		WHERE m.workspace_id = $1 AND u.id < $2 ORDER BY u.id DESC LIMIT $3`, scanUser, func(u *User) uuid.UUID { return u.ID }, sc.workspace)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	return us, next, nil
}

// UserChange is what UpdateUser changes; nil fields stay.
type UserChange struct {
	DisplayName *string
	Role        commonv1.Role
	Password    *string
}

// UpdateUser changes a member's name, role or password. A new role or password ends the
// user's sessions in the workspace. A password can be set only for users of this
// workspace alone: an admin of one workspace must not gain another's access.
func (b *Backend) UpdateUser(ctx context.Context, sc scope, userID string, ch UserChange) (*User, error) {
	u, err := b.GetUser(ctx, sc, userID)
	if err != nil {
		return nil, err
	}
	q := b.db.q(ctx)
	if ch.DisplayName != nil {
		if err := checkText("display_name", *ch.DisplayName, false, maxNameLen); err != nil {
			return nil, err
		}
		if _, err := q.Exec(ctx, `UPDATE users SET display_name = $2 WHERE id = $1`, u.ID, *ch.DisplayName); err != nil {
			return nil, fmt.Errorf("update user: %w", dbErr(err))
		}
	}
	endSessions := false
	if ch.Role != commonv1.Role_ROLE_UNSPECIFIED && ch.Role != u.Role {
		if err := checkRole("role", ch.Role); err != nil {
			return nil, err
		}
		if u.Role == commonv1.Role_ROLE_ADMIN {
			if err := b.keepAnAdmin(ctx, sc, u.ID); err != nil {
				return nil, err
			}
		}
		if _, err := q.Exec(ctx, `UPDATE memberships SET role = $3 WHERE workspace_id = $1 AND user_id = $2`,
			sc.workspace, u.ID, int16(ch.Role)); err != nil {
			return nil, fmt.Errorf("update user: %w", dbErr(err))
		}
		endSessions = true
	}
	if ch.Password != nil {
		if err := checkPasswordText("password", *ch.Password); err != nil {
			return nil, err
		}
		var others int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE user_id = $1 AND workspace_id <> $2`,
			u.ID, sc.workspace).Scan(&others); err != nil {
			return nil, fmt.Errorf("update user: %w", dbErr(err))
		}
		if others > 0 && (sc.principal == nil || sc.principal.SubjectID != u.ID.String()) {
			return nil, fmt.Errorf("user %s belongs to other workspaces too; only the user can change the password: %w",
				u.ID, ErrFailedCondition)
		}
		if _, err := q.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, u.ID, hashPassword(*ch.Password)); err != nil {
			return nil, fmt.Errorf("update user: %w", dbErr(err))
		}
		endSessions = true
	}
	if endSessions {
		if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2`, sc.workspace, u.ID); err != nil {
			return nil, fmt.Errorf("update user: %w", dbErr(err))
		}
		b.invalidateSubject(ctx, u.ID.String())
	}
	return b.GetUser(ctx, sc, userID)
}

// keepAnAdmin refuses to demote or remove the workspace's last admin.
func (b *Backend) keepAnAdmin(ctx context.Context, sc scope, leaving uuid.UUID) error {
	var admins int
	if err := b.db.q(ctx).QueryRow(ctx, `SELECT count(*) FROM memberships WHERE workspace_id = $1 AND role = $2 AND user_id <> $3`,
		sc.workspace, int16(commonv1.Role_ROLE_ADMIN), leaving).Scan(&admins); err != nil {
		return fmt.Errorf("count admins: %w", dbErr(err))
	}
	if admins == 0 {
		return fmt.Errorf("the workspace's last admin cannot be removed or demoted: %w", ErrFailedCondition)
	}
	return nil
}

// DeleteUser removes a user from the scope's workspace and ends its sessions there. The
// user itself stays if it belongs to other workspaces.
func (b *Backend) DeleteUser(ctx context.Context, sc scope, userID string) error {
	u, err := b.GetUser(ctx, sc, userID)
	if err != nil {
		return err
	}
	if u.Role == commonv1.Role_ROLE_ADMIN {
		if err := b.keepAnAdmin(ctx, sc, u.ID); err != nil {
			return err
		}
	}
	q := b.db.q(ctx)
	if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2`, sc.workspace, u.ID); err != nil {
		return fmt.Errorf("delete user: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2`, sc.workspace, u.ID); err != nil {
		return fmt.Errorf("delete user: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `DELETE FROM users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)`, u.ID); err != nil {
		return fmt.Errorf("delete user: %w", dbErr(err))
	}
	b.invalidateSubject(ctx, u.ID.String())
	return nil
}
