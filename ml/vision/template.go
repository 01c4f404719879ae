package vision

import (
	"context"
	"golang.org/x/sync/errgroup"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// TemplateModel is the name templates of the shipped extractor carry.
const TemplateModel = "mobilefacenet-128d"

// arcFaceTemplate is where the 5 points of an aligned 112x112 face lie (the
// standard ArcFace/InsightFace template), in YuNet's point order.
var arcFaceTemplate = []geom.Point{
	{X: 38.2946, Y: 51.6963}, {X: 73.5318, Y: 51.5014}, {X: 56.0252, Y: 71.7366},
	{X: 41.5493, Y: 92.3655}, {X: 70.7299, Y: 92.2041},
}

const alignedSize = 112

// templateExtractor runs MobileFaceNet (128-d) with a dynamic batch.
//
// Preprocessing (models/SOURCES.md §3, verified): the face is aligned by the
// similarity transform taking its 5 points onto arcFaceTemplate, sampled to
// 112x112, RGB, (x − 127.5)/127.5. Output: 128 floats, L2-normalised here.
type templateExtractor struct {
	sess     *ort.Session
	version  string
	maxBatch int
}

func newTemplateExtractor(rt *ort.Runtime, src models.Source, maxBatch int) (*templateExtractor, error) {
	b, err := src.Read(models.FaceTemplate)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("mobilefacenet", b, []string{"input"}, []string{"output"})
	if err != nil {
		return nil, err
	}
	return &templateExtractor{sess: s, version: "1+" + models.Digest(b), maxBatch: maxBatch}, nil
}

// alignMap returns the sampling transform from the aligned 112x112 crop to
// the image, given the face's 5 points.
func alignMap(points []geom.Point) (imgproc.Affine, error) {
	sim, err := geom.EstimateSimilarity(arcFaceTemplate, points)
	if err != nil {
		return imgproc.Affine{}, err
	}
	return imgproc.Affine{A: sim.A, B: -sim.B, C: sim.TX, D: sim.B, E: sim.A, F: sim.TY}, nil
}

// alignedInto writes the aligned, normalised face into dst (3x112x112).
func alignedInto(dst []float32, img *imgproc.RGB, points []geom.Point) error {
	m, err := alignMap(points)
	if err != nil {
		return err
	}
	img.SampleInto(dst, alignedSize, alignedSize, m, imgproc.RGBPlanes,
		imgproc.Uniform(127.5, 1/127.5), imgproc.Border{})
	return nil
}

// extract computes the templates of faces. Many faces are split into as many
// batches as the session pool runs at once (each of at most maxBatch), run
// concurrently: with one single-threaded session per core, a batch of 16 on
// two cores runs as two batches of 8 side by side instead of one on one core.
// Every face must have 5 keypoints.
func (t *templateExtractor) extract(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	if len(faces) == 0 {
		return nil
	}
	chunks := max(min(t.sess.Parallelism(), len(faces)), (len(faces)+t.maxBatch-1)/t.maxBatch)
	size := (len(faces) + chunks - 1) / chunks
	if chunks == 1 {
		return t.extractBatch(ctx, img, faces)
	}
	g, gctx := errgroup.WithContext(ctx)
	for start := 0; start < len(faces); start += size {
		chunk := faces[start:min(start+size, len(faces))]
		g.Go(func() error { return t.extractBatch(gctx, img, chunk) })
	}
	return g.Wait()
}

// extractBatch computes the templates of faces in one Run.
func (t *templateExtractor) extractBatch(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	const per = 3 * alignedSize * alignedSize
	data := getBuffer(per * len(faces))
	defer putBuffer(data)
	for i, f := range faces {
		if err := alignedInto(data[i*per:(i+1)*per], img, f.Keypoints); err != nil {
			return err
		}
	}
	out, err := t.sess.Run(ctx, ort.Tensor{Shape: []int64{int64(len(faces)), 3, alignedSize, alignedSize}, Data: data})
	if err != nil {
		return err
	}
	dim := len(out[0].Data) / len(faces)
	for i, f := range faces {
		f.Template = &Template{Model: TemplateModel, Version: t.version, Vector: l2normalize(out[0].Data[i*dim : (i+1)*dim])}
	}
	return nil
}

func l2normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Sqrt(s)
	out := make([]float32, len(v))
	if n == 0 {
		return out
	}
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// Similarity is the cosine similarity of two L2-normalised templates, or an
// error when they come from different models.
func Similarity(a, b *Template) (float64, error) {
	if a == nil || b == nil || a.Model != b.Model || a.Version != b.Version || len(a.Vector) != len(b.Vector) {
		return 0, ErrIncomparable
	}
	var s float64
	for i := range a.Vector {
		s += float64(a.Vector[i]) * float64(b.Vector[i])
	}
	return s, nil
}

// VerifyThreshold is the cosine similarity at and above which two templates
// of TemplateModel are called the same person. Chosen from the measurements
// on the test photos and the model's holdout (models/SOURCES.md §3): same
// person ≥ 0.45, different ≤ 0.37 on 253 holdout pairs; 0.40 sits between.
const VerifyThreshold = 0.40
