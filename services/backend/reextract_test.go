package backend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/imageapi"
)

// reextractAll pages through ReextractTemplates and sums the pages.
func reextractAll(t *testing.T, e *env, pageSize int32) (sum *backendv1.ReextractTemplatesResponse, pages int) {
	t.Helper()
	sum = &backendv1.ReextractTemplatesResponse{}
	token := ""
	for {
		r, err := e.persons().ReextractTemplates(e.internalIn(e.workspace),
			&backendv1.ReextractTemplatesRequest{PageToken: token, PageSize: pageSize})
		require.NoError(t, err)
		pages++
		sum.Reextracted += r.GetReextracted()
		sum.Skipped += r.GetSkipped()
		sum.Failures = append(sum.Failures, r.GetFailures()...)
		sum.Total = r.GetTotal()
		if r.GetModel() != "" {
			sum.Model = r.GetModel()
		}
		if token = r.GetNextPageToken(); token == "" {
			return sum, pages
		}
	}
}

// TestReextractTemplates: after a (simulated) model change, stored images are templated
// again by the real Image API; photos without an image, or whose image is gone, are
// reported; a second pass has nothing to do.
func TestReextractTemplates(t *testing.T) {
	var store *objstore.Store
	e := newEnv(t, imageapi.Module, fx.Populate(&store))
	a := e.admin()
	ctx := context.Background()

	p, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Barack Obama"}})
	require.NoError(t, err)
	pid := p.GetPerson().GetId()
	var photos []*backendv1.Photo
	for _, f := range []string{"obama_1.jpg", "obama_2.jpg", "obama_3.jpg"} {
		r, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: pid, Image: face(t, f)})
		require.NoError(t, err, f)
		photos = append(photos, r.GetPhoto())
	}
	model := photos[0].GetTemplateModel()
	_, err = e.workspaces().UpdateWorkspace(a, &backendv1.UpdateWorkspaceRequest{
		Workspace:  &backendv1.Workspace{Settings: &backendv1.WorkspaceSettings{AnonymousMode: true}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"settings.anonymous_mode"}}})
	require.NoError(t, err)
	anon, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: pid, Image: face(t, "biden_2.jpg")})
	require.NoError(t, err)
	require.Empty(t, anon.GetPhoto().GetObjectKey())
	gone := photos[1]
	require.NoError(t, store.Delete(ctx, gone.GetObjectKey()))

	_, err = e.db.Pool.Exec(ctx, `UPDATE photos SET template_model = 'old-model@1'`)
	require.NoError(t, err)
	before, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: pid})
	require.NoError(t, err)

	first, pages := reextractAll(t, e, 3)
	require.Equal(t, 2, pages)
	require.Equal(t, int64(4), first.GetTotal())
	require.Equal(t, model, first.GetModel())
	require.Equal(t, int64(2), first.GetReextracted())
	require.Zero(t, first.GetSkipped())
	require.Len(t, first.GetFailures(), 2)
	failures := strings.Join(first.GetFailures(), "\n")
	require.Contains(t, failures, "photo "+anon.GetPhoto().GetId()+": no stored image")
	require.Contains(t, failures, "photo "+gone.GetId()+": stored image missing")

	after, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: pid})
	require.NoError(t, err)
	require.Greater(t, after.GetPerson().GetVersion(), before.GetPerson().GetVersion(), "agents must sync the new templates")
	models := map[string]string{}
	for _, ph := range after.GetPerson().GetPhotos() {
		models[ph.GetId()] = ph.GetTemplateModel()
	}
	require.Equal(t, map[string]string{
		photos[0].GetId(): model, gone.GetId(): "old-model@1", photos[2].GetId(): model, anon.GetPhoto().GetId(): "old-model@1",
	}, models)

	// Idempotent: a second pass extracts nothing new and bumps no version.
	second, _ := reextractAll(t, e, 3)
	require.Zero(t, second.GetReextracted())
	require.Equal(t, int64(2), second.GetSkipped())
	require.Len(t, second.GetFailures(), 2)
	again, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: pid})
	require.NoError(t, err)
	require.Equal(t, after.GetPerson().GetVersion(), again.GetPerson().GetVersion())

	// The matcher still finds him with the new templates.
	id, err := e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.3})
	require.NoError(t, err)
	require.NotEmpty(t, id.GetCandidates())
	require.Equal(t, pid, id.GetCandidates()[0].GetPerson().GetId())

	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *backendv1.ReextractTemplatesRequest
		want codes.Code
	}{
		{"workspace admin", a, &backendv1.ReextractTemplatesRequest{}, codes.PermissionDenied},
		{"malformed token", e.internalIn(e.workspace), &backendv1.ReextractTemplatesRequest{PageToken: "nope"}, codes.InvalidArgument},
		{"negative page size", e.internalIn(e.workspace), &backendv1.ReextractTemplatesRequest{PageSize: -1}, codes.InvalidArgument},
		{"no workspace", as(e.internal), &backendv1.ReextractTemplatesRequest{}, codes.InvalidArgument},
	} {
		_, err := e.persons().ReextractTemplates(tc.ctx, tc.req)
		require.Equal(t, tc.want, code(err), tc.name)
	}
}
