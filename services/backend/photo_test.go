package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/imageapi"
)

func face(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	return b
}

// TestPhotosIdentifyAndErase: real photos through the real Image API (ONNX models), the
// real matcher and the embedded S3; then a GDPR erase removes every trace.
func TestPhotosIdentifyAndErase(t *testing.T) {
	var store *objstore.Store
	e := newEnv(t, imageapi.Module, fx.Populate(&store))
	a := e.admin()
	ctx := context.Background()

	obama, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Barack Obama", ExternalId: "obama"}})
	require.NoError(t, err)
	biden, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Joe Biden", ExternalId: "biden"}})
	require.NoError(t, err)
	oid, bid := obama.GetPerson().GetId(), biden.GetPerson().GetId()

	require.Empty(t, getCard(t, e.persons(), a, oid).GetPhotos()) // now cached
	added, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: oid, Image: face(t, "obama_1.jpg")})
	require.NoError(t, err)
	photo := added.GetPhoto()
	require.True(t, proto.Equal(added.GetPerson(), getCard(t, e.persons(), a, oid)), "the cached card went with the new photo")
	require.Equal(t, "image/jpeg", photo.GetContentType())
	require.NotEmpty(t, photo.GetTemplateModel())
	require.Equal(t, photo.GetId(), added.GetPerson().GetMainPhotoId(), "the first photo becomes main")
	require.Greater(t, added.GetPerson().GetVersion(), obama.GetPerson().GetVersion())
	addBiden := &backendv1.AddPhotoRequest{PersonId: bid, Image: face(t, "biden_1.jpg"), RequestId: "biden-photo-1"}
	first, err := e.persons().AddPhoto(a, addBiden)
	require.NoError(t, err)
	replay, err := e.persons().AddPhoto(a, addBiden)
	require.NoError(t, err)
	require.Equal(t, first.GetPhoto().GetId(), replay.GetPhoto().GetId(), "a replay stores nothing new")
	bidenKeys, err := store.List(ctx, "persons/"+e.workspace+"/"+bid)
	require.NoError(t, err)
	require.Len(t, bidenKeys, 1, "the replay's upload was discarded")

	img, err := e.persons().GetPhotoImage(a, &backendv1.GetPhotoImageRequest{PersonId: oid, PhotoId: photo.GetId()})
	require.NoError(t, err)
	require.Equal(t, face(t, "obama_1.jpg"), img.GetImage())

	for _, tc := range []struct {
		file string
		want codes.Code
	}{
		{"noface_coffee.png", codes.InvalidArgument},
		{"two_people.jpg", codes.InvalidArgument},
	} {
		_, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: oid, Image: face(t, tc.file)})
		require.Equal(t, tc.want, code(err), tc.file)
	}
	require.Equal(t, 2, e.count("photos"), "refused photos leave nothing")

	// Another photo of Obama finds him first.
	id, err := e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.3})
	require.NoError(t, err)
	require.NotEmpty(t, id.GetCandidates())
	require.Equal(t, oid, id.GetCandidates()[0].GetPerson().GetId())

	// Watch lists: a search within a group finds only its members; membership set after
	// the photo reaches the matcher too; deleting the group empties it.
	vip, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "vip", Threshold: 0.3}})
	require.NoError(t, err)
	gid := vip.GetGroup().GetId()
	_, err = e.persons().UpdatePerson(a, &backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: bid, GroupIds: []string{gid}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"group_ids"}}})
	require.NoError(t, err)
	inGroup, err := e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), GroupId: gid})
	require.NoError(t, err)
	for _, c := range inGroup.GetCandidates() {
		require.NotEqual(t, oid, c.GetPerson().GetId(), "Obama is not in the group")
	}
	inGroup, err = e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "biden_1.jpg"), GroupId: gid})
	require.NoError(t, err)
	require.Len(t, inGroup.GetCandidates(), 1)
	require.Equal(t, bid, inGroup.GetCandidates()[0].GetPerson().GetId())
	g, err := e.groups().GetGroup(a, &backendv1.GetGroupRequest{GroupId: gid})
	require.NoError(t, err)
	require.Equal(t, int64(1), g.GetGroup().GetPersonCount())
	_, err = e.groups().DeleteGroup(a, &backendv1.DeleteGroupRequest{GroupId: gid})
	require.NoError(t, err)
	_, err = e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "biden_1.jpg"), GroupId: gid})
	require.Equal(t, codes.NotFound, code(err))

	// A second workspace's search never returns the first's persons.
	bTok, _ := e.secondWorkspace("other")
	other, err := e.persons().Identify(as(bTok), &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.01})
	require.NoError(t, err)
	require.Empty(t, other.GetCandidates())

	// Browsers upload multipart to the same path, through the gateway.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", "obama_3.jpg")
	require.NoError(t, err)
	_, err = fw.Write(face(t, "obama_3.jpg"))
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("set_main", "true"))
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, e.httpBase+"/v1/persons/"+oid+"/photos", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var up struct {
		Photo struct {
			ID string `json:"id"`
		}
		Person struct {
			MainPhotoID string `json:"mainPhotoId"`
		}
	}
	require.NoError(t, json.Unmarshal(raw, &up))
	require.Equal(t, up.Photo.ID, up.Person.MainPhotoID)

	// Delete one photo: its template leaves the matcher, its image the store.
	keys, err := store.List(ctx, "persons/"+e.workspace+"/"+oid)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Len(t, getCard(t, e.persons(), a, oid).GetPhotos(), 2)
	_, err = e.persons().DeletePhoto(a, &backendv1.DeletePhotoRequest{PersonId: oid, PhotoId: photo.GetId()})
	require.NoError(t, err)
	require.Len(t, getCard(t, e.persons(), a, oid).GetPhotos(), 1, "the cached card went with the photo")
	keys, err = store.List(ctx, "persons/"+e.workspace+"/"+oid)
	require.NoError(t, err)
	require.Len(t, keys, 1)

	// GDPR erase: photos, templates, matcher entries, the row; events lose the link.
	crop := "events/" + e.workspace + "/ev-o/face.jpg"
	require.NoError(t, store.Put(ctx, crop, bytes.NewReader(face(t, "obama_small.jpg")), -1, "image/jpeg"))
	_, err = e.db.Pool.Exec(ctx, `INSERT INTO events (id, workspace_id, type, event_time, person_id, face_object_key)
		VALUES ('ev-o', $1, 1, now(), $2, $3)`, e.workspace, oid, crop)
	require.NoError(t, err)
	_, err = e.persons().DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: oid})
	require.NoError(t, err)
	keys, err = store.List(ctx, "persons/"+e.workspace+"/"+oid)
	require.NoError(t, err)
	require.Empty(t, keys)
	var n int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM photos WHERE person_id = $1`, oid).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE person_id = $1`, oid).Scan(&n))
	require.Zero(t, n)
	ev, err := e.events().GetEvent(a, &backendv1.GetEventRequest{EventId: "ev-o"})
	require.NoError(t, err, "the event stays")
	require.Empty(t, ev.GetEvent().GetFaceObjectKey())
	_, _, err = store.Get(ctx, crop)
	require.ErrorIs(t, err, objstore.ErrNotFound, "its face crop is erased")
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM person_tombstones WHERE person_id = $1`, oid).Scan(&n))
	require.Equal(t, 1, n, "syncing agents learn of the erase")
	id, err = e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.01})
	require.NoError(t, err)
	for _, c := range id.GetCandidates() {
		require.NotEqual(t, oid, c.GetPerson().GetId(), "the matcher forgot him")
	}
	audit, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Target: "person/" + oid, Method: "/vigil.backend.v1.PersonService/DeletePerson"})
	require.NoError(t, err)
	require.Len(t, audit.GetEntries(), 1)
	require.Equal(t, "OK", audit.GetEntries()[0].GetOutcome())

	// Anonymous mode: the template is kept, the image is not.
	_, err = e.workspaces().UpdateWorkspace(a, &backendv1.UpdateWorkspaceRequest{
		Workspace:  &backendv1.Workspace{Settings: &backendv1.WorkspaceSettings{AnonymousMode: true}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"settings.anonymous_mode"}}})
	require.NoError(t, err)
	anon, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: bid, Image: face(t, "biden_2.jpg")})
	require.NoError(t, err)
	require.Empty(t, anon.GetPhoto().GetObjectKey())
	require.NotEmpty(t, anon.GetPhoto().GetTemplateModel())
	keys, err = store.List(ctx, "persons/"+e.workspace+"/"+bid)
	require.NoError(t, err)
	require.Len(t, keys, 1, "only the photo from before anonymous mode")
	_, err = e.persons().GetPhotoImage(a, &backendv1.GetPhotoImageRequest{PersonId: bid, PhotoId: anon.GetPhoto().GetId()})
	require.Equal(t, codes.FailedPrecondition, code(err))
}

// TestPersonChangeFeed: the feed agent-sync serves profiles from.
func TestPersonChangeFeed(t *testing.T) {
	e := newEnv(t, imageapi.Module)
	a := e.admin()
	in := e.internalIn(e.workspace)
	feed := func(after int64, size int32) *backendv1.ListPersonChangesResponse {
		resp, err := e.persons().ListPersonChanges(in, &backendv1.ListPersonChangesRequest{AfterVersion: after, PageSize: size})
		require.NoError(t, err)
		return resp
	}
	start := feed(0, 0)
	require.Empty(t, start.GetChanges())

	p1, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "one"}})
	require.NoError(t, err)
	p2, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "two"}})
	require.NoError(t, err)
	_, err = e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: p1.GetPerson().GetId(), Image: face(t, "obama_1.jpg")})
	require.NoError(t, err)

	page := feed(0, 1)
	require.True(t, page.GetMore())
	require.Len(t, page.GetChanges(), 1)
	require.Equal(t, p2.GetPerson().GetId(), page.GetChanges()[0].GetPersonId(), "p1 changed later, so it comes later")
	rest := feed(page.GetLastVersion(), 10)
	require.False(t, rest.GetMore())
	require.Len(t, rest.GetChanges(), 1)
	c := rest.GetChanges()[0]
	require.Equal(t, p1.GetPerson().GetId(), c.GetPersonId())
	require.Len(t, c.GetTemplates(), 1)
	require.NotEmpty(t, c.GetTemplates()[0].GetTemplate().GetVector())

	_, err = e.persons().DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: p2.GetPerson().GetId()})
	require.NoError(t, err)
	gone := feed(rest.GetLastVersion(), 10)
	require.Len(t, gone.GetChanges(), 1)
	require.True(t, gone.GetChanges()[0].GetDeleted())
	require.Nil(t, gone.GetChanges()[0].GetPerson())

	_, err = e.persons().ListPersonChanges(a, &backendv1.ListPersonChangesRequest{})
	require.Equal(t, codes.PermissionDenied, code(err), "internal only")
}
