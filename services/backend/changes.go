package backend

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// PersonChange is a person's latest state after a version, or its erasure.
type PersonChange struct {
	Version   int64
	PersonID  uuid.UUID
	Deleted   bool
	Person    *Person
	Templates []PhotoTemplate
}

// PhotoTemplate is a stored template.
type PhotoTemplate struct {
	PhotoID  uuid.UUID
	Template *commonv1.Template
}

func decodeVector(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// PersonChanges returns up to n changes after version, in version order. Persons and
// tombstones share the version sequence, so one ordered merge is the whole feed.
func (b *Backend) PersonChanges(ctx context.Context, sc scope, after int64, size int32) ([]*PersonChange, bool, error) {
	if after < 0 {
		return nil, false, invalid("after_version", "must not be negative")
	}
	n := int(size)
	switch {
	case size < 0:
		return nil, false, invalid("page_size", "must not be negative")
	case size == 0:
		n = 100
	case size > 1000:
		n = 1000
	}
	q := b.db.q(ctx)
	rows, err := q.Query(ctx, `SELECT version, id, false FROM persons WHERE workspace_id = $1 AND version > $2
		UNION ALL SELECT version, person_id, true FROM person_tombstones WHERE workspace_id = $1 AND version > $2
		ORDER BY 1 LIMIT $3`, sc.workspace, after, n+1)
	if err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	changes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*PersonChange, error) {
		c := &PersonChange{}
		return c, r.Scan(&c.Version, &c.PersonID, &c.Deleted)
	})
	if err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	more := len(changes) > n
	if more {
		changes = changes[:n]
	}
	var ids []uuid.UUID
	byID := map[uuid.UUID]*PersonChange{}
	for _, c := range changes {
		if !c.Deleted {
			ids = append(ids, c.PersonID)
			byID[c.PersonID] = c
		}
	}
	if len(ids) == 0 {
		return changes, more, nil
	}
	rows, err = q.Query(ctx, `SELECT `+personColumns+` FROM persons p WHERE p.workspace_id = $1 AND p.id = ANY($2)`, sc.workspace, ids)
	if err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	persons, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Person, error) { return scanPerson(r) })
	if err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	if err := b.fillPersons(ctx, persons); err != nil {
		return nil, false, err
	}
	for _, p := range persons {
		byID[p.ID].Person = p
	}
	rows, err = q.Query(ctx, `SELECT id, person_id, template_model, template FROM photos WHERE workspace_id = $1 AND person_id = ANY($2) ORDER BY id`,
		sc.workspace, ids)
	if err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	var photoID, personID uuid.UUID
	var model string
	var vec []byte
	if _, err := pgx.ForEachRow(rows, []any{&photoID, &personID, &model, &vec}, func() error {
		c := byID[personID]
		c.Templates = append(c.Templates, PhotoTemplate{PhotoID: photoID, Template: &commonv1.Template{Vector: decodeVector(vec), Model: model}})
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("person changes: %w", dbErr(err))
	}
	return changes, more, nil
}
