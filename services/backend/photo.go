package backend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// imageType returns the content type of a supported image, or an error naming the field.
func imageType(field string, image []byte) (string, error) {
	if len(image) == 0 {
		return "", invalid(field, "required")
	}
	if len(image) > maxImageBytes {
		return "", invalid(field, "%d bytes, at most %d allowed", len(image), maxImageBytes)
	}
	ct := http.DetectContentType(image)
	switch ct {
	case "image/jpeg", "image/png", "image/webp", "image/bmp":
		return ct, nil
	}
	return "", invalid(field, "not a JPEG, PNG, WebP or BMP image (%s)", ct)
}

// oneFace extracts the single face of a photo.
func (b *Backend) oneFace(ctx context.Context, field string, image []byte) (*Face, error) {
	if b.faces == nil {
		return nil, fmt.Errorf("%w: %w", errNoExtractor, ErrUnavailable)
	}
	ctx, cancel := b.peerCtx(ctx)
	defer cancel()
	faces, err := b.faces.Faces(ctx, image)
	if err != nil {
		return nil, peerErr("imageapi", err)
	}
	if len(faces) == 0 {
		return nil, invalid(field, "no face found in the image")
	}
	// One face, or one that dominates: enrolment photos often catch a small or uncertain
	// face in the background. Two confident faces of comparable size are ambiguous.
	best := 0
	for i := range faces {
		if boxArea(faces[i].Box)*faces[i].Confidence > boxArea(faces[best].Box)*faces[best].Confidence {
			best = i
		}
	}
	for i := range faces {
		if i != best && faces[i].Confidence >= backgroundConfidence && boxArea(faces[i].Box)*dominance > boxArea(faces[best].Box) {
			return nil, invalid(field, "%d faces of similar size found in the image; a photo must show one person", len(faces))
		}
	}
	f := &faces[best]
	if f.Template == nil || len(f.Template.GetVector()) == 0 {
		return nil, fmt.Errorf("imageapi returned a face without a template: %w", ErrUnavailable)
	}
	return f, nil
}

// A face is the photo's subject when its box is dominance times the area of every other
// face detected with at least backgroundConfidence; less confident detections (partial
// faces at the edge, posters) do not make a photo ambiguous.
const (
	dominance            = 4
	backgroundConfidence = 0.8
)

func boxArea(b *commonv1.Box) float32 {
	return max(0, b.GetX2()-b.GetX1()) * max(0, b.GetY2()-b.GetY1())
}

func encodeVector(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

// PreparedPhoto is a photo checked, its face extracted and its image stored, before any
// row is written.
type PreparedPhoto struct {
	ID          uuid.UUID
	PersonID    uuid.UUID
	ObjectKey   string
	ContentType string
	Face        *Face
}

// PreparePhoto does the slow, peer-bound half of adding a photo, outside any
// transaction: the image is checked, its one face found and templated by the Image API,
// and (unless the workspace is anonymous) the image stored. Discard undoes the storing
// when the photo is not kept after all.
func (b *Backend) PreparePhoto(ctx context.Context, sc scope, personID string, image []byte) (*PreparedPhoto, error) {
	pid, err := parseID("person_id", personID)
	if err != nil {
		return nil, err
	}
	ct, err := imageType("image", image)
	if err != nil {
		return nil, err
	}
	if _, err := b.getPerson(ctx, sc, pid, false); err != nil {
		return nil, err
	}
	ws, err := b.GetWorkspace(ctx, sc)
	if err != nil {
		return nil, err
	}
	face, err := b.oneFace(ctx, "image", image)
	if err != nil {
		return nil, err
	}
	pp := &PreparedPhoto{ID: newID(), PersonID: pid, Face: face}
	if !ws.AnonymousMode {
		pp.ObjectKey = fmt.Sprintf("%s/%s/%s/%s", b.cfg.PhotoPrefix, sc.workspace, pid, pp.ID)
		pp.ContentType = ct
		if err := b.putObject(ctx, pp.ObjectKey, image, ct); err != nil {
			return nil, err
		}
	}
	return pp, nil
}

// Discard removes the stored image of a prepared photo that was not kept.
func (b *Backend) Discard(ctx context.Context, pp *PreparedPhoto) {
	b.cleanupObject(ctx, pp.ObjectKey)
}

// StorePhoto writes a prepared photo's row and bumps the person's version (inside the
// call's transaction). The matcher learns the template from IndexPhoto after the commit.
func (b *Backend) StorePhoto(ctx context.Context, sc scope, pp *PreparedPhoto, setMain bool) (*Photo, *Person, error) {
	p, err := b.getPerson(ctx, sc, pp.PersonID, true)
	if err != nil {
		return nil, nil, err
	}
	box := pp.Face.Box
	q := b.db.q(ctx)
	if _, err := q.Exec(ctx, `INSERT INTO photos (id, person_id, workspace_id, object_key, content_type, face_box, face_confidence,
		template_model, template) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		pp.ID, pp.PersonID, sc.workspace, pp.ObjectKey, pp.ContentType, []float32{box.GetX1(), box.GetY1(), box.GetX2(), box.GetY2()},
		pp.Face.Confidence, pp.Face.Template.GetModel(), encodeVector(pp.Face.Template.GetVector())); err != nil {
		return nil, nil, fmt.Errorf("add photo: %w", dbErr(err))
	}
	main := p.MainPhotoID
	if main == nil || setMain {
		main = &pp.ID
	}
	if _, err := q.Exec(ctx, `UPDATE persons SET main_photo_id = $3, version = nextval('person_version_seq'), update_time = now()
		WHERE workspace_id = $1 AND id = $2`, sc.workspace, pp.PersonID, main); err != nil {
		return nil, nil, fmt.Errorf("add photo: %w", dbErr(err))
	}
	b.invalidatePersons(ctx, sc, pp.PersonID)
	p, err = b.getPerson(ctx, sc, pp.PersonID, false)
	if err != nil {
		return nil, nil, err
	}
	for _, ph := range p.Photos {
		if ph.ID == pp.ID {
			return ph, p, nil
		}
	}
	return nil, nil, fmt.Errorf("photo %s vanished", pp.ID)
}

// IndexPhoto gives the matcher a stored photo's template and its person's groups. It is
// idempotent (the matcher upserts by template id and replaces groups), so it also runs
// on a replayed AddPhoto: a matcher that missed the first call catches up on the retry.
func (b *Backend) IndexPhoto(ctx context.Context, sc scope, personID, photoID string) error {
	pid, err := parseID("person_id", personID)
	if err != nil {
		return err
	}
	phid, err := parseID("photo_id", photoID)
	if err != nil {
		return err
	}
	var model string
	var vec []byte
	err = b.db.q(ctx).QueryRow(ctx, `SELECT template_model, template FROM photos WHERE workspace_id = $1 AND person_id = $2 AND id = $3`,
		sc.workspace, pid, phid).Scan(&model, &vec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deleted since: nothing to index
	}
	if err != nil {
		return fmt.Errorf("index photo: %w", dbErr(err))
	}
	m, err := b.matcher()
	if err != nil {
		return err
	}
	mctx, cancel := b.peerCtx(ctx)
	_, err = m.AddTemplates(mctx, &matcherv1.AddTemplatesRequest{
		WorkspaceId: sc.workspace.String(),
		Templates: []*matcherv1.PersonTemplate{{TemplateId: phid.String(), PersonId: pid.String(),
			Template: &commonv1.Template{Vector: decodeVector(vec), Model: model}}},
	})
	cancel()
	if err != nil {
		return peerErr("matcher", err)
	}
	return b.syncMatcherGroups(ctx, sc, pid)
}

// UnindexPhoto removes a photo's template from the matcher and its image from the
// object store, before (and outside) the transaction that deletes its row
// (DeletePhoto). An unknown photo is not an error here; DeletePhoto decides.
func (b *Backend) UnindexPhoto(ctx context.Context, sc scope, personID, photoID string) error {
	pid, err := parseID("person_id", personID)
	if err != nil {
		return err
	}
	phid, err := parseID("photo_id", photoID)
	if err != nil {
		return err
	}
	var key string
	err = b.db.q(ctx).QueryRow(ctx, `SELECT object_key FROM photos WHERE workspace_id = $1 AND person_id = $2 AND id = $3`,
		sc.workspace, pid, phid).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("photo %s: %w", photoID, dbErr(err))
	}
	m, err := b.matcher()
	if err != nil {
		return err
	}
	mctx, cancel := b.peerCtx(ctx)
	_, err = m.RemoveTemplates(mctx, &matcherv1.RemoveTemplatesRequest{WorkspaceId: sc.workspace.String(), TemplateIds: []string{phid.String()}})
	cancel()
	if err != nil {
		return peerErr("matcher", err)
	}
	return b.deleteObject(ctx, key)
}

// DeletePhoto removes a photo's row (after UnindexPhoto). The main photo passes to the
// oldest remaining one.
func (b *Backend) DeletePhoto(ctx context.Context, sc scope, personID, photoID string) (*Person, error) {
	pid, err := parseID("person_id", personID)
	if err != nil {
		return nil, err
	}
	phid, err := parseID("photo_id", photoID)
	if err != nil {
		return nil, err
	}
	p, err := b.getPerson(ctx, sc, pid, true)
	if err != nil {
		return nil, err
	}
	found := false
	for _, x := range p.Photos {
		found = found || x.ID == phid
	}
	if !found {
		return nil, fmt.Errorf("photo %s of person %s: %w", photoID, personID, ErrNotFound)
	}
	q := b.db.q(ctx)
	if _, err := q.Exec(ctx, `DELETE FROM photos WHERE workspace_id = $1 AND id = $2`, sc.workspace, phid); err != nil {
		return nil, fmt.Errorf("delete photo: %w", dbErr(err))
	}
	if _, err := q.Exec(ctx, `UPDATE persons SET version = nextval('person_version_seq'), update_time = now(),
		main_photo_id = CASE WHEN main_photo_id = $3
			THEN (SELECT id FROM photos WHERE person_id = $2 ORDER BY id LIMIT 1) ELSE main_photo_id END
		WHERE workspace_id = $1 AND id = $2`, sc.workspace, pid, phid); err != nil {
		return nil, fmt.Errorf("delete photo: %w", dbErr(err))
	}
	b.invalidatePersons(ctx, sc, pid)
	return b.getPerson(ctx, sc, pid, false)
}

// PhotoImage returns a photo's image.
func (b *Backend) PhotoImage(ctx context.Context, sc scope, personID, photoID string) ([]byte, string, error) {
	pid, err := parseID("person_id", personID)
	if err != nil {
		return nil, "", err
	}
	phid, err := parseID("photo_id", photoID)
	if err != nil {
		return nil, "", err
	}
	var key string
	if err := b.db.q(ctx).QueryRow(ctx, `SELECT object_key FROM photos WHERE workspace_id = $1 AND person_id = $2 AND id = $3`,
		sc.workspace, pid, phid).Scan(&key); err != nil {
		return nil, "", fmt.Errorf("photo %s: %w", photoID, dbErr(err))
	}
	if key == "" {
		return nil, "", fmt.Errorf("photo %s: the workspace keeps no images (anonymous mode): %w", photoID, ErrFailedCondition)
	}
	if b.objects == nil {
		return nil, "", fmt.Errorf("no object store: %w", ErrUnavailable)
	}
	data, ct, err := b.objects.Get(ctx, key)
	if err != nil {
		return nil, "", fmt.Errorf("photo %s image: %w", photoID, err)
	}
	return data, ct, nil
}

// Candidate is one Identify result.
type Candidate struct {
	Person *Person
	Score  float32
}

// Identify searches the matcher for the face in image.
func (b *Backend) Identify(ctx context.Context, sc scope, image []byte, groupID string, topK int32, threshold float32) ([]Candidate, *commonv1.Box, error) {
	if _, err := imageType("image", image); err != nil {
		return nil, nil, err
	}
	if topK < 0 || topK > 100 {
		return nil, nil, invalid("top_k", "must be within 0..100")
	}
	if err := checkThreshold("threshold", threshold); err != nil {
		return nil, nil, err
	}
	ws, err := b.GetWorkspace(ctx, sc)
	if err != nil {
		return nil, nil, err
	}
	var groups []string
	if groupID != "" {
		g, err := b.GetGroup(ctx, sc, groupID)
		if err != nil {
			return nil, nil, err
		}
		groups = []string{g.ID.String()}
		if threshold == 0 {
			threshold = g.Threshold
		}
	}
	if threshold == 0 {
		threshold = ws.DefaultThreshold
	}
	if threshold == 0 {
		threshold = b.cfg.DefaultThreshold
	}
	if topK == 0 {
		topK = ws.DefaultTopK
	}
	if topK == 0 {
		topK = 5
	}
	face, err := b.oneFace(ctx, "image", image)
	if err != nil {
		return nil, nil, err
	}
	m, err := b.matcher()
	if err != nil {
		return nil, nil, err
	}
	mctx, cancel := b.peerCtx(ctx)
	defer cancel()
	resp, err := m.Search(mctx, &matcherv1.SearchRequest{
		WorkspaceId: sc.workspace.String(), Queries: []*commonv1.Template{face.Template},
		TopK: topK, MinScore: &threshold, GroupIds: groups,
	})
	if err != nil {
		return nil, nil, peerErr("matcher", err)
	}
	var out []Candidate
	for _, r := range resp.GetResults() {
		for _, match := range r.GetMatches() {
			pid, err := uuid.Parse(match.GetPersonId())
			if err != nil {
				continue
			}
			p, err := b.getPerson(ctx, sc, pid, false)
			if err != nil {
				// Erased between the search and now: not a candidate any more.
				continue
			}
			out = append(out, Candidate{Person: p, Score: match.GetScore()})
		}
	}
	return out, face.Box, nil
}

func (b *Backend) putObject(ctx context.Context, key string, data []byte, ct string) error {
	if b.objects == nil {
		return fmt.Errorf("no object store: %w", ErrUnavailable)
	}
	if err := b.objects.Put(ctx, key, data, ct); err != nil {
		return fmt.Errorf("store photo: %v: %w", err, ErrUnavailable)
	}
	return nil
}

func (b *Backend) deleteObject(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	if b.objects == nil {
		return fmt.Errorf("no object store: %w", ErrUnavailable)
	}
	if err := b.objects.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete photo image %s: %v: %w", key, err, ErrUnavailable)
	}
	return nil
}

// cleanupObject removes an image stored by a call that then failed.
func (b *Backend) cleanupObject(ctx context.Context, key string) {
	if key == "" || b.objects == nil {
		return
	}
	if err := b.objects.Delete(context.WithoutCancel(ctx), key); err != nil {
		b.log.WarnContext(ctx, "orphaned photo image", "key", key, "err", err)
	}
}
