package imageapi

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/internal/testkit/grpctest"
	"github.com/vigilhq/vigil/internal/testkit/testsvc"
	"github.com/vigilhq/vigil/ml/vision"
	"github.com/vigilhq/vigil/platform/rpc"
)

// engine is loaded once for the package's tests.
var engine *vision.Engine

func TestMain(m *testing.M) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var cfg Config
	cfg.SetDefaults()
	e, err := vision.NewEngine(cfg.Vision(), log)
	if err != nil {
		log.Error("engine", "err", err)
		os.Exit(1)
	}
	engine = e
	code := m.Run()
	e.Close()
	os.Exit(code)
}

const token = "test-token"

// serve runs a Server on the platform's real gRPC server over bufconn, with
// production interceptors and a token authorizer, and returns an
// authenticated client context and the client.
func serve(t *testing.T, units UnitChecker) (context.Context, imageapiv1.ImageApiServiceClient, *grpc.ClientConn) {
	t.Helper()
	var cfg Config
	cfg.SetDefaults()
	cfg.MaxSamples = 4
	s, err := NewServer(cfg, engine, units, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	conn := grpctest.New(t, grpctest.Options{Authorizer: testsvc.TokenAuthorizer{Token: token}}, newService(s))
	ctx := metadata.AppendToOutgoingContext(context.Background(), rpc.MetadataAuthorization, "Bearer "+token)
	return ctx, imageapiv1.NewImageApiServiceClient(conn), conn
}

func readPhoto(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	return b
}

func faceObjects(s *imageapiv1.Sample) []*imageapiv1.ImageObject {
	var out []*imageapiv1.ImageObject
	for _, o := range s.GetObjects() {
		if o.GetObjectClass() == imageapiv1.ObjectClass_OBJECT_CLASS_FACE {
			out = append(out, o)
		}
	}
	return out
}

func TestProcessBatchOverGRPC(t *testing.T) {
	ctx, client, _ := serve(t, nil)
	resp, err := client.Process(ctx, &imageapiv1.ProcessRequest{
		Samples: []*imageapiv1.SampleInput{
			{Image: readPhoto(t, "two_people.jpg")},
			{Image: readPhoto(t, "noface_rocket.jpg")},
			{Image: readPhoto(t, "obama_1.jpg")},
		},
		Units: []imageapiv1.Unit{
			imageapiv1.Unit_UNIT_FACE_DETECTOR, imageapiv1.Unit_UNIT_FACE_FITTER, imageapiv1.Unit_UNIT_TEMPLATE_EXTRACTOR,
			imageapiv1.Unit_UNIT_AGE, imageapiv1.Unit_UNIT_GENDER, imageapiv1.Unit_UNIT_EMOTION, imageapiv1.Unit_UNIT_MASK,
			imageapiv1.Unit_UNIT_LIVENESS, imageapiv1.Unit_UNIT_QUALITY, imageapiv1.Unit_UNIT_BODY_DETECTOR,
		},
	})
	require.NoError(t, err)
	require.Len(t, resp.GetSamples(), 3)

	two := resp.GetSamples()[0]
	require.Equal(t, int32(1126), two.GetWidth())
	require.Len(t, faceObjects(two), 2)
	require.Len(t, two.GetObjects(), 4, "2 faces and 2 bodies")
	for _, f := range faceObjects(two) {
		b := f.GetBox()
		require.True(t, 0 <= b.GetX1() && b.GetX1() < b.GetX2() && b.GetX2() <= 1 && 0 <= b.GetY1() && b.GetY1() < b.GetY2() && b.GetY2() <= 1, "normalised box %v", b)
		require.Len(t, f.GetKeypoints(), 5)
		require.Len(t, f.GetFitterPoints(), 21)
		require.Len(t, f.GetDensePoints(), 68)
		require.NotNil(t, f.GetHeadPose())
		require.Len(t, f.GetTemplate().GetVector(), 128)
		require.Contains(t, f.GetTemplate().GetModel(), vision.TemplateModel+"@")
		require.Greater(t, f.GetAge().GetYears(), float32(30))
		require.Equal(t, imageapiv1.Gender_GENDER_MALE, f.GetGender().GetGender())
		require.Len(t, f.GetEmotions(), 7)
		require.False(t, f.GetMask().GetMasked())
		require.True(t, f.GetLiveness().GetReal())
		require.Greater(t, f.GetQuality().GetTotal(), float32(0.5))
	}

	require.Empty(t, resp.GetSamples()[1].GetObjects(), "no face is an empty list, not an error")
	require.Len(t, faceObjects(resp.GetSamples()[2]), 1)
}

func TestUnitRPCsChainOverGivenFaces(t *testing.T) {
	ctx, client, _ := serve(t, nil)
	img := readPhoto(t, "two_people.jpg")
	det, err := client.DetectFaces(ctx, &imageapiv1.DetectFacesRequest{Image: img})
	require.NoError(t, err)
	faces := faceObjects(det.GetSample())
	require.Len(t, faces, 2)
	for _, f := range faces {
		require.Nil(t, f.GetAge())
	}
	// Send the detected faces back, asking for the age alone: the objects
	// come back with their ids and keypoints, now with an age.
	age, err := client.EstimateAge(ctx, &imageapiv1.EstimateAgeRequest{Image: img, Objects: faces})
	require.NoError(t, err)
	require.Len(t, age.GetSample().GetObjects(), 2)
	for i, o := range age.GetSample().GetObjects() {
		require.Equal(t, faces[i].GetId(), o.GetId())
		require.Len(t, o.GetKeypoints(), 5)
		require.Greater(t, o.GetAge().GetYears(), float32(30))
		require.Nil(t, o.GetTemplate())
	}
	// Chain again: what the client already has (age) survives the next unit.
	g, err := client.EstimateGender(ctx, &imageapiv1.EstimateGenderRequest{Image: img, Objects: age.GetSample().GetObjects()})
	require.NoError(t, err)
	for _, o := range g.GetSample().GetObjects() {
		require.NotNil(t, o.GetAge())
		require.NotNil(t, o.GetGender())
	}

	// Every unit RPC answers on a face photo.
	one := readPhoto(t, "obama_1.jpg")
	calls := map[string]func() (*imageapiv1.Sample, error){
		"FitFaces": func() (*imageapiv1.Sample, error) {
			r, err := client.FitFaces(ctx, &imageapiv1.FitFacesRequest{Image: one})
			return r.GetSample(), err
		},
		"ExtractTemplates": func() (*imageapiv1.Sample, error) {
			r, err := client.ExtractTemplates(ctx, &imageapiv1.ExtractTemplatesRequest{Image: one})
			return r.GetSample(), err
		},
		"EstimateEmotion": func() (*imageapiv1.Sample, error) {
			r, err := client.EstimateEmotion(ctx, &imageapiv1.EstimateEmotionRequest{Image: one})
			return r.GetSample(), err
		},
		"EstimateMask": func() (*imageapiv1.Sample, error) {
			r, err := client.EstimateMask(ctx, &imageapiv1.EstimateMaskRequest{Image: one})
			return r.GetSample(), err
		},
		"EstimateLiveness": func() (*imageapiv1.Sample, error) {
			r, err := client.EstimateLiveness(ctx, &imageapiv1.EstimateLivenessRequest{Image: one})
			return r.GetSample(), err
		},
		"AssessQuality": func() (*imageapiv1.Sample, error) {
			r, err := client.AssessQuality(ctx, &imageapiv1.AssessQualityRequest{Image: one})
			return r.GetSample(), err
		},
		"DetectBodies": func() (*imageapiv1.Sample, error) {
			r, err := client.DetectBodies(ctx, &imageapiv1.DetectBodiesRequest{Image: one})
			return r.GetSample(), err
		},
	}
	for name, call := range calls {
		s, err := call()
		require.NoError(t, err, name)
		require.Len(t, s.GetObjects(), 1, name)
	}
}

func TestInvalidInputIsInvalidArgument(t *testing.T) {
	ctx, client, _ := serve(t, nil)
	photo := readPhoto(t, "obama_small.jpg")
	huge := pngHeader(20000, 20000)
	face := func(b *commonv1.Box) []*imageapiv1.ImageObject {
		return []*imageapiv1.ImageObject{{ObjectClass: imageapiv1.ObjectClass_OBJECT_CLASS_FACE, Box: b}}
	}
	units := []imageapiv1.Unit{imageapiv1.Unit_UNIT_FACE_DETECTOR}
	cases := []struct {
		name  string
		req   *imageapiv1.ProcessRequest
		field string
	}{
		{"zero-byte image", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{}}, Units: units}, "samples[0].image"},
		{"truncated jpeg", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo[:len(photo)/2]}}, Units: units}, "samples[0].image"},
		{"non-image", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: []byte("%PDF-1.4 not an image")}}, Units: units}, "samples[0].image"},
		{"20000x20000 png header", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo}, {Image: huge}}, Units: units}, "samples[1].image"},
		{"corrupt jpeg", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: corrupt(photo)}}, Units: units}, "samples[0].image"},
		{"no samples", &imageapiv1.ProcessRequest{Units: units}, "samples"},
		{"too many samples", &imageapiv1.ProcessRequest{Samples: make([]*imageapiv1.SampleInput, 5), Units: units}, "samples"},
		{"no units", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo}}}, "units"},
		{"unspecified unit", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo}}, Units: []imageapiv1.Unit{imageapiv1.Unit_UNIT_UNSPECIFIED}}, "units[0]"},
		{"object without box", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo, Objects: face(nil)}}, Units: []imageapiv1.Unit{imageapiv1.Unit_UNIT_AGE}}, "samples[0].objects[0].box"},
		{"inverted box", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo, Objects: face(&commonv1.Box{X1: 0.6, Y1: 0.2, X2: 0.3, Y2: 0.8})}}, Units: []imageapiv1.Unit{imageapiv1.Unit_UNIT_AGE}}, "samples[0].objects"},
		{"pixel box", &imageapiv1.ProcessRequest{Samples: []*imageapiv1.SampleInput{{Image: photo, Objects: face(&commonv1.Box{X1: 10, Y1: 10, X2: 100, Y2: 100})}}, Units: []imageapiv1.Unit{imageapiv1.Unit_UNIT_AGE}}, "samples[0].objects[0].box"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := client.Process(ctx, c.req)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Equal(t, c.field, violatedField(t, err))
		})
	}
	_, err := client.DetectFaces(ctx, &imageapiv1.DetectFacesRequest{Image: nil})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Equal(t, "image", violatedField(t, err))

	// Unauthenticated calls never reach the models.
	_, err = client.DetectFaces(context.Background(), &imageapiv1.DetectFacesRequest{Image: photo})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

// denyUnits is a UnitChecker that refuses the named license units with
// PERMISSION_DENIED, to test the seam (the real one is the licensing client).
type denyUnits map[string]bool

func (d denyUnits) CheckUnit(_ context.Context, _ string, unit string) error {
	if d[unit] {
		return status.Errorf(codes.PermissionDenied, "license: unit %s is not enabled", unit)
	}
	return nil
}

func TestUnlicensedUnitsArePermissionDenied(t *testing.T) {
	ctx, client, _ := serve(t, denyUnits{"age-estimator": true, "face-detector": true})
	img := readPhoto(t, "obama_small.jpg")
	_, err := client.EstimateAge(ctx, &imageapiv1.EstimateAgeRequest{Image: img})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	// Gender alone is enabled, but without given faces it needs the detector,
	// which is not.
	_, err = client.EstimateGender(ctx, &imageapiv1.EstimateGenderRequest{Image: img})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	// With faces given, gender runs.
	face := &imageapiv1.ImageObject{ObjectClass: imageapiv1.ObjectClass_OBJECT_CLASS_FACE, Box: &commonv1.Box{X1: 0.3, Y1: 0.15, X2: 0.68, Y2: 0.8}}
	g, err := client.EstimateGender(ctx, &imageapiv1.EstimateGenderRequest{Image: img, Objects: []*imageapiv1.ImageObject{face}})
	require.NoError(t, err)
	require.Equal(t, imageapiv1.Gender_GENDER_MALE, g.GetSample().GetObjects()[0].GetGender().GetGender())
}

func violatedField(t *testing.T, err error) string {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	t.Fatalf("no field violation in %v", err)
	return ""
}

func corrupt(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := 600; i < len(out); i += 5 {
		out[i] ^= 0xa5
	}
	return out
}
