package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AuditEntry records one mutating call.
type AuditEntry struct {
	ID          uuid.UUID
	Time        time.Time
	WorkspaceID *uuid.UUID
	SubjectKind int16
	SubjectID   string
	SubjectName string
	Method      string
	Target      string
	PeerAddr    string
	Outcome     string
	Message     string
	RequestID   string
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	Start, End time.Time
	Method     string
	SubjectID  string
	Target     string
}

const auditColumns = `id, time, workspace_id, subject_kind, subject_id, subject_name, method, target, peer_addr, outcome, message, request_id`

func scanAudit(row pgx.Row) (*AuditEntry, error) {
	a := &AuditEntry{}
	if err := row.Scan(&a.ID, &a.Time, &a.WorkspaceID, &a.SubjectKind, &a.SubjectID, &a.SubjectName, &a.Method, &a.Target,
		&a.PeerAddr, &a.Outcome, &a.Message, &a.RequestID); err != nil {
		return nil, dbErr(err)
	}
	return a, nil
}

// truncate cuts s to at most n bytes on a rune boundary; audit fields come from callers.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xc0) == 0x80 {
		n--
	}
	return s[:n]
}

// RecordAudit appends entries. Entries are what happened, so they are stored as given
// (cut to sane lengths), not validated away.
func (b *Backend) RecordAudit(ctx context.Context, entries []*AuditEntry) error {
	if len(entries) > 1000 {
		return invalid("entries", "at most 1000 per call")
	}
	rows := make([][]any, 0, len(entries))
	for _, e := range entries {
		if e.Method == "" || e.Outcome == "" {
			return invalid("entries", "method and outcome are required")
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		rows = append(rows, []any{newID(), e.Time, e.WorkspaceID, e.SubjectKind, truncate(e.SubjectID, 200),
			truncate(e.SubjectName, 200), truncate(e.Method, 200), truncate(e.Target, 300), truncate(e.PeerAddr, 100),
			truncate(e.Outcome, 50), truncate(e.Message, 2000), truncate(e.RequestID, 100)})
	}
	_, err := b.db.q(ctx).CopyFrom(ctx, pgx.Identifier{"audit_entries"},
		[]string{"id", "time", "workspace_id", "subject_kind", "subject_id", "subject_name", "method", "target", "peer_addr",
			"outcome", "message", "request_id"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("record audit: %w", dbErr(err))
	}
	return nil
}

// ListAudit lists the workspace's entries, newest first.
func (b *Backend) ListAudit(ctx context.Context, sc scope, f AuditFilter, size int32, token string) ([]*AuditEntry, string, error) {
	var start, end any
	if !f.Start.IsZero() {
		start = f.Start
	}
	if !f.End.IsZero() {
		end = f.End
	}
	for field, v := range map[string]string{"method": f.Method, "subject_id": f.SubjectID, "target": f.Target} {
		if err := checkText(field, v, false, 300); err != nil {
			return nil, "", err
		}
	}
	es, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+auditColumns+` FROM audit_entries
		WHERE workspace_id = $1 AND ($2::timestamptz IS NULL OR time >= $2) AND ($3::timestamptz IS NULL OR time < $3)
		AND ($4 = '' OR method = $4) AND ($5 = '' OR subject_id = $5) AND ($6 = '' OR target = $6)
		AND id < $7 ORDER BY id DESC LIMIT $8`, scanAudit, func(a *AuditEntry) uuid.UUID { return a.ID },
		sc.workspace, start, end, f.Method, f.SubjectID, f.Target)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	return es, next, nil
}
