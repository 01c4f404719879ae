package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is a row of the events table (written by event-service).
type Event struct {
	ID             string
	Type           int16
	EventTime      time.Time
	CameraID       *string
	AgentID        *string
	ActivityID     string
	PersonID       *string
	GroupID        *string
	Score          float32
	Age            *float32
	Gender         int16
	Emotion        string
	Mask           *bool
	Live           *bool
	Quality        *float32
	FaceObjectKey  string
	FrameObjectKey string
	FaceBox        []float32
}

// EventFilter narrows ListEvents; zero values do not filter.
type EventFilter struct {
	Start, End time.Time
	CameraIDs  []string
	PersonID   string
	GroupID    string
	Type       int16
	MinAge     float32
	MaxAge     float32
	Gender     int16
	Mask       *bool
	Emotion    string
}

const eventColumns = `id, type, event_time, camera_id::text, agent_id::text, activity_id, person_id::text, group_id::text, score,
	age, gender, emotion, mask, live, quality, face_object_key, frame_object_key, face_box`

func scanEvent(row pgx.Row) (*Event, error) {
	e := &Event{}
	if err := row.Scan(&e.ID, &e.Type, &e.EventTime, &e.CameraID, &e.AgentID, &e.ActivityID, &e.PersonID, &e.GroupID, &e.Score,
		&e.Age, &e.Gender, &e.Emotion, &e.Mask, &e.Live, &e.Quality, &e.FaceObjectKey, &e.FrameObjectKey, &e.FaceBox); err != nil {
		return nil, dbErr(err)
	}
	return e, nil
}

// eventCursor is the position after the last event of a page: events are ordered by
// (event_time, id) descending, so new events never shift later pages.
type eventCursor struct {
	Time time.Time `json:"t"`
	ID   string    `json:"i"`
}

func (b *Backend) GetEvent(ctx context.Context, sc scope, eventID string) (*Event, error) {
	if err := checkText("event_id", eventID, true, maxNameLen); err != nil {
		return nil, err
	}
	e, err := scanEvent(b.db.q(ctx).QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE workspace_id = $1 AND id = $2`, sc.workspace, eventID))
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", eventID, err)
	}
	return e, nil
}

// ListEvents returns events newest first.
func (b *Backend) ListEvents(ctx context.Context, sc scope, f EventFilter, size int32, token string) ([]*Event, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	where := []string{"workspace_id = $1"}
	args := []any{sc.workspace}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		var c eventCursor
		if err != nil || json.Unmarshal(raw, &c) != nil || c.ID == "" {
			return nil, "", invalid("page_token", "malformed")
		}
		where = append(where, fmt.Sprintf("(event_time, id) < (%s, %s)", arg(c.Time), arg(c.ID)))
	}
	if !f.Start.IsZero() {
		where = append(where, "event_time >= "+arg(f.Start))
	}
	if !f.End.IsZero() {
		where = append(where, "event_time < "+arg(f.End))
	}
	if len(f.CameraIDs) > 0 {
		ids, err := parseIDs("camera_ids", f.CameraIDs)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "camera_id = ANY("+arg(ids)+")")
	}
	if f.PersonID != "" {
		id, err := parseID("person_id", f.PersonID)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "person_id = "+arg(id))
	}
	if f.GroupID != "" {
		id, err := parseID("group_id", f.GroupID)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "group_id = "+arg(id))
	}
	if f.Type != 0 {
		where = append(where, "type = "+arg(f.Type))
	}
	if f.MinAge < 0 || f.MaxAge < 0 || (f.MaxAge > 0 && f.MinAge > f.MaxAge) {
		return nil, "", invalid("min_age", "want 0 <= min_age <= max_age")
	}
	if f.MinAge > 0 {
		where = append(where, "age >= "+arg(f.MinAge))
	}
	if f.MaxAge > 0 {
		where = append(where, "age <= "+arg(f.MaxAge))
	}
	if f.Gender != 0 {
		where = append(where, "gender = "+arg(f.Gender))
	}
	if f.Mask != nil {
		where = append(where, "mask = "+arg(*f.Mask))
	}
	if f.Emotion != "" {
		if err := checkText("emotion", f.Emotion, false, maxNameLen); err != nil {
			return nil, "", err
		}
		where = append(where, "emotion = "+arg(f.Emotion))
	}
	sql := `SELECT ` + eventColumns + ` FROM events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY event_time DESC, id DESC LIMIT ` + arg(n+1)
	rows, err := b.db.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", dbErr(err))
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", dbErr(err))
	}
	next := ""
	if len(es) > n {
		es = es[:n]
		last := es[n-1]
		raw, _ := json.Marshal(eventCursor{Time: last.EventTime, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(raw)
	}
	return es, next, nil
}
