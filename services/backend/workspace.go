package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// Workspace is a tenant and its settings.
type Workspace struct {
	ID               uuid.UUID
	Name             string
	RetentionDays    int32
	AnonymousMode    bool
	DefaultThreshold float32
	DefaultTopK      int32
	CreateTime       time.Time
	UpdateTime       time.Time
}

func (w *Workspace) validate() error {
	if err := checkText("workspace.name", w.Name, true, maxNameLen); err != nil {
		return err
	}
	if w.RetentionDays < 0 || w.RetentionDays > 3650 {
		return invalid("workspace.settings.retention_days", "must be within 0..3650")
	}
	if err := checkThreshold("workspace.settings.default_threshold", w.DefaultThreshold); err != nil {
		return err
	}
	if w.DefaultTopK < 0 || w.DefaultTopK > 100 {
		return invalid("workspace.settings.default_top_k", "must be within 0..100")
	}
	return nil
}

// NewAdmin is the first admin created with a workspace.
type NewAdmin struct {
	UserID uuid.UUID
	// Password is empty when the user already existed.
	Password string
}

const workspaceColumns = `id, name, retention_days, anonymous_mode, default_threshold, default_top_k, create_time, update_time`

func scanWorkspace(row pgx.Row) (*Workspace, error) {
	w := &Workspace{}
	if err := row.Scan(&w.ID, &w.Name, &w.RetentionDays, &w.AnonymousMode, &w.DefaultThreshold, &w.DefaultTopK,
		&w.CreateTime, &w.UpdateTime); err != nil {
		return nil, dbErr(err)
	}
	return w, nil
}

// CreateWorkspace creates a workspace and, when adminEmail is set, its first admin.
func (b *Backend) CreateWorkspace(ctx context.Context, w *Workspace, adminEmail string, superuser bool) (*Workspace, *NewAdmin, error) {
	if err := w.validate(); err != nil {
		return nil, nil, err
	}
	if adminEmail != "" {
		if err := checkEmail("admin_email", adminEmail); err != nil {
			return nil, nil, err
		}
	}
	var out *Workspace
	var admin *NewAdmin
	err := b.db.inTx(ctx, func(ctx context.Context) error {
		q := b.db.q(ctx)
		var err error
		out, err = scanWorkspace(q.QueryRow(ctx, `INSERT INTO workspaces (id, name, retention_days, anonymous_mode,
			default_threshold, default_top_k) VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+workspaceColumns,
			newID(), w.Name, w.RetentionDays, w.AnonymousMode, w.DefaultThreshold, w.DefaultTopK))
		if err != nil {
			return fmt.Errorf("create workspace: %w", err)
		}
		if adminEmail == "" {
			return nil
		}
		admin = &NewAdmin{}
		var created bool
		admin.UserID, created, admin.Password, err = b.ensureUser(ctx, adminEmail, "Administrator", "", superuser)
		if err != nil {
			return err
		}
		if !created {
			admin.Password = ""
		}
		return b.setMembership(ctx, out.ID, admin.UserID, commonv1.Role_ROLE_ADMIN)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, admin, nil
}

// ListWorkspaces lists every workspace, newest first.
func (b *Backend) ListWorkspaces(ctx context.Context, size int32, token string) ([]*Workspace, string, error) {
	ws, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+workspaceColumns+` FROM workspaces
		WHERE id < $1 ORDER BY id DESC LIMIT $2`, scanWorkspace, func(w *Workspace) uuid.UUID { return w.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list workspaces: %w", err)
	}
	return ws, next, nil
}

// GetWorkspace returns the scope's workspace.
func (b *Backend) GetWorkspace(ctx context.Context, sc scope) (*Workspace, error) {
	w, err := scanWorkspace(b.db.q(ctx).QueryRow(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE id = $1`, sc.workspace))
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", sc.workspace, err)
	}
	return w, nil
}

// UpdateWorkspace applies set (which changes the fields named in the update mask) to the
// scope's workspace.
func (b *Backend) UpdateWorkspace(ctx context.Context, sc scope, set func(*Workspace)) (*Workspace, error) {
	w, err := scanWorkspace(b.db.q(ctx).QueryRow(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE id = $1 FOR UPDATE`, sc.workspace))
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", sc.workspace, err)
	}
	set(w)
	if err := w.validate(); err != nil {
		return nil, err
	}
	w, err = scanWorkspace(b.db.q(ctx).QueryRow(ctx, `UPDATE workspaces SET name = $2, retention_days = $3, anonymous_mode = $4,
		default_threshold = $5, default_top_k = $6, update_time = now() WHERE id = $1 RETURNING `+workspaceColumns,
		sc.workspace, w.Name, w.RetentionDays, w.AnonymousMode, w.DefaultThreshold, w.DefaultTopK))
	if err != nil {
		return nil, fmt.Errorf("update workspace: %w", err)
	}
	return w, nil
}
