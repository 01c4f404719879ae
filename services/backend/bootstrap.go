package backend

import (
	"context"
	"fmt"
	"io"
)

// bootstrapLockKey serialises first-start bootstrap between processes starting at once.
const bootstrapLockKey int64 = 0x76_69_67_62_6f_6f_74 // "vigboot"

// BootstrapResult is the first workspace and admin, created on the first start.
type BootstrapResult struct {
	Workspace *Workspace
	Email     string
	Password  string
}

// Bootstrap creates the first workspace and its admin (a superuser, who may create more
// workspaces) when no user exists yet; otherwise it does nothing and returns nil.
func (b *Backend) Bootstrap(ctx context.Context) (*BootstrapResult, error) {
	var res *BootstrapResult
	err := b.db.inTx(ctx, func(ctx context.Context) error {
		q := b.db.q(ctx)
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, bootstrapLockKey); err != nil {
			return fmt.Errorf("bootstrap lock: %w", dbErr(err))
		}
		var users int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users); err != nil {
			return fmt.Errorf("bootstrap (are the backend's migrations applied? run `vigil migrate`): %w", dbErr(err))
		}
		if users > 0 {
			return nil
		}
		ws, admin, err := b.CreateWorkspace(ctx, &Workspace{Name: b.cfg.BootstrapWorkspace}, b.cfg.BootstrapEmail, true)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		res = &BootstrapResult{Workspace: ws, Email: b.cfg.BootstrapEmail, Password: admin.Password}
		return nil
	})
	return res, err
}

// announceBootstrap prints the first admin's credentials once, to the log and to out.
func (b *Backend) announceBootstrap(ctx context.Context, res *BootstrapResult, out io.Writer) {
	b.log.WarnContext(ctx, "first start: created the first workspace and its admin; change the password after signing in",
		"workspace_id", res.Workspace.ID.String(), "email", res.Email, "password", res.Password)
	fmt.Fprintf(out, "\nVigil first start: workspace %q (%s)\n  admin email:    %s\n  admin password: %s\n"+
		"This password is shown once. Sign in and change it.\n\n", res.Workspace.Name, res.Workspace.ID, res.Email, res.Password)
}
