package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Group is a watch list.
type Group struct {
	ID          uuid.UUID
	Name        string
	Color       string
	Threshold   float32
	Notify      bool
	PersonCount int64
	CreateTime  time.Time
	UpdateTime  time.Time
}

func (g *Group) validate() error {
	if err := checkText("group.name", g.Name, true, maxNameLen); err != nil {
		return err
	}
	if err := checkColor("group.color", g.Color); err != nil {
		return err
	}
	return checkThreshold("group.threshold", g.Threshold)
}

const groupColumns = `g.id, g.name, g.color, g.threshold, g.notify,
	(SELECT count(*) FROM person_groups pg WHERE pg.group_id = g.id), g.create_time, g.update_time`

func scanGroup(row pgx.Row) (*Group, error) {
	g := &Group{}
	if err := row.Scan(&g.ID, &g.Name, &g.Color, &g.Threshold, &g.Notify, &g.PersonCount, &g.CreateTime, &g.UpdateTime); err != nil {
		return nil, dbErr(err)
	}
	return g, nil
}

func (b *Backend) CreateGroup(ctx context.Context, sc scope, g *Group) (*Group, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	id := newID()
	if _, err := b.db.q(ctx).Exec(ctx, `INSERT INTO groups (id, workspace_id, name, color, threshold, notify) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, sc.workspace, g.Name, g.Color, g.Threshold, g.Notify); err != nil {
		return nil, fmt.Errorf("group %q: %w", g.Name, dbErr(err))
	}
	return b.GetGroup(ctx, sc, id.String())
}

func (b *Backend) GetGroup(ctx context.Context, sc scope, groupID string) (*Group, error) {
	id, err := parseID("group_id", groupID)
	if err != nil {
		return nil, err
	}
	g, err := scanGroup(b.db.q(ctx).QueryRow(ctx, `SELECT `+groupColumns+` FROM groups g WHERE g.workspace_id = $1 AND g.id = $2`,
		sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", groupID, err)
	}
	return g, nil
}

func (b *Backend) ListGroups(ctx context.Context, sc scope, size int32, token string) ([]*Group, string, error) {
	gs, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+groupColumns+` FROM groups g
		WHERE g.workspace_id = $1 AND g.id < $2 ORDER BY g.id DESC LIMIT $3`, scanGroup,
		func(g *Group) uuid.UUID { return g.ID }, sc.workspace)
	if err != nil {
		return nil, "", fmt.Errorf("list groups: %w", err)
	}
	return gs, next, nil
}

func (b *Backend) UpdateGroup(ctx context.Context, sc scope, groupID string, set func(*Group)) (*Group, error) {
	g, err := b.GetGroup(ctx, sc, groupID)
	if err != nil {
		return nil, err
	}
	set(g)
	if err := g.validate(); err != nil {
		return nil, err
	}
	if _, err := b.db.q(ctx).Exec(ctx, `UPDATE groups SET name = $3, color = $4, threshold = $5, notify = $6, update_time = now()
		WHERE workspace_id = $1 AND id = $2`, sc.workspace, g.ID, g.Name, g.Color, g.Threshold, g.Notify); err != nil {
		return nil, fmt.Errorf("group %s: %w", groupID, dbErr(err))
	}
	return b.GetGroup(ctx, sc, groupID)
}

// DeleteGroup removes a group; its members' versions are bumped (their groups changed).
// It returns the members, whose new groups the caller tells the matcher after the commit.
func (b *Backend) DeleteGroup(ctx context.Context, sc scope, groupID string) ([]uuid.UUID, error) {
	g, err := b.GetGroup(ctx, sc, groupID)
	if err != nil {
		return nil, err
	}
	q := b.db.q(ctx)
	rows, err := q.Query(ctx, `UPDATE persons SET version = nextval('person_version_seq'), update_time = now()
		WHERE workspace_id = $1 AND id IN (SELECT person_id FROM person_groups WHERE group_id = $2) RETURNING id`, sc.workspace, g.ID)
	if err != nil {
		return nil, fmt.Errorf("delete group: %w", dbErr(err))
	}
	members, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("delete group: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `DELETE FROM groups WHERE workspace_id = $1 AND id = $2`, sc.workspace, g.ID); err != nil {
		return nil, fmt.Errorf("delete group: %w", dbErr(err))
	}
	b.invalidatePersons(ctx, sc, members...) // their cards list the group
	return members, nil
}
