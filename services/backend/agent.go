package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Agent is an edge process near cameras.
type Agent struct {
	ID           uuid.UUID
	Name         string
	Version      string
	Status       int16
	LastSeenTime *time.Time
	SyncCursor   int64
	CreateTime   time.Time
	TokenPrefix  string
}

// Camera is a video source run by an agent.
type Camera struct {
	ID          uuid.UUID
	AgentID     uuid.UUID
	Name        string
	Location    string
	SourceURL   string
	MinFaceSize int32
	ROI         []float32
	Status      int16
	CreateTime  time.Time
	UpdateTime  time.Time
}

const agentColumns = `id, name, version, status, last_seen_time, sync_cursor, create_time, token_prefix`

func scanAgent(row pgx.Row) (*Agent, error) {
	a := &Agent{}
	if err := row.Scan(&a.ID, &a.Name, &a.Version, &a.Status, &a.LastSeenTime, &a.SyncCursor, &a.CreateTime, &a.TokenPrefix); err != nil {
		return nil, dbErr(err)
	}
	return a, nil
}

// CreateAgent registers an agent and returns its token. The caller checks the license
// first (CheckLimit), outside the transaction.
func (b *Backend) CreateAgent(ctx context.Context, sc scope, name string) (*Agent, string, error) {
	if err := checkText("name", name, true, maxNameLen); err != nil {
		return nil, "", err
	}
	token := newSecret(prefixAgent)
	a, err := scanAgent(b.db.q(ctx).QueryRow(ctx, `INSERT INTO agents (id, workspace_id, name, token_hash, token_prefix)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+agentColumns, newID(), sc.workspace, name, hashSecret(token), secretPrefix(token)))
	if err != nil {
		return nil, "", fmt.Errorf("agent %q: %w", name, err)
	}
	return a, token, nil
}

func (b *Backend) GetAgent(ctx context.Context, sc scope, agentID string) (*Agent, error) {
	id, err := parseID("agent_id", agentID)
	if err != nil {
		return nil, err
	}
	a, err := scanAgent(b.db.q(ctx).QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE workspace_id = $1 AND id = $2`, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return a, nil
}

func (b *Backend) ListAgents(ctx context.Context, sc scope, size int32, token string) ([]*Agent, string, error) {
	as, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+agentColumns+` FROM agents
		WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, scanAgent, func(a *Agent) uuid.UUID { return a.ID }, sc.workspace)
	if err != nil {
		return nil, "", fmt.Errorf("list agents: %w", err)
	}
	return as, next, nil
}

func (b *Backend) RenameAgent(ctx context.Context, sc scope, agentID, name string) (*Agent, error) {
	id, err := parseID("agent_id", agentID)
	if err != nil {
		return nil, err
	}
	if err := checkText("name", name, true, maxNameLen); err != nil {
		return nil, err
	}
	a, err := scanAgent(b.db.q(ctx).QueryRow(ctx, `UPDATE agents SET name = $3 WHERE workspace_id = $1 AND id = $2 RETURNING `+agentColumns,
		sc.workspace, id, name))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return a, nil
}

// DeleteAgent removes an agent and its cameras; its token stops working.
func (b *Backend) DeleteAgent(ctx context.Context, sc scope, agentID string) error {
	id, err := parseID("agent_id", agentID)
	if err != nil {
		return err
	}
	tag, err := b.db.q(ctx).Exec(ctx, `DELETE FROM agents WHERE workspace_id = $1 AND id = $2`, sc.workspace, id)
	if err != nil {
		return fmt.Errorf("delete agent: %w", dbErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("agent %s: %w", agentID, ErrNotFound)
	}
	b.invalidateSubject(ctx, id.String())
	return nil
}

// RotateAgentToken issues a new token; the old one stops working.
func (b *Backend) RotateAgentToken(ctx context.Context, sc scope, agentID string) (*Agent, string, error) {
	id, err := parseID("agent_id", agentID)
	if err != nil {
		return nil, "", err
	}
	token := newSecret(prefixAgent)
	a, err := scanAgent(b.db.q(ctx).QueryRow(ctx, `UPDATE agents SET token_hash = $3, token_prefix = $4
		WHERE workspace_id = $1 AND id = $2 RETURNING `+agentColumns, sc.workspace, id, hashSecret(token), secretPrefix(token)))
	if err != nil {
		return nil, "", fmt.Errorf("agent %s: %w", agentID, err)
	}
	b.invalidateSubject(ctx, id.String())
	return a, token, nil
}

// AgentHeartbeat records an agent's state as agent-sync saw it.
func (b *Backend) AgentHeartbeat(ctx context.Context, sc scope, agentID string, status int16, version string, cursor int64,
	cameras map[string]int16) (*Agent, error) {
	id, err := parseID("agent_id", agentID)
	if err != nil {
		return nil, err
	}
	if status < 1 || status > 3 {
		return nil, invalid("status", "must be set")
	}
	if err := checkText("version", version, false, maxNameLen); err != nil {
		return nil, err
	}
	a, err := scanAgent(b.db.q(ctx).QueryRow(ctx, `UPDATE agents SET status = $3, version = CASE WHEN $4 = '' THEN version ELSE $4 END,
		sync_cursor = greatest(sync_cursor, $5), last_seen_time = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+agentColumns,
		sc.workspace, id, status, version, cursor))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	for camID, st := range cameras {
		cid, err := uuid.Parse(camID)
		if err != nil {
			continue
		}
		if _, err := b.db.q(ctx).Exec(ctx, `UPDATE cameras SET status = $4 WHERE workspace_id = $1 AND agent_id = $2 AND id = $3`,
			sc.workspace, id, cid, st); err != nil {
			return nil, fmt.Errorf("camera %s status: %w", camID, dbErr(err))
		}
	}
	return a, nil
}

func (c *Camera) validate() error {
	if err := checkText("camera.name", c.Name, true, maxNameLen); err != nil {
		return err
	}
	if err := checkText("camera.location", c.Location, false, maxNameLen); err != nil {
		return err
	}
	if err := checkText("camera.source_url", c.SourceURL, false, maxURLLen); err != nil {
		return err
	}
	if c.MinFaceSize < 0 || c.MinFaceSize > 4096 {
		return invalid("camera.settings.min_face_size", "must be within 0..4096")
	}
	if c.ROI != nil {
		r := c.ROI
		for _, v := range r {
			if v < 0 || v > 1 || v != v {
				return invalid("camera.settings.region_of_interest", "coordinates must be within 0..1")
			}
		}
		if r[0] >= r[2] || r[1] >= r[3] {
			return invalid("camera.settings.region_of_interest", "x1 < x2 and y1 < y2 required")
		}
	}
	return nil
}

const cameraColumns = `id, agent_id, name, location, source_url, min_face_size, roi, status, create_time, update_time`

func scanCamera(row pgx.Row) (*Camera, error) {
	c := &Camera{}
	if err := row.Scan(&c.ID, &c.AgentID, &c.Name, &c.Location, &c.SourceURL, &c.MinFaceSize, &c.ROI, &c.Status,
		&c.CreateTime, &c.UpdateTime); err != nil {
		return nil, dbErr(err)
	}
	return c, nil
}

// CreateCamera adds a camera to an agent. The caller checks the license first.
func (b *Backend) CreateCamera(ctx context.Context, sc scope, c *Camera) (*Camera, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if _, err := b.GetAgent(ctx, sc, c.AgentID.String()); err != nil {
		return nil, fmt.Errorf("camera.agent_id: %w", err)
	}
	out, err := scanCamera(b.db.q(ctx).QueryRow(ctx, `INSERT INTO cameras (id, workspace_id, agent_id, name, location, source_url,
		min_face_size, roi) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+cameraColumns,
		newID(), sc.workspace, c.AgentID, c.Name, c.Location, c.SourceURL, c.MinFaceSize, c.ROI))
	if err != nil {
		return nil, fmt.Errorf("create camera: %w", err)
	}
	return out, nil
}

func (b *Backend) GetCamera(ctx context.Context, sc scope, cameraID string) (*Camera, error) {
	id, err := parseID("camera_id", cameraID)
	if err != nil {
		return nil, err
	}
	c, err := scanCamera(b.db.q(ctx).QueryRow(ctx, `SELECT `+cameraColumns+` FROM cameras WHERE workspace_id = $1 AND id = $2`, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cameraID, err)
	}
	return c, nil
}

func (b *Backend) ListCameras(ctx context.Context, sc scope, agentID string, size int32, token string) ([]*Camera, string, error) {
	agent := uuid.Nil
	if agentID != "" {
		var err error
		if agent, err = parseID("agent_id", agentID); err != nil {
			return nil, "", err
		}
	}
	cs, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+cameraColumns+` FROM cameras
		WHERE workspace_id = $1 AND ($2 = '00000000-0000-0000-0000-000000000000'::uuid OR agent_id = $2)
		AND id < $3 ORDER BY id DESC LIMIT $4`, scanCamera, func(c *Camera) uuid.UUID { return c.ID }, sc.workspace, agent)
	if err != nil {
		return nil, "", fmt.Errorf("list cameras: %w", err)
	}
	return cs, next, nil
}

func (b *Backend) UpdateCamera(ctx context.Context, sc scope, cameraID string, set func(*Camera)) (*Camera, error) {
	c, err := b.GetCamera(ctx, sc, cameraID)
	if err != nil {
		return nil, err
	}
	set(c)
	if err := c.validate(); err != nil {
		return nil, err
	}
	out, err := scanCamera(b.db.q(ctx).QueryRow(ctx, `UPDATE cameras SET name = $3, location = $4, source_url = $5, min_face_size = $6,
		roi = $7, update_time = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+cameraColumns,
		sc.workspace, c.ID, c.Name, c.Location, c.SourceURL, c.MinFaceSize, c.ROI))
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cameraID, err)
	}
	return out, nil
}

func (b *Backend) DeleteCamera(ctx context.Context, sc scope, cameraID string) error {
	id, err := parseID("camera_id", cameraID)
	if err != nil {
		return err
	}
	tag, err := b.db.q(ctx).Exec(ctx, `DELETE FROM cameras WHERE workspace_id = $1 AND id = $2`, sc.workspace, id)
	if err != nil {
		return fmt.Errorf("delete camera: %w", dbErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("camera %s: %w", cameraID, ErrNotFound)
	}
	return nil
}
