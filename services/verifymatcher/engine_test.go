package verifymatcher

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/ml/vision"
)

// The tests run the real shipped models (ml/vision) on the real photos in
// testdata/faces: for the calibration of the FMR table, and behind a small
// ImageApiService on loopback gRPC for VerifyImages (the verify-matcher reaches the
// Image API only through its gRPC client, as in production).

var (
	engineOnce sync.Once
	engine     *vision.Engine
	engineErr  error
)

func testEngine(t testing.TB) *vision.Engine {
	t.Helper()
	engineOnce.Do(func() {
		engine, engineErr = vision.NewEngine(vision.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	require.NoError(t, engineErr)
	return engine
}

func photoBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	return b
}

// modelIDOf is the opaque model id the Image API gives a template: name@version.
func modelIDOf(t *vision.Template) string { return t.Model + "@" + t.Version }

// faceTemplates runs detection and extraction and returns every face's template,
// largest face first.
func faceTemplates(t testing.TB, e *vision.Engine, img []byte) []Template {
	t.Helper()
	d, err := e.Decode(img)
	require.NoError(t, err)
	s, err := e.Process(context.Background(), vision.Request{Image: d.RGB, Units: vision.NewUnits(vision.UnitFaceDetector, vision.UnitTemplateExtractor)})
	require.NoError(t, err)
	var out []Template
	var areas []float64
	for _, o := range s.Objects {
		if o.Class != vision.ClassFace || o.Template == nil {
			continue
		}
		out = append(out, Template{ModelID: modelIDOf(o.Template), Vector: o.Template.Vector})
		areas = append(areas, o.Box.W()*o.Box.H())
	}
	for i := 1; i < len(out); i++ { // insertion sort by area, largest first
		for j := i; j > 0 && areas[j] > areas[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
			areas[j], areas[j-1] = areas[j-1], areas[j]
		}
	}
	return out
}

// imageAPI serves ExtractTemplates with the real engine.
type imageAPI struct {
	imageapiv1.UnimplementedImageApiServiceServer
	engine *vision.Engine
}

func (s *imageAPI) ExtractTemplates(ctx context.Context, req *imageapiv1.ExtractTemplatesRequest) (*imageapiv1.ExtractTemplatesResponse, error) {
	d, err := s.engine.Decode(req.GetImage())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	sample, err := s.engine.Process(ctx, vision.Request{Image: d.RGB, Units: vision.NewUnits(vision.UnitFaceDetector, vision.UnitTemplateExtractor)})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	out := &imageapiv1.Sample{Width: int32(sample.Width), Height: int32(sample.Height)}
	for _, o := range sample.Objects {
		obj := &imageapiv1.ImageObject{Id: o.ID, ObjectClass: imageapiv1.ObjectClass_OBJECT_CLASS_FACE, Confidence: float32(o.Confidence),
			Box: &commonv1.Box{X1: float32(o.Box.X1 / float64(sample.Width)), Y1: float32(o.Box.Y1 / float64(sample.Height)),
				X2: float32(o.Box.X2 / float64(sample.Width)), Y2: float32(o.Box.Y2 / float64(sample.Height))}}
		if o.Template != nil {
			obj.Template = &commonv1.Template{Vector: o.Template.Vector, Model: modelIDOf(o.Template)}
		}
		out.Objects = append(out.Objects, obj)
	}
	return &imageapiv1.ExtractTemplatesResponse{Sample: out}, nil
}
