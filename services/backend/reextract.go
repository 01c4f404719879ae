package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// ReextractResult is what one page of ReextractTemplates did.
type ReextractResult struct {
	// Reextracted photos were given a template of the current model.
	Reextracted int64
	// Skipped photos already had one.
	Skipped int64
	// Failures are "photo <id>: <why>" for photos that cannot be re-extracted.
	Failures []string
	// NextPageToken is empty after the last page.
	NextPageToken string
	// Total is the number of photos in the workspace.
	Total int64
	// Model is the current model ("name@version"); empty when unknown so far.
	Model string
}

// reextractPhoto is a stored photo as re-extraction sees it.
type reextractPhoto struct {
	id, personID uuid.UUID
	objectKey    string
	model        string
}

// freshTemplate is a photo's face found again by the current model.
type freshTemplate struct {
	photo reextractPhoto
	face  *Face
}

// ReextractTemplates re-extracts one page of the workspace's photos (newest first) with
// the Image API's current model. Like AddPhoto it keeps peers out of the transaction:
// images are read and templated first, the rows (templates and person versions) are
// written in one transaction, and the matcher is told after the commit. The matcher is
// given every current template of the page, the skipped ones too, so a retried page
// repairs a matcher that missed the first attempt.
//
// The current model is learnt from the first extraction of the call (the Image API has
// no other way to name it) and carried in the page token, so a page whose photos are all
// current costs at most one extraction, and a photo without a stored image can be told
// apart from one that merely needs no work.
func (b *Backend) ReextractTemplates(ctx context.Context, sc scope, token string, size int32) (*ReextractResult, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, err
	}
	after, model, err := decodeReextractToken(token)
	if err != nil {
		return nil, err
	}
	page, next, total, err := b.reextractPage(ctx, sc, after, n)
	if err != nil {
		return nil, err
	}
	res := &ReextractResult{Total: total}

	var fresh []freshTemplate
	var current []uuid.UUID // photos whose stored template is of the current model
	var stale []uuid.UUID   // photos that keep a template of another model
	var anonymous []reextractPhoto
	for _, ph := range page {
		if ph.objectKey == "" {
			anonymous = append(anonymous, ph) // judged once the model is known
			continue
		}
		if model != "" && ph.model == model {
			res.Skipped++
			current = append(current, ph.id)
			continue
		}
		face, why, err := b.extractStored(ctx, ph)
		if err != nil {
			return nil, err
		}
		if why != "" {
			res.Failures = append(res.Failures, fmt.Sprintf("photo %s: %s", ph.id, why))
			stale = append(stale, ph.id)
			continue
		}
		model = face.Template.GetModel()
		if ph.model == model {
			res.Skipped++
			current = append(current, ph.id)
			continue
		}
		fresh = append(fresh, freshTemplate{photo: ph, face: face})
	}
	for _, ph := range anonymous {
		if model != "" && ph.model == model {
			res.Skipped++
			current = append(current, ph.id)
			continue
		}
		res.Failures = append(res.Failures, fmt.Sprintf(
			"photo %s: no stored image (the workspace was in anonymous mode when it was added); add the photo again", ph.id))
		if model != "" { // else it may well be current: no extraction told us the model
			stale = append(stale, ph.id)
		}
	}

	written, err := b.storeFreshTemplates(ctx, sc, fresh)
	if err != nil {
		return nil, err
	}
	res.Reextracted = int64(len(written))
	if err := b.reindexTemplates(ctx, sc, append(current, written...), model); err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		// The matcher holds templates of the current model only: a photo that could not be
		// re-extracted is no longer searchable (its row and its old template stay).
		if err := b.unindexTemplates(ctx, sc, stale); err != nil {
			return nil, err
		}
	}
	res.Model = model
	if next != uuid.Nil {
		res.NextPageToken = encodeReextractToken(next, model)
	}
	return res, nil
}

// reextractPage reads a page of photos with ids below after, newest first, the id to
// continue after (uuid.Nil on the last page) and the workspace's photo count.
func (b *Backend) reextractPage(ctx context.Context, sc scope, after uuid.UUID, n int) ([]reextractPhoto, uuid.UUID, int64, error) {
	q := b.db.q(ctx)
	rows, err := q.Query(ctx, `SELECT id, person_id, object_key, template_model FROM photos
		WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, sc.workspace, after, n+1)
	if err != nil {
		return nil, uuid.Nil, 0, fmt.Errorf("re-extract: %w", dbErr(err))
	}
	page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (reextractPhoto, error) {
		var p reextractPhoto
		return p, r.Scan(&p.id, &p.personID, &p.objectKey, &p.model)
	})
	if err != nil {
		return nil, uuid.Nil, 0, fmt.Errorf("re-extract: %w", dbErr(err))
	}
	next := uuid.Nil
	if len(page) > n {
		page = page[:n]
		next = page[n-1].id
	}
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM photos WHERE workspace_id = $1`, sc.workspace).Scan(&total); err != nil {
		return nil, uuid.Nil, 0, fmt.Errorf("re-extract: %w", dbErr(err))
	}
	return page, next, total, nil
}

// extractStored templates a photo's stored image again with the same one-face rule as
// AddPhoto. why explains a photo that cannot be re-extracted (image gone, no face for the
// new model); err is a failure of the call (store or Image API unavailable), which the
// caller retries.
func (b *Backend) extractStored(ctx context.Context, ph reextractPhoto) (face *Face, why string, err error) {
	if b.objects == nil {
		return nil, "", fmt.Errorf("no object store: %w", ErrUnavailable)
	}
	image, _, err := b.objects.Get(ctx, ph.objectKey)
	if errors.Is(err, ErrNotFound) {
		return nil, "stored image missing from the object store", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("photo %s image: %w", ph.id, err)
	}
	face, err = b.oneFace(ctx, "image", image)
	if errors.Is(err, ErrInvalid) {
		return nil, strings.TrimSuffix(strings.TrimPrefix(err.Error(), "image: "), ": "+ErrInvalid.Error()), nil
	}
	if err != nil {
		return nil, "", err
	}
	return face, "", nil
}

// storeFreshTemplates replaces the photos' templates and bumps their persons' versions
// (agents sync the new templates) in one transaction, and returns the photos written.
// A photo deleted meanwhile, or already given a template of the model by a concurrent
// call, is left out.
func (b *Backend) storeFreshTemplates(ctx context.Context, sc scope, fresh []freshTemplate) ([]uuid.UUID, error) {
	if len(fresh) == 0 {
		return nil, nil
	}
	var written []uuid.UUID
	err := b.db.inTx(ctx, func(ctx context.Context) error {
		written = written[:0]
		q := b.db.q(ctx)
		persons := map[uuid.UUID]bool{}
		for _, f := range fresh {
			box := f.face.Box
			tag, err := q.Exec(ctx, `UPDATE photos SET template_model = $3, template = $4, face_box = $5, face_confidence = $6
				WHERE workspace_id = $1 AND id = $2 AND template_model <> $3`,
				sc.workspace, f.photo.id, f.face.Template.GetModel(), encodeVector(f.face.Template.GetVector()),
				[]float32{box.GetX1(), box.GetY1(), box.GetX2(), box.GetY2()}, f.face.Confidence)
			if err != nil {
				return fmt.Errorf("re-extract photo %s: %w", f.photo.id, dbErr(err))
			}
			if tag.RowsAffected() == 1 {
				written = append(written, f.photo.id)
				persons[f.photo.personID] = true
			}
		}
		ids := make([]uuid.UUID, 0, len(persons))
		for id := range persons {
			ids = append(ids, id)
		}
		if _, err := q.Exec(ctx, `UPDATE persons SET version = nextval('person_version_seq'), update_time = now()
			WHERE workspace_id = $1 AND id = ANY($2)`, sc.workspace, ids); err != nil {
			return fmt.Errorf("re-extract: %w", dbErr(err))
		}
		b.invalidatePersons(ctx, sc, ids...) // their cards show the photos' new boxes and model
		return nil
	})
	if err != nil {
		return nil, err
	}
	return written, nil
}

// reindexTemplates gives the matcher the stored templates of the photos that are of
// model, in one call (the matcher replaces a template id, moving it out of the old
// model's gallery; group memberships are per person and unchanged).
func (b *Backend) reindexTemplates(ctx context.Context, sc scope, photos []uuid.UUID, model string) error {
	if len(photos) == 0 {
		return nil
	}
	rows, err := b.db.q(ctx).Query(ctx, `SELECT id, person_id, template FROM photos
		WHERE workspace_id = $1 AND id = ANY($2) AND template_model = $3`, sc.workspace, photos, model)
	if err != nil {
		return fmt.Errorf("re-extract: %w", dbErr(err))
	}
	templates, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*matcherv1.PersonTemplate, error) {
		var id, person uuid.UUID
		var vec []byte
		if err := r.Scan(&id, &person, &vec); err != nil {
			return nil, err
		}
		return &matcherv1.PersonTemplate{TemplateId: id.String(), PersonId: person.String(),
			Template: &commonv1.Template{Vector: decodeVector(vec), Model: model}}, nil
	})
	if err != nil {
		return fmt.Errorf("re-extract: %w", dbErr(err))
	}
	if len(templates) == 0 {
		return nil
	}
	m, err := b.matcher()
	if err != nil {
		return err
	}
	mctx, cancel := b.peerCtx(ctx)
	defer cancel()
	_, err = m.AddTemplates(mctx, &matcherv1.AddTemplatesRequest{WorkspaceId: sc.workspace.String(), Templates: templates})
	return peerErr("matcher", err)
}

// unindexTemplates removes photos' templates from the matcher.
func (b *Backend) unindexTemplates(ctx context.Context, sc scope, photos []uuid.UUID) error {
	m, err := b.matcher()
	if err != nil {
		return err
	}
	ids := make([]string, len(photos))
	for i, id := range photos {
		ids[i] = id.String()
	}
	mctx, cancel := b.peerCtx(ctx)
	defer cancel()
	_, err = m.RemoveTemplates(mctx, &matcherv1.RemoveTemplatesRequest{WorkspaceId: sc.workspace.String(), TemplateIds: ids})
	return peerErr("matcher", err)
}

// Re-extraction page tokens are "<id token>.<base64url model>": where the next page
// starts, and the current model learnt so far (so later pages judge photos without an
// image, and skip current ones without extracting).
func encodeReextractToken(after uuid.UUID, model string) string {
	return encodeIDToken(after) + "." + base64.RawURLEncoding.EncodeToString([]byte(model))
}

func decodeReextractToken(tok string) (uuid.UUID, string, error) {
	if tok == "" {
		return uuid.Max, "", nil
	}
	idPart, modelPart, ok := strings.Cut(tok, ".")
	if !ok || idPart == "" {
		return uuid.Nil, "", invalid("page_token", "malformed")
	}
	after, err := decodeIDToken(idPart)
	if err != nil {
		return uuid.Nil, "", err
	}
	model, err := base64.RawURLEncoding.DecodeString(modelPart)
	if err != nil {
		return uuid.Nil, "", invalid("page_token", "malformed")
	}
	return after, string(model), nil
}
