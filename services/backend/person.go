package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// Person is a profile.
type Person struct {
	ID           uuid.UUID
	ExternalID   string
	Name         string
	CustomFields map[string]any
	GroupIDs     []uuid.UUID
	Photos       []*Photo
	MainPhotoID  *uuid.UUID
	Version      int64
	CreateTime   time.Time
	UpdateTime   time.Time
}

// Photo is a sample of a person.
type Photo struct {
	ID             uuid.UUID
	PersonID       uuid.UUID
	ObjectKey      string
	ContentType    string
	FaceBox        []float32
	FaceConfidence float32
	TemplateModel  string
	CreateTime     time.Time
}

func (p *Person) validate() ([]byte, error) {
	if err := checkText("person.name", p.Name, true, maxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("person.external_id", p.ExternalID, false, maxNameLen); err != nil {
		return nil, err
	}
	if p.CustomFields == nil {
		p.CustomFields = map[string]any{}
	}
	fields, err := json.Marshal(p.CustomFields)
	if err != nil {
		return nil, invalid("person.custom_fields", "not representable as JSON")
	}
	if len(fields) > maxCustomFieldsLen {
		return nil, invalid("person.custom_fields", "%d bytes encoded, at most %d allowed", len(fields), maxCustomFieldsLen)
	}
	for k := range p.CustomFields {
		if err := checkText("person.custom_fields key", k, true, maxNameLen); err != nil {
			return nil, err
		}
	}
	// PostgreSQL's jsonb refuses \u0000 in strings: say so as a field error.
	if strings.Contains(string(fields), `\u0000`) {
		return nil, invalid("person.custom_fields", "NUL characters are not allowed")
	}
	return fields, nil
}

// nullable external id: empty means none (the unique index ignores NULLs).
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// checkGroups makes sure every group exists in the workspace.
func (b *Backend) checkGroups(ctx context.Context, sc scope, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	var n int
	if err := b.db.q(ctx).QueryRow(ctx, `SELECT count(*) FROM groups WHERE workspace_id = $1 AND id = ANY($2)`,
		sc.workspace, ids).Scan(&n); err != nil {
		return fmt.Errorf("check groups: %w", dbErr(err))
	}
	if n != len(ids) {
		return fmt.Errorf("person.group_ids: a group does not exist: %w", ErrNotFound)
	}
	return nil
}

func (b *Backend) setPersonGroups(ctx context.Context, sc scope, person uuid.UUID, groups []uuid.UUID) error {
	q := b.db.q(ctx)
	if _, err := q.Exec(ctx, `DELETE FROM person_groups WHERE person_id = $1`, person); err != nil {
		return fmt.Errorf("set groups: %w", dbErr(err))
	}
	if len(groups) == 0 {
		return nil
	}
	if _, err := q.Exec(ctx, `INSERT INTO person_groups (person_id, group_id, workspace_id) SELECT $1, g, $2 FROM unnest($3::uuid[]) g`,
		person, sc.workspace, groups); err != nil {
		return fmt.Errorf("set groups: %w", dbErr(err))
	}
	return nil
}

// CreatePerson adds a person. The caller checks the license's person limit first
// (CheckLimit), outside the transaction. The matcher learns the person's groups with its
// first template (IndexPhoto).
func (b *Backend) CreatePerson(ctx context.Context, sc scope, p *Person) (*Person, error) {
	fields, err := p.validate()
	if err != nil {
		return nil, err
	}
	if err := b.checkGroups(ctx, sc, p.GroupIDs); err != nil {
		return nil, err
	}
	id := newID()
	if _, err := b.db.q(ctx).Exec(ctx, `INSERT INTO persons (id, workspace_id, external_id, name, custom_fields, version)
		VALUES ($1, $2, $3, $4, $5, nextval('person_version_seq'))`,
		id, sc.workspace, nullIfEmpty(p.ExternalID), p.Name, fields); err != nil {
		return nil, fmt.Errorf("person external_id %q: %w", p.ExternalID, dbErr(err))
	}
	if err := b.setPersonGroups(ctx, sc, id, p.GroupIDs); err != nil {
		return nil, err
	}
	return b.GetPerson(ctx, sc, id.String())
}

const personColumns = `p.id, coalesce(p.external_id, ''), p.name, p.custom_fields, p.main_photo_id, p.version, p.create_time, p.update_time`

func scanPerson(row pgx.Row) (*Person, error) {
	p := &Person{}
	var fields []byte
	if err := row.Scan(&p.ID, &p.ExternalID, &p.Name, &fields, &p.MainPhotoID, &p.Version, &p.CreateTime, &p.UpdateTime); err != nil {
		return nil, dbErr(err)
	}
	if err := json.Unmarshal(fields, &p.CustomFields); err != nil {
		return nil, fmt.Errorf("person %s custom fields: %w", p.ID, err)
	}
	return p, nil
}

const photoColumns = `id, person_id, object_key, content_type, face_box, face_confidence, template_model, create_time`

func scanPhoto(row pgx.Row) (*Photo, error) {
	ph := &Photo{}
	if err := row.Scan(&ph.ID, &ph.PersonID, &ph.ObjectKey, &ph.ContentType, &ph.FaceBox, &ph.FaceConfidence,
		&ph.TemplateModel, &ph.CreateTime); err != nil {
		return nil, dbErr(err)
	}
	return ph, nil
}

// fillPersons loads the groups and photos of persons.
func (b *Backend) fillPersons(ctx context.Context, persons []*Person) error {
	if len(persons) == 0 {
		return nil
	}
	byID := make(map[uuid.UUID]*Person, len(persons))
	ids := make([]uuid.UUID, len(persons))
	for i, p := range persons {
		byID[p.ID], ids[i] = p, p.ID
		p.GroupIDs, p.Photos = nil, nil
	}
	q := b.db.q(ctx)
	rows, err := q.Query(ctx, `SELECT person_id, group_id FROM person_groups WHERE person_id = ANY($1) ORDER BY group_id`, ids)
	if err != nil {
		return fmt.Errorf("load groups: %w", dbErr(err))
	}
	var pid, gid uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&pid, &gid}, func() error {
		byID[pid].GroupIDs = append(byID[pid].GroupIDs, gid)
		return nil
	}); err != nil {
		return fmt.Errorf("load groups: %w", dbErr(err))
	}
	rows, err = q.Query(ctx, `SELECT `+photoColumns+` FROM photos WHERE person_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return fmt.Errorf("load photos: %w", dbErr(err))
	}
	photos, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Photo, error) { return scanPhoto(r) })
	if err != nil {
		return fmt.Errorf("load photos: %w", dbErr(err))
	}
	for _, ph := range photos {
		byID[ph.PersonID].Photos = append(byID[ph.PersonID].Photos, ph)
	}
	return nil
}

// GetPerson returns a person of the scope's workspace with groups and photos.
func (b *Backend) GetPerson(ctx context.Context, sc scope, personID string) (*Person, error) {
	id, err := parseID("person_id", personID)
	if err != nil {
		return nil, err
	}
	return b.getPerson(ctx, sc, id, false)
}

func (b *Backend) getPerson(ctx context.Context, sc scope, id uuid.UUID, forUpdate bool) (*Person, error) {
	sql := `SELECT ` + personColumns + ` FROM persons p WHERE p.workspace_id = $1 AND p.id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	p, err := scanPerson(b.db.q(ctx).QueryRow(ctx, sql, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("person %s: %w", id, err)
	}
	if err := b.fillPersons(ctx, []*Person{p}); err != nil {
		return nil, err
	}
	return p, nil
}

// PersonFilter narrows ListPersons.
type PersonFilter struct {
	NameContains      string
	ExternalID        string
	GroupID           string
	CustomFieldEquals map[string]string
}

// likeEscape escapes LIKE's wildcards so user text matches literally.
var likeEscape = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListPersons lists and searches persons, newest first. Every filter is a bound
// parameter; no user text is ever part of the SQL.
func (b *Backend) ListPersons(ctx context.Context, sc scope, f PersonFilter, size int32, token string) ([]*Person, string, error) {
	where := []string{"p.workspace_id = $1"}
	args := []any{sc.workspace}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.NameContains != "" {
		if err := checkText("name_contains", f.NameContains, false, maxNameLen); err != nil {
			return nil, "", err
		}
		where = append(where, `lower(p.name) LIKE '%' || `+arg(likeEscape.Replace(strings.ToLower(f.NameContains)))+` || '%'`)
	}
	if f.ExternalID != "" {
		if err := checkText("external_id", f.ExternalID, false, maxNameLen); err != nil {
			return nil, "", err
		}
		where = append(where, `p.external_id = `+arg(f.ExternalID))
	}
	if f.GroupID != "" {
		gid, err := parseID("group_id", f.GroupID)
		if err != nil {
			return nil, "", err
		}
		where = append(where, `EXISTS (SELECT 1 FROM person_groups pg WHERE pg.person_id = p.id AND pg.group_id = `+arg(gid)+`)`)
	}
	if len(f.CustomFieldEquals) > 0 {
		for k, v := range f.CustomFieldEquals {
			if err := checkText("custom_field_equals key", k, true, maxNameLen); err != nil {
				return nil, "", err
			}
			if err := checkText("custom_field_equals value", v, false, maxNameLen); err != nil {
				return nil, "", err
			}
		}
		js, _ := json.Marshal(f.CustomFieldEquals)
		where = append(where, `p.custom_fields @> `+arg(js)+`::jsonb`)
	}
	n := len(args)
	sql := `SELECT ` + personColumns + ` FROM persons p WHERE ` + strings.Join(where, " AND ") +
		fmt.Sprintf(` AND p.id < $%d ORDER BY p.id DESC LIMIT $%d`, n+1, n+2)
	ps, next, err := listPage(ctx, b.db.q(ctx), size, token, sql, scanPerson, func(p *Person) uuid.UUID { return p.ID }, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list persons: %w", err)
	}
	if err := b.fillPersons(ctx, ps); err != nil {
		return nil, "", err
	}
	return ps, next, nil
}

// UpdatePerson applies set (the fields of the update mask) and bumps the version. A
// change of groups reaches the matcher through SyncMatcherGroups after the commit.
func (b *Backend) UpdatePerson(ctx context.Context, sc scope, personID string, set func(*Person) error) (*Person, error) {
	id, err := parseID("person.id", personID)
	if err != nil {
		return nil, err
	}
	p, err := b.getPerson(ctx, sc, id, true)
	if err != nil {
		return nil, err
	}
	oldGroups := fmt.Sprint(p.GroupIDs)
	if err := set(p); err != nil {
		return nil, err
	}
	fields, err := p.validate()
	if err != nil {
		return nil, err
	}
	if err := b.checkGroups(ctx, sc, p.GroupIDs); err != nil {
		return nil, err
	}
	if p.MainPhotoID != nil {
		found := false
		for _, ph := range p.Photos {
			found = found || ph.ID == *p.MainPhotoID
		}
		if !found {
			return nil, fmt.Errorf("person.main_photo_id: not a photo of the person: %w", ErrNotFound)
		}
	}
	if _, err := b.db.q(ctx).Exec(ctx, `UPDATE persons SET external_id = $3, name = $4, custom_fields = $5, main_photo_id = $6,
		version = nextval('person_version_seq'), update_time = now() WHERE workspace_id = $1 AND id = $2`,
		sc.workspace, id, nullIfEmpty(p.ExternalID), p.Name, fields, p.MainPhotoID); err != nil {
		return nil, fmt.Errorf("person external_id %q: %w", p.ExternalID, dbErr(err))
	}
	if fmt.Sprint(p.GroupIDs) != oldGroups {
		if err := b.setPersonGroups(ctx, sc, id, p.GroupIDs); err != nil {
			return nil, err
		}
	}
	b.invalidatePersons(ctx, sc, id)
	return b.getPerson(ctx, sc, id, false)
}

// ErasePersonData is the first half of a GDPR erase: the person's matcher entries, photo
// images and the images of the events that identified the person go, before (and outside) the transaction that deletes the rows
// (DeletePerson). Peer calls never run inside a transaction: they would hold a pooled
// connection while the peer (in `vigil all`, the same pool) needs one. If this fails, the
// erase fails and is retried; if the rows' deletion fails after it, the person remains
// without images, never the images without the person. An unknown person is not an
// error here (a replayed erase); DeletePerson decides.
func (b *Backend) ErasePersonData(ctx context.Context, sc scope, personID string) error {
	id, err := parseID("person_id", personID)
	if err != nil {
		return err
	}
	p, err := b.getPerson(ctx, sc, id, false)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := b.matcher()
	if err != nil {
		return err
	}
	mctx, cancel := b.peerCtx(ctx)
	_, err = m.RemoveTemplates(mctx, &matcherv1.RemoveTemplatesRequest{WorkspaceId: sc.workspace.String(), PersonIds: []string{id.String()}})
	cancel()
	if err != nil {
		return peerErr("matcher", err)
	}
	for _, ph := range p.Photos {
		if err := b.deleteObject(ctx, ph.ObjectKey); err != nil {
			return err
		}
	}
	// The face crops and frames of the events that identified the person are their
	// biometric data too.
	rows, err := b.db.q(ctx).Query(ctx, `SELECT face_object_key, frame_object_key FROM events
		WHERE workspace_id = $1 AND person_id = $2 AND (face_object_key <> '' OR frame_object_key <> '')`, sc.workspace, id)
	if err != nil {
		return fmt.Errorf("erase person: %w", dbErr(err))
	}
	var keys []string
	var face, frame string
	if _, err := pgx.ForEachRow(rows, []any{&face, &frame}, func() error {
		keys = append(keys, face, frame)
		return nil
	}); err != nil {
		return fmt.Errorf("erase person: %w", dbErr(err))
	}
	for _, k := range keys {
		if err := b.deleteObject(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// DeletePerson deletes a person's rows (after ErasePersonData). The events that
// identified the person stay (counts, times, cameras) without the link and without
// images; a tombstone tells syncing agents.
func (b *Backend) DeletePerson(ctx context.Context, sc scope, personID string) error {
	id, err := parseID("person_id", personID)
	if err != nil {
		return err
	}
	if _, err := b.getPerson(ctx, sc, id, true); err != nil {
		return err
	}
	q := b.db.q(ctx)
	if _, err := q.Exec(ctx, `DELETE FROM persons WHERE workspace_id = $1 AND id = $2`, sc.workspace, id); err != nil {
		return fmt.Errorf("delete person: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `INSERT INTO person_tombstones (person_id, workspace_id, version) VALUES ($1, $2, nextval('person_version_seq'))`,
		id, sc.workspace); err != nil {
		return fmt.Errorf("delete person: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `UPDATE events SET person_id = NULL, face_object_key = '', frame_object_key = ''
		WHERE workspace_id = $1 AND person_id = $2`, sc.workspace, id); err != nil {
		return fmt.Errorf("delete person: %w", dbErr(err))
	}
	b.invalidatePersons(ctx, sc, id)
	return nil
}

// syncMatcherGroups tells the matcher the person's current groups.
func (b *Backend) syncMatcherGroups(ctx context.Context, sc scope, person uuid.UUID) error {
	rows, err := b.db.q(ctx).Query(ctx, `SELECT group_id::text FROM person_groups WHERE person_id = $1`, person)
	if err != nil {
		return fmt.Errorf("load groups: %w", dbErr(err))
	}
	groups, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("load groups: %w", dbErr(err))
	}
	m, err := b.matcher()
	if err != nil {
		return err
	}
	ctx, cancel := b.peerCtx(ctx)
	defer cancel()
	_, err = m.UpdatePersonGroups(ctx, &matcherv1.UpdatePersonGroupsRequest{
		WorkspaceId: sc.workspace.String(), PersonId: person.String(), GroupIds: groups,
	})
	return peerErr("matcher", err)
}
